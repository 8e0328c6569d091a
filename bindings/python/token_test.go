package python_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/namesvc"
)

// TestPythonToken: under a default-deny policy that lets only the token
// "pyapp" register pyapp.*, a Python environment registers with
// token_file= and with $STK_TOKEN, and is refused without a token
// (tests/e2e_token.py).
func TestPythonToken(t *testing.T) {
	need(t)
	const secret = "pyapp-secret-0123456789abcdef"
	dir := t.TempDir()
	tokenFile, policy := filepath.Join(dir, "pyapp.token"), filepath.Join(dir, "policy.conf")
	if err := os.WriteFile(tokenFile, []byte("pyapp:"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(policy, []byte("mode default-deny\n"+
		"token pyapp "+namesvc.HashToken(secret)+"\n"+
		"allow lookup,subscribe *\n"+
		"allow register pyapp.* token pyapp via tcp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := testprog.StartStkd(t, filepath.Join(bin, "stkd"), "--policy", policy, "--monitor-tcp", "", "--http", "", "--steps=false")
	p := py(t, "tests/e2e_token.py", "-R", d.Names, "--token-file", tokenFile, uniqueName("pyapp.t"))
	out := p.Wait(t, 30*time.Second)
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 || !strings.HasSuffix(out, "ok bad token files refused\nPASS\n") {
		t.Fatalf("e2e_token.py: exit %d:\n%s", code, out)
	}
}
