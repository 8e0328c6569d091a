package smartbeat

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/listeners"
	"github.com/stk-go/stk/internal/ratelog"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// ErrMonitorClosed is returned by the Serve methods of a closed Monitor.
var ErrMonitorClosed = errors.New("smartbeat: monitor closed")

// DefaultMaxNotificationSize bounds a sequence received by the monitor
// unless MonitorConfig.Flow says otherwise: a smartbeat for 254 services
// (the most a C environment sends in one) is 12 KiB, and a notification
// with strings at their bounds (MaxServiceNameLen...) under 1 KiB. A peer
// sending more is cut before the monitor reads it (it was 1 MiB, which let
// 1 MB service names in).
const DefaultMaxNotificationSize = 64 << 10

// Defaults of the monitor's TCP listeners unless MonitorConfig.Flow says
// otherwise. A service sends a smartbeat every period (500 ms by default),
// so two minutes of silence is no service; a frame started and not finished
// within 10 s (a few bytes of a header, a slowloris) only holds a slot; one
// host may hold at most 1024 connections, as many as its records.
const (
	DefaultMonitorIdleTimeout   = 2 * time.Minute
	DefaultMonitorFrameTimeout  = 10 * time.Second
	DefaultMonitorMaxConnsPerIP = 1024
)

// Monitor tracks services as stkhttpd does (docs/protocol.md §9.1) and detects
// their failures; it is what stkd runs as its monitor.
//
// Records are keyed by the peer address of the connection or datagram plus
// the service id and type. A CREATE makes a current record (displacing one
// with the same identity into history); STATE updates the current record of
// the peer with that name; a smartbeat updates the records it names, and
// resurrects a timed-out one; DESTROY moves the record to history. History
// keeps the latest MaxHistory records, whatever brought them there.
//
// A record fails when it has been silent for longer than its activity
// timeout (the INST value, as C), or when its φ-accrual detector passes
// its threshold; the record's Verdict says which and why. Silence is
// measured on the monitor's receive clock, and time during which the
// monitor's own checks were stalled is not counted.
//
// Feed it with the Serve methods, or call Handle from flows of your own.
// All methods are safe for concurrent use.
type Monitor struct {
	cfg MonitorConfig
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	t        tracker
	stats    MonitorStats
	lastTick time.Time
	ring     eventRing
	eventSeq uint64
	subs     map[*subscriber]struct{}
	ls       *listeners.Set // what the Serve methods opened
	adv      [3]string      // advertised tcp, udp and multicast addresses
	closed   bool
	parse    notice // scratch for Handle, under mu
	// refuseLog rate-limits the refusal log lines, per reason (limits.go).
	refuseLog [NumRefuseReasons]ratelog.Limiter

	// stallWarned is when the stall warning was last logged, and
	// stallsUnwarned how many stalls that mattered happened since (the
	// warning is rate-limited, see stalled); under mu.
	stallWarned    time.Time
	stallsUnwarned int

	ns     *namesvc.Client
	ownNS  bool
	kick   chan struct{} // asks the registration loop to register now
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// badLog rate-limits the warnings about malformed notifications to
	// one a second: a peer sending garbage cannot flood the log.
	badLog ratelog.Limiter
}

