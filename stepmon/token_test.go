package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
)

// TestStepmonToken: under a default-deny policy that lets only the token
// "step" register step*, stepmon registers its feed with the token of
// token-file in its config file and with $STK_TOKEN, and is refused
// without a token (it says so and keeps trying). A token file that is not
// NAME:SECRET stops it at once.
func TestStepmonToken(t *testing.T) {
	leakcheck.Check(t)
	const secret = "stepmon-secret-0123456789abcdef"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "step.token")
	conf := filepath.Join(dir, "stepmon.conf")
	policy := filepath.Join(dir, "policy.conf")
	bad := filepath.Join(dir, "bad.token")
	for path, text := range map[string]string{
		tokenFile: "step:" + secret + "\n",
		conf:      "token-file = " + tokenFile + "\n",
		bad:       "no colon here\n",
		policy: "mode default-deny\n" +
			"token step " + namesvc.HashToken(secret) + "\n" +
			"allow lookup,subscribe *\n" +
			"allow register step* token step via tcp\n",
	} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(cli.TokenEnv, "") // nothing from the test's environment
	d := testprog.StartStkd(t, filepath.Join(bin, "stkd"), "--policy", policy, "--monitor-tcp", "", "--http", "", "--steps=false")

	stepmon := func(name string, args ...string) *testprog.Proc { return startNamedFeed(t, d.Names, name, args...) }
	prefix := fmt.Sprintf("step.token-test-%d", os.Getpid())
	withFile := stepmon(prefix+".file", "-c", conf)
	t.Setenv(cli.TokenEnv, "step:"+secret)
	withEnv := stepmon(prefix + ".env")
	t.Setenv(cli.TokenEnv, "")
	without := stepmon(prefix + ".none")

	registered := registeredAt(t, d.Names)
	testutil.WaitFor(t, 10*time.Second, "the feeds with a token (config file, $STK_TOKEN) registered", func() bool {
		return registered(prefix+".file") && registered(prefix+".env")
	})

	// The refused registration times out (5 s): stepmon says so.
	without.WaitFor(t, `msg="name not registered yet; the client keeps trying" .*name=`+prefix+`\.none`, 15*time.Second)
	if registered(prefix + ".none") {
		t.Errorf("%s.none was registered without a token", prefix)
	}
	for _, p := range []*testprog.Proc{withFile, withEnv} {
		if strings.Contains(p.Output(), "name not registered yet") {
			t.Errorf("a stepmon with a token logged a refusal:\n%s", p.Output())
		}
	}

	p := testprog.Start(t, filepath.Join(bin, "stepmon"), "--name-server", d.Names, "--token-file", bad)
	out := p.Wait(t, 10*time.Second)
	if code := p.Cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(out, "--token-file "+bad+": want one line NAME:SECRET") {
		t.Errorf("--token-file with a bad token: exit %d, output %q", code, out)
	}
}

// startNamedFeed runs stepmon publishing memory STEPs every second under
// name (no directory, no services collector, nothing printed),
// registering with nameServer, with more args.
func startNamedFeed(t *testing.T, nameServer, name string, args ...string) *testprog.Proc {
	t.Helper()
	return testprog.Start(t, filepath.Join(bin, "stepmon"), append([]string{"--interval", "1s", "--name-server", nameServer,
		"--stkd-http", "", "--quiet", "--collectors", "memory", "--name", name, "--directory", ""}, args...)...)
}

// registeredAt returns a check of whether a name is registered at the
// name server at addr (a plain lookup, answered within a second).
func registeredAt(t *testing.T, addr string) func(name string) bool {
	t.Helper()
	c, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func(name string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.LookupOnce(ctx, name, namesvc.LookupOptions{})
		return err == nil
	}
}
