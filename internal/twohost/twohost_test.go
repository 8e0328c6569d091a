package twohost

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/httpd"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
)

// getEnv makes the test binary GET the URL it names and exit: the tests
// re-run themselves inside a namespace to reach an HTTP API there (the
// test process stays in the host's namespace).
const getEnv = "STK_TWOHOST_GET"

func TestMain(m *testing.M) {
	if u := os.Getenv(getEnv); u != "" {
		os.Exit(httpGet(u))
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func httpGet(u string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	io.Copy(os.Stdout, resp.Body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "GET", u, resp.Status)
		return 1
	}
	return 0
}

// wait bounds every wait for a program's output or state.
const wait = 20 * time.Second

// Ports stkd uses on A: the defaults, free in a new namespace.
const (
	namesPort   = 20002
	monitorPort = 20001
	httpAddr    = "127.0.0.1:8080"
)

// hosts are two network namespaces, A and B, joined by a veth pair.
type hosts struct {
	ip       string // iproute2's ip
	a, b     string // namespace names
	ipA, ipB netip.Addr
}

// runs numbers the host pairs of this process: each gets its own names
// and /30.
var runs atomic.Int32

// newHosts creates A and B, deleted when the test ends (even when it
// fails), or skips the test saying what is missing.
func newHosts(t *testing.T) *hosts {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces: run it as root (sudo go test -count=1 ./internal/twohost/)")
	}
	ipCmd, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs iproute2's ip to create network namespaces (apt-get install iproute2)")
	}
	pid, n := os.Getpid(), runs.Add(1)
	// A per-run /30 inside 10.99.0.0/24: .x+1 is B, .x+2 is A.
	base := byte((pid + int(n)) % 64 * 4)
	h := &hosts{
		ip:  ipCmd,
		a:   fmt.Sprintf("stk2h-%d-%d-a", pid, n),
		b:   fmt.Sprintf("stk2h-%d-%d-b", pid, n),
		ipA: netip.AddrFrom4([4]byte{10, 99, 0, base + 2}),
		ipB: netip.AddrFrom4([4]byte{10, 99, 0, base + 1}),
	}
	run := func(args ...string) error {
		if out, err := exec.Command(ipCmd, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run("netns", "add", h.a); err != nil {
		t.Skipf("cannot create a network namespace (a container without CAP_SYS_ADMIN?): %v", err)
	}
	// Cleanups run last-registered first: after the programs' (registered
	// later), so nothing runs in a namespace that is deleted.
	t.Cleanup(func() { run("netns", "del", h.a) })
	if err := run("netns", "add", h.b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run("netns", "del", h.b) })
	// Interface names have at most 15 bytes.
	vethA, vethB := fmt.Sprintf("s2h%d.%da", pid%1000000, n), fmt.Sprintf("s2h%d.%db", pid%1000000, n)
	if err := run("link", "add", vethA, "type", "veth", "peer", "name", vethB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run("link", "del", vethA) }) // fails once A holds it: deleting A deletes it
	for _, c := range [][]string{
		{"link", "set", vethA, "netns", h.a},
		{"link", "set", vethB, "netns", h.b},
		{"-n", h.a, "addr", "add", h.ipA.String() + "/30", "dev", vethA},
		{"-n", h.b, "addr", "add", h.ipB.String() + "/30", "dev", vethB},
		{"-n", h.a, "link", "set", "lo", "up"},
		{"-n", h.b, "link", "set", "lo", "up"},
		{"-n", h.a, "link", "set", vethA, "up"},
		{"-n", h.b, "link", "set", vethB, "up"},
	} {
		if err := run(c...); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("A: namespace %s, %v; B: namespace %s, %v", h.a, h.ipA, h.b, h.ipB)
	return h
}

// start runs the program at path in namespace ns.
func (h *hosts) start(t *testing.T, ns, path string, args ...string) *testprog.Proc {
	t.Helper()
	return testprog.Start(t, h.ip, append([]string{"netns", "exec", ns, path}, args...)...)
}

// getJSON GETs path of the stkd API on A, from inside A, into v.
func (h *hosts) getJSON(t *testing.T, path string, v any) error {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(h.ip, "netns", "exec", h.a, self, "-test.run=^$")
	cmd.Env = append(os.Environ(), getEnv+"=http://"+httpAddr+path)
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("GET %s in A: %v: %s", path, err, out)
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("GET %s in A: %v: %s", path, err, out)
	}
	return nil
}

