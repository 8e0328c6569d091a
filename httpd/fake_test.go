package httpd

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
)

// fakeMonitor implements Monitor with an event ring of its own. Its
// subscribers are called synchronously by the goroutine that changes it,
// so a subscriber that blocked would block the test: the hub must not.
type fakeMonitor struct {
	mu       sync.Mutex
	now      func() time.Time
	seq      uint64
	ringSize int
	ring     []smartbeat.Event
	nextUID  uint64
	cur      []smartbeat.ServiceView
	hist     []smartbeat.ServiceView
	subs     map[int]func(smartbeat.Event)
	nextSub  int
	drop     int // deliveries to skip (a subscriber that lost events)
	started  time.Time
	counts   smartbeat.MonitorStats
}

func newFakeMonitor(ringSize int) *fakeMonitor {
	return &fakeMonitor{now: time.Now, ringSize: ringSize, subs: map[int]func(smartbeat.Event){}, started: time.Now()}
}

func (f *fakeMonitor) Snapshot() smartbeat.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return smartbeat.Snapshot{Seq: f.seq, Services: f.cloneViews(f.cur), History: f.cloneViews(f.hist), Stats: f.statsLocked()}
}

func (f *fakeMonitor) cloneViews(l []smartbeat.ServiceView) []smartbeat.ServiceView {
	out := make([]smartbeat.ServiceView, len(l))
	for i, v := range l {
		v.States = slices.Clone(v.States)
		out[i] = v
	}
	return out
}

func (f *fakeMonitor) Services() []smartbeat.ServiceView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cloneViews(f.cur)
}

func (f *fakeMonitor) Groups() []smartbeat.GroupView {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]*smartbeat.GroupView{}
	var names []string
	get := func(n string) *smartbeat.GroupView {
		g := m[n]
		if g == nil {
			g = &smartbeat.GroupView{Name: n}
			m[n] = g
			names = append(names, n)
		}
		return g
	}
	for _, v := range f.cur {
		if v.GroupName != "" {
			g := get(v.GroupName)
			g.Current = append(g.Current, v)
		}
	}
	for _, v := range f.hist {
		if v.GroupName != "" {
			get(v.GroupName).History++
		}
	}
	slices.Sort(names)
	out := make([]smartbeat.GroupView, 0, len(names))
	for _, n := range names {
		out = append(out, *m[n])
	}
	return out
}

func (f *fakeMonitor) statsLocked() smartbeat.MonitorStats {
	st := f.counts
	st.Started = f.started
	st.Current, st.History = len(f.cur), len(f.hist)
	st.LastEvent = f.seq
	st.Listeners = []string{"tcp:127.0.0.1:20001"}
	return st
}

func (f *fakeMonitor) Stats() smartbeat.MonitorStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statsLocked()
}

func (f *fakeMonitor) EventsSince(seq uint64) ([]smartbeat.Event, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seq >= f.seq {
		return nil, true
	}
	var out []smartbeat.Event
	for _, e := range f.ring {
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	ok := len(out) > 0 && out[0].Seq == seq+1
	return out, ok
}

func (f *fakeMonitor) Subscribe(fn func(smartbeat.Event)) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nextSub
	f.nextSub++
	f.subs[id] = fn
	return func() {
		f.mu.Lock()
		delete(f.subs, id)
		f.mu.Unlock()
	}
}

func (f *fakeMonitor) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// emitLocked records an event for v and returns the deliveries to make
// once the lock is released.
func (f *fakeMonitor) emitLocked(kind smartbeat.EventKind, v smartbeat.ServiceView) (smartbeat.Event, []func(smartbeat.Event)) {
	f.seq++
	ev := smartbeat.Event{Seq: f.seq, Kind: kind, At: f.now(), Service: v}
	ev.Service.States = slices.Clone(v.States)
	f.ring = append(f.ring, ev)
	if len(f.ring) > f.ringSize {
		f.ring = f.ring[len(f.ring)-f.ringSize:]
	}
	if f.drop > 0 {
		f.drop--
		return ev, nil
	}
	var fns []func(smartbeat.Event)
	for _, k := range slices.Sorted(maps.Keys(f.subs)) {
		fns = append(fns, f.subs[k])
	}
	return ev, fns
}

func deliver(ev smartbeat.Event, fns []func(smartbeat.Event)) {
	for _, fn := range fns {
		fn(ev)
	}
}

