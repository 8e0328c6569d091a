package ctest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/namesvc"
)

// TestCToken: under a default-deny policy that lets only the token "capp"
// register capp.*, the C example registers with stk_options.token_file
// (-T) and with $STK_TOKEN, and is refused without a token.
func TestCToken(t *testing.T) {
	need(t)
	const secret = "capp-secret-0123456789abcdef"
	dir := t.TempDir()
	tokenFile, policy := filepath.Join(dir, "capp.token"), filepath.Join(dir, "policy.conf")
	if err := os.WriteFile(tokenFile, []byte("capp:"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(policy, []byte("mode default-deny\n"+
		"token capp "+namesvc.HashToken(secret)+"\n"+
		"allow lookup,subscribe *\n"+
		"allow register capp.* token capp via tcp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(cli.TokenEnv, "") // nothing from the test's environment
	d := testprog.StartStkd(t, filepath.Join(goBin, "stkd"), "--policy", policy, "--monitor-tcp", "", "--http", "", "--steps=false")

	withFile := startC(t, "simple_name_registration", "-R", d.Names, "-T", tokenFile, "capp.file")
	t.Setenv(cli.TokenEnv, "capp:"+secret)
	withEnv := startC(t, "simple_name_registration", "-R", d.Names, "capp.env")
	t.Setenv(cli.TokenEnv, "")
	without := startC(t, "simple_name_registration", "-R", d.Names, "capp.none")

	for _, p := range []*testprog.Proc{withFile, withEnv} {
		if out := finish(t, p, 15*time.Second); !strings.Contains(out, "Registered capp.") {
			t.Errorf("%v with a token:\n%s", p.Cmd.Args, out)
		}
	}
	out := without.Wait(t, 15*time.Second)
	if code := without.Cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(out, "stk_name_register") || strings.Contains(out, "Sanitizer") {
		t.Errorf("without a token: exit %d, want a failed stk_name_register:\n%s", code, out)
	}

	c, err := namesvc.Dial(d.Names, namesvc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, want := range map[string]bool{"capp.file": true, "capp.env": true, "capp.none": false} {
		infos, err := c.LookupAll(t.Context(), name, namesvc.LookupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(infos) == 1; got != want {
			t.Errorf("%s registered: %v, want %v (%v)", name, got, want, infos)
		}
	}
}
