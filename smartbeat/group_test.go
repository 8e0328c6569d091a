package smartbeat

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testprog/multicast"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// TestGroupBeatsTimeoutAndStall: every service of a smartbeat counts (C
// takes the last one only); silence is measured on the group's clock, a
// stall of the group's own checks is forgiven, and a member that then
// stays silent is timed out: its mirror sends DESTROY with TIMED_OUT.
func TestGroupBeatsTimeoutAndStall(t *testing.T) {
	clock := newFakeClock()
	mon := newRecFlow("127.0.0.1:50000")
	var mu sync.Mutex
	var events []string
	note := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	g, err := NewGroup("g", GroupOptions{
		MonitorFlow: mon, Sender: NewSender(SenderOptions{Period: -1}), Now: clock.Now, Logger: testutil.Discard(),
		CheckInterval: 500 * time.Millisecond, manualChecks: true,
		OnSmartbeat: func(_ *Group, m *Member) { note("beat " + m.Name()) },
		OnTimedOut:  func(_ *Group, m *Member) { note("timed out " + m.Name()) },
		OnRemoved:   func(_ *Group, m *Member) { note("removed " + m.Name()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	p := peerOf(flow.TCP, "127.0.0.1:40000")
	for id, name := range map[uint64]string{1: "one", 2: "two"} {
		if err := g.Invoke(p, createSeq(id, name, 1200*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	// A smartbeat whose sender's clock is an hour off: only our clock counts.
	sb := smartbeatSequence([]beat{{id: 1, sec: 1, checkpoint: 10}, {id: 2, sec: 1, checkpoint: 20}})
	g.check(true)
	if err := g.Invoke(p, sb); err != nil {
		t.Fatal(err)
	}
	ms := g.Members()
	if len(ms) != 2 || ms[0].Checkpoint()+ms[1].Checkpoint() != 30 || ms[0].Beats() != 1 || ms[1].Beats() != 1 {
		t.Fatalf("members after a two-service smartbeat: %d, checkpoints %d %d", len(ms), ms[0].Checkpoint(), ms[1].Checkpoint())
	}
	if !ms[0].RemoteTime().Equal(time.Unix(1, 0)) || !ms[0].LastBeat().Equal(clock.Now()) {
		t.Fatalf("times %v %v", ms[0].RemoteTime(), ms[0].LastBeat())
	}

	clock.Advance(5 * time.Second) // our process was frozen
	g.check(true)
	if len(g.Members()) != 2 || g.Stalls() != 1 {
		t.Fatalf("after a stall: %d members, %d stalls", len(g.Members()), g.Stalls())
	}
	for range 3 { // 1.5 s: "two" keeps beating, "one" is silent
		clock.Advance(500 * time.Millisecond)
		g.Invoke(p, beatSeq(21, 2))
		g.check(true)
	}
	ms = g.Members()
	if len(ms) != 1 || ms[0].Name() != "two" || ms[0].Checkpoint() != 21 {
		t.Fatalf("members %v", ms)
	}
	last := mon.sent()[len(mon.sent())-1]
	if last.ID != seq.IDDestroyNotification {
		t.Fatalf("last notification to the monitor: %v", last)
	}
	var n notice
	if err := parseNotice(last, &n); err != nil || n.inst.state != TimedOut || n.stateName != "timed out" || n.name != "one" || n.inst.checkpoint != 10 {
		t.Fatalf("mirror DESTROY %+v %v", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, e := range events {
		if e != "beat two" {
			got = append(got, e)
		}
	}
	if strings.Join(got, ",") != "beat one,timed out one,removed one" || events[1] != "beat two" {
		t.Fatalf("events %v", events)
	}
}

// TestGroupStateLearnsNamesAndDestroy: STATE is matched by name
// case-insensitively and teaches the mirror a state name; DESTROY removes
// the member with the INST checkpoint.
func TestGroupStateLearnsNamesAndDestroy(t *testing.T) {
	mon := newRecFlow("127.0.0.1:50000")
	g, err := NewGroup("g", GroupOptions{MonitorFlow: mon, Sender: NewSender(SenderOptions{Period: -1}), CheckInterval: -1, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	p, q := peerOf(flow.TCP, "127.0.0.1:40000"), peerOf(flow.TCP, "127.0.0.1:40001")
	g.Invoke(p, createSeq(7, "Sender", time.Second))
	g.Invoke(q, stateSequence("sender", 0x81, "nope")) // another peer
	g.Invoke(p, stateSequence("SENDER", 0x81, "sending"))
	m := g.Members()[0]
	if m.State() != 0x81 || m.Service().StateName(0x81) != "sending" {
		t.Fatalf("state %v %q", m.State(), m.Service().StateName(0x81))
	}
	d := destroySequence("stopped", inst{op: opDestroy, id: 7, typ: TypeData, state: Stopped, checkpoint: 99}, "Sender")
	g.Invoke(p, d)
	if len(g.Members()) != 0 || !m.Service().Closed() || m.Checkpoint() != 99 {
		t.Fatal("not destroyed")
	}
	if err := g.Invoke(p, createSequence(inst{}, "x", "")); err != nil {
		t.Fatal(err) // a zero INST is still an INST
	}
	bad := createSeq(8, "y", time.Second)
	bad.Elements = bad.Elements[:1]
	if err := g.Invoke(p, bad); err == nil {
		t.Fatal("CREATE without INST accepted")
	}
	if err := g.Invoke(p, seq.New(1, "data", seq.TypeData)); err != nil {
		t.Fatal(err)
	}
}

// TestGroupRegisterBytes: the group's name registration is what
// simple_server sends in capture 15 (but for the request id).
func TestGroupRegisterBytes(t *testing.T) {
	checkNoLeakedGoroutines(t)
	var want []byte
	for _, f := range frames(t, captureStream(t, "15_service_group_automation.pcap", "127.0.0.1:54198", "127.0.0.1:20002")) {
		if s := decode(t, f); s.ID == seq.IDNameRequest && s.Type == seq.TypeRequest {
			want = f
		}
	}
	var got *seq.Sequence
	var mu sync.Mutex
	ns, err := flow.ListenTCP("127.0.0.1:0", flow.Options{Logger: testutil.Discard(), Handler: func(_ flow.Peer, s *seq.Sequence) {
		if s.ID == seq.IDNameRequest {
			mu.Lock()
			got = s.Clone()
			mu.Unlock()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := namesvc.Dial("tcp:"+ns.LocalAddr().String(), namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g, err := NewGroup("Simple Server Service Group", GroupOptions{CheckInterval: -1, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Register(context.Background(), c, netip.MustParseAddrPort("0.0.0.0:29312"), flow.TCP); err == nil {
		t.Fatal("registered 0.0.0.0")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	g.Register(ctx, c, netip.MustParseAddrPort("127.0.0.1:29312"), flow.TCP) // no reply: times out
	testutil.WaitFor(t, 10*time.Second, "the request", func() bool { mu.Lock(); defer mu.Unlock(); return got != nil })
	w := decode(t, want)
	mu.Lock()
	defer mu.Unlock()
	for i := range got.Elements {
		if got.Elements[i].UserType == seq.UTNSRequestID {
			r, _ := w.Find(seq.UTNSRequestID)
			got.Elements[i].Data = r.Data
		}
	}
	b, err := seq.AppendTCP(nil, got)
	if err != nil || string(b) != string(want) {
		t.Fatalf("registration\n got  %x\n want %x", b, want)
	}
}

// TestMonitorMulticast: a service reports to the monitor's multicast
// group (skipped where multicast does not work on the host).
func TestMonitorMulticast(t *testing.T) {
	multicast.Need(t)
	checkNoLeakedGoroutines(t)
	m := e2eMonitor(t, MonitorConfig{})
	group := "239.77.20.1"
	ap, err := m.ServeMulticast(group + ":0")
	if err != nil {
		t.Fatalf("serve multicast: %v", err)
	}
	snd := NewSender(SenderOptions{Period: 50 * time.Millisecond, Logger: testutil.Discard()})
	svc, err := NewService("mc", Options{Monitor: "multicast:" + group + ":" + itoa(ap.Port()), Sender: snd, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	// Generous: the first beat leaves within 50 ms, but the machine may be
	// loaded.
	const wait = 10 * time.Second
	var v ServiceView
	testutil.WaitFor(t, wait, fmt.Sprintf("service mc at the monitor, reporting to multicast:%v:%d", group, ap.Port()), func() bool {
		var ok bool
		v, ok = find(m.Services(), "mc")
		return ok
	})
	if v.Protocol != "multicast" {
		t.Fatalf("protocol %q", v.Protocol)
	}
	if s := m.Stats().Listeners; len(s) != 1 || s[0] != "udp:"+group+":"+itoa(ap.Port()) {
		t.Fatalf("advertised %v", s)
	}
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}
