package python_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/tlstest"
)

// TestPythonTLS: a Python environment reaches stkd's name server inside
// mutual TLS with tls_ca_file=, tls_cert_file=, tls_key_file= and with
// $STK_TLS_CA, $STK_TLS_CERT, $STK_TLS_KEY, and is refused with another
// CA's certificate (tests/e2e_tls.py).
func TestPythonTLS(t *testing.T) {
	need(t)
	ca, other := tlstest.NewCA(t, "stk-ca"), tlstest.NewCA(t, "other-ca")
	good, bad := ca.Client(t, "py-app"), other.Client(t, "intruder")
	d := testprog.StartStkdMutualTLS(t, filepath.Join(bin, "stkd"), ca, "--monitor-tcp", "", "--http", "", "--steps=false")
	p := py(t, "tests/e2e_tls.py", "-R", d.NamesTLS, "--ca", ca.CertFile, "--cert", good.CertFile, "--key", good.KeyFile,
		"--bad-cert", bad.CertFile, "--bad-key", bad.KeyFile, uniqueName("pytls"))
	out := p.Wait(t, 30*time.Second)
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 || !strings.HasSuffix(out, "ok bad TLS files refused\nPASS\n") {
		t.Fatalf("e2e_tls.py: exit %d:\n%s", code, out)
	}
	t.Logf("e2e_tls.py:\n%s", out)
}
