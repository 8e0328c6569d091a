package stepbus

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stk-go/stk/step"
)

// entry is one STEP of the history with its time.start (kept here so a
// scan reads the ring sequentially instead of every STEP) and its arrival
// number, which orders events with the same time.start.
type entry struct {
	start int64
	n     uint64
	s     *step.Step
	src   string // Publish's source (shared: one string per publisher)
}

// The history is bounded (Config.History STEPs in all), and within that
// bound shared fairly between sources, so that one host flooding the bus
// cannot push every other host's events out of it:
//
//   - The source of a STEP is its host: space.hostname, compared without
//     case, or space.ip when it has no hostname.
//   - While the history has room, any source may use it.
//   - Once it is full, each new STEP evicts one: the oldest STEP of the
//     source holding the most when that one is over its quota; else the
//     oldest of the new STEP's own source when it holds its quota or
//     more; else again the oldest of the source holding the most. A
//     source's quota is max(bound / sources holding STEPs, sourceFloor).
//
// So a flood only ever evicts the flooder's own STEPs once it holds its
// share, a quiet host keeps its newest events up to its share however much
// the others send, and sources sending more than their share split what
// the quiet ones leave. (A client inventing hostnames gets one share per
// name: the sources holding the most lose first.)

// sourceFloor is the smallest quota of a source, so that with very many
// sources each still keeps a few events before it evicts its own.
const sourceFloor = 16

// sourceOf is the source a STEP counts against in the history.
func sourceOf(s *step.Step) string {
	if s.Space.Hostname != "" {
		return strings.ToLower(s.Space.Hostname)
	}
	return "ip:" + s.Space.IP
}

// srcQueue holds one source's STEPs in the history, oldest first.
type srcQueue struct {
	key  string
	q    []entry // q[head:] are live
	head int
	hi   int // index in ring.heap
}

func (sq *srcQueue) len() int { return len(sq.q) - sq.head }

// popOldest removes and returns the source's oldest entry.
func (sq *srcQueue) popOldest() entry {
	e := sq.q[sq.head]
	sq.q[sq.head] = entry{}
	sq.head++
	// Reclaim the dead front now and then; a queue that shrank a lot
	// gets a smaller array.
	if sq.head >= 64 && sq.head*2 >= len(sq.q) {
		n := sq.len()
		if cap(sq.q) > 4*n+64 {
			sq.q = append(make([]entry, 0, 2*n+16), sq.q[sq.head:]...)
		} else {
			copy(sq.q, sq.q[sq.head:])
			clear(sq.q[n:])
			sq.q = sq.q[:n]
		}
		sq.head = 0
	}
	return e
}

// ring is the bounded history (see above): one queue per source, and a
// max-heap of the sources by the number of STEPs they hold.
type ring struct {
	bound  int
	size   int
	next   uint64
	srcs   map[string]*srcQueue
	heap   []*srcQueue
	newest entry
}

func newRing(n int) ring { return ring{bound: n, srcs: map[string]*srcQueue{}} }

func (r *ring) len() int { return r.size }
func (r *ring) cap() int { return r.bound }

// quota is what one source may hold before it evicts its own STEPs.
func (r *ring) quota() int {
	return max(r.bound/max(len(r.srcs), 1), min(sourceFloor, r.bound))
}

// at returns the i-th entry in arrival order, 0 the oldest. The oldest
// and the newest are quick (Stats); any other scans the whole history
// (tests).
func (r *ring) at(i int) entry {
	switch i {
	case r.size - 1:
		return r.newest
	case 0:
		var oldest entry
		for _, sq := range r.heap {
			if e := sq.q[sq.head]; oldest.s == nil || e.n < oldest.n {
				oldest = e
			}
		}
		return oldest
	}
	all := make([]entry, 0, r.size)
	for _, sq := range r.heap {
		all = append(all, sq.q[sq.head:]...)
	}
	slices.SortFunc(all, func(a, b entry) int { return cmp.Compare(a.n, b.n) })
	return all[i]
}

func (r *ring) add(s *step.Step, src string) {
	r.next++
	e := entry{start: s.Time.Start, n: r.next, s: s, src: src}
	key := sourceOf(s)
	sq := r.srcs[key]
	if r.size >= r.bound {
		victim := r.heap[0] // the source holding the most
		if q := r.quota(); victim.len() <= q && sq != nil && sq.len() >= q {
			victim = sq
		}
		r.evict(victim)
		sq = r.srcs[key] // the eviction may have taken its last STEP
	}
	if sq == nil {
		sq = &srcQueue{key: key, hi: len(r.heap)}
		r.srcs[key] = sq
		r.heap = append(r.heap, sq)
	}
	sq.q = append(sq.q, e)
	r.size++
	r.newest = e
	r.up(sq.hi)
}

