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
}

// ring is the bounded history, in arrival order.
type ring struct {
	buf  []entry
	head int // index of the oldest entry
	size int
	next uint64
}

func newRing(n int) ring { return ring{buf: make([]entry, n)} }

func (r *ring) len() int { return r.size }
func (r *ring) cap() int { return len(r.buf) }

// at returns the i-th entry, 0 the oldest.
func (r *ring) at(i int) entry {
	j := r.head + i
	if j >= len(r.buf) {
		j -= len(r.buf)
	}
	return r.buf[j]
}

func (r *ring) add(s *step.Step) {
	r.next++
	e := entry{start: s.Time.Start, n: r.next, s: s}
	if r.size < len(r.buf) {
		j := r.head + r.size
		if j >= len(r.buf) {
			j -= len(r.buf)
		}
		r.buf[j] = e
		r.size++
		return
	}
	r.buf[r.head] = e // overwrite the oldest
	r.head++
	if r.head == len(r.buf) {
		r.head = 0
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
	r := &b.hist
	// Newest first, so that with a limit the heap fills with the likely
	// winners and later candidates are rejected by one comparison.
	for i := r.size - 1; i >= 0; i-- {
		e := r.at(i)
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
	b.mu.RUnlock()
	slices.SortFunc(found, func(a, b entry) int {
		if c := cmp.Compare(a.start, b.start); c != 0 {
			return c
		}
		return cmp.Compare(a.n, b.n)
	})
	out := make([]*step.Step, len(found))
	for i, e := range found {
		out[i] = e.s
	}
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
