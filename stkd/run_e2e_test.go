package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
)

// stkd is this package's program, built on first use.
var stkd = testprog.Binary{Pkg: ".", Name: "stkd"}

// stkdBin returns the path of stkd, built once for the package's tests.
func stkdBin(t *testing.T) string { return stkd.Path(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	stkd.Remove()
	os.Exit(code)
}

// inNetns moves the test's goroutine, on a thread of its own, into a new
// network namespace with only loopback, up, and a route for multicast on
// it. Sockets this goroutine opens and programs it starts live there, so
// stkd can take its default ports whatever else runs on the host, and
// multicast never leaves loopback. Goroutines started elsewhere (a TCP
// client's background connect, net/http's dialer) are in the host's
// namespace: tests here dial from the test goroutine only.
func inNetns(t *testing.T) {
	t.Helper()
	// Never unlocked: when the test's goroutine ends, Go ends the thread
	// with it, so no other goroutine ever runs in the namespace.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Skipf("needs a network namespace of its own (unshare(CLONE_NEWNET): %v; run as root or with CAP_SYS_ADMIN)", err)
	}
	for _, args := range [][]string{{"link", "set", "lo", "up", "multicast", "on"}, {"route", "add", "224.0.0.0/4", "dev", "lo"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Skipf("setting up the namespace's loopback needs iproute2: ip %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
}

// startStkd starts stkd with args and waits for its "stkd running" line.
func startStkd(t *testing.T, args ...string) *testprog.Proc {
	t.Helper()
	p := testprog.Start(t, stkdBin(t), args...)
	p.WaitFor(t, `stkd running`, 10*time.Second)
	return p
}

// exitsWith waits for the program to fail and returns its output.
func exitsWith(t *testing.T, p *testprog.Proc) string {
	t.Helper()
	out := p.Wait(t, 10*time.Second)
	if p.Cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit status %d, want 1; output:\n%s", p.Cmd.ProcessState.ExitCode(), out)
	}
	return out
}

// udpNames returns a name-service client over STK-UDP to addr, made on
// the calling goroutine (so in its namespace).
func udpNames(t *testing.T, addr string) *namesvc.Client {
	t.Helper()
	c, err := namesvc.Dial("udp:"+addr, namesvc.ClientOptions{Logger: testutil.Discard(), RetryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// lookup asks c for name until it answers or 10 s pass.
func lookup(t *testing.T, c *namesvc.Client, name string) namesvc.Info {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		info, err := c.LookupOnce(ctx, name, namesvc.LookupOptions{})
		if err == nil {
			return info
		}
		if ctx.Err() != nil {
			t.Fatalf("lookup %q: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond) // registrations are asynchronous
	}
}

// httpGet is a minimal GET over a connection this goroutine opens (so in
// its namespace; net/http dials on other goroutines).
func httpGet(t *testing.T, addr, path string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr)
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := strings.Cut(string(b), "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.0 200") && !strings.HasPrefix(head, "HTTP/1.1 200") {
		t.Fatalf("GET http://%s%s: %s", addr, path, head)
	}
	return body
}

// The first user's story: a second stkd with the defaults reports every
// conflict in one error and starts nothing; with --port-base it runs
// beside the first, and both answer.
func TestSecondStkd(t *testing.T) {
	inNetns(t)
	first := startStkd(t)
	second := testprog.Start(t, stkdBin(t))
	out := exitsWith(t, second)
	for _, want := range []string{
		"--names-tcp 127.0.0.1:20002 (tcp): address already in use",
		"--names-udp 127.0.0.1:20002 (udp): address already in use",
		"--monitor-tcp 127.0.0.1:20001 (tcp): address already in use",
		"--monitor-udp 127.0.0.1:20001 (udp): address already in use",
		"--http 127.0.0.1:8080 (tcp): address already in use",
		"--port-base",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("second stkd's error does not say %q", want)
		}
	}
	if strings.Contains(out, "level=") { // no log line: nothing started
		t.Errorf("the second stkd started something before failing:\n%s", out)
	}
	if t.Failed() {
		t.Fatalf("second stkd's output:\n%s", out)
	}

	startStkd(t, "--port-base", "21000")
	for _, tc := range []struct{ names, monitor, http string }{
		{"127.0.0.1:20002", "tcp:127.0.0.1:20001", "127.0.0.1:8080"},
		{"127.0.0.1:21002", "tcp:127.0.0.1:21001", "127.0.0.1:21080"},
	} {
		info := lookup(t, udpNames(t, tc.names), "monitor")
		if s, _ := info.MetaString(0x1000); s != tc.monitor {
			t.Errorf("the name server on %s has monitor at %q, want %q", tc.names, s, tc.monitor)
		}
		httpGet(t, tc.http, "/healthz")
	}
	if first.Cmd.ProcessState != nil {
		t.Fatalf("the first stkd exited:\n%s", first.Output())
	}
}

// The C stkd.cfg that serves STK-UDP and multicast on one port runs, a UDP
// name registration works on it, and a lookup sent to the group is
// answered.
func TestCCfgUnicastAndMulticastOnOnePort(t *testing.T) {
	inNetns(t)
	path := filepath.Join(t.TempDir(), "stkd.cfg")
	os.WriteFile(path, []byte("named: -T 127.0.0.1:20002 -U 127.0.0.1:20002 -M 224.10.10.20:20002\n"+
		"httpd: -T 127.0.0.1:20001 -U 127.0.0.1:20001 -M 224.10.10.20:20001\n"), 0o644)
	d := startStkd(t, "-c", path)
	if !strings.Contains(d.Output(), "names_multicast=0.0.0.0:20002") || !strings.Contains(d.Output(), "monitor_multicast=0.0.0.0:20001") {
		t.Fatalf("multicast listeners not in the running line:\n%s", d.Output())
	}

	reg := udpNames(t, "127.0.0.1:20002")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := reg.Register(ctx, namesvc.Info{Name: "on-one-port", Linger: time.Minute,
		Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:4000")}}})
	if err != nil {
		t.Fatalf("UDP registration: %v", err)
	}
	if info := lookup(t, udpNames(t, "127.0.0.1:20002"), "on-one-port"); len(info.Addresses) != 1 || info.Addresses[0].Addr.Port() != 4000 {
		t.Fatalf("looked up %v", info)
	}
	// The multicast listener of the same port answers too.
	if info := lookup(t, udpNames(t, "224.10.10.20:20002"), "on-one-port"); len(info.Addresses) != 1 {
		t.Fatalf("looked up over multicast: %v", info)
	}
	// And a second stkd on the same file is refused, multicast included.
	out := exitsWith(t, testprog.Start(t, stkdBin(t), "-c", path))
	for _, want := range []string{path + ":1: named: -U 127.0.0.1:20002 (udp): address already in use",
		path + ":1: named: -M 224.10.10.20:20002 (multicast): address already in use",
		path + ":2: httpd: -M 224.10.10.20:20001 (multicast): address already in use"} {
		if !strings.Contains(out, want) {
			t.Errorf("second stkd on %s: no %q in\n%s", path, want, out)
		}
	}
}

// examples/stkd.cfg, as installed, is accepted and runs.
func TestExampleCfg(t *testing.T) {
	c, err := parseArgs([]string{"-c", "../examples/stkd.cfg"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(*c, c.origins()); err != nil {
		t.Fatal(err)
	}
	inNetns(t)
	startStkd(t, "-c", "../examples/stkd.cfg")
	lookup(t, udpNames(t, "127.0.0.1:20002"), "monitor")
}

// A bad line stops stkd before it starts anything, naming file and line.
func TestBadCfgLineExits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stkd.cfg")
	os.WriteFile(path, []byte("named: -T 127.0.0.1:0\nhttpd: -p 99999\n"), 0o644)
	out := exitsWith(t, testprog.Start(t, stkdBin(t), "-c", path))
	if !strings.Contains(out, path+":2: httpd: -p 99999: bad port") || strings.Contains(out, "level=") {
		t.Fatalf("output:\n%s", out)
	}
}

// --version prints what the UI shows; --log-format json logs JSON lines.
func TestVersionAndJSONLogs(t *testing.T) {
	out, err := exec.Command(stkdBin(t), "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(out))
	if !strings.HasPrefix(version, "stkd ") || !strings.Contains(version, runtime.Version()) {
		t.Fatalf("--version printed %q", version)
	}

	p := testprog.Start(t, stkdBin(t), "--log-format", "json", "--names-tcp", "127.0.0.1:0", "--names-udp", "",
		"--monitor-tcp", "127.0.0.1:0", "--monitor-udp", "", "--http", "127.0.0.1:0")
	p.WaitFor(t, `"msg":"stkd running"`, 10*time.Second)
	var running map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		if m["msg"] == "stkd running" {
			running = m
		}
	}
	var snap struct {
		Daemon struct {
			Version string `json:"version"`
		} `json:"daemon"`
	}
	body := httpGet(t, running["http"].(string), "/api/v1/stats")
	if err := json.Unmarshal([]byte(body), &snap); err != nil {
		t.Fatal(err)
	}
	// The UI's footer is "stkd " + this.
	if "stkd "+snap.Daemon.Version != version {
		t.Fatalf("the UI shows version %q, --version prints %q", snap.Daemon.Version, version)
	}
	if out, err := exec.Command(stkdBin(t), "--log-format", "xml").CombinedOutput(); err == nil || !strings.Contains(string(out), "--log-format") {
		t.Fatalf("--log-format xml: %v %s", err, out)
	}
}
