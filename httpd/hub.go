package httpd

import (
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
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

// client is one open event stream.
type client struct {
	ch   chan message
	gone chan struct{} // closed when the client is dropped or the hub closes
	once sync.Once
}

func (c *client) drop() { c.once.Do(func() { close(c.gone) }) }

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
// clients. The monitor calls onEvent on a goroutine of its own; clients
// get messages through bounded channels and are dropped when theirs is
// full, so nothing here ever waits for a client.
type hub struct {
	s      *Server
	mon    Monitor
	cancel func() // the monitor subscription

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
	if h.mon != nil {
		h.last = h.mon.Stats().LastEvent
		h.cancel = h.mon.Subscribe(h.onEvent)
	}
	h.wg.Add(1)
	go h.loop()
	return h
}

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
		h.resets.Add(1)
		h.broadcast(message{event: "reset", data: []byte(`{"reason":"the monitor dropped events"}`)})
	}
	for _, m := range missed {
		if m.Seq > ev.Seq {
			break
		}
		h.publish(m)
	}
	h.publish(ev) // publish skips it when missed held it
}

// publish records ev for the sparklines and sends it to every client.
// Only the subscription goroutine calls it, so events stay in order.
func (h *hub) publish(ev smartbeat.Event) {
	h.mu.Lock()
	if h.closed || ev.Seq <= h.last {
		h.mu.Unlock()
		return
	}
	h.last = ev.Seq
	h.trackLocked(&ev)
	n := len(h.clients)
	h.mu.Unlock()
	if n == 0 {
		return // nobody to encode it for
	}
	data, err := json.Marshal(eventJSON(&ev))
	if err != nil {
		h.s.log.Warn("http: encoding an event", "seq", ev.Seq, "err", err)
		data = []byte(`{}`)
	}
	// A client that registered meanwhile has ev.Seq as its start and
	// skips it.
	h.broadcast(message{id: ev.Seq, event: ev.Kind.String(), data: data})
}

func eventJSON(ev *smartbeat.Event) EventJSON {
	return EventJSON{Seq: ev.Seq, Kind: ev.Kind.String(), At: ev.At, Service: serviceJSON(&ev.Service)}
}

// trackLocked keeps the smartbeat intervals of the record of ev.
func (h *hub) trackLocked(ev *smartbeat.Event) {
	v := &ev.Service
	sp := h.sparks[v.UID]
	if sp == nil {
		sp = &spark{}
		h.sparks[v.UID] = sp
	}
	switch ev.Kind {
	case smartbeat.EventBeat, smartbeat.EventResurrected:
		if !sp.lastRecv.IsZero() && v.LastReceived.After(sp.lastRecv) {
			sp.add(ms(v.LastReceived.Sub(sp.lastRecv)), h.s.cfg.SparkPoints)
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
	h.broadcastLocked(m)
}

func (h *hub) broadcastLocked(m message) {
	for c := range h.clients {
		select {
		case c.ch <- m:
		default: // too slow: drop it; it reconnects with Last-Event-ID
			h.dropped.Add(1)
			delete(h.clients, c)
			c.drop()
		}
	}
}

// add registers a new client and returns the latest sequence number
// fanned out: the client gets every later event on its channel.
func (h *hub) add() (*client, uint64, bool) {
	c := &client{ch: make(chan message, h.s.cfg.ClientBuffer), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, 0, false
	}
	h.clients[c] = struct{}{}
	return c, h.last, true
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

// loop pushes "names" hints and "stats" while clients are connected.
func (h *hub) loop() {
	defer h.wg.Done()
	cfg := &h.s.cfg
	namesT := time.NewTicker(cfg.NamesInterval)
	defer namesT.Stop()
	statsT := time.NewTicker(cfg.StatsInterval)
	defer statsT.Stop()
	for {
		select {
		case <-h.stop:
			return
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
// the last check.
func (h *hub) checkNames() {
	names := h.s.cfg.Names.Names()
	sum := hashNames(names)
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
	}{h.namesVersion, len(names)})
	h.broadcastLocked(message{event: "names", data: b})
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
