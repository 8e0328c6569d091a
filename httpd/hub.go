package httpd

import (
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
)

// message is one server-sent event, encoded once for every client.
type message struct {
	id    uint64 // the monitor event's sequence number; 0: no id line
	event string
	data  []byte // one line of JSON
}

// eventsFlush is how often a client's queued updates are written: a
// record that beats faster gets one update per interval on the stream,
// carrying its latest values.
const eventsFlush = 250 * time.Millisecond

// update is one monitor event as the hub hands it to the clients. Its JSON
// is made once, by the first client that writes it: an update merged away
// on every client is never encoded.
type update struct {
	ev       smartbeat.Event
	point    float64 // the smartbeat interval it added to the record's sparkline, ms
	hasPoint bool

	once sync.Once
	data []byte
}

func (u *update) json(log *slog.Logger) []byte {
	u.once.Do(func() {
		var err error
		if u.data, err = json.Marshal(eventJSON(&u.ev)); err != nil {
			log.Warn("http: encoding an event", "seq", u.ev.Seq, "err", err)
			u.data = []byte(`{}`)
		}
	})
	return u.data
}

// item is one entry of a client's queue: a monitor update standing for
// merged monitor events, or another message (msg, when u is nil).
type item struct {
	u      *update
	msg    message
	after  uint64    // for a reset: the events up to this are not all on the stream
	merged int       // monitor events it stands for: 1 plus the beats merged into it
	points []float64 // sparkline points of those events, oldest first
	dead   bool      // merged into a later item
}

// client is one open event stream. The hub appends to its queue; the
// stream's handler takes the queue every flush interval (at once for a
// raw client, or when too many unmergeable items wait) and writes it.
//
// Coalescing: a beat whose record has a beat still waiting in the queue
// replaces it, at the new event's place in the stream, and carries its
// sparkline points; any other event of the record (state change,
// creation, timeout, destroy...) also absorbs the waiting beat, whose
// values it holds too (every event carries the whole record), and is
// never merged away itself. So the queue holds at most one beat per
// record, each record's events keep their order, and the stream stays in
// sequence-number order.
type client struct {
	gone chan struct{} // closed when the client is dropped or the hub closes
	once sync.Once
	wake chan struct{} // the handler should write now, not at the next flush
	raw  bool          // ?beats=all: every event on its own, written at once

	mu    sync.Mutex
	q     []item
	live  int            // items in q that are not dead
	must  int            // items in q that no later event can merge away
	beats map[uint64]int // uid -> index in q of its waiting beat (the record's latest item)
	floor uint64         // events up to this are the client's already
	since time.Time      // when the oldest item in q was queued
}

func (c *client) drop() { c.once.Do(func() { close(c.gone) }) }

