package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
)

// TestListenersSurviveDescriptorExhaustion runs stkd with an open-file
// limit of 256 and opens 400 idle connections to each of the name server
// and the monitor. While descriptors are exhausted, /healthz answers 503
// and names the listeners; once the connections close, both listeners
// accept again and a registration and a lookup work.
func TestListenersSurviveDescriptorExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real processes skipped with -short")
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not installed: cannot start stkd with a low open-file limit")
	}
	progs, err := testprog.Build(".")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(progs) })
	p := testprog.Start(t, prlimit, "--nofile=256:256", "--", filepath.Join(progs, "stkd"),
		"--names-tcp", "127.0.0.1:0", "--names-udp", "", "--monitor-tcp", "127.0.0.1:0", "--monitor-udp", "",
		"--http", "127.0.0.1:0", "--steps-feed", "")
	line := p.WaitFor(t, `msg="stkd running" .*`, 10*time.Second)[0]
	value := func(key string) string {
		m := regexp.MustCompile(` ` + key + `=(\S+)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no %s in %q", key, line)
		}
		return m[1]
	}
	names, monitor, ui := value("names_tcp"), value("monitor_tcp"), value("http")

	// One HTTP connection opened now and kept: a new one could not be
	// accepted while descriptors are exhausted.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}, Timeout: 5 * time.Second}
	health := func() (int, string) {
		t.Helper()
		res, err := hc.Get("http://" + ui + "/healthz")
		if err != nil {
			t.Fatalf("/healthz: %v", err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := health(); code != 200 {
		t.Fatalf("/healthz before the burst: %d %q", code, body)
	}

	idle := append(testutil.IdleConns(t, names, 400), testutil.IdleConns(t, monitor, 400)...)
	waitHealth := func(want int, what string) string {
		t.Helper()
		var code int
		var body string
		testutil.WaitForf(t, 15*time.Second, func() bool { code, body = health(); return code == want },
			func() string { return fmt.Sprintf("/healthz %s: still %d %q, want %d", what, code, body, want) })
		return body
	}
	body := waitHealth(503, "while descriptors are exhausted")
	if !strings.Contains(body, "names-tcp") || !strings.Contains(body, "too many open files") {
		t.Errorf("/healthz 503 body does not name the stuck name-server listener and the cause: %q", body)
	}
	for _, c := range idle {
		c.Close()
	}
	waitHealth(200, "after the connections closed")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := namesvc.Dial("tcp:"+names, namesvc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ap := netip.MustParseAddrPort("127.0.0.1:29999")
	if err := c.Register(ctx, namesvc.Info{Name: "after-burst", Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: ap}}}); err != nil {
		t.Fatalf("register after the burst: %v", err)
	}
	info, err := c.LookupOnce(ctx, "after-burst", namesvc.LookupOptions{})
	if err != nil || len(info.Addresses) != 1 || info.Addresses[0].Addr != ap {
		t.Fatalf("lookup after the burst: %+v, %v", info, err)
	}
	mc, err := net.DialTimeout("tcp", monitor, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	mc.Close()
	if n := strings.Count(p.Output(), "cannot accept connections"); n > 4 {
		t.Errorf("%d log lines about failed accepts: at most one per listener per 10 s expected", n)
	}
}
