package ctest

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/tlstest"
	"github.com/stk-go/stk/namesvc"
)

// TestCTLS: a C program reaches stkd's name server inside mutual TLS
// (--names-tls, --tls-client-ca). test_api (plain, ASan and, where it
// runs, valgrind) registers and looks up with stk_options.tls_ca_file,
// tls_cert_file and tls_key_file, and is refused with another CA's
// certificate; the C example simple_name_registration registers with
// $STK_TLS_CA, $STK_TLS_CERT and $STK_TLS_KEY, and fails with another
// CA's certificate saying it was the TLS handshake.
func TestCTLS(t *testing.T) {
	need(t)
	ca, other := tlstest.NewCA(t, "stk-ca"), tlstest.NewCA(t, "other-ca")
	good, bad := ca.Client(t, "c-app"), other.Client(t, "intruder")
	d := testprog.StartStkdMutualTLS(t, filepath.Join(goBin, "stkd"), ca, "--monitor-tcp", "", "--http", "", "--steps=false")
	apiArgs := []string{d.Names, d.NamesTLS, ca.CertFile, good.CertFile, good.KeyFile, bad.CertFile, bad.KeyFile}

	t.Run("Options", func(t *testing.T) {
		ps := []*testprog.Proc{
			testprog.Start(t, filepath.Join(cBin, "test_api"), apiArgs...),
			testprog.Start(t, filepath.Join(cBin, "asan", "test_api"), apiArgs...),
		}
		for _, p := range ps {
			if out := finish(t, p, 60*time.Second); !strings.HasSuffix(out, "ok online\nok tls online\nPASS\n") {
				t.Fatalf("%s:\n%s", p.Cmd.Path, out)
			}
		}
	})

	t.Run("Environment", func(t *testing.T) {
		t.Setenv(cli.TLSCAEnv, ca.CertFile)
		t.Setenv(cli.TLSCertEnv, good.CertFile)
		t.Setenv(cli.TLSKeyEnv, good.KeyFile)
		name := uniqueName("ctls")
		if out := finish(t, startC(t, "simple_name_registration", "-R", d.NamesTLS, "-L", "30", name), 15*time.Second); !strings.Contains(out, "Registered "+name) {
			t.Fatalf("simple_name_registration over mutual TLS ($STK_TLS_*):\n%s", out)
		}
		t.Setenv(cli.TLSCertEnv, bad.CertFile)
		t.Setenv(cli.TLSKeyEnv, bad.KeyFile)
		refused := startC(t, "simple_name_registration", "-R", d.NamesTLS, uniqueName("ctls.refused"))
		out := refused.Wait(t, 15*time.Second)
		if code := refused.Cmd.ProcessState.ExitCode(); code == 0 || strings.Contains(out, "Sanitizer") ||
			!strings.Contains(out, "stk_name_register") || !strings.Contains(out, "TLS handshake") || !strings.Contains(out, "tls_cert_file") {
			t.Fatalf("another CA's certificate: exit %d, want a failed stk_name_register naming the TLS handshake:\n%s", code, out)
		}
		t.Logf("the refusal as the C program reports it: %s", strings.TrimSpace(out))

		// The registration is there, for a Go client with the good certificate.
		cfg, err := cli.LoadTLS(cli.TLSFiles{CA: ca.CertFile, Cert: good.CertFile, Key: good.KeyFile})
		if err != nil {
			t.Fatal(err)
		}
		c, err := namesvc.Dial(d.NamesTLS, namesvc.ClientOptions{TLS: cfg})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if infos, err := c.LookupAll(t.Context(), name, namesvc.LookupOptions{}); err != nil || len(infos) != 1 {
			t.Fatalf("lookup of %s over TLS: %v, %v", name, infos, err)
		}
	})

	t.Run("Valgrind", func(t *testing.T) {
		env := needValgrind(t)
		out, err := valgrind(env, "test_api", apiArgs...)
		if err != nil || !strings.HasSuffix(out, "ok tls online\nPASS\n") {
			t.Fatalf("test_api over TLS under valgrind: %v\n%s", err, out)
		}
	})
}