// registered waits until A's name server has name registered with the
// address (or meta-data string) want, and fails with what it has
// otherwise.
func (h *hosts) registered(t *testing.T, name, want string) {
	t.Helper()
	var got []string
	testutil.WaitForf(t, wait, func() bool {
		var body httpd.NamesJSON
		if err := h.getJSON(t, "/api/v1/names?q="+name, &body); err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, n := range body.Names {
			if n.Name != name {
				continue
			}
			for _, a := range n.Addresses {
				got = append(got, a.Text)
			}
			for _, m := range n.Meta {
				got = append(got, m.Text)
			}
		}
		return slices.Contains(got, want)
	}, func() string { return fmt.Sprintf("A's name server has %q at %q, want %s", name, got, want) })
}

// startStkd runs stkd on A with the name server on 0.0.0.0 and the
// monitor on monitorIP, and waits until it runs.
func (h *hosts) startStkd(t *testing.T, progs *programs, monitorIP string) *testprog.Proc {
	t.Helper()
	p := h.start(t, h.a, filepath.Join(progs.dir, "stkd"),
		"--names-tcp", fmt.Sprintf("0.0.0.0:%d", namesPort), "--names-udp", "",
		"--monitor-tcp", fmt.Sprintf("%s:%d", monitorIP, monitorPort), "--monitor-udp", "",
		"--steps-feed", "0.0.0.0:0", "--http", httpAddr)
	p.WaitFor(t, `msg="stkd running"`, wait)
	return p
}

// programs are the built programs: Go in dir, the C publisher at cPublish
// ("" and cSkip saying why when it could not be built).
type programs struct {
	dir, cPublish, cSkip string
}

// buildDir holds the programs once built; TestMain removes it.
var buildDir string

// built builds the programs once, for the first test that gets past its
// skips.
var built = sync.OnceValues(func() (*programs, error) {
	dir, err := testprog.Build("../../stkd", "../../examples/monitored_service", "../../examples/publish", "../../examples/subscribe")
	if err != nil {
		return nil, err
	}
	buildDir = dir
	p := &programs{dir: dir}
	p.cPublish, p.cSkip = buildCPublish(filepath.Join(dir, "c"))
	return p, nil
})

// buildCPublish builds the C binding (libstk.so) and its publish example
// into dir, as bindings/c/Makefile does, and returns the program's path,
// or "" and why not.
func buildCPublish(dir string) (path, skip string) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		return "", "gcc not found: the C publisher needs a C compiler (apt-get install gcc)"
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err.Error()
	}
	if err := testprog.BuildCShared(filepath.Join(dir, "libstk.so"), "../../bindings/c"); err != nil {
		return "", err.Error()
	}
	path = filepath.Join(dir, "publish")
	args := []string{"-O2", "-Wall", "-std=gnu11", "-I../../bindings/c", "-o", path, "../../bindings/c/examples/publish.c",
		"-L" + dir, "-lstk", "-pthread", "-Wl,-rpath,$ORIGIN"}
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		return "", fmt.Sprintf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return path, ""
}