func (c MonitorConfig) withDefaults() MonitorConfig {
	if c.Name == "" {
		c.Name = DefaultMonitorName
	}
	if c.Linger <= 0 {
		c.Linger = DefaultMonitorLinger
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.StallThreshold <= 0 {
		c.StallThreshold = DefaultStallThreshold
	}
	c.Phi = c.Phi.withDefaults()
	if c.DefaultActivityTimeout <= 0 {
		c.DefaultActivityTimeout = DefaultActivityTimeout
	}
	if c.MaxHistory <= 0 {
		c.MaxHistory = DefaultMaxHistory
	}
	if c.MaxStateHistory <= 0 {
		c.MaxStateHistory = DefaultMaxStateHistory
	}
	if c.MaxRecordsPerSource <= 0 {
		c.MaxRecordsPerSource = DefaultMaxRecordsPerSource
	}
	if c.MaxRecords <= 0 {
		c.MaxRecords = DefaultMaxRecords
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Flow = listeners.ServerDefaults(c.Flow, flow.Options{MaxSequenceSize: DefaultMaxNotificationSize,
		IdleTimeout: DefaultMonitorIdleTimeout, FrameTimeout: DefaultMonitorFrameTimeout, MaxConnsPerIP: DefaultMonitorMaxConnsPerIP})
	return c
}

// NewMonitor returns a monitor with no listeners yet; add them with
// ServeTCP, ServeUDP and ServeMulticast. When cfg names a name server, the
// monitor registers cfg.Name there once it has a listener, again after
// every new listener, every RefreshInterval, and (by the namesvc client)
// after every reconnect.
func NewMonitor(cfg MonitorConfig) (*Monitor, error) {
	cfg = cfg.withDefaults()
	m := &Monitor{
		cfg:  cfg,
		log:  cfg.Logger,
		now:  cfg.Now,
		t:    newTracker(),
		subs: map[*subscriber]struct{}{},
		kick: make(chan struct{}, 1),
	}
	m.ls = listeners.New(listeners.Config{What: "smartbeat: monitor", Kind: "monitor", Flow: cfg.Flow,
		Handler: m.Handle, Logger: m.log, Closed: ErrMonitorClosed})
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.stats.Started = m.now()
	switch {
	case cfg.NameServer != nil:
		m.ns = cfg.NameServer
	case cfg.NameServerAddr != "":
		c, err := namesvc.Dial(cfg.NameServerAddr, namesvc.ClientOptions{Logger: cfg.Logger, TLS: cfg.NameServerTLS})
		if err != nil {
			m.cancel()
			return nil, fmt.Errorf("smartbeat: monitor: %w", err)
		}
		m.ns, m.ownNS = c, true
	}
	if m.ns != nil {
		m.wg.Add(1)
		go m.registerLoop()
	}
	if cfg.CheckInterval > 0 && !cfg.manualChecks {
		m.wg.Add(1)
		go m.checkLoop()
	}
	return m, nil
}

// ServeTCP accepts STK TCP connections on addr ("ip:port"; port 0 picks one)
// and returns the bound address. Nothing is ever sent back on them.
func (m *Monitor) ServeTCP(addr string) (netip.AddrPort, error) {
	f, err := m.ls.TCP(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return m.addFlow(f, advTCP, "tcp:"+m.advertised(f.LocalAddr()))
}

// ServeUDP receives STK-UDP datagrams on addr ("ip:port") and returns the
// bound address.
func (m *Monitor) ServeUDP(addr string) (netip.AddrPort, error) {
	f, err := m.ls.UDP(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return m.addFlow(f, advUDP, "udp:"+m.advertised(f.LocalAddr()))
}

// ServeMulticast joins the group of groupPort ("group[:port]", port
// DefaultMonitorPort by default) and receives the STK-UDP datagrams sent
// to it; the socket is bound to 0.0.0.0:port. The interface and loopback
// come from MonitorConfig.Flow.
func (m *Monitor) ServeMulticast(groupPort string) (netip.AddrPort, error) {
	f, gp, err := m.ls.Multicast(groupPort, DefaultMonitorPort)
	if err != nil {
		return netip.AddrPort{}, err
	}
	// C advertises the group as "udp:GROUP:PORT" (0x1002).
	return m.addFlow(f, advMulticast, "udp:"+gp.String())
}

// advertised formats a listener address for the registration. Services
// cannot connect to a listener's 0.0.0.0 (they would reach their own
// host), so that one is registered at AdvertiseHost, or else at the
// address of this host's interface toward the name server, where the
// services that find the monitor come from (flow.AdvertiseIP).
func (m *Monitor) advertised(a netip.AddrPort) string {
	if !a.Addr().IsUnspecified() {
		return a.String()
	}
	adv := fmt.Sprintf("%s:%d", m.cfg.AdvertiseHost, a.Port())
	how := "AdvertiseHost"
	if m.cfg.AdvertiseHost == "" {
		var toward netip.Addr
		if m.ns != nil {
			toward = m.ns.ServerAddr().Addr()
		}
		adv = flow.AdvertiseAddr(a, toward).String()
		how = "the address of the interface toward the name server, else the host's primary address"
	}
	m.log.Info("monitor listener on every interface: registering an address other hosts can reach", "listen", a, "registered", adv, "from", how)
	return adv
}

// The kinds of listener the registration advertises (index of adv).
const (
	advTCP = iota
	advUDP
	advMulticast
	advNone // listed in the stats, not registered (TLS: see ServeTLS)
)

// addFlow records f's advertised address adv in the stats and, when it is
// the first of its kind, in the registration.
func (m *Monitor) addFlow(f flow.Flow, kind int, adv string) (netip.AddrPort, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		f.Close()
		return netip.AddrPort{}, ErrMonitorClosed
	}
	m.stats.Listeners = append(m.stats.Listeners, adv)
	if kind < len(m.adv) && m.adv[kind] == "" {
		m.adv[kind] = adv
	}
	m.mu.Unlock()
	m.log.Info("monitor listening", "addr", adv)
	if kind < len(m.adv) {
		m.registerSoon()
	}
	return f.LocalAddr(), nil
}

// Handle ingests one received sequence; from identifies the sender. It is
// the monitor's protocol core, the Handler of the flows the Serve methods
// open; s is not kept. Sequences of another type than MGMT, or another id
// than the four of this package, are counted and ignored.
func (m *Monitor) Handle(from flow.Peer, s *seq.Sequence) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats.Sequences++
	if s.Type != seq.TypeMgmt || !isServiceSequence(s) {
		m.stats.Ignored++
		if s.Type != seq.TypeRequest { // stkhttpd ignores REQUEST silently
			m.log.Debug("ignoring a sequence that is no service notification", "seq", s.String(), "peer", from.RemoteAddr())
		}
		return
	}
	n := &m.parse
	if err := parseNotice(s, n); err != nil {
		m.stats.Malformed++
		m.badLog.Warn(m.log, "ignoring a malformed notification", "err", err, "peer", from.RemoteAddr(), "proto", from.Protocol())
		return
	}
	if n.tooLong {
		m.refuseString(from.Protocol().String(), from.RemoteAddr(), &n.refused)
		return
	}
	if n.badBeats > 0 {
		m.stats.Malformed++
		m.badLog.Warn(m.log, "ignoring smartbeat elements of the wrong size", "count", n.badBeats, "peer", from.RemoteAddr())
	}
	m.ingest(from.Protocol().String(), from.RemoteAddr(), s, n, now)
}

// Check runs the timeout check now (stkhttpd also checks on every data
// page request). The periodic check runs without it.
func (m *Monitor) Check() {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.check(now, false)
}

// tick is one periodic check.
func (m *Monitor) tick() {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.check(now, true)
}

func (m *Monitor) checkLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.CheckInterval)
	defer t.Stop()
	m.tick()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			m.tick()
		}
	}
}

