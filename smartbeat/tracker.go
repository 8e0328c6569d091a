package smartbeat

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/stk-go/stk/seq"
)

// This file holds the monitor's bookkeeping (docs/protocol.md §9.1): records,
// the current list and the history, and what each notification does to
// them. Everything here runs under Monitor.mu.

// recordKey identifies a record as stkhttpd does: where it reported from,
// plus the service id and type.
type recordKey struct {
	proto string
	peer  netip.AddrPort
	id    uint64
	typ   ServiceType
}

// beatKey is what a smartbeat element identifies: no type.
type beatKey struct {
	proto string
	peer  netip.AddrPort
	id    uint64
}

func (k recordKey) beat() beatKey { return beatKey{k.proto, k.peer, k.id} }

func (k recordKey) String() string {
	return fmt.Sprintf("%s/%v/%#x/%d", k.proto, k.peer, k.id, uint16(k.typ))
}

// record is one tracked service.
type record struct {
	uid       uint64
	key       recordKey
	name      string
	state     State
	stateName string
	group     string

	checkpoint uint64
	activity   time.Duration

	created  time.Time // monitor clock
	lastRecv time.Time // monitor clock: CREATE or latest smartbeat
	lastBeat time.Time // sender clock
	base     time.Time // lastRecv plus stall credit: silence counts from here
	credit   time.Duration
	beats    uint64
	det      *PhiDetector

	current       bool
	ended         time.Time
	reason        EndReason
	displaced     bool
	inactive      bool
	destroyed     bool
	verdict       *Verdict
	resurrections int

	states []StateChange

	// hseq orders the history: it grows with every record that enters it
	// (see HistoryPage).
	hseq uint64
}

// view copies r for the outside. withStates false leaves the state
// history out (beat events, which do not change it).
func (r *record) view(now time.Time, withStates bool) ServiceView {
	v := ServiceView{
		UID:             r.uid,
		Key:             r.key.String(),
		ID:              r.key.id,
		Name:            r.name,
		Type:            r.key.typ,
		State:           r.state,
		StateName:       r.stateName,
		GroupName:       r.group,
		Checkpoint:      r.checkpoint,
		ActivityTimeout: r.activity,
		Peer:            r.key.peer,
		Protocol:        r.key.proto,
		Created:         r.created,
		LastBeat:        r.lastBeat,
		LastReceived:    r.lastRecv,
		Beats:           r.beats,
		Interval:        r.det.Mean(),
		StdDev:          r.det.StdDev(),
		Current:         r.current,
		Ended:           r.ended,
		EndReason:       r.reason,
		Displaced:       r.displaced,
		Inactive:        r.inactive,
		Destroyed:       r.destroyed,
		Resurrections:   r.resurrections,
	}
	if r.current && r.det.Samples() >= r.det.cfg.MinSamples {
		v.Phi = r.det.Phi(now)
	}
	if r.verdict != nil {
		vd := *r.verdict
		v.Verdict = &vd
	}
	if withStates {
		v.States = slices.Clone(r.states)
	}
	return v
}

// tracker holds the records of a Monitor.
type tracker struct {
	current map[recordKey]*record
	beatIdx map[beatKey]*record   // current records by smartbeat identity
	nameIdx map[nameKey][]*record // current records by STATE identity
	history []*record             // oldest first
	histIdx map[beatKey]*record   // timed-out records that a smartbeat may resurrect
	// perSource counts the current records of each source, for
	// MonitorConfig.MaxRecordsPerSource.
	perSource map[sourceKey]int
	uid       uint64
	hseq      uint64 // the latest record.hseq given
}

// nameKey is what a STATE notification identifies: the peer and the
// service name, case-insensitively (§9.1).
type nameKey struct {
	proto string
	peer  netip.AddrPort
	name  string // lower case
}

func (r *record) nameKey() nameKey {
	return nameKey{r.key.proto, r.key.peer, strings.ToLower(r.name)}
}

func newTracker() tracker {
	return tracker{
		current:   map[recordKey]*record{},
		beatIdx:   map[beatKey]*record{},
		nameIdx:   map[nameKey][]*record{},
		histIdx:   map[beatKey]*record{},
		perSource: map[sourceKey]int{},
	}
}

// addCurrent makes r current and indexes it.
func (t *tracker) addCurrent(r *record) {
	t.current[r.key] = r
	t.perSource[r.key.source()]++
	t.beatIdx[r.key.beat()] = r
	nk := r.nameKey()
	t.nameIdx[nk] = append(t.nameIdx[nk], r)
}

