package smartbeat

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// e2eMonitor starts a monitor with a fast check loop on loopback.
func e2eMonitor(t *testing.T, cfg MonitorConfig) *Monitor {
	t.Helper()
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = 20 * time.Millisecond
	}
	cfg.Logger = testutil.Discard()
	m, err := NewMonitor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// e2eActivity is the activity timeout of the services that these tests
// let time out (beats every 50 ms): long enough that a beat delayed by the
// loaded machine is not taken for a death, short of the φ detector's
// acceptable pause (1 s) plus its spread, so the activity timeout is what
// times them out.
const e2eActivity = time.Second

// find returns the record named name in vs.
func find(vs []ServiceView, name string) (ServiceView, bool) {
	for _, v := range vs {
		if v.Name == name {
			return v, true
		}
	}
	return ServiceView{}, false
}

func testServiceToMonitor(t *testing.T, proto string) {
	checkNoLeakedGoroutines(t)
	m := e2eMonitor(t, MonitorConfig{})
	var ap netip.AddrPort
	var err error
	if proto == "tcp" {
		ap, err = m.ServeTCP("127.0.0.1:0")
	} else {
		ap, err = m.ServeUDP("127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	snd := NewSender(SenderOptions{Period: 50 * time.Millisecond, Logger: testutil.Discard()})
	opts := Options{Monitor: proto + ":" + ap.String(), Sender: snd, ActivityTimeout: e2eActivity, Logger: testutil.Discard()}
	svc, err := NewService("worker", opts)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the CREATE", func() bool { _, ok := find(m.Services(), "worker"); return ok })
	svc.SetState(Running)
	svc.SetCheckpoint(42)
	testutil.WaitFor(t, 10*time.Second, "state and checkpoint", func() bool {
		v, _ := find(m.Services(), "worker")
		return v.State == Running && v.StateName == "running" && v.Checkpoint == 42 && v.Beats >= 3
	})

	v, _ := find(m.Services(), "worker")
	if v.ID != svc.ID() || v.Type != TypeData || v.ActivityTimeout != e2eActivity || v.Protocol != proto || v.Peer.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("record %+v", v)
	}
	if v.Interval < 10*time.Millisecond || v.Interval > 300*time.Millisecond { // 50 ms, on a loaded machine
		t.Errorf("beat interval %v, want about 50 ms", v.Interval)
	}

	// A second service of the process shares the flow and the smartbeat.
	crashing, err := NewService("crasher", opts)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the second service", func() bool { c, ok := find(m.Services(), "crasher"); return ok && c.Beats > 0 })
	if c, _ := find(m.Services(), "crasher"); c.Peer != v.Peer {
		t.Errorf("two flows to one monitor: %v and %v", c.Peer, v.Peer)
	}

	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := svc.SetState(Running); !errors.Is(err, ErrServiceClosed) {
		t.Fatalf("SetState after Close: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "the DESTROY", func() bool { h, ok := find(m.History(), "worker"); return ok && h.Destroyed })
	h, _ := find(m.History(), "worker")
	if h.State != Stopped || h.StateName != "stopped" || h.Inactive || h.EndReason != EndDestroyed || h.Checkpoint != 42 {
		t.Fatalf("destroyed record %+v", h)
	}

	crashing.crash() // killed: no DESTROY
	testutil.WaitFor(t, 10*time.Second, "the timeout", func() bool { h, ok := find(m.History(), "crasher"); return ok && h.Inactive })
	h, _ = find(m.History(), "crasher")
	if h.Verdict == nil || h.Verdict.Detector != DetectorActivityTimeout || h.Verdict.Silence < e2eActivity || h.State != Starting || h.Destroyed {
		t.Fatalf("timed-out record %+v verdict %+v", h, h.Verdict)
	}
	if st := m.Stats(); st.Created != 2 || st.Destroyed != 1 || st.TimedOut != 1 || st.Malformed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServiceToMonitorTCP(t *testing.T) { testServiceToMonitor(t, "tcp") }
func TestServiceToMonitorUDP(t *testing.T) { testServiceToMonitor(t, "udp") }

// TestMonitorRegistrationAndLookup: the monitor registers "monitor" with
// the 0x1000/0x1001 strings of its listeners; a service given
// "lookup:monitor" finds it and picks TCP (C would take the last, UDP).
func TestMonitorRegistrationAndLookup(t *testing.T) {
	checkNoLeakedGoroutines(t)
	ns, err := namesvc.NewServer(namesvc.ServerConfig{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	nsAddr, err := ns.ServeTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := e2eMonitor(t, MonitorConfig{NameServerAddr: "tcp:" + nsAddr.String()})
	tcpAddr, err := m.ServeTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpAddr, err := m.ServeUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if fs := m.Flows(); len(fs) != 2 || fs[0].LocalAddr() != tcpAddr || fs[1].LocalAddr() != udpAddr {
		t.Fatalf("flows %v", fs)
	}
	c, err := namesvc.Dial("tcp:"+nsAddr.String(), namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var info namesvc.Info
	testutil.WaitFor(t, 10*time.Second, "the registration with both listeners", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, err = c.LookupOnce(ctx, "monitor", namesvc.LookupOptions{})
		_, hasUDP := info.MetaString(seq.UTMonitorUDP)
		return err == nil && hasUDP
	})

	if s, _ := info.MetaString(seq.UTMonitorTCP); s != "tcp:"+tcpAddr.String() {
		t.Errorf("0x1000 = %q", s)
	}
	if s, _ := info.MetaString(seq.UTMonitorUDP); s != "udp:"+udpAddr.String() {
		t.Errorf("0x1001 = %q", s)
	}
	if info.Linger != DefaultMonitorLinger || len(info.Addresses) != 0 {
		t.Errorf("registration %v", info.String())
	}
	// The server stores the registration before the client hears its reply.
	testutil.WaitFor(t, 10*time.Second, "the registration in the stats", func() bool { return m.Stats().Registered })

	snd := NewSender(SenderOptions{Period: 50 * time.Millisecond, Logger: testutil.Discard()})
	svc, err := NewService("looked up", Options{Monitor: "lookup:monitor", NameServer: c, Sender: snd, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	testutil.WaitFor(t, 10*time.Second, "the service at the looked-up monitor", func() bool { v, ok := find(m.Services(), "looked up"); return ok && v.Protocol == "tcp" })
}

// TestMonitorRestartReannounce: a service whose TCP monitoring connection
// comes back (a restarted monitor) announces itself again, with its
// current state.
func TestMonitorRestartReannounce(t *testing.T) {
	checkNoLeakedGoroutines(t)
	m1 := e2eMonitor(t, MonitorConfig{})
	ap, err := m1.ServeTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	snd := NewSender(SenderOptions{Period: 50 * time.Millisecond, Logger: testutil.Discard(), Flow: flow.Options{ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}})
	svc, err := NewService("phoenix", Options{Monitor: "tcp:" + ap.String(), Sender: snd, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	svc.SetState(Running)
	testutil.WaitFor(t, 10*time.Second, "the service", func() bool { v, ok := find(m1.Services(), "phoenix"); return ok && v.State == Running })
	m1.Close()
	m2 := e2eMonitor(t, MonitorConfig{})
	var lerr error
	for range 100 { // the port may take a moment to be free again
		if _, lerr = m2.ServeTCP(ap.String()); lerr == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if lerr != nil {
		t.Skipf("cannot listen on %v again: %v", ap, lerr)
	}
	testutil.WaitFor(t, 10*time.Second, "the service at the new monitor", func() bool {
		v, ok := find(m2.Services(), "phoenix")
		return ok && v.State == Running && v.StateName == "running" && v.Beats > 0
	})

}

// TestGroupAutomationE2E: a Go client service reports in-band on its data
// connection to a Go service group, which mirrors it and reports the
// mirror to the monitor with the group name; when the client stops beating
// (killed), the group times the member out and its mirror is destroyed
// with state TimedOut; the monitor times out the client's own record.
func TestGroupAutomationE2E(t *testing.T) {
	checkNoLeakedGoroutines(t)
	m := e2eMonitor(t, MonitorConfig{})
	monAddr, err := m.ServeTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Client and group have a Sender each, as they would in two processes:
	// a Sender beats for all its services on all their flows, so the
	// mirror (same id) would beat on the client's data connection too.
	snd := NewSender(SenderOptions{Period: 50 * time.Millisecond, Logger: testutil.Discard()})
	groupSnd := NewSender(SenderOptions{Period: 50 * time.Millisecond, Logger: testutil.Discard()})
	var mu sync.Mutex
	var events []string
	note := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	g, err := NewGroup("Simple Server Service Group", GroupOptions{
		Monitor: "tcp:" + monAddr.String(), Sender: groupSnd, CheckInterval: 50 * time.Millisecond, Logger: testutil.Discard(),
		OnAdded:    func(_ *Group, m *Member) { note("added") },
		OnTimedOut: func(_ *Group, m *Member) { note("timed out") },
		OnRemoved:  func(_ *Group, m *Member) { note("removed") },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	server, err := flow.ListenTCP("127.0.0.1:0", flow.Options{Logger: testutil.Discard(), Handler: func(p flow.Peer, s *seq.Sequence) {
		if s.Type == seq.TypeData {
			return
		}
		if err := g.Invoke(p, s); err != nil {
			t.Errorf("Invoke: %v", err)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	conn, err := flow.DialTCP(server.LocalAddr().String(), flow.Options{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client, err := NewService("client svc A", Options{
		NotifyFlow: conn, Monitor: "tcp:" + monAddr.String(), Sender: snd,
		ActivityTimeout: e2eActivity, Logger: testutil.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	client.SetState(Running)
	client.SetCheckpoint(3)
	testutil.WaitFor(t, 10*time.Second, "the mirrored member", func() bool {
		ms := g.Members()

		return len(ms) == 1 && ms[0].State() == Running && ms[0].Checkpoint() == 3 && ms[0].Beats() > 0
	})

	mem := g.Members()[0]
	if mem.ID() != client.ID() || mem.Name() != "client svc A" || mem.Service().ActivityTimeout() != e2eActivity || mem.Peer() != conn.LocalAddr() {
		t.Fatalf("member %v %q %v %v", mem.ID(), mem.Name(), mem.Service().ActivityTimeout(), mem.Peer())
	}
	testutil.WaitFor(t, 10*time.Second, "both records at the monitor", func() bool {
		gs := m.Groups()
		own := 0
		for _, v := range m.Services() {
			if v.Name == "client svc A" && v.GroupName == "" {
				own++
			}
		}
		return own == 1 && len(gs) == 1 && len(gs[0].Current) == 1 && gs[0].Current[0].State == Running && gs[0].Current[0].Checkpoint == 3
	})

	client.crash()
	testutil.WaitFor(t, 10*time.Second, "the group timeout", func() bool { return len(g.Members()) == 0 })
	testutil.WaitFor(t, 10*time.Second, "the mirror's DESTROY with TIMED_OUT", func() bool {
		gs := m.Groups()
		if len(gs) != 1 || gs[0].History != 1 {
			return false
		}
		for _, h := range m.History() {
			if h.GroupName != "" {
				return h.State == TimedOut && h.StateName == "timed out" && h.Inactive && h.Destroyed
			}
		}
		return false
	})

	testutil.WaitFor(t, 10*time.Second, "the monitor's own timeout of the client", func() bool {
		for _, h := range m.History() {
			if h.GroupName == "" && h.Name == "client svc A" {
				return h.Verdict != nil && h.EndReason == EndTimedOut
			}
		}
		return false
	})

	mu.Lock()
	defer mu.Unlock()
	if len(events) != 3 || events[0] != "added" || events[1] != "timed out" || events[2] != "removed" {
		t.Fatalf("group events %v", events)
	}
}

// TestMonitorCheckLoopStall drives the real check loop with a clock that
// jumps, as a frozen process sees time when it wakes up: the loop notices
// the late tick and keeps the service.
func TestMonitorCheckLoopStall(t *testing.T) {
	checkNoLeakedGoroutines(t)
	var mu sync.Mutex
	var offset time.Duration
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) }
	m := e2eMonitor(t, MonitorConfig{Now: now})
	p := peerOf(flow.TCP, "127.0.0.1:40000")
	m.Handle(p, createSeq(1, "sleeper", 1200*time.Millisecond))
	time.Sleep(50 * time.Millisecond) // a few ticks
	mu.Lock()
	offset = 3 * time.Second
	mu.Unlock()
	testutil.WaitFor(t, 10*time.Second, "the stall", func() bool { return m.Stats().Stalls >= 1 })
	if _, ok := find(m.Services(), "sleeper"); !ok {
		t.Fatal("the monitor's own stall timed the service out")
	}
	if st := m.Stats(); st.StallTime < 2900*time.Millisecond || st.StallTime > 4*time.Second {
		t.Fatalf("stall time %v", st.StallTime)
	}
}