// evict drops the oldest STEP of sq.
func (r *ring) evict(sq *srcQueue) {
	sq.popOldest()
	r.size--
	if sq.len() > 0 {
		r.down(sq.hi)
		return
	}
	// Its last STEP: forget the source.
	delete(r.srcs, sq.key)
	last := len(r.heap) - 1
	i := sq.hi
	r.swap(i, last)
	r.heap[last] = nil
	r.heap = r.heap[:last]
	if i < last {
		r.down(i)
		r.up(i)
	}
}

func (r *ring) swap(i, j int) {
	r.heap[i], r.heap[j] = r.heap[j], r.heap[i]
	r.heap[i].hi, r.heap[j].hi = i, j
}

func (r *ring) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if r.heap[p].len() >= r.heap[i].len() {
			return
		}
		r.swap(i, p)
		i = p
	}
}

func (r *ring) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(r.heap) {
			return
		}
		m := l
		if k := l + 1; k < len(r.heap) && r.heap[k].len() > r.heap[l].len() {
			m = k
		}
		if r.heap[i].len() >= r.heap[m].len() {
			return
		}
		r.swap(i, m)
		i = m
	}
}

// Query selects STEPs from the history. The zero Query selects all.
type Query struct {
	// Pattern selects event types; the zero Pattern matches all.
	Pattern step.Pattern
	// Host, if set, selects STEPs whose space.hostname equals it (ignoring
	// case) or whose space.ip equals it.
	Host string
	// Since and Until bound time.start: Since <= start < Until. A zero
	// time leaves that side open.
	Since, Until time.Time
	// Limit, if positive, keeps only the Limit newest matches (by
	// time.start, then arrival).
	Limit int
}

// matchHost reports whether s happened on host ("" matches all).
func matchHost(s *step.Step, host string) bool {
	return host == "" || s.Space.IP == host || strings.EqualFold(s.Space.Hostname, host)
}

// Query returns the history's STEPs that match q, oldest first (by
// time.start, then arrival). The STEPs are shared: treat them as
// read-only.
func (b *Bus) Query(q Query) []*step.Step {
	found := b.query(q)
	out := make([]*step.Step, len(found))
	for i, e := range found {
		out[i] = e.s
	}
	return out
}

// QueryWithSources is Query that also returns where each STEP came from:
// sources[i] is the source steps[i] was published with (Publish's source:
// "tcp:IP:PORT", the registered address of the followed publisher it came
// from, or "http" for the HTTP API). The source is kept beside the STEP,
// not in it: a STEP's JSON stays what package step defines.
func (b *Bus) QueryWithSources(q Query) (steps []*step.Step, sources []string) {
	found := b.query(q)
	steps, sources = make([]*step.Step, len(found)), make([]string, len(found))
	for i, e := range found {
		steps[i], sources[i] = e.s, e.src
	}
	return steps, sources
}

// query returns the entries Query returns the STEPs of.
func (b *Bus) query(q Query) []entry {
	var since, until int64 = 0, 1<<63 - 1
	if !q.Since.IsZero() {
		since = q.Since.UnixMilli()
	}
	if !q.Until.IsZero() {
		until = q.Until.UnixMilli()
	}
	all := q.Pattern.All()
	var found []entry
	if q.Limit > 0 {
		found = make([]entry, 0, min(q.Limit, 1024))
	}
	b.mu.RLock()
	// Each source's STEPs newest first, the sources that hold the newest
	// STEPs (and the source named by Host) first, so that with a limit
	// the heap fills with the likely winners and later candidates are
	// rejected by one comparison.
	for _, sq := range b.hist.scanOrder(q.Host) {
		for i := len(sq.q) - 1; i >= sq.head; i-- {
			e := sq.q[i]
			if e.start < since || e.start >= until {
				continue
			}
			full := q.Limit > 0 && len(found) == q.Limit
			if full && !newer(e, found[0]) {
				continue
			}
			if !all && !q.Pattern.Match(e.s.Event.Type) || !matchHost(e.s, q.Host) {
				continue
			}
			switch {
			case q.Limit <= 0:
				found = append(found, e)
			case full:
				found[0] = e
				siftDown(found)
			default:
				found = append(found, e)
				siftUp(found)
			}
		}
	}
	b.mu.RUnlock()
	slices.SortFunc(found, func(a, b entry) int {
		if c := cmp.Compare(a.start, b.start); c != 0 {
			return c
		}
		return cmp.Compare(a.n, b.n)
	})
	return found
}