func (c *client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// push queues u and reports whether the client still keeps up: false
// when more than limit items that cannot be merged wait.
func (c *client) push(u *update, maxPoints, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u.ev.Seq <= c.floor {
		return true
	}
	it := item{u: u, merged: 1}
	if u.hasPoint {
		it.points = []float64{u.point}
	}
	c.addLocked(it, maxPoints)
	if c.raw || c.must >= limit/2 {
		c.signal()
	}
	return c.must <= limit
}

// pushMsg queues a message without an id (after: see item), like push.
func (c *client) pushMsg(m message, after uint64, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live == 0 {
		c.since = time.Now()
	}
	c.q = append(c.q, item{msg: m, after: after})
	c.live++
	c.must++
	if c.raw || c.must >= limit/2 {
		c.signal()
	}
	return c.must <= limit
}

// addLocked appends it to the queue, merging the record's waiting beat
// into it (see client).
func (c *client) addLocked(it item, maxPoints int) {
	if c.live == 0 {
		c.since = time.Now()
	}
	uid := it.u.ev.Service.UID
	if i, ok := c.beats[uid]; ok {
		old := &c.q[i]
		it.merged += old.merged
		it.points = lastN(append(old.points, it.points...), maxPoints)
		*old = item{dead: true}
		c.live--
		delete(c.beats, uid)
	}
	if !c.raw && it.u.ev.Kind == smartbeat.EventBeat {
		c.beats[uid] = len(c.q)
	} else {
		c.must++
	}
	c.q = append(c.q, it)
	c.live++
	if len(c.q) > 2*c.live+64 {
		c.compactLocked()
	}
}

// compactLocked removes the dead items, so the queue stays within twice
// the records with a waiting beat plus the unmergeable items.
func (c *client) compactLocked() {
	n := 0
	for _, it := range c.q {
		if it.dead {
			continue
		}
		if it.u != nil && it.u.ev.Kind == smartbeat.EventBeat && !c.raw {
			c.beats[it.u.ev.Service.UID] = n // a live beat is always its record's waiting one
		}
		c.q[n] = it
		n++
	}
	clear(c.q[n:])
	c.q = c.q[:n]
}

// take returns the queue to write and starts an empty one in spare (the
// slice the caller wrote last time).
func (c *client) take(spare []item) []item {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.q
	c.q = spare[:0]
	c.live, c.must = 0, 0
	clear(c.beats)
	return q
}

// start begins the stream at floor: events up to floor are the client's
// already. It returns what to write first: the events of replay after
// floor that the hub published before the client was added (up to
// added), merged like live ones, then what the hub queued since.
func (c *client) start(floor, added uint64, replay []smartbeat.Event, maxPoints int) []item {
	c.mu.Lock()
	defer c.mu.Unlock()
	queued := c.q
	c.q, c.live, c.must = nil, 0, 0
	clear(c.beats)
	c.floor = floor
	// The replay's sparkline points: intervals between its own smartbeats
	// of a record (the one before its first is not in it).
	lastRecv := map[uint64]time.Time{}
	for i := range replay {
		ev := &replay[i]
		if ev.Seq <= c.floor || ev.Seq > added {
			continue
		}
		u := &update{ev: *ev}
		v := &ev.Service
		if ev.Kind == smartbeat.EventBeat || ev.Kind == smartbeat.EventResurrected {
			if t, ok := lastRecv[v.UID]; ok && v.LastReceived.After(t) {
				u.point, u.hasPoint = ms(v.LastReceived.Sub(t)), true
			}
			lastRecv[v.UID] = v.LastReceived
		}
		it := item{u: u, merged: 1}
		if u.hasPoint {
			it.points = []float64{u.point}
		}
		c.addLocked(it, maxPoints)
	}
	for _, it := range queued {
		switch {
		case it.dead:
		case it.u == nil:
			c.q = append(c.q, it)
			c.live++
			c.must++
		case it.u.ev.Seq > c.floor:
			c.addLocked(it, maxPoints)
		}
	}
	q := c.q
	c.q, c.live, c.must = nil, 0, 0
	clear(c.beats)
	return q
}

// stalled reports how long the oldest item has waited, and whether that
// is longer than limit: the handler is stuck writing.
func (c *client) stalled(now time.Time, limit time.Duration) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live == 0 {
		return 0, false
	}
	d := now.Sub(c.since)
	return d, d > limit
}

// lastN returns the last n values of v.
func lastN(v []float64, n int) []float64 {
	if len(v) > n {
		return v[len(v)-n:]
	}
	return v
}

// maxEndedSparks bounds the sparklines kept for records that left the
// current list.
const maxEndedSparks = 512

// spark holds the latest smartbeat intervals of one record.
type spark struct {
	lastRecv time.Time
	vals     []float64 // ring of cfg.SparkPoints
	next     int       // where the next value goes once vals is full
	ended    bool
}

func (sp *spark) add(v float64, max int) {
	if len(sp.vals) < max {
		sp.vals = append(sp.vals, v)
		return
	}
	sp.vals[sp.next] = v
	sp.next = (sp.next + 1) % max
}

func (sp *spark) values() []float64 {
	out := make([]float64, 0, len(sp.vals))
	out = append(out, sp.vals[sp.next:]...)
	return append(out, sp.vals[:sp.next]...)
}

// hub follows the monitor's events and fans them out to the event-stream
// clients. The monitor calls onEvent on a goroutine of its own; the hub
// only appends to the clients' queues (see client), where beats merge, and
// drops a client that falls too far behind, so nothing here ever waits for
// a client. The JSON is made later, once, by the clients' handlers.
type hub struct {
	s      *Server
	mon    Monitor
	cancel func() // the monitor subscription

	flushEvery atomic.Int64 // eventsFlush; tests shorten it

	mu      sync.Mutex
	clients map[*client]struct{}
	last    uint64 // sequence number of the latest event fanned out
	sparks  map[uint64]*spark
	ended   []uint64 // uids of ended records with a spark, oldest first
	closed  bool

	namesHash    uint64
	namesVersion uint64

	dropped, resets, sent atomic.Uint64

	stop chan struct{}
	wg   sync.WaitGroup
}

