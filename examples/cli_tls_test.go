package examples

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/tlstest"
)

// tlsStkd starts stkd with its name server and monitor inside mutual TLS:
// its certificate is issued by ca, and it asks every client for one of
// ca's.
func tlsStkd(t *testing.T, ca *tlstest.CA) *testprog.Stkd {
	t.Helper()
	d := testprog.StartStkdMutualTLS(t, filepath.Join(bin, "stkd"), ca, "--monitor-tls", "127.0.0.1:0")
	if d.MonitorTLS == "" {
		t.Fatal("stkd did not log its monitor_tls listener")
	}
	return d
}

// TestCLIsOverMutualTLS: the CLIs reach a tls: name server (and monitor)
// of stkd under mutual TLS with --tls-ca, --tls-cert and --tls-key, or
// their environment variables; a certificate of another CA, or no
// --tls-ca for a server of a private CA, fails with exit status 1 and a
// message naming the TLS handshake and the flags to check.
func TestCLIsOverMutualTLS(t *testing.T) {
	ca, other := tlstest.NewCA(t, "stk-ca"), tlstest.NewCA(t, "other-ca")
	d := tlsStkd(t, ca)
	good, bad := ca.Client(t, "cli"), other.Client(t, "intruder")
	goodFlags := []string{"--tls-ca", ca.CertFile, "--tls-cert", good.CertFile, "--tls-key", good.KeyFile}

	t.Run("RegisterAndLookUp", func(t *testing.T) {
		name := uniqueName("tls")
		args := append([]string{"-R", d.NamesTLS, "-i", "tcp:127.0.0.1:5432", "-L", "30", name}, goodFlags...)
		out, code := runProg(t, "simple_name_registration", args...)
		if code != 0 || !strings.Contains(out, "Registered "+name+" with the name server at "+d.NamesTLS) {
			t.Fatalf("simple_name_registration over mutual TLS: exit %d:\n%s", code, out)
		}
		// The files from the environment this time.
		t.Setenv("STK_TLS_CA", ca.CertFile)
		t.Setenv("STK_TLS_CERT", good.CertFile)
		t.Setenv("STK_TLS_KEY", good.KeyFile)
		out, code = runProg(t, "simple_name_lookup", "-R", d.NamesTLS, name)
		if code != 0 || !strings.Contains(out, "IP 127.0.0.1 Port 5432 Protocol tcp") || !strings.Contains(out, "complete: 1 answer(s)") {
			t.Fatalf("simple_name_lookup over mutual TLS ($STK_TLS_*): exit %d:\n%s", code, out)
		}
	})

	t.Run("PublishSubscribe", func(t *testing.T) {
		name := uniqueName("tlsdata")
		sub := start(t, "subscribe", append([]string{"-R", d.NamesTLS, "-q", "-c", "100", name}, goodFlags...)...)
		sub.WaitFor(t, "Subscribing to", 10*time.Second)
		pub := start(t, "publish", append([]string{"-R", d.NamesTLS, "-i", "tcp:127.0.0.1:0", "-s", "100", "-w", "1", name}, goodFlags...)...)
		if out := pub.Wait(t, 60*time.Second); !strings.Contains(out, "Sent 100 sequences") {
			t.Fatalf("publish over a tls: name server:\n%s", out)
		}
		if out := sub.Wait(t, 30*time.Second); !strings.Contains(out, "Received: 100 sequences, ") {
			t.Fatalf("subscribe over a tls: name server:\n%s", out)
		}
	})

	t.Run("MonitoredService", func(t *testing.T) {
		// The reports go to the monitor's tls: listener; exit 0 says the
		// monitor took them (its goodbye included).
		args := append([]string{"-m", d.MonitorTLS, "-t", "3", "-i", "20ms", "-S", "tls service"}, goodFlags...)
		out, code := runProg(t, "monitored_service", args...)
		if code != 0 || !strings.Contains(out, "stopped at checkpoint 3") {
			t.Fatalf("monitored_service to a tls: monitor: exit %d:\n%s", code, out)
		}
	})

	for _, tc := range []struct {
		name  string
		flags []string
		want  string // in the last line
	}{
		{"OtherCAsCertificate", []string{"--tls-ca", ca.CertFile, "--tls-cert", bad.CertFile, "--tls-key", bad.KeyFile},
			`last connection attempt: TLS handshake: .*; check that --tls-ca .*--tls-cert/--tls-key are issued by a CA the server trusts`},
		{"NoCertificate", []string{"--tls-ca", ca.CertFile},
			`last connection attempt: TLS handshake: .*certificate.*; check that --tls-ca`},
		{"SystemRoots", []string{"--tls-cert", good.CertFile, "--tls-key", good.KeyFile},
			`last connection attempt: TLS handshake: .*unknown authority.*; check that --tls-ca`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each waits out simple_name_registration's 5 s
			args := append([]string{"-R", d.NamesTLS, "-q", uniqueName("refused")}, tc.flags...)
			out, code := runProg(t, "simple_name_registration", args...)
			want := "^simple_name_registration: register .* with the name server at " + regexp.QuoteMeta(d.NamesTLS) + ": .*" + tc.want
			if code != 1 || !regexp.MustCompile(want).MatchString(lastLine(out)) {
				t.Errorf("exit %d, want 1 and a last line matching %q:\n%s", code, want, out)
			}
			t.Logf("the refusal as the user sees it: %s", lastLine(out))
		})
	}
}

// TestTLSFlagsUsage: -h documents the --tls-* flags, a certificate
// without its key and a missing file are usage errors (exit 2), and
// --tls-* with a tcp: -R is warned about.
func TestTLSFlagsUsage(t *testing.T) {
	out, code := runProg(t, "simple_name_lookup", "-h")
	for _, want := range []string{"--tls-ca string", "$STK_TLS_CA; without either, the system's roots", "--tls-cert string", "--tls-key string",
		"[tcp|udp|tls:]host[:port]"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("-h lacks %q:\n%s", want, out)
		}
	}
	ca := tlstest.NewCA(t, "usage-ca")
	c := ca.Client(t, "cli")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", c.CertFile, "x"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-ca", filepath.Join(t.TempDir(), "missing.pem"), "x"}, "missing.pem: no such file"},
		{[]string{"--tls-cert", c.CertFile, "--tls-key", ca.CertFile, "x"}, "TLS certificate " + c.CertFile},
	} {
		out, code := runProg(t, "simple_name_lookup", tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) || !strings.Contains(out, "(see simple_name_lookup -h)") {
			t.Errorf("%v: exit %d, want 2 and %q:\n%s", tc.args, code, tc.want, out)
		}
	}
	ns := stkd(t)
	name := uniqueName("plain")
	out, code = runProg(t, "simple_name_registration", "-R", ns, "--tls-ca", ca.CertFile, "-L", "1", name)
	if code != 0 || !strings.Contains(out, "--tls-* given but the address is not a tls: one") {
		t.Errorf("--tls-ca with tcp: -R: exit %d, want 0 and a warning:\n%s", code, out)
	}
	t.Logf("simple_name_registration -R tcp: --tls-ca:\n%s", out)
}