// removeCurrent takes r out of the current list and its indexes.
func (t *tracker) removeCurrent(r *record) {
	delete(t.current, r.key)
	if src := r.key.source(); t.perSource[src] > 1 {
		t.perSource[src]--
	} else {
		delete(t.perSource, src)
	}
	if t.beatIdx[r.key.beat()] == r {
		delete(t.beatIdx, r.key.beat())
	}
	nk := r.nameKey()
	rs := slices.DeleteFunc(t.nameIdx[nk], func(x *record) bool { return x == r })
	if len(rs) == 0 {
		delete(t.nameIdx, nk)
	} else {
		t.nameIdx[nk] = rs
	}
}

// stateName is the name a record shows for st when none was reported.
func stateName(st State, reported string, has bool) string {
	if has {
		return reported
	}
	return st.String()
}

func (m *Monitor) addState(r *record, now time.Time) {
	if n := len(r.states); n > 0 && r.states[n-1].State == r.state && r.states[n-1].Name == r.stateName {
		return
	}
	if len(r.states) >= m.cfg.MaxStateHistory {
		r.states = slices.Delete(r.states, 0, len(r.states)-m.cfg.MaxStateHistory+1)
	}
	r.states = append(r.states, StateChange{At: now, State: r.state, Name: r.stateName})
}

// created handles a CREATE: a current record with the same identity is
// displaced into history, and the new record becomes current. A CREATE
// that would go beyond MaxRecordsPerSource or MaxRecords is refused (a
// displacement does not add a record).
func (m *Monitor) created(proto string, peer netip.AddrPort, n *notice, now time.Time) {
	t := &m.t
	key := recordKey{proto, peer, n.inst.id, n.inst.typ}
	if old := t.current[key]; old != nil {
		old.displaced = true
		m.toHistory(old, EndDisplaced, now)
		m.stats.Displaced++
		m.emit(EventDisplaced, old, now)
	} else if !m.roomFor(key.source(), n.name) {
		return
	}
	t.uid++
	r := &record{
		uid:        t.uid,
		key:        key,
		name:       n.name,
		state:      n.inst.state,
		stateName:  n.inst.state.String(),
		group:      n.group,
		checkpoint: n.inst.checkpoint,
		activity:   m.activity(n.inst.activityMS),
		created:    now,
		lastRecv:   now,
		lastBeat:   partsTime(n.inst.sec, n.inst.usec),
		base:       now,
		det:        NewPhiDetector(m.cfg.Phi),
		current:    true,
	}
	m.addState(r, now)
	t.addCurrent(r)
	m.stats.Created++
	m.emit(EventCreated, r, now)
}

func (m *Monitor) activity(ms uint32) time.Duration {
	if ms == 0 {
		return m.cfg.DefaultActivityTimeout
	}
	return msDuration(ms)
}

// destroyed handles a DESTROY: the record (current first, then history)
// takes INST and the state name; a current one moves to history. A
// DESTROY for an unknown service is recorded in history too (the monitor
// may have restarted since its CREATE).
func (m *Monitor) destroyed(proto string, peer netip.AddrPort, n *notice, now time.Time) {
	t := &m.t
	key := recordKey{proto, peer, n.inst.id, n.inst.typ}
	r := t.current[key]
	if r == nil {
		for i := len(t.history) - 1; i >= 0; i-- {
			if t.history[i].key == key && !t.history[i].destroyed {
				r = t.history[i]
				break
			}
		}
	}
	fresh := r == nil
	if fresh {
		t.uid++
		r = &record{uid: t.uid, key: key, created: now, det: NewPhiDetector(m.cfg.Phi), name: n.name}
	}
	if n.hasName {
		r.name = n.name
	}
	if n.group != "" {
		r.group = n.group
	}
	r.state = n.inst.state
	r.stateName = stateName(n.inst.state, n.stateName, n.hasStateName)
	r.checkpoint = n.inst.checkpoint
	r.activity = m.activity(n.inst.activityMS)
	r.lastBeat = partsTime(n.inst.sec, n.inst.usec)
	r.destroyed = true
	if r.state == TimedOut {
		r.inactive = true
	}
	if t.histIdx[key.beat()] == r {
		delete(t.histIdx, key.beat())
	}
	m.addState(r, now)
	switch {
	case r.current:
		m.toHistory(r, EndDestroyed, now)
	case fresh:
		r.ended, r.reason = now, EndDestroyed
		m.pushHistory(r)
	}
	m.stats.Destroyed++
	m.emit(EventDestroyed, r, now)
}

