package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
)

func TestPolicyCfgLineAndNewToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stkd.cfg")
	os.WriteFile(path, []byte("named: -T 127.0.0.1:20002\npolicy: names.conf\n"), 0o644)
	c, err := parseArgs([]string{"-c", path}, io.Discard)
	if err != nil || c.policy != filepath.Join(dir, "names.conf") {
		t.Fatalf("policy: line: %q, %v", c.policy, err)
	}
	if c, err = parseArgs([]string{"-c", path, "--policy", "/etc/other.conf"}, io.Discard); err != nil || c.policy != "/etc/other.conf" {
		t.Fatalf("--policy after -c: %q, %v", c.policy, err)
	}
	os.WriteFile(path, []byte("named: -T 127.0.0.1:20002\npolicy: a.conf\npolicy: b.conf\n"), 0o644)
	if _, err := parseArgs([]string{"-c", path}, io.Discard); err == nil || !strings.Contains(err.Error(), path+":3: policy: a second line (the first is line 2)") {
		t.Fatalf("two policy: lines: %v", err)
	}

	// The example file loads.
	if p, err := loadPolicy("../examples/stkd-policy.conf"); err != nil || p.Mode != namesvc.ModeDefaultDeny || len(p.Rules()) != 10 {
		t.Fatalf("examples/stkd-policy.conf: %v, %v", p, err)
	}

	// --new-token prints a token file line and a policy line that go
	// together.
	var b strings.Builder
	if c, err := parseArgs([]string{"--new-token", "billing"}, &b); c != nil || err != nil {
		t.Fatalf("--new-token: %v, %v", c, err)
	}
	var tokenLine, policyLine string
	for _, l := range strings.Split(b.String(), "\n") {
		switch {
		case strings.HasPrefix(l, "billing:"):
			tokenLine = l
		case strings.HasPrefix(l, "token billing sha256:"):
			policyLine = l
		}
	}
	secret := strings.TrimPrefix(tokenLine, "billing:")
	if len(secret) < 24 || policyLine != "token billing "+namesvc.HashToken(secret) {
		t.Fatalf("--new-token printed:\n%s", b.String())
	}
	if _, err := namesvc.ParsePolicy(strings.NewReader(policyLine+"\n"), "new"); err != nil {
		t.Fatal(err)
	}
}

// writePolicy writes text to path atomically (a reload never reads half).
func writePolicy(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func registerWithin(c *namesvc.Client, name string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return c.Register(ctx, namesvc.Info{Name: name, Linger: time.Second,
		Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:9")}}})
}

func httpBody(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestPolicyEndToEnd: stkd --policy with default-deny and tokens. Its own
// monitor registers with --token-file; a Go client with the token
// registers, one without is refused (counted in /metrics); an example CLI
// shows its token from --token-file; the token is in no lookup answer nor
// in /api/v1/names; SIGHUP reloads the file, and a bad file keeps the
// running policy.
func TestPolicyEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real processes skipped with -short")
	}
	progs, err := testprog.Build(".", "../examples/simple_name_registration")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(progs) })
	dir := t.TempDir()
	const (
		stkdToken = "stkd:stkd-secret-0123456789abcdef"
		opsToken  = "ops:ops-secret-0123456789abcdef"
	)
	stkdFile, opsFile := filepath.Join(dir, "stkd.token"), filepath.Join(dir, "ops.token")
	os.WriteFile(stkdFile, []byte(stkdToken+"\n"), 0o600)
	os.WriteFile(opsFile, []byte(opsToken+"\n"), 0o600)
	policy := filepath.Join(dir, "policy.conf")
	base := "mode default-deny\n" +
		"token stkd " + namesvc.HashToken(strings.TrimPrefix(stkdToken, "stkd:")) + "\n" +
		"token ops " + namesvc.HashToken(strings.TrimPrefix(opsToken, "ops:")) + "\n" +
		"allow lookup,subscribe *\n" +
		"allow register monitor,steps token stkd\n" +
		"allow register svc.* token ops via tcp\n"
	writePolicy(t, policy, base)
	t.Setenv(cli.TokenEnv, "") // nothing from the test's environment
	d := testprog.StartStkd(t, filepath.Join(progs, "stkd"), "--policy", policy, "--token-file", stkdFile)

	with, err := namesvc.Dial(d.Names, namesvc.ClientOptions{Token: opsToken})
	if err != nil {
		t.Fatal(err)
	}
	defer with.Close()
	without, err := namesvc.Dial(d.Names, namesvc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer without.Close()
	// stkd's own monitor registered with its token.
	lookupTCP := func(name string) namesvc.Info {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			info, err := without.LookupOnce(ctx, name, namesvc.LookupOptions{})
			if err == nil {
				return info
			}
			if ctx.Err() != nil {
				t.Fatalf("lookup %q: %v", name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	lookupTCP("monitor")

	if err := registerWithin(with, "svc.a", 5*time.Second); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	if err := registerWithin(without, "svc.b", 700*time.Millisecond); err == nil {
		t.Fatal("without the token: the registration was confirmed")
	}
	out, err := exec.Command(filepath.Join(progs, "simple_name_registration"), "-R", d.Names, "--token-file", opsFile, "-q", "svc.cli").CombinedOutput()
	if err != nil {
		t.Fatalf("simple_name_registration --token-file: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(progs, "simple_name_registration"), "-R", d.Names, "-q", "svc.nocli").CombinedOutput()
	if err == nil {
		t.Fatalf("simple_name_registration without a token was confirmed:\n%s", out)
	}
	info := lookupTCP("svc.a")
	for _, m := range info.Meta {
		if strings.Contains(string(m.Data), "secret") {
			t.Errorf("the lookup answer carries the token: %v", m)
		}
	}
	names := httpBody(t, d.URL("/api/v1/names"))
	if !strings.Contains(names, "svc.a") || !strings.Contains(names, "svc.cli") || strings.Contains(names, "secret") {
		t.Errorf("/api/v1/names: want svc.a and svc.cli and no token:\n%s", names)
	}
	// A refusal is no answer: the clients' giving up does not mean the
	// server has seen their requests yet, so the count is waited for.
	var m string
	testutil.WaitForf(t, 10*time.Second, func() bool {
		m = httpBody(t, d.URL("/metrics"))
		return strings.Contains(m, `stk_names_refused_total{reason="policy_register"} 2`+"\n")
	}, func() string { return fmt.Sprintf("/metrics does not count the 2 refusals:\n%s", m) })

	// SIGHUP: svc.* from this host without a token.
	writePolicy(t, policy, base+"allow register svc.* from 127.0.0.1\n")
	d.Cmd.Process.Signal(syscall.SIGHUP)
	d.WaitFor(t, `SIGHUP: policy reloaded`, 10*time.Second)
	if err := registerWithin(without, "svc.c", 5*time.Second); err != nil {
		t.Fatalf("after the reload: %v", err)
	}
	// A bad file keeps the policy running.
	writePolicy(t, policy, "mode sometimes\n")
	d.Cmd.Process.Signal(syscall.SIGHUP)
	d.WaitFor(t, `the policy file does not load; the running policy stays`, 10*time.Second)
	if !strings.Contains(d.Output(), "policy.conf:1: mode") {
		t.Errorf("the log does not say what is wrong:\n%s", d.Output())
	}
	if err := registerWithin(without, "svc.d", 5*time.Second); err != nil {
		t.Fatalf("after a bad reload: %v", err)
	}
	if d.Cmd.ProcessState != nil {
		t.Fatalf("stkd exited:\n%s", d.Output())
	}
}