// emit records an event and hands it to the subscribers; under mu.
func (m *Monitor) emit(kind EventKind, r *record, now time.Time) {
	m.eventSeq++
	ev := Event{Seq: m.eventSeq, Kind: kind, At: now, Service: r.view(now, kind != EventBeat)}
	m.ring.add(ev, m.cfg.EventBuffer)
	for s := range m.subs {
		select {
		case s.ch <- ev:
		default:
			m.stats.EventsDropped++
		}
	}
}

// Services returns the current records, oldest first.
func (m *Monitor) Services() []ServiceView {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.currentViews(now)
}

func (m *Monitor) currentViews(now time.Time) []ServiceView {
	rs := make([]*record, 0, len(m.t.current))
	for _, r := range m.t.current {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b *record) int { return cmp.Compare(a.uid, b.uid) })
	out := make([]ServiceView, len(rs))
	for i, r := range rs {
		out[i] = r.view(now, true)
	}
	return out
}

// History returns the history records (destroyed, displaced, timed out),
// oldest first (the C web monitor lists them newest first).
func (m *Monitor) History() []ServiceView {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.historyViews(now)
}

func (m *Monitor) historyViews(now time.Time) []ServiceView {
	out := make([]ServiceView, len(m.t.history))
	for i, r := range m.t.history {
		out[i] = r.view(now, true)
	}
	return out
}