// scanOrder returns the sources: those host names first, then by their
// newest STEP, newest first.
func (r *ring) scanOrder(host string) []*srcQueue {
	out := slices.Clone(r.heap)
	named := map[string]bool{strings.ToLower(host): host != "", "ip:" + host: host != ""}
	slices.SortFunc(out, func(a, b *srcQueue) int {
		if na, nb := named[a.key], named[b.key]; na != nb {
			if na {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.q[len(b.q)-1].n, a.q[len(a.q)-1].n)
	})
	return out
}

// newer reports whether a sorts after b (later start, or same start and
// later arrival).
func newer(a, b entry) bool {
	if a.start != b.start {
		return a.start > b.start
	}
	return a.n > b.n
}

// siftUp and siftDown keep h a min-heap by newer (the oldest entry on top,
// the one a newer match replaces) after an append or a replaced top.
func siftUp(h []entry) {
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !newer(h[p], h[i]) {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func siftDown(h []entry) {
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && newer(h[l], h[r]) {
			m = r
		}
		if !newer(h[i], h[m]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// maxLatest bounds the metric instances remembered per host.
const maxLatest = 512

// instanceFields name the space field that tells apart the several metric
// STEPs of one type a host sends per interval (one per mount, device,
// interface, GPU, service; see package hostmon).
var instanceFields = [...]string{"mountpoint", "interface", "device", "gpu_index", "service"}

// hostState is what the bus remembers of one host.
type hostState struct {
	name     string
	ip       string
	lastSeen time.Time
	events   uint64
	latest   map[metricKey]*step.Step
}

type metricKey struct{ typ, instance string }

// HostSummary describes one host that published STEPs.
type HostSummary struct {
	// Hostname is space.hostname of its STEPs ("" for STEPs without one);
	// IP the latest space.ip seen.
	Hostname string `json:"hostname"`
	IP       string `json:"ip"`
	// LastSeen is when the bus last accepted a STEP of the host (the bus's
	// clock).
	LastSeen time.Time `json:"last_seen"`
	// Events counts its accepted STEPs.
	Events uint64 `json:"events"`
	// Latest holds the newest metric STEP ("kind": "metric") of each type
	// and instance (mount point, device, interface, GPU index or service,
	// whichever the STEP carries), sorted by type, then instance.
	Latest []*step.Step `json:"latest"`
}

// hostSeen records s in its host's state; b.mu is held.
func (b *Bus) hostSeen(s *step.Step) {
	name := s.Space.Hostname
	h := b.hosts[name]
	if h == nil {
		if len(b.hosts) >= MaxStatKeys {
			b.evictHost()
		}
		h = &hostState{name: name, latest: map[metricKey]*step.Step{}}
		b.hosts[name] = h
	}
	h.events++
	h.lastSeen = b.now()
	if s.Space.IP != "" {
		h.ip = s.Space.IP
	}
	if k, _ := s.Space.Fields["kind"].(string); k != "metric" {
		return
	}
	key := metricKey{typ: s.Event.Type}
	for _, f := range instanceFields {
		if v, ok := s.Space.Fields[f]; ok {
			key.instance = instanceString(v)
			break
		}
	}
	if old := h.latest[key]; old != nil {
		if old.Time.Start > s.Time.Start {
			return // a late arrival does not replace a newer value
		}
	} else if len(h.latest) >= maxLatest {
		return
	}
	h.latest[key] = s
}

func instanceString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconvFloat(x)
	case int:
		return strconvFloat(float64(x))
	case int64:
		return strconvFloat(float64(x))
	case uint64:
		return strconvFloat(float64(x))
	}
	return ""
}

func strconvFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// evictHost forgets the host seen longest ago; b.mu is held.
func (b *Bus) evictHost() {
	var oldest *hostState
	for _, h := range b.hosts {
		if oldest == nil || h.lastSeen.Before(oldest.lastSeen) {
			oldest = h
		}
	}
	if oldest != nil {
		delete(b.hosts, oldest.name)
	}
}

// Hosts returns a summary of every host that published, sorted by
// hostname. The STEPs in it are shared: treat them as read-only.
func (b *Bus) Hosts() []HostSummary {
	b.mu.RLock()
	out := make([]HostSummary, 0, len(b.hosts))
	for _, h := range b.hosts {
		hs := HostSummary{Hostname: h.name, IP: h.ip, LastSeen: h.lastSeen, Events: h.events,
			Latest: make([]*step.Step, 0, len(h.latest))}
		for _, s := range h.latest {
			hs.Latest = append(hs.Latest, s)
		}
		out = append(out, hs)
	}
	b.mu.RUnlock()
	for i := range out {
		slices.SortFunc(out[i].Latest, func(x, y *step.Step) int {
			if c := cmp.Compare(x.Event.Type, y.Event.Type); c != 0 {
				return c
			}
			return cmp.Compare(latestInstance(x), latestInstance(y))
		})
	}
	slices.SortFunc(out, func(x, y HostSummary) int { return cmp.Compare(x.Hostname, y.Hostname) })
	return out
}

func latestInstance(s *step.Step) string {
	for _, f := range instanceFields {
		if v, ok := s.Space.Fields[f]; ok {
			return instanceString(v)
		}
	}
	return ""
}
