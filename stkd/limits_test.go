package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
)

func TestLimitFlagsAndConfigLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stkd.cfg")
	os.WriteFile(path, []byte("named: -T 127.0.0.1:20002\nlimit: names.registrations_per_client=7 monitor.idle_timeout=off\nlimit: names.max_linger=10m\n"), 0o644)
	c, err := parseArgs([]string{"-c", path, "--limit", "names.registrations_per_client=9", "--limit", "monitor.records=50"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	l := c.limits
	if l.names.RegistrationsPerClient != 9 || l.names.MaxLinger != 10*time.Minute || l.monFlow.IdleTimeout != -1 || l.monRecords != 50 {
		t.Fatalf("limits %+v: want the flag to win over the file (9), the file's 10m and off, the flag's 50", l)
	}
	// Every bad limit is reported at once, each with where it came from.
	os.WriteFile(path, []byte("named: -T 127.0.0.1:20002\nlimit: names.nope=1 names.groups=-3\n"), 0o644)
	_, err = parseArgs([]string{"-c", path, "--limit", "monitor.records=off", "--limit", "noequals"}, io.Discard)
	for _, want := range []string{
		path + `:2: limit: unknown limit "names.nope"`,
		path + `:2: limit: names.groups=-3: want a positive whole number or off`,
		"--limit monitor.records=off: this bound cannot be turned off",
		`--limit "noequals": want KEY=VALUE`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	var b strings.Builder
	if c, err := parseArgs([]string{"--limits"}, &b); c != nil || err != nil || !strings.Contains(b.String(), "names.registrations_per_client  1000") {
		t.Errorf("--limits: %v, %v:\n%s", c, err, b.String())
	}
}

// TestLimitRefusesAndCounts: a client past --limit
// names.registrations_per_client gets no confirmation, /metrics counts the
// refusal, and another client is served.
func TestLimitRefusesAndCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real processes skipped with -short")
	}
	progs, err := testprog.Build(".")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(progs) })
	d := testprog.StartStkd(t, filepath.Join(progs, "stkd"), "--steps-feed", "", "--limit", "names.registrations_per_client=2")
	register := func(c *namesvc.Client, name string, wait time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		return c.Register(ctx, namesvc.Info{Name: name, Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:9")}}})
	}
	greedy, err := namesvc.Dial(d.Names, namesvc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer greedy.Close()
	for i := range 2 {
		if err := register(greedy, fmt.Sprintf("mine-%d", i), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := register(greedy, "one-too-many", 700*time.Millisecond); err == nil {
		t.Fatal("a third registration past names.registrations_per_client=2 was confirmed")
	}
	other, err := namesvc.Dial(d.Names, namesvc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := register(other, "theirs", 5*time.Second); err != nil {
		t.Fatalf("another client was refused too: %v", err)
	}
	// The third registration's 700 ms without an answer, and the other
	// client's confirmation, do not mean the server has seen it yet (the
	// request may still be on its way on a loaded machine): wait for the
	// count.
	var m []byte
	testutil.WaitForf(t, 10*time.Second, func() bool {
		res, err := http.Get(d.URL("/metrics"))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		m, _ = io.ReadAll(res.Body)
		return strings.Contains(string(m), `stk_names_refused_total{reason="client_registrations"} 1`+"\n")
	}, func() string { return fmt.Sprintf("/metrics does not count the refusal:\n%s", m) })
}