// change applies fn to the current record uid and emits kind.
func (f *fakeMonitor) change(uid uint64, kind smartbeat.EventKind, fn func(v *smartbeat.ServiceView)) smartbeat.Event {
	f.mu.Lock()
	i := slices.IndexFunc(f.cur, func(v smartbeat.ServiceView) bool { return v.UID == uid })
	if i < 0 {
		f.mu.Unlock()
		panic(fmt.Sprintf("fake monitor: no current record %d", uid))
	}
	fn(&f.cur[i])
	v := f.cur[i]
	if !v.Current { // it left the list
		f.cur = slices.Delete(f.cur, i, i+1)
		f.hist = append(f.hist, v)
	}
	ev, fns := f.emitLocked(kind, v)
	f.mu.Unlock()
	deliver(ev, fns)
	return ev
}

// create adds a current record and emits "created".
func (f *fakeMonitor) create(name, group string, st smartbeat.State, peer string) uint64 {
	now := f.now()
	f.mu.Lock()
	f.nextUID++
	id := 0x3c90548 + f.nextUID
	ap := netip.MustParseAddrPort(peer)
	v := smartbeat.ServiceView{
		UID: f.nextUID, Key: fmt.Sprintf("tcp/%s/%#x/2", ap, id), ID: id, Name: name,
		Type: smartbeat.TypeData, State: st, StateName: st.String(), GroupName: group,
		ActivityTimeout: 1200 * time.Millisecond, Peer: ap, Protocol: "tcp",
		Created: now, LastBeat: now, LastReceived: now, Current: true,
		States: []smartbeat.StateChange{{At: now, State: st, Name: st.String()}},
	}
	f.cur = append(f.cur, v)
	f.counts.Created++
	ev, fns := f.emitLocked(smartbeat.EventCreated, v)
	f.mu.Unlock()
	deliver(ev, fns)
	return v.UID
}

func (f *fakeMonitor) beat(uid, checkpoint uint64, at time.Time) smartbeat.Event {
	return f.change(uid, smartbeat.EventBeat, func(v *smartbeat.ServiceView) {
		v.Checkpoint = checkpoint
		v.LastBeat, v.LastReceived = at, at
		v.Beats++
		v.Interval = 500 * time.Millisecond
		v.StdDev = 3 * time.Millisecond
		f.counts.Beats++
	})
}

func (f *fakeMonitor) setState(uid uint64, st smartbeat.State, name string) smartbeat.Event {
	return f.change(uid, smartbeat.EventState, func(v *smartbeat.ServiceView) {
		v.State, v.StateName = st, name
		if name == "" {
			v.StateName = st.String()
		}
		v.States = append(v.States, smartbeat.StateChange{At: f.now(), State: st, Name: v.StateName})
	})
}

func (f *fakeMonitor) timeOut(uid uint64) smartbeat.Event {
	now := f.now()
	return f.change(uid, smartbeat.EventTimedOut, func(v *smartbeat.ServiceView) {
		silence := now.Sub(v.LastReceived)
		v.Current, v.Ended, v.EndReason, v.Inactive = false, now, smartbeat.EndTimedOut, true
		v.Verdict = &smartbeat.Verdict{
			Detector: smartbeat.DetectorActivityTimeout, At: now, Silence: silence, ActivityTimeout: v.ActivityTimeout,
			PhiThreshold: 8, Interval: v.Interval, StdDev: v.StdDev, Samples: int(v.Beats),
			Reason: fmt.Sprintf("no smartbeat for %v (activity timeout %v)", silence.Round(time.Millisecond), v.ActivityTimeout),
		}
		f.counts.TimedOut++
	})
}

func (f *fakeMonitor) destroy(uid uint64) smartbeat.Event {
	now := f.now()
	return f.change(uid, smartbeat.EventDestroyed, func(v *smartbeat.ServiceView) {
		v.Current, v.Ended, v.EndReason, v.Destroyed = false, now, smartbeat.EndDestroyed, true
		v.State, v.StateName = smartbeat.Stopped, "stopped"
		f.counts.Destroyed++
	})
}

// fakeNames implements Names.
type fakeNames struct {
	mu    sync.Mutex
	names []namesvc.Entry
	stats namesvc.ServerStats
}

func (n *fakeNames) Names() []namesvc.Entry {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.names)
}

func (n *fakeNames) Stats() namesvc.ServerStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.stats
	st.Registrations = len(n.names)
	return st
}

func (n *fakeNames) add(e namesvc.Entry) {
	n.mu.Lock()
	n.names = append(n.names, e)
	n.mu.Unlock()
}