func newHub(s *Server) *hub {
	h := &hub{
		s: s, mon: s.cfg.Monitor,
		clients: map[*client]struct{}{},
		sparks:  map[uint64]*spark{},
		stop:    make(chan struct{}),
	}
	h.flushEvery.Store(int64(eventsFlush))
	if h.mon != nil {
		h.last = h.mon.Stats().LastEvent
		h.cancel = h.mon.Subscribe(h.onEvent)
	}
	h.wg.Add(1)
	go h.loop()
	return h
}

func (h *hub) flushInterval() time.Duration { return time.Duration(h.flushEvery.Load()) }

func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	for c := range h.clients {
		c.drop()
	}
	h.mu.Unlock()
	if h.cancel != nil {
		h.cancel()
	}
	close(h.stop)
	h.wg.Wait()
}

// onEvent is the monitor subscription: events come in order, one at a time.
func (h *hub) onEvent(ev smartbeat.Event) {
	h.mu.Lock()
	if h.closed || ev.Seq <= h.last {
		h.mu.Unlock()
		return
	}
	last := h.last
	h.mu.Unlock()
	if ev.Seq == last+1 {
		h.publish(ev)
		return
	}
	// The subscription lost events (its queue overflowed): fetch them from
	// the ring. When the ring lost them too, the clients must start again
	// from a snapshot.
	missed, ok := h.mon.EventsSince(last)
	if !ok {
		// The events before the first one published next may be missing:
		// the "prev" of that one says so (see serveEvents).
		after := ev.Seq - 1
		if len(missed) > 0 {
			after = min(after, missed[0].Seq-1)
		}
		h.resets.Add(1)
		h.mu.Lock()
		h.broadcastLocked(message{event: "reset", data: []byte(`{"reason":"the monitor dropped events"}`)}, after)
		h.mu.Unlock()
	}
	for _, m := range missed {
		if m.Seq > ev.Seq {
			break
		}
		h.publish(m)
	}
	h.publish(ev) // publish skips it when missed held it
}

// publish records ev for the sparklines and queues it for every client.
// Only the subscription goroutine calls it, so events stay in order.
func (h *hub) publish(ev smartbeat.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || ev.Seq <= h.last {
		return
	}
	h.last = ev.Seq
	point, ok := h.trackLocked(&ev)
	if len(h.clients) == 0 {
		return
	}
	u := &update{ev: ev, point: point, hasPoint: ok}
	cfg := &h.s.cfg
	for c := range h.clients {
		if !c.push(u, cfg.SparkPoints, cfg.ClientBuffer) {
			h.dropLocked(c)
		}
	}
}

func eventJSON(ev *smartbeat.Event) EventJSON {
	return EventJSON{Seq: ev.Seq, Kind: ev.Kind.String(), At: ev.At, Service: serviceJSON(&ev.Service)}
}

// trackLocked keeps the smartbeat intervals of the record of ev, and
// returns the one ev added, if any.
func (h *hub) trackLocked(ev *smartbeat.Event) (point float64, added bool) {
	v := &ev.Service
	sp := h.sparks[v.UID]
	if sp == nil {
		sp = &spark{}
		h.sparks[v.UID] = sp
	}
	switch ev.Kind {
	case smartbeat.EventBeat, smartbeat.EventResurrected:
		if !sp.lastRecv.IsZero() && v.LastReceived.After(sp.lastRecv) {
			point, added = ms(v.LastReceived.Sub(sp.lastRecv)), true
			sp.add(point, h.s.cfg.SparkPoints)
		}
		if v.LastReceived.After(sp.lastRecv) {
			sp.lastRecv = v.LastReceived
		}
	}
	if !v.Current && !sp.ended {
		sp.ended = true
		h.ended = append(h.ended, v.UID)
		for len(h.ended) > maxEndedSparks {
			old := h.ended[0]
			h.ended = h.ended[1:]
			if o := h.sparks[old]; o != nil && o.ended {
				delete(h.sparks, old)
			}
		}
	} else if v.Current && sp.ended {
		sp.ended = false // resurrected; its entry in ended is skipped on eviction
	}
	return point, added
}

// addSparks fills in the beat intervals of services.
func (h *hub) addSparks(services []ServiceJSON) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range services {
		if sp := h.sparks[services[i].UID]; sp != nil && len(sp.vals) > 0 {
			services[i].BeatIntervals = sp.values()
		}
	}
}

func (h *hub) broadcast(m message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.broadcastLocked(m, 0)
}

func (h *hub) broadcastLocked(m message, after uint64) {
	for c := range h.clients {
		if !c.pushMsg(m, after, h.s.cfg.ClientBuffer) {
			h.dropLocked(c)
		}
	}
}