// stateChanged handles the state of a CREATE, STATE or DESTROY carrying
// 0x8102: the current record of the peer with that name (case-insensitive)
// takes it.
func (m *Monitor) stateChanged(proto string, peer netip.AddrPort, n *notice, now time.Time) {
	var r *record // the newest current record of that name at that peer
	for _, c := range m.t.nameIdx[nameKey{proto, peer, strings.ToLower(n.name)}] {
		if r == nil || c.uid > r.uid {
			r = c
		}
	}
	if r == nil {
		return
	}
	name := stateName(n.state, n.stateName, n.hasStateName)
	if r.state == n.state && r.stateName == name {
		return
	}
	r.state, r.stateName = n.state, name
	m.addState(r, now)
	m.emit(EventState, r, now)
}

// beat handles one smartbeat element: the current record takes the
// checkpoint and times; a timed-out one in history is resurrected first.
func (m *Monitor) beat(proto string, peer netip.AddrPort, b beat, now time.Time) {
	t := &m.t
	bk := beatKey{proto, peer, b.id}
	r := t.beatIdx[bk]
	if r == nil {
		h := t.histIdx[bk]
		if h == nil {
			m.stats.UnknownBeats++
			return
		}
		if !m.roomFor(h.key.source(), h.name) { // its place was taken meanwhile
			return
		}
		m.resurrect(h, now)
		r = h
	}
	r.checkpoint = b.checkpoint
	r.lastBeat = partsTime(b.sec, b.usec)
	r.lastRecv, r.base, r.credit = now, now, 0
	r.beats++
	r.det.Heartbeat(now)
	m.stats.Beats++
	m.emit(EventBeat, r, now)
}

// resurrect brings a timed-out record back from history (§9.1: a smartbeat
// for it arrived after all). Only timed-out records come back: a destroyed
// service cannot beat, and a displaced one has a successor. stkhttpd
// resurrects whatever it finds in history.
func (m *Monitor) resurrect(r *record, now time.Time) {
	t := &m.t
	if i := slices.Index(t.history, r); i >= 0 {
		t.history = slices.Delete(t.history, i, i+1)
	}
	delete(t.histIdx, r.key.beat())
	if old := t.current[r.key]; old != nil { // cannot happen: it would own the beat key
		old.displaced = true
		m.toHistory(old, EndDisplaced, now)
	}
	r.current, r.inactive, r.ended, r.reason, r.verdict = true, false, time.Time{}, EndNone, nil
	r.resurrections++
	r.det = NewPhiDetector(m.cfg.Phi) // the old intervals ended in a failure
	t.addCurrent(r)
	m.stats.Resurrected++
	m.log.Info("service resurrected by a smartbeat", "service", r.name, "key", r.key.String())
	m.emit(EventResurrected, r, now)
}

// toHistory moves a current record to history.
func (m *Monitor) toHistory(r *record, why EndReason, now time.Time) {
	t := &m.t
	t.removeCurrent(r)
	r.current, r.ended, r.reason = false, now, why
	if why == EndTimedOut {
		t.histIdx[r.key.beat()] = r
	}
	m.pushHistory(r)
}

// pushHistory appends r to history, evicting the oldest record at the
// bound whatever its reason (fixing docs/differences.md B7, where the newest was dropped and
// timeouts were not counted).
func (m *Monitor) pushHistory(r *record) {
	t := &m.t
	for len(t.history) >= m.cfg.MaxHistory {
		old := t.history[0]
		t.history[0] = nil
		t.history = t.history[1:]
		if t.histIdx[old.key.beat()] == old {
			delete(t.histIdx, old.key.beat())
		}
		m.stats.Evicted++
	}
	t.hseq++
	r.hseq = t.hseq
	t.history = append(t.history, r)
}