func programsFor(t *testing.T) *programs {
	t.Helper()
	p, err := built()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTwoHosts: stkd on A bound to 0.0.0.0 registers addresses B can
// reach. B, which runs no stkd, reports a monitored service to A's
// monitor found by lookup:monitor through A's name server, and publishes
// from a Go and a C publisher bound to 0.0.0.0 to subscribers on A, which
// receive every sequence.
func TestTwoHosts(t *testing.T) {
	h := newHosts(t)
	progs := programsFor(t)
	ns := fmt.Sprintf("tcp:%v:%d", h.ipA, namesPort)
	d := h.startStkd(t, progs, "0.0.0.0")
	// stkd says which address other hosts reach each 0.0.0.0 listener at,
	// and the monitor registers it.
	for _, l := range []string{"names-tcp", "monitor-tcp", "steps-feed"} {
		d.WaitFor(t, `msg="listening on every interface; other hosts reach it at the advertised address" listener=`+l+
			` listen=0\.0\.0\.0:\d+ advertised=`+regexp.QuoteMeta(h.ipA.String())+`:\d+`, wait)
	}
	// Registered where B can reach them (also: B looks the monitor up only
	// once it is there).
	h.registered(t, "monitor", fmt.Sprintf("tcp:%v:%d", h.ipA, monitorPort))
	feed := d.WaitFor(t, `listener=steps-feed listen=0\.0\.0\.0:(\d+)`, wait)[1]
	h.registered(t, "steps", fmt.Sprintf("tcp:%v:%s", h.ipA, feed))

	t.Run("monitored service", func(t *testing.T) {
		name := fmt.Sprintf("twohost service %d", os.Getpid())
		// 30 iterations of 200 ms: the service is listed at checkpoint 3
		// or more for 5.4 s, time for several polls (each a process
		// started in A's namespace) on a loaded machine.
		svc := h.start(t, h.b, filepath.Join(progs.dir, "monitored_service"),
			"-R", ns, "-m", "lookup:monitor", "-S", name, "-t", "30", "-i", "200ms")
		var seen httpd.ServiceJSON
		testutil.WaitForf(t, wait, func() bool {
			var list httpd.ServicesJSON
			if err := h.getJSON(t, "/api/v1/services", &list); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, s := range list.Services {
				if s.Name == name {
					seen, found = s, true
				}
			}
			return found && seen.Checkpoint >= 3
		}, func() string {
			return fmt.Sprintf("A's /api/v1/services has no %q at checkpoint 3 or more (last: %+v)", name, seen)
		})
		if !strings.HasPrefix(seen.Peer, h.ipB.String()+":") {
			t.Errorf("A's monitor has %q from %s, want from B, %v", name, seen.Peer, h.ipB)
		}
		out := svc.Wait(t, wait)
		if code := svc.Cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(out, "stopped at checkpoint 30") || strings.Contains(out, "level=WARN") {
			t.Errorf("monitored_service exited with status %d:\n%s", code, out)
		}
	})

	// publish sends count sequences from B with pub (its arguments before
	// the name) to a subscriber on A, which must receive them all from B's
	// address.
	publish := func(t *testing.T, label, pub string, args ...string) {
		name := fmt.Sprintf("twohost-%s-%d", label, os.Getpid())
		const count = 2000
		sub := h.start(t, h.a, filepath.Join(progs.dir, "subscribe"), "-R", fmt.Sprintf("tcp:127.0.0.1:%d", namesPort),
			"-q", "-c", fmt.Sprint(count), name)
		sub.WaitFor(t, "Subscribing to", wait)
		args = append(args, "-R", ns, "-s", fmt.Sprint(count), "-l", "100", "-w", "1", name)
		p := h.start(t, h.b, pub, args...)
		sub.WaitFor(t, `Receiving '`+regexp.QuoteMeta(name)+`' from tcp:`+regexp.QuoteMeta(h.ipB.String())+`:\d+`, wait)
		out := p.Wait(t, wait)
		if code := p.Cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(out, fmt.Sprintf("Sent %d sequences", count)) {
			t.Fatalf("%s exited with status %d:\n%s", pub, code, out)
		}
		if out := sub.Wait(t, wait); !regexp.MustCompile(fmt.Sprintf(`(?m)^Received: %d( |$)`, count)).MatchString(out) || strings.Contains(out, "level=WARN") {
			t.Fatalf("subscribe on A:\n%s", out)
		}
	}
	t.Run("Go publisher", func(t *testing.T) {
		// As the user ran it: every interface, the default port.
		publish(t, "go", filepath.Join(progs.dir, "publish"), "-B", "0.0.0.0")
	})
	t.Run("C publisher", func(t *testing.T) {
		if progs.cPublish == "" {
			t.Skip(progs.cSkip)
		}
		publish(t, "c", progs.cPublish, "-i", "tcp:0.0.0.0:0")
	})
}

// TestLoopbackWarnings: what B registers at 127.0.0.1 through A's name
// server cannot be reached from A, and the program that finds it says so:
// a subscriber on A finding a publisher on B bound to 127.0.0.1, and a
// monitored service on B finding a monitor on A bound to 127.0.0.1.
func TestLoopbackWarnings(t *testing.T) {
	h := newHosts(t)
	progs := programsFor(t)
	ns := fmt.Sprintf("tcp:%v:%d", h.ipA, namesPort)
	h.startStkd(t, progs, "127.0.0.1")

	name := fmt.Sprintf("twohost-loopback-%d", os.Getpid())
	pub := h.start(t, h.b, filepath.Join(progs.dir, "publish"), "-R", ns, "-i", "tcp:127.0.0.1:29312", "-w", "1", name)
	pub.WaitFor(t, "Waiting for 1 subscriber", wait)
	sub := h.start(t, h.a, filepath.Join(progs.dir, "subscribe"), "-R", ns, name)
	sub.WaitFor(t, regexp.QuoteMeta(fmt.Sprintf(`level=WARN msg="name \"%s\" is registered at 127.0.0.1:29312 only, but the name server is reached at %v:%d, a network address, so the registrant may be on another host: the publisher must listen on an address this host can reach; start it with -B 0.0.0.0 or -i tcp:<its IP>:<port>"`,
		name, h.ipA, namesPort)), wait)

	h.registered(t, "monitor", fmt.Sprintf("tcp:127.0.0.1:%d", monitorPort))
	svc := h.start(t, h.b, filepath.Join(progs.dir, "monitored_service"), "-R", ns, "-m", "lookup:monitor", "-t", "1", "-i", "10ms")
	svc.WaitFor(t, regexp.QuoteMeta(fmt.Sprintf(`level=WARN msg="monitor \"monitor\" is registered at tcp:127.0.0.1:%d, but the name server at %v:%d is on another host: this service would report to its own host, not to that monitor;`,
		monitorPort, h.ipA, namesPort)), wait)
}