// dropLocked cuts a client that is too slow; it reconnects with
// Last-Event-ID.
func (h *hub) dropLocked(c *client) {
	h.dropped.Add(1)
	delete(h.clients, c)
	c.drop()
}

// add registers a new client and returns the latest sequence number
// fanned out: the client gets every later event in its queue.
func (h *hub) add(raw bool) (*client, uint64, bool) {
	c := &client{gone: make(chan struct{}), wake: make(chan struct{}, 1), raw: raw, beats: map[uint64]int{}}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, 0, false
	}
	c.floor = h.last
	h.clients[c] = struct{}{}
	return c, h.last, true
}

// cut drops c because its handler's write timed out, counted like the
// clients the hub drops, unless the hub dropped it already.
func (h *hub) cut(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[c]; ok {
		h.dropLocked(c)
	}
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
	c.drop()
}

func (h *hub) numClients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

func (h *hub) httpStats() HTTPStatsJSON {
	return HTTPStatsJSON{StreamClients: h.numClients(), StreamDropped: h.dropped.Load(), StreamResets: h.resets.Load(), EventsSent: h.sent.Load()}
}

// dropStalled cuts the clients whose queue has waited longer than
// WriteTimeout (plus a flush interval) for their handler: one write is
// stuck (a writer without deadlines would stay stuck), or one interval's
// updates took that long to write. Either way the client cannot keep up
// even with merged updates.
func (h *hub) dropStalled(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		if d, ok := c.stalled(now, h.s.cfg.WriteTimeout+h.flushInterval()); ok {
			h.s.log.Debug("http: event stream too slow, dropped", "waited", d.Round(time.Millisecond))
			h.dropLocked(c)
		}
	}
}

// loop pushes "names" hints and "stats" while clients are connected.
func (h *hub) loop() {
	defer h.wg.Done()
	cfg := &h.s.cfg
	namesT := time.NewTicker(cfg.NamesInterval)
	defer namesT.Stop()
	statsT := time.NewTicker(cfg.StatsInterval)
	defer statsT.Stop()
	sweepT := time.NewTicker(min(max(cfg.WriteTimeout/4, 10*time.Millisecond), time.Second))
	defer sweepT.Stop()
	for {
		select {
		case <-h.stop:
			return
		case now := <-sweepT.C:
			h.dropStalled(now)
		case <-namesT.C:
			if cfg.Names != nil && h.numClients() > 0 {
				h.checkNames()
			}
		case <-statsT.C:
			if h.numClients() > 0 {
				if b, err := json.Marshal(h.s.stats()); err == nil {
					h.broadcast(message{event: "stats", data: b})
				}
			}
		}
	}
}

// checkNames sends a "names" hint when the registrations changed since
// the last check. A name server with NamesVersion (*namesvc.Server) says
// so in constant time; other Names are listed and hashed.
func (h *hub) checkNames() {
	var sum uint64
	var total int
	if v, ok := h.s.cfg.Names.(interface{ NamesVersion() uint64 }); ok {
		sum, total = v.NamesVersion(), h.s.cfg.Names.Stats().Registrations
	} else {
		names := h.s.cfg.Names.Names()
		sum, total = hashNames(names), len(names)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if sum == h.namesHash && h.namesVersion > 0 {
		return
	}
	h.namesHash = sum
	h.namesVersion++
	b, _ := json.Marshal(struct {
		Version uint64 `json:"version"`
		Total   int    `json:"total"`
	}{h.namesVersion, total})
	h.broadcastLocked(message{event: "names", data: b}, 0)
}

// hashNames digests what the Names page shows of every registration.
func hashNames(names []namesvc.Entry) uint64 {
	f := fnv.New64a()
	var b [8]byte
	u := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		f.Write(b[:])
	}
	str := func(s string) {
		u(uint64(len(s)))
		f.Write([]byte(s))
	}
	u(uint64(len(names)))
	for i := range names {
		e := &names[i]
		str(e.Name)
		str(e.Group)
		u(uint64(len(e.Addresses)))
		for _, a := range e.Addresses {
			str(a.String())
		}
		u(uint64(e.Linger))
		u(uint64(e.FT))
		u(uint64(len(e.Meta)))
		for _, m := range e.Meta {
			u(m.UserType)
			str(string(m.Data))
		}
		str(e.Registrant.String())
		u(uint64(e.Transport))
		u(uint64(e.Registered.UnixNano()))
		// Expires counts only while lingering: a datagram registrant's
		// TTL moves with every keep-alive.
		if e.Lingering {
			u(1)
			u(uint64(e.Expires.UnixNano()))
		}
		u(uint64(e.Subscribers))
	}
	return f.Sum64()
}