// check times out silent records (§8.5, with the φ detector and stall
// compensation). periodic marks the ticks of the check loop, which alone
// measure stalls.
func (m *Monitor) check(now time.Time, periodic bool) {
	t := &m.t
	if periodic {
		if !m.lastTick.IsZero() && m.cfg.CheckInterval > 0 {
			if stall := now.Sub(m.lastTick) - m.cfg.CheckInterval; stall > m.cfg.StallThreshold {
				m.stalled(stall, now)
			}
		}
		m.lastTick = now
	}
	var dead []*record
	for _, r := range t.current {
		silence := now.Sub(r.base)
		suspect, p := r.det.Suspect(now)
		var v *Verdict
		switch {
		case silence > r.activity:
			v = m.verdict(r, DetectorActivityTimeout, now, silence, p)
			v.Reason = fmt.Sprintf("no smartbeat for %v, longer than its activity timeout %v", silence.Round(time.Millisecond), r.activity)
		case suspect:
			v = m.verdict(r, DetectorPhiAccrual, now, silence, p)
			v.Reason = fmt.Sprintf("no smartbeat for %v: φ %.1f above %.1f (beats every %v ± %v)", silence.Round(time.Millisecond), p, v.PhiThreshold, v.Interval.Round(time.Millisecond), v.StdDev.Round(time.Millisecond))
		default:
			continue
		}
		r.verdict = v
		dead = append(dead, r)
	}
	slices.SortFunc(dead, func(a, b *record) int { return cmp.Compare(a.uid, b.uid) })
	for _, r := range dead {
		r.inactive = true
		m.toHistory(r, EndTimedOut, now)
		m.stats.TimedOut++
		if r.verdict.Detector == DetectorPhiAccrual {
			m.stats.TimedOutByPhi++
		}
		m.log.Info("service timed out", "service", r.name, "key", r.key.String(), "detector", r.verdict.Detector, "reason", r.verdict.Reason)
		m.emit(EventTimedOut, r, now)
	}
}

func (m *Monitor) verdict(r *record, detector string, now time.Time, silence time.Duration, p float64) *Verdict {
	v := &Verdict{
		Detector:        detector,
		At:              now,
		Silence:         silence,
		ActivityTimeout: r.activity,
		PhiThreshold:    m.cfg.Phi.Threshold,
		Interval:        r.det.Mean(),
		StdDev:          r.det.StdDev(),
		Samples:         r.det.Samples(),
		StallCredit:     r.credit,
	}
	if r.det.Samples() >= r.det.cfg.MinSamples {
		v.Phi = p
	}
	return v
}

// stallWarnInterval rate-limits the stall warning: a loaded machine can
// stall the monitor every few seconds, and one line a minute with a count
// says as much as a line for each.
const stallWarnInterval = time.Minute

// stalled extends every current record's deadline by the time the monitor
// was not running its checks: whatever arrived meanwhile may still be
// waiting in a socket buffer, so silence during a stall proves nothing.
//
// The stall is worth a warning only when the extension mattered: when at
// least one service would have been timed out without it. Otherwise (no
// services, or a stall shorter than every service's slack) it is a busy
// machine, logged at Debug.
func (m *Monitor) stalled(stall time.Duration, now time.Time) {
	m.stats.Stalls++
	m.stats.StallTime += stall
	saved := 0
	for _, r := range m.t.current {
		if suspect, _ := r.det.Suspect(now); suspect || now.Sub(r.base) > r.activity {
			saved++
		}
		r.base = r.base.Add(stall)
		r.credit += stall
		r.det.Extend(stall)
	}
	if saved == 0 {
		m.log.Debug("monitor was stalled; extended every service's deadline", "stall", stall, "services", len(m.t.current))
		return
	}
	m.stallsUnwarned++
	if !m.stallWarned.IsZero() && now.Sub(m.stallWarned) < stallWarnInterval && now.After(m.stallWarned) {
		m.log.Debug("monitor was stalled; extended every service's deadline", "stall", stall, "services", len(m.t.current), "saved", saved)
		return
	}
	m.log.Warn("monitor was stalled long enough to time services out; extended every service's deadline",
		"stall", stall, "services", len(m.t.current), "saved", saved,
		"such_stalls", m.stallsUnwarned, "since", m.stallSince(now))
	m.stallWarned, m.stallsUnwarned = now, 0
}

// stallSince is the period the such_stalls count of the stall warning
// covers: since the previous warning, or since the monitor started.
func (m *Monitor) stallSince(now time.Time) time.Duration {
	from := m.stats.Started
	if !m.stallWarned.IsZero() {
		from = m.stallWarned
	}
	return now.Sub(from).Round(time.Second)
}

// ingest applies one received sequence.
func (m *Monitor) ingest(proto string, peer netip.AddrPort, s *seq.Sequence, n *notice, now time.Time) {
	switch s.ID {
	case seq.IDCreateNotification:
		m.stats.Notifications++
		m.created(proto, peer, n, now)
	case seq.IDDestroyNotification:
		m.stats.Notifications++
		m.destroyed(proto, peer, n, now)
	case seq.IDStateNotification:
		m.stats.Notifications++
	case seq.IDSmartbeat:
		m.stats.Smartbeats++
		for _, b := range n.beats {
			m.beat(proto, peer, b, now)
		}
		return
	}
	if n.hasState && n.hasName {
		m.stateChanged(proto, peer, n, now)
	}
}
