package smartbeat

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/testutil/testpeer"
	"github.com/stk-go/stk/seq"
)

// testMonitor is a monitor driven by hand: a fake clock, no check loop
// (tick runs a periodic check), CheckInterval 100 ms for stall detection.
func testMonitor(t *testing.T, cfg MonitorConfig) (*Monitor, *testutil.Clock) {
	t.Helper()
	clock := newFakeClock()
	cfg.Now, cfg.Logger, cfg.manualChecks = clock.Now, testutil.Discard(), true
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = 100 * time.Millisecond
	}
	m, err := NewMonitor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, clock
}

func createSeq(id uint64, name string, activity time.Duration) *seq.Sequence {
	return createSequence(inst{op: opCreate, id: id, typ: TypeData, state: Starting, activityMS: uint32(activity / time.Millisecond)}, name, "")
}

func destroySeq(id uint64, name string, st State) *seq.Sequence {
	return destroySequence(st.String(), inst{op: opDestroy, id: id, typ: TypeData, state: st, activityMS: 1200}, name)
}

func beatSeq(checkpoint uint64, ids ...uint64) *seq.Sequence {
	var bs []beat
	for _, id := range ids {
		bs = append(bs, beat{id: id, sec: 1795313400, checkpoint: checkpoint})
	}
	return smartbeatSequence(bs)
}

// run advances the clock by d in steps of 100 ms, ticking, and beating
// for ids every `every` when every > 0.
func run(m *Monitor, clock *testutil.Clock, p *testpeer.Peer, d, every time.Duration, ids ...uint64) {
	var sinceBeat time.Duration
	for elapsed := time.Duration(0); elapsed < d; elapsed += 100 * time.Millisecond {
		clock.Advance(100 * time.Millisecond)
		sinceBeat += 100 * time.Millisecond
		if every > 0 && sinceBeat >= every {
			m.Handle(p, beatSeq(0, ids...))
			sinceBeat = 0
		}
		m.tick()
	}
}

// TestMonitorStallCompensation: when the monitor's own checks stop for a
// while (a stalled process), the services are not timed out for it; the
// time is credited to every deadline and shows in the verdict of a
// service that then really is dead.
func TestMonitorStallCompensation(t *testing.T) {
	m, clock := testMonitor(t, MonitorConfig{})
	p := peerOf(flow.TCP, "127.0.0.1:40000")
	m.tick()
	m.Handle(p, createSeq(1, "a", 1200*time.Millisecond))
	m.Handle(p, createSeq(2, "b", 1200*time.Millisecond))
	run(m, clock, p, 2*time.Second, 500*time.Millisecond, 1, 2)

	clock.Advance(5 * time.Second) // the monitor is frozen: no checks, nothing read
	m.tick()
	if n := len(m.Services()); n != 2 {
		t.Fatalf("%d services current after a stall, want 2: the monitor timed them out for its own stall", n)
	}
	st := m.Stats()
	if st.Stalls != 1 || st.StallTime != 4900*time.Millisecond {
		t.Fatalf("stalls %d, stall time %v", st.Stalls, st.StallTime)
	}
	// What was waiting in the socket arrives: b beats, a has died.
	m.Handle(p, beatSeq(7, 2))
	run(m, clock, p, 1300*time.Millisecond, 500*time.Millisecond, 2)
	cur, hist := m.Services(), m.History()
	if len(cur) != 1 || cur[0].ID != 2 || len(hist) != 1 || hist[0].ID != 1 {
		t.Fatalf("current %v, history %v", cur, hist)
	}
	v := hist[0].Verdict
	if v.Detector != DetectorActivityTimeout || v.StallCredit != 4900*time.Millisecond || v.Silence <= 1200*time.Millisecond || v.Silence > 1400*time.Millisecond {
		t.Fatalf("verdict %+v", v)
	}

	// Without compensation (a check that is not a timer tick, as a page
	// request) the same stall times everybody out.
	m2, clock2 := testMonitor(t, MonitorConfig{})
	m2.tick()
	m2.Handle(p, createSeq(1, "a", 1200*time.Millisecond))
	run(m2, clock2, p, time.Second, 500*time.Millisecond, 1)
	clock2.Advance(5 * time.Second)
	m2.Check()
	if n := len(m2.Services()); n != 0 {
		t.Fatal("a plain check after 5 s of silence did not time out")
	}
}