// Groups returns the service groups named by records (GroupName), sorted
// by name.
func (m *Monitor) Groups() []GroupView {
	now := m.now()
	m.mu.Lock()
	cur := m.currentViews(now)
	groups := map[string]*GroupView{}
	get := func(name string) *GroupView {
		g := groups[name]
		if g == nil {
			g = &GroupView{Name: name}
			groups[name] = g
		}
		return g
	}
	for _, r := range m.t.history {
		if r.group != "" {
			get(r.group).History++
		}
	}
	m.mu.Unlock()
	for _, v := range cur {
		if v.GroupName != "" {
			g := get(v.GroupName)
			g.Current = append(g.Current, v)
		}
	}
	out := make([]GroupView, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b GroupView) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Stats returns the monitor's counters.
func (m *Monitor) Stats() MonitorStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.statsLocked()
}

func (m *Monitor) statsLocked() MonitorStats {
	st := m.stats
	st.Current, st.History = len(m.t.current), len(m.t.history)
	st.LastEvent = m.eventSeq
	st.Listeners = slices.Clone(st.Listeners)
	return st
}

// Snapshot returns the lists and counters at one instant, with the sequence
// number of the latest event they include.
func (m *Monitor) Snapshot() Snapshot {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	return Snapshot{Seq: m.eventSeq, Services: m.currentViews(now), History: m.historyViews(now), Stats: m.statsLocked()}
}

// Subscribe calls fn for every later event, in order, on a goroutine of
// its own (one per subscription), so a slow fn never delays the monitor. Up
// to MonitorConfig.EventBuffer events wait for fn; beyond that events are
// dropped for this subscriber, which sees a gap in Event.Seq and can fetch
// what it missed with EventsSince. cancel stops the deliveries (an event
// being delivered completes); it may be called from fn and more than once.
// Close cancels every subscription.
func (m *Monitor) Subscribe(fn func(Event)) (cancel func()) {
	s := &subscriber{ch: make(chan Event, m.cfg.EventBuffer)}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return func() {}
	}
	m.subs[s] = struct{}{}
	m.mu.Unlock()
	go s.run(fn)
	return func() {
		s.stopped.Store(true)
		m.mu.Lock()
		defer m.mu.Unlock()
		m.unsubscribe(s)
	}
}

func (m *Monitor) unsubscribe(s *subscriber) {
	if !s.closed {
		s.closed = true
		delete(m.subs, s)
		close(s.ch)
	}
}

// EventsSince returns the events after sequence number seq, oldest first
// (EventsSince(0) returns all the ring holds). ok is false when the ring no
// longer holds all of them, or seq is from the future (another run of the
// monitor): the caller must start again from a Snapshot; events then holds
// what the ring has.
func (m *Monitor) EventsSince(seq uint64) (events []Event, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ring.since(seq)
}

// Close stops the listeners, the checks and the subscriptions, and
// withdraws the name registration: a client passed in MonitorConfig stops
// sending it, one the monitor dialled is closed (the server then lets the
// name linger).
func (m *Monitor) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for s := range m.subs {
		s.stopped.Store(true)
		m.unsubscribe(s)
	}
	m.mu.Unlock()
	m.cancel()
	errs := []error{m.ls.Close()}
	m.wg.Wait()
	if m.ns != nil {
		if m.ownNS {
			errs = append(errs, m.ns.Close())
		} else {
			m.ns.Unregister(m.cfg.Name, "")
		}
	}
	return errors.Join(errs...)
}
