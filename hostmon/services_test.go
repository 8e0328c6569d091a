package hostmon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/step"
)

// newTestServices builds the services collector listing *refs (read on
// each Collect), with the host's addresses given.
func newTestServices(t testing.TB, env Env, refs *[]ServiceRef, local ...string) *servicesCollector {
	t.Helper()
	var mu sync.Mutex
	c, err := NewServicesCollector(Config{Env: env, Services: func(context.Context) ([]ServiceRef, error) {
		mu.Lock()
		defer mu.Unlock()
		return *refs, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	sc := c.(*servicesCollector)
	if local != nil {
		sc.localAddrs = func() ([]netip.Addr, error) {
			var out []netip.Addr
			for _, a := range local {
				out = append(out, netip.MustParseAddr(a))
			}
			return out, nil
		}
	}
	return sc
}

// svcSummary lists steps as "service pid cpu" lines.
func svcSummary(steps []*step.Step) string {
	var b strings.Builder
	for _, s := range steps {
		name, _ := s.String("service")
		pid, _ := s.Float("pid")
		fmt.Fprintf(&b, "%s %d", name, int(pid))
		if cpu, ok := s.Float("cpu_percent"); ok {
			fmt.Fprintf(&b, " %g%%", cpu)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestServicesGolden: services over TCP (IPv4, IPv6, IPv4 in a tcp6
// socket) and UDP (a socket bound to 0.0.0.0) are found; one process
// serving two is described for both; remote and unknown-protocol services
// are left out; a process that ends stops its STEPs, and a service whose
// socket appears later is found by the next search, not before.
func TestServicesGolden(t *testing.T) {
	root := newEvRoot(t, "services/t0")
	refs := []ServiceRef{
		{Name: "alpha", Protocol: "tcp", Peer: netip.MustParseAddrPort("127.0.0.1:40001")},
		{Name: "beta", Protocol: "tcp", Peer: netip.MustParseAddrPort("[::1]:40002")},
		{Name: "gamma", Protocol: "tcp", Peer: netip.MustParseAddrPort("[::ffff:127.0.0.1]:40003")},
		{Name: "delta", Protocol: "udp", Peer: netip.MustParseAddrPort("192.0.2.10:40004")},
		{Name: "remote", Protocol: "tcp", Peer: netip.MustParseAddrPort("198.51.100.7:40005")},
		{Name: "lost", Protocol: "tcp", Peer: netip.MustParseAddrPort("127.0.0.1:40006")},
		{Name: "odd", Protocol: "sctp", Peer: netip.MustParseAddrPort("127.0.0.1:40001")},
	}
	c := newTestServices(t, evEnv(root.link), &refs, "192.0.2.10", "fe80::1")
	c.pageSize = 4096 // the fixture host's, whatever this one's
	rounds := map[string][]*step.Step{}
	t2 := evT0.Add(11 * time.Second)
	rounds["t0"] = fxCollect(t, c, evT0)
	if c.scans != 1 {
		t.Errorf("%d searches at t0", c.scans)
	}
	root.set("services/t1")
	rounds["t1"] = fxCollect(t, c, evT1)
	if c.scans != 1 {
		t.Errorf("searched again within ServicesRescanEvery (%d searches)", c.scans)
	}
	root.set("services/t2")
	rounds["t2"] = fxCollect(t, c, t2)
	if c.scans != 2 {
		t.Errorf("%d searches by t2, want 2", c.scans)
	}
	evGolden(t, filepath.Join("testdata", "services", "golden.json"), rounds)

	want := map[string]string{
		"t0": "alpha 1000\nbeta 1100\ngamma 1100\ndelta 1200\n",
		"t1": "alpha 1000 50%\nbeta 1100 120%\ngamma 1100 120%\n",
		"t2": "alpha 1000 50%\nbeta 1100 0%\ngamma 1100 0%\nlost 1300\n",
	}
	for _, r := range []string{"t0", "t1", "t2"} {
		if got := svcSummary(rounds[r]); got != want[r] {
			t.Errorf("%s:\n%s\nwant\n%s", r, got, want[r])
		}
	}
	const page = 4096
	a := rounds["t1"][0]
	if !IsMetric(a) || a.Event.Type != "service.process" || evField(t, a, "rss_bytes") != float64(3072*page) ||
		evField(t, a, "threads") != 2.0 || evField(t, a, "fds") != 4.0 || evField(t, a, "process") != "alpha-svc" ||
		evField(t, a, "peer") != "127.0.0.1:40001" || evField(t, a, "protocol") != "tcp" {
		t.Errorf("alpha at t1: %v", a.Space.Fields)
	}
	g := rounds["t0"][2]
	if evField(t, g, "peer") != "127.0.0.1:40003" || evField(t, g, "fds") != 4.0 || evField(t, g, "threads") != 12.0 {
		t.Errorf("gamma at t0: %v", g.Space.Fields)
	}
	if d := rounds["t0"][3]; evField(t, d, "protocol") != "udp" || evField(t, d, "process") != "delta-svc" {
		t.Errorf("delta: %v", d.Space.Fields)
	}
	if c.peers[svcKey{"udp", netip.MustParseAddrPort("192.0.2.10:40004")}].backoff != ServicesRescanEvery {
		t.Error("the vanished delta service is not backing off")
	}
}

// TestServicesBackoff: a service never found is searched for less and
// less often, and one whose process is found is not searched for again.
func TestServicesBackoff(t *testing.T) {
	root := newEvRoot(t, "services/t0")
	refs := []ServiceRef{{Name: "ghost", Protocol: "tcp", Peer: netip.MustParseAddrPort("127.0.0.1:49999")}}
	c := newTestServices(t, evEnv(root.link), &refs)
	now := evT0
	var at []time.Duration
	for range 2000 {
		before := c.scans
		if steps := fxCollect(t, c, now); len(steps) != 0 {
			t.Fatalf("ghost found: %v", steps)
		}
		if c.scans != before {
			at = append(at, now.Sub(evT0))
		}
		now = now.Add(time.Second)
	}
	want := []time.Duration{0, 10 * time.Second, 30 * time.Second, 70 * time.Second, 150 * time.Second,
		310 * time.Second, 610 * time.Second, 910 * time.Second, 1210 * time.Second, 1510 * time.Second, 1810 * time.Second}
	if fmt.Sprint(at) != fmt.Sprint(want) {
		t.Errorf("searches at %v, want %v", at, want)
	}
	if c.peers[svcKey{"tcp", netip.MustParseAddrPort("127.0.0.1:49999")}].backoff != ServicesMaxBackoff {
		t.Error("back-off not capped")
	}
	refs = append(refs, ServiceRef{Name: "alpha", Protocol: "tcp", Peer: netip.MustParseAddrPort("127.0.0.1:40001")})
	for range 30 {
		fxCollect(t, c, now)
		now = now.Add(time.Second)
	}
	if c.scans != len(want)+1 {
		t.Errorf("%d searches, want %d", c.scans, len(want)+1)
	}
	refs = nil
	fxCollect(t, c, now)
	if len(c.peers) != 0 || len(c.procs) != 0 {
		t.Errorf("services no longer listed are remembered: %v %v", c.peers, c.procs)
	}
}

func TestServicesUnavailable(t *testing.T) {
	if _, err := Build("services", Config{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("no Services source: %v", err)
	}
	list := func(context.Context) ([]ServiceRef, error) { return nil, nil }
	if _, err := Build("services", Config{Env: evEnv(t.TempDir()), Services: list}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("no /proc/net: %v", err)
	}
	fail := func(context.Context) ([]ServiceRef, error) { return nil, errors.New("stkd is down") }
	c, err := Build("services", Config{Services: fail})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.(Collector).Collect(t.Context(), time.Now()); err == nil || !strings.Contains(err.Error(), "stkd is down") {
		t.Errorf("failing source: %v", err)
	}
}

func TestParseNetAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:0000":                         "0.0.0.0:0",
		"00000000000000000000000001000000:9C42": "[::1]:40002",
		"0000000000000000FFFF00000100007F:0050": "127.0.0.1:80",
		"B80D0120000000000000000001000000:01BB": "[2001:db8::1]:443",
	} {
		got, ok := parseNetAddr([]byte(in))
		if !ok || got.String() != want {
			t.Errorf("%s: %v %v, want %s", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "0100007F", "0100007F:", "0100007G:0050", "0100007F:10000", "01007F:0050"} {
		if got, ok := parseNetAddr([]byte(bad)); ok {
			t.Errorf("%q parsed as %v", bad, got)
		}
	}
	n := 0
	parseNetTable([]byte("header\n   0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 123\n   1: short\n   2: 0100007F:1F91 0:0 01 0:0 0:0 0 0 0 0\n"),
		func(local netip.AddrPort, state byte, inode uint64) {
			n++
			if local.String() != "127.0.0.1:8080" || state != 0x0A || inode != 123 {
				t.Errorf("%v %x %d", local, state, inode)
			}
		})
	if n != 1 {
		t.Errorf("%d sockets parsed, want 1", n)
	}
}

// TestServicesRealHost: this test's own TCP and UDP sockets are found to
// belong to this process; a remote address is left out; a closed
// socket's service has no STEP.
func TestServicesRealHost(t *testing.T) {
	leakcheck.Check(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if srv := <-accepted; srv != nil {
		defer srv.Close()
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()

	refs := []ServiceRef{
		{Name: "self-tcp", Protocol: "tcp", Peer: conn.LocalAddr().(*net.TCPAddr).AddrPort()},
		{Name: "self-udp", Protocol: "udp", Peer: udp.LocalAddr().(*net.UDPAddr).AddrPort()},
		{Name: "elsewhere", Protocol: "tcp", Peer: netip.MustParseAddrPort("203.0.113.9:4000")},
	}
	if ln6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		defer ln6.Close()
		go func() {
			if c, err := ln6.Accept(); err == nil {
				defer c.Close()
				c.Read(make([]byte, 1)) // until the client closes
			}
		}()
		c6, err := net.Dial("tcp6", ln6.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c6.Close()
		refs = append(refs, ServiceRef{Name: "self-tcp6", Protocol: "tcp", Peer: c6.LocalAddr().(*net.TCPAddr).AddrPort()})
	}
	c := newTestServices(t, Env{Hostname: "h"}, &refs)
	steps := fxCollect(t, c, time.Now())
	if len(steps) != len(refs)-1 {
		t.Fatalf("got\n%s", svcSummary(steps))
	}
	for _, s := range steps {
		if pid, _ := s.Float("pid"); int(pid) != os.Getpid() {
			t.Errorf("%s: pid %v, want %d", s.Space.Fields["service"], pid, os.Getpid())
		}
		if rss, _ := s.Float("rss_bytes"); rss < 1<<20 {
			t.Errorf("rss %v", rss)
		}
		if fds, _ := s.Float("fds"); fds < 5 {
			t.Errorf("fds %v", fds)
		}
		if th, _ := s.Float("threads"); th < 2 {
			t.Errorf("threads %v", th)
		}
	}
	// Busy for 50 ms of CPU time, not of wall time (on a loaded machine
	// 50 ms of wall time can be less than the 10 ms clock tick the kernel
	// counts CPU time in): the next sample has a CPU percentage.
	busyUntil := processCPU(t) + 50*time.Millisecond
	for start := time.Now(); processCPU(t) < busyUntil && time.Since(start) < 10*time.Second; {
		for x := 0; x < 100000; x++ {
			_ = x * x
		}
	}
	steps = fxCollect(t, c, time.Now())
	cpu, ok := steps[0].Float("cpu_percent")
	if !ok || cpu <= 0 || cpu > 100*float64(2+len(refs)) {
		t.Errorf("cpu_percent %v %v", cpu, ok)
	}
	if c.scans != 1 {
		t.Errorf("%d searches for sockets that were found at once", c.scans)
	}

	conn.Close()
	steps = fxCollect(t, c, time.Now())
	for _, s := range steps {
		if s.Space.Fields["service"] == "self-tcp" {
			t.Errorf("closed socket still described: %v", s.Space.Fields)
		}
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loopbackConn returns this process's end of a loopback TCP connection
// (its listener's end is never accepted), closed when tb ends: a socket
// the services collector can find.
func loopbackConn(tb testing.TB) net.Conn {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// BenchmarkServicesCollect is one interval describing one known service
// (this process): one readlink, one stat read, one fd directory walk.
func BenchmarkServicesCollect(b *testing.B) {
	conn := loopbackConn(b)
	refs := []ServiceRef{{Name: "self", Protocol: "tcp", Peer: conn.LocalAddr().(*net.TCPAddr).AddrPort()}}
	c := newTestServices(b, Env{Hostname: "h"}, &refs)
	now := time.Now()
	if steps, err := c.Collect(b.Context(), now); err != nil || len(steps) != 1 {
		b.Fatal(steps, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		if steps, _ := c.Collect(b.Context(), now); len(steps) != 1 {
			b.Fatal("service lost")
		}
	}
}

// BenchmarkServicesSearch is one search for an unknown socket: the socket
// tables and a walk of every process's open files.
func BenchmarkServicesSearch(b *testing.B) {
	conn := loopbackConn(b)
	key := svcKey{"tcp", conn.LocalAddr().(*net.TCPAddr).AddrPort()}
	c := newTestServices(b, Env{Hostname: "h"}, new([]ServiceRef))
	b.ReportAllocs()
	for b.Loop() {
		p := &svcPeer{}
		if err := c.resolve(map[svcKey]*svcPeer{key: p}); err != nil || int(p.pid) != os.Getpid() {
			b.Fatal(p, err)
		}
	}
}