// TestMonitorHistoryBound: history keeps the newest MaxHistory records
// whatever put them there (C drops the newest destroyed record and never
// counts timeouts and displacements, docs/differences.md B7).
func TestMonitorHistoryBound(t *testing.T) {
	m, clock := testMonitor(t, MonitorConfig{MaxHistory: 3})
	p := peerOf(flow.TCP, "127.0.0.1:40000")
	m.Handle(p, createSeq(1, "destroyed", time.Second))
	m.Handle(p, destroySeq(1, "destroyed", Stopped))
	m.Handle(p, createSeq(2, "displaced", time.Second))
	m.Handle(p, createSeq(2, "displacer", time.Second))
	m.Handle(p, createSeq(3, "timed out", time.Second))
	clock.Advance(2 * time.Second)
	m.Check() // times out 2 (displacer) and 3
	m.Handle(p, createSeq(4, "last", time.Second))
	m.Handle(p, destroySeq(4, "last", Stopped))

	hist := m.History()
	var names []string
	for _, h := range hist {
		names = append(names, h.Name+":"+h.EndReason.String())
	}
	want := "displacer:timed out,timed out:timed out,last:destroyed"
	if got := strings.Join(names, ","); got != want {
		t.Fatalf("history %s, want %s", got, want)
	}
	st := m.Stats()
	if st.Evicted != 2 || st.History != 3 || st.Displaced != 1 || st.TimedOut != 2 || st.Destroyed != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestMonitorDisplaceResurrectState: a second CREATE with the same
// identity displaces the first; STATE finds the record by name
// (case-insensitively); a smartbeat brings a timed-out record back; a
// destroyed one stays destroyed.
func TestMonitorDisplaceResurrectState(t *testing.T) {
	m, clock := testMonitor(t, MonitorConfig{})
	p := peerOf(flow.UDP, "127.0.0.1:40000")
	other := peerOf(flow.UDP, "127.0.0.1:40001")
	m.Handle(p, createSeq(9, "svc", time.Second))
	m.Handle(p, createSeq(9, "svc", time.Second))
	m.Handle(other, createSeq(9, "svc", time.Second)) // another connection: another record
	if c, h := m.Services(), m.History(); len(c) != 2 || len(h) != 1 || !h[0].Displaced || c[0].UID == h[0].UID {
		t.Fatalf("current %v history %v", c, h)
	}
	m.Handle(p, stateSequence("SVC", 0x81, "sending"))
	m.Handle(p, stateSequence("svc", 0x82, "130"))
	cur := m.Services()[0]
	if cur.State != 0x82 || cur.StateName != "130" || len(cur.States) != 3 || cur.States[1].Name != "sending" {
		t.Fatalf("state %v %q, history %v", cur.State, cur.StateName, cur.States)
	}
	if o := m.Services()[1]; o.State != Starting {
		t.Fatal("STATE reached the record of another peer")
	}

	clock.Advance(1500 * time.Millisecond)
	m.Check()
	if len(m.Services()) != 0 {
		t.Fatal("not timed out")
	}
	m.Handle(p, beatSeq(42, 9))
	cur = m.Services()[0]
	if cur.Resurrections != 1 || cur.Inactive || cur.Checkpoint != 42 || cur.Peer != p.RemoteAddr() || cur.Verdict != nil {
		t.Fatalf("resurrected %+v", cur)
	}
	if st := m.Stats(); st.Resurrected != 1 || st.History != 2 {
		t.Fatalf("stats %+v", st)
	}
	m.Handle(p, destroySeq(9, "svc", Stopped))
	m.Handle(p, beatSeq(43, 9))
	if c := m.Services(); len(c) != 0 { // other's record timed out too
		t.Fatalf("a destroyed record was resurrected: %v", c)
	}
	if m.Stats().UnknownBeats != 1 {
		t.Fatalf("unknown beats %d", m.Stats().UnknownBeats)
	}
}

// TestMonitorPhiVerdict: a service that promises a long activity timeout
// but beats every 100 ms is declared failed by the φ detector well before
// the timeout, and the verdict says so.
func TestMonitorPhiVerdict(t *testing.T) {
	m, clock := testMonitor(t, MonitorConfig{})
	p := peerOf(flow.TCP, "127.0.0.1:40000")
	m.tick()
	m.Handle(p, createSeq(5, "fast", 30*time.Second))
	run(m, clock, p, 3*time.Second, 100*time.Millisecond, 5)
	if v := m.Services()[0]; v.Phi > 1 || v.Interval != 100*time.Millisecond {
		t.Fatalf("while beating: φ %v interval %v", v.Phi, v.Interval)
	}
	start := clock.Now()
	for len(m.Services()) > 0 && clock.Now().Sub(start) < 30*time.Second {
		clock.Advance(100 * time.Millisecond)
		m.tick()
	}
	took := clock.Now().Sub(start)
	h := m.History()
	if len(h) != 1 || h[0].Verdict == nil {
		t.Fatal("not timed out")
	}
	v := h[0].Verdict
	if v.Detector != DetectorPhiAccrual || v.Phi <= 8 || v.PhiThreshold != 8 || v.Samples < 3 || took > 2*time.Second {
		t.Fatalf("after %v: verdict %+v", took, v)
	}
	if st := m.Stats(); st.TimedOutByPhi != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestMonitorEvents: every change is an event with a sequence number one
// more than the last; subscribers get them in order; EventsSince resumes
// from any number the ring still holds.
func TestMonitorEvents(t *testing.T) {
	m, clock := testMonitor(t, MonitorConfig{EventBuffer: 8})
	p := peerOf(flow.TCP, "127.0.0.1:40000")
	var mu sync.Mutex
	var got []Event
	cancel := m.Subscribe(func(ev Event) {
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	})
	m.Handle(p, createSeq(1, "a", time.Second))
	m.Handle(p, beatSeq(1, 1))
	m.Handle(p, stateSequence("a", Running, "running"))
	m.Handle(p, stateSequence("a", Running, "running")) // no change, no event
	clock.Advance(2 * time.Second)
	m.Check()
	m.Handle(p, beatSeq(2, 1)) // resurrected, then the beat
	m.Handle(p, destroySeq(1, "a", Stopped))
	kinds := []EventKind{EventCreated, EventBeat, EventState, EventTimedOut, EventResurrected, EventBeat, EventDestroyed}
	testutil.WaitFor(t, 10*time.Second, "events", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == len(kinds) })
	mu.Lock()
	for i, ev := range got {
		if ev.Seq != uint64(i+1) || ev.Kind != kinds[i] || ev.Service.UID != 1 {
			t.Fatalf("event %d: %d %v uid %d", i, ev.Seq, ev.Kind, ev.Service.UID)
		}
	}
	if got[3].Service.Verdict == nil || got[1].Service.States != nil || got[6].Service.States == nil {
		t.Fatal("event views")
	}
	mu.Unlock()
	cancel()
	cancel()

	if evs, ok := m.EventsSince(4); !ok || len(evs) != 3 || evs[0].Seq != 5 {
		t.Fatalf("EventsSince(4): %d events, ok %v", len(evs), ok)
	}
	if evs, ok := m.EventsSince(7); !ok || len(evs) != 0 {
		t.Fatal("EventsSince(last)")
	}
	if _, ok := m.EventsSince(99); ok {
		t.Fatal("EventsSince(future) ok")
	}
	for range 5 {
		m.Handle(p, createSeq(2, "b", time.Second))
	}
	// 7 + 5 creates + 4 displacements = 16 events; the ring holds 8.
	evs, ok := m.EventsSince(4)
	if ok || len(evs) != 8 || evs[7].Seq != 16 {
		t.Fatalf("EventsSince after overflow: %d events ending %d, ok %v", len(evs), evs[len(evs)-1].Seq, ok)
	}
	if evs, ok := m.EventsSince(8); !ok || len(evs) != 8 || evs[0].Seq != 9 {
		t.Fatalf("EventsSince(8): %d, %v", len(evs), ok)
	}
	if s := m.Snapshot(); s.Seq != 16 || s.Stats.LastEvent != 16 {
		t.Fatalf("snapshot seq %d", s.Seq)
	}
}

// TestMonitorIgnoresAndRejects: data, name-service and garbage sequences
// are counted and change nothing.
func TestMonitorIgnoresAndRejects(t *testing.T) {
	m, _ := testMonitor(t, MonitorConfig{})
	p := peerOf(flow.TCP, "127.0.0.1:40000")
	m.Handle(p, seq.New(7, "data", seq.TypeData))
	m.Handle(p, seq.New(seq.IDNameRequest, seq.NameNameRequest, seq.TypeRequest))
	short := createSeq(1, "a", time.Second)
	short.Elements[1].Data = short.Elements[1].Data[:40]
	m.Handle(p, short)
	bad := stateSequence("a", Running, "running")
	bad.Elements[2].Data = []byte{1, 2}
	m.Handle(p, bad)
	sb := beatSeq(0, 1)
	sb.Elements[1].Data = sb.Elements[1].Data[:31]
	m.Handle(p, sb)
	st := m.Stats()
	if st.Sequences != 5 || st.Ignored != 2 || st.Malformed != 3 || st.Current != 0 {
		t.Fatalf("stats %+v", st)
	}
}
