package stk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// datagramReceiveBuffer is the socket receive buffer of UDP and multicast
// subscriptions: with the system's default (about 208 KiB) a publisher's
// burst overflows it (examples/subscribe measured 9 % lost of a million).
const datagramReceiveBuffer = 4 << 20

// Subscription receives what the publishers of a name send: one flow per
// registered address, opened when the name server tells of it (now or
// later) and closed once the address is no longer registered.
type Subscription struct {
	env     *Env // nil for SubscribeAddress
	log     *slog.Logger
	name    string
	group   string
	max     int
	prune   time.Duration
	fo      flow.Options
	handler func(*seq.Sequence)
	from    func(namesvc.Endpoint, *seq.Sequence) // SubscribeFrom's; nil otherwise
	ch      chan *seq.Sequence                    // SubscribeChan's; nil for Subscribe

	accept     []netip.Prefix // nil: any
	protocols  []string       // nil: any
	mbind      netip.Addr     // multicast bind IP
	onEndpoint func(EndpointEvent)
	filter     func(namesvc.Endpoint) bool // AcceptEndpoint

	received, dropped atomic.Uint64

	// hmu makes handler calls one at a time, and stopped (set under it by
	// Close) guarantees none after Close.
	hmu     sync.Mutex
	stopped bool

	mu     sync.Mutex
	closed bool
	eps    map[string]*endpoint
	warned bool // about addresses beyond max
	sub    *namesvc.Subscription
	goneSt flow.Stats // counters of the flows the pruner closed

	stop chan struct{}
	wake chan struct{}   // asks the pruner to look now (an address was unregistered)
	done chan struct{}   // the pruner returned
	ctx  context.Context // ends at Close: the pruner's lookups
	end  context.CancelFunc
	once sync.Once
}

// endpoint is one publisher address and the flow receiving from it.
type endpoint struct {
	ep  namesvc.Endpoint
	f   flow.Flow
	tcp *flow.TCPClient // nil for a datagram flow
	// ready is closed once EndpointOpened was told: the flow's connection
	// events wait for it, so that OnEndpoint hears of an address in order.
	ready chan struct{}

	// Under Subscription.mu.
	up        bool      // a TCP connection is up
	since     time.Time // when up last changed, or the flow was opened
	announced time.Time // when the name server last told of the address
	// unregistered: the name server said a registration of the address
	// went (removal notice), and none told of it since.
	unregistered bool
}

// Subscribe receives the sequences published under name: it subscribes to
// the name with the name server and connects to every address registered
// for it, now and later (a second publisher, a publisher restarted on
// another port), at most opts.MaxEndpoints at once. It returns without
// waiting for publishers: none may exist yet.
//
// handler is called for each sequence, one call at a time for the whole
// subscription, on the goroutine of the flow it came from: s is only valid
// during the call (s.Clone() what you keep), and a slow handler delays every
// publisher's data until the publishers' slow-consumer policy disconnects
// this subscriber (see the package doc). handler must not call Close.
// Sequences from one publisher arrive in order; from several, interleaved.
func (e *Env) Subscribe(name string, handler func(s *seq.Sequence), opts SubscribeOptions) (*Subscription, error) {
	if handler == nil {
		return nil, fmt.Errorf("stk: subscribe %q: handler is nil", name)
	}
	return e.subscribe(name, handler, nil, nil, opts)
}

// SubscribeFrom is Subscribe with a handler told which publisher address
// each sequence came from: the registered address (Protocol "tcp" when the
// registration said none), as EndpointEvent and Endpoints name it, not a
// datagram's source. For a program that keeps per-publisher state or tags
// what it receives with its origin.
func (e *Env) SubscribeFrom(name string, handler func(from namesvc.Endpoint, s *seq.Sequence), opts SubscribeOptions) (*Subscription, error) {
	if handler == nil {
		return nil, fmt.Errorf("stk: subscribe %q: handler is nil", name)
	}
	return e.subscribe(name, nil, handler, nil, opts)
}

// SubscribeChan is Subscribe delivering clones of the sequences on a
// channel of capacity buffer (C). When the channel is full, a sequence is
// dropped and counted (Dropped) rather than blocking: a blocked flow would
// stop every publisher's data for this subscription, and the publishers
// would soon disconnect it anyway. Size buffer for your bursts; the
// channel is closed by Close.
func (e *Env) SubscribeChan(name string, buffer int, opts SubscribeOptions) (*Subscription, error) {
	if buffer < 1 {
		return nil, fmt.Errorf("stk: subscribe %q: buffer %d: want at least 1", name, buffer)
	}
	return e.subscribe(name, nil, nil, make(chan *seq.Sequence, buffer), opts)
}

func (e *Env) subscribe(name string, handler func(*seq.Sequence), from func(namesvc.Endpoint, *seq.Sequence), ch chan *seq.Sequence, opts SubscribeOptions) (*Subscription, error) {
	if name == "" || len(name) > namesvc.MaxNameLen {
		return nil, fmt.Errorf("stk: subscribe %q: a name has 1 to %d bytes", name, namesvc.MaxNameLen)
	}
	if opts.Logger == nil {
		opts.Logger = e.log
	}
	s := newSubscription(name, handler, ch, e.flowOptions(name), opts)
	s.from = from
	s.env = e
	s.group = opts.Group
	if s.group == "" {
		s.group = e.opts.Group
	}
	sub, err := e.client.Subscribe(name, namesvc.SubscribeOptions{Group: s.group, OnRemoved: s.removed}, s.connect)
	if err != nil {
		return nil, fmt.Errorf("stk: subscribe %q: %w", name, err)
	}
	s.mu.Lock()
	s.sub = sub
	s.mu.Unlock()
	go s.pruner()
	if !e.adopt(s) {
		s.Close()
		return nil, fmt.Errorf("stk: subscribe %q: %w", name, ErrClosed)
	}
	return s, nil
}

// newSubscription makes a subscription with its options applied, not yet
// receiving from anything.
func newSubscription(name string, handler func(*seq.Sequence), ch chan *seq.Sequence, fo flow.Options, opts SubscribeOptions) *Subscription {
	s := &Subscription{
		log: opts.Logger, name: name, max: opts.MaxEndpoints, prune: opts.PruneInterval,
		handler: handler, ch: ch,
		accept: opts.Accept, protocols: opts.Protocols, mbind: opts.MulticastBind, onEndpoint: opts.OnEndpoint,
		filter: opts.AcceptEndpoint,
		eps:    map[string]*endpoint{},
		stop:   make(chan struct{}), wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	s.ctx, s.end = context.WithCancel(context.Background())
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.max <= 0 {
		s.max = DefaultMaxEndpoints
	}
	if s.prune <= 0 {
		s.prune = DefaultPruneInterval
	}
	if !s.mbind.IsValid() {
		s.mbind = netip.IPv4Unspecified()
	}
	s.fo = fo
	s.fo.Logger = s.log
	if opts.MaxSequenceSize > 0 {
		s.fo.MaxSequenceSize = opts.MaxSequenceSize
	}
	return s
}

// SubscribeAddress receives what the publisher at address sends, without a
// name server: "[tcp:]ip:port" connects there (and reconnects), "udp:ip:port"
// and "multicast:group:port" listen there. It is Subscribe for a publisher
// known by address (one started with Listen, or STK's
// C programs given -i); the options about names (Group, MaxEndpoints,
// PruneInterval) do not apply, and opts.Logger nil means slog.Default().
// handler runs as for Subscribe.
func SubscribeAddress(address string, handler func(s *seq.Sequence), opts SubscribeOptions) (*Subscription, error) {
	if handler == nil {
		return nil, fmt.Errorf("stk: subscribe to %q: handler is nil", address)
	}
	a, err := flow.ParseAddress(address)
	if err == nil && (a.Lookup != "" || a.TLS || a.Port == 0) {
		err = errors.New("want [tcp|udp|rawudp|multicast:]ip:port")
	}
	var ap netip.AddrPort
	if err == nil {
		ap, err = a.WithDefaults("127.0.0.1", 0).AddrPort()
	}
	if err != nil {
		return nil, fmt.Errorf("stk: subscribe to %q: %w", address, err)
	}
	s := newSubscription(address, handler, nil, flow.Options{Name: address}, opts)
	close(s.done) // no pruner: there is no name to look up
	ep := namesvc.Endpoint{Protocol: a.Protocol.String(), Addr: ap}
	e, err := s.open(ep)
	if err != nil {
		return nil, fmt.Errorf("stk: subscribe to %q: %w", address, err)
	}
	close(e.ready) // no EndpointOpened to wait for
	s.eps[ep.String()] = e
	return s, nil
}

// deliver is the Handler of e's flow.
func (s *Subscription) deliver(e *endpoint, p flow.Peer, q *seq.Sequence) {
	// A TCP peer is an address connect accepted; a datagram's source can be
	// anyone who reaches the port.
	if s.accept != nil && p.Protocol() != flow.TCP && !s.accepts(p.RemoteAddr().Addr()) {
		src := namesvc.Endpoint{Protocol: p.Protocol().String(), Addr: p.RemoteAddr()}
		s.event(EndpointEvent{Kind: DatagramRefused, Name: s.name, Endpoint: src}, slog.LevelDebug)
		return
	}
	s.hmu.Lock()
	defer s.hmu.Unlock()
	if s.stopped {
		return
	}
	if s.ch == nil {
		s.received.Add(1)
		if s.from != nil {
			s.from(e.ep, q)
		} else {
			s.handler(q)
		}
		return
	}
	select {
	case s.ch <- q.Clone():
		s.received.Add(1)
	default:
		s.dropped.Add(1)
	}
}

// connect opens a flow to every new address of a registration. It is the
// name-service callback: it must not block (flow.DialTCP returns at once).
func (s *Subscription) connect(info namesvc.Info) {
	var (
		events []EndpointEvent
		opened []*endpoint
	)
	now := time.Now()
	s.mu.Lock()
	for _, ep := range info.Addresses {
		if ep.Protocol == "" {
			ep.Protocol = "tcp"
		}
		key := ep.String()
		if s.closed {
			break
		}
		ev := EndpointEvent{Name: s.name, Endpoint: ep}
		if e := s.eps[key]; e != nil { // a TCP flow reconnects by itself
			e.announced, e.unregistered = now, false
			ev.Kind = EndpointAnnounced
			events = append(events, ev)
			continue
		}
		_, perr := flow.ParseProtocol(ep.Protocol)
		switch {
		case perr != nil:
			ev.Kind, ev.Err = EndpointSkipped, perr
		case s.protocols != nil && !slices.Contains(s.protocols, ep.Protocol):
			ev.Kind, ev.Err = EndpointSkipped, fmt.Errorf("protocol %s: receiving over %v only", ep.Protocol, s.protocols)
		case s.filter != nil && !s.filter(ep):
			ev.Kind = EndpointFiltered
		case !s.accepts(ep.Addr.Addr()):
			ev.Kind = EndpointRefused
		case len(s.eps) >= s.max:
			ev.Kind = EndpointTooMany
		default:
			if e, err := s.open(ep); err != nil {
				ev.Kind, ev.Err = EndpointFailed, err
			} else {
				s.eps[key] = e
				opened = append(opened, e)
				ev.Kind = EndpointOpened
			}
		}
		events = append(events, ev)
	}
	s.mu.Unlock()
	defer func() {
		for _, e := range opened {
			close(e.ready)
		}
	}()
	for _, ev := range events {
		level := slog.LevelWarn
		switch ev.Kind {
		case EndpointOpened, EndpointAnnounced, EndpointFiltered:
			level = slog.LevelDebug
		case EndpointFailed:
			level = slog.LevelError
		case EndpointTooMany:
			s.mu.Lock()
			if s.warned {
				level = slog.LevelDebug
			}
			s.warned = true
			s.mu.Unlock()
		}
		s.event(ev, level)
	}
}

// event tells OnEndpoint of ev, or logs it at level.
func (s *Subscription) event(ev EndpointEvent, level slog.Level) {
	if s.onEndpoint != nil {
		s.onEndpoint(ev)
		level = slog.LevelDebug
	}
	if !s.log.Enabled(context.Background(), level) {
		return
	}
	args := []any{"name", s.name, "address", ev.Endpoint.String()}
	if ev.Err != nil {
		args = append(args, "err", ev.Err)
	}
	if ev.Kind == EndpointTooMany {
		args = append(args, "max_endpoints", s.max)
	}
	s.log.Log(context.Background(), level, "stk: "+ev.Kind.String(), args...)
}

// accepts reports whether ip is inside Accept (any ip without it).
func (s *Subscription) accepts(ip netip.Addr) bool {
	if s.accept == nil {
		return true
	}
	ip = ip.Unmap()
	for _, n := range s.accept {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// open starts the flow of one address: a TCP connection, or a UDP socket
// bound to the address (multicast: to its port, joining its group).
func (s *Subscription) open(ep namesvc.Endpoint) (*endpoint, error) {
	p, err := flow.ParseProtocol(ep.Protocol)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	e := &endpoint{ep: ep, ready: make(chan struct{}), since: now, announced: now}
	o := s.fo
	o.Handler = func(p flow.Peer, q *seq.Sequence) { s.deliver(e, p, q) }
	switch p {
	case flow.TCP:
		o.OnConnect = func(flow.Peer) { s.connected(e, true, nil) }
		o.OnDisconnect = func(_ flow.Peer, err error) { s.connected(e, false, err) }
		e.tcp, err = flow.DialTCP(ep.Addr.String(), o)
		e.f = e.tcp
	case flow.UDP, flow.RawUDP:
		o.ReceiveBuffer = max(o.ReceiveBuffer, datagramReceiveBuffer)
		e.f, err = flow.NewUDP(flow.UDPConfig{Bind: ep.Addr.String(), Raw: p == flow.RawUDP}, o)
	case flow.Multicast:
		o.ReceiveBuffer = max(o.ReceiveBuffer, datagramReceiveBuffer)
		bind := netip.AddrPortFrom(s.mbind, ep.Addr.Port())
		e.f, err = flow.NewUDP(flow.UDPConfig{Bind: bind.String(), Group: ep.Addr.Addr().String()}, o)
	default:
		err = fmt.Errorf("protocol %v: not received by this package", p)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// removed is the name-service callback for a registration no longer
// answered (stkd's removal notices; a C name server sends none): its
// addresses are looked up at once by the pruner, which closes the flows of
// those no longer registered whose connection is down (a datagram flow: at
// once). A connection still up stays until it goes down: its publisher may
// still be sending, only no longer registered (its cluster node went, say).
func (s *Subscription) removed(info namesvc.Info) {
	var events []EndpointEvent
	s.mu.Lock()
	for _, ep := range info.Addresses {
		if ep.Protocol == "" {
			ep.Protocol = "tcp"
		}
		if e := s.eps[ep.String()]; e != nil && !s.closed {
			e.unregistered = true
			events = append(events, EndpointEvent{Kind: EndpointUnregistered, Name: s.name, Endpoint: e.ep})
		}
	}
	s.mu.Unlock()
	for _, ev := range events {
		s.event(ev, slog.LevelDebug)
	}
	if len(events) > 0 {
		s.wakePruner()
	}
}

func (s *Subscription) wakePruner() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// connected records that e's TCP connection came up or went down, and
// tells OnEndpoint (flow callback; not while Close closes the flows).
func (s *Subscription) connected(e *endpoint, up bool, err error) {
	s.mu.Lock()
	e.up, e.since = up, time.Now()
	unregistered := e.unregistered
	s.mu.Unlock()
	if !up && unregistered {
		s.wakePruner()
	}
	select {
	case <-e.ready:
	case <-s.stop:
		return
	}
	select {
	case <-s.stop:
		return
	default:
	}
	ev := EndpointEvent{Kind: EndpointConnected, Name: s.name, Endpoint: e.ep}
	if !up {
		ev.Kind, ev.Err = EndpointDisconnected, err
	}
	s.event(ev, slog.LevelDebug)
}

// pruner closes the flows of addresses no longer registered: STK tells
// subscribers of new registrations only, so a publisher that went (or
// restarted on another port) would leave a connection retrying for ever
// and a slot of MaxEndpoints taken. An address whose connection has been
// down (a datagram flow: open) for the prune interval, and which was not
// announced meanwhile, is looked up; one still registered is looked up
// again after another interval. An address stkd said was unregistered
// (removed) is looked up as soon as its connection is down.
func (s *Subscription) pruner() {
	defer close(s.done)
	t := time.NewTicker(min(max(s.prune/4, 10*time.Millisecond), 15*time.Second))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.wake:
		}
		var candidates []string
		now := time.Now()
		s.mu.Lock()
		for k, e := range s.eps {
			if !e.up && (e.unregistered || now.Sub(e.since) >= s.prune && now.Sub(e.announced) >= s.prune) {
				candidates = append(candidates, k)
			}
		}
		s.mu.Unlock()
		if len(candidates) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, lookupWait)
		infos, err := s.env.client.LookupAll(ctx, s.name, namesvc.LookupOptions{Group: s.group})
		cancel()
		if err != nil {
			continue // the name server is away: keep everything
		}
		registered := map[string]bool{}
		for _, info := range infos {
			for _, ep := range info.Addresses {
				if ep.Protocol == "" {
					ep.Protocol = "tcp"
				}
				registered[ep.String()] = true
			}
		}
		var gone []*endpoint
		s.mu.Lock()
		for _, k := range candidates {
			e := s.eps[k]
			if e != nil && registered[k] {
				e.announced, e.unregistered = now, false
			}
			if e == nil || registered[k] || e.up {
				continue
			}
			delete(s.eps, k)
			gone = append(gone, e)
		}
		if len(gone) > 0 {
			s.warned = false
		}
		s.mu.Unlock()
		for _, e := range gone {
			e.f.Close()
			s.mu.Lock()
			addStats(&s.goneSt, e.f.Stats())
			s.mu.Unlock()
			s.event(EndpointEvent{Kind: EndpointClosed, Name: s.name, Endpoint: e.ep}, slog.LevelInfo)
		}
	}
}

// Name returns the subscribed name.
func (s *Subscription) Name() string { return s.name }

// C returns the channel of a SubscribeChan subscription (nil for
// Subscribe's). It is closed by Close.
func (s *Subscription) C() <-chan *seq.Sequence { return s.ch }

// Received returns the number of sequences handed to the handler or the
// channel.
func (s *Subscription) Received() uint64 { return s.received.Load() }

// Dropped returns the number of sequences SubscribeChan dropped because
// the channel was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Endpoints returns the publisher addresses received from now
// ("tcp:ip:port"...), sorted.
func (s *Subscription) Endpoints() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.eps))
	for k := range s.eps {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Connected returns how many of the TCP connections to publishers are up.
func (s *Subscription) Connected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.eps {
		if e.tcp != nil && e.tcp.Connected() {
			n++
		}
	}
	return n
}

// WaitConnected waits until at least n publishers are connected (TCP), or
// ctx ends.
func (s *Subscription) WaitConnected(ctx context.Context, n int) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		have := s.Connected()
		if have >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stk: subscribe %q: %d of %d publishers connected: %w", s.name, have, n, ctx.Err())
		case <-s.stop:
			return fmt.Errorf("stk: subscribe %q: %w", s.name, ErrClosed)
		case <-t.C:
		}
	}
}

// Stats returns the sum of the counters of the subscription's flows, those
// of addresses no longer registered included.
func (s *Subscription) Stats() flow.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := s.goneSt
	sum.Connections = 0
	for _, e := range s.eps {
		addStats(&sum, e.f.Stats())
	}
	return sum
}

// addStats adds the counters of b to a.
func addStats(a *flow.Stats, b flow.Stats) { a.Add(b) }

// Close ends the subscription: the handler is not called again once Close
// returns (Close waits for a call in progress), the flows close, and C's
// channel is closed. It must not be called from the handler.
func (s *Subscription) Close() error {
	s.once.Do(func() {
		if s.env != nil {
			s.env.forget(s)
		}
		s.mu.Lock()
		s.closed = true
		eps := s.eps
		s.eps = map[string]*endpoint{}
		sub := s.sub
		s.mu.Unlock()
		if sub != nil {
			sub.Unsubscribe()
		}
		close(s.stop)
		s.end()
		<-s.done
		s.hmu.Lock()
		s.stopped = true
		if s.ch != nil {
			close(s.ch)
		}
		s.hmu.Unlock()
		var errs []error
		for _, e := range eps {
			errs = append(errs, e.f.Close())
		}
		if err := errors.Join(errs...); err != nil {
			s.log.Debug("stk: closing a subscription's flows", "name", s.name, "err", err)
		}
	})
	return nil
}

// EndpointEventKind says what happened to a publisher address.
type EndpointEventKind int

// What SubscribeOptions.OnEndpoint is told.
const (
	// EndpointOpened: receiving from the address now (a TCP connection is
	// being made; it reconnects by itself).
	EndpointOpened EndpointEventKind = iota
	// EndpointSkipped: its protocol is unknown, or not in
	// SubscribeOptions.Protocols (Err says which).
	EndpointSkipped
	// EndpointRefused: it is outside SubscribeOptions.Accept.
	EndpointRefused
	// EndpointTooMany: the subscription receives from MaxEndpoints
	// addresses already; this one is ignored (until it is registered
	// again once some have gone).
	EndpointTooMany
	// EndpointFailed: it cannot be received from (Err says why).
	EndpointFailed
	// EndpointClosed: it is no longer registered; its flow is closed.
	EndpointClosed
	// DatagramRefused: a UDP or multicast datagram came from a source
	// outside SubscribeOptions.Accept (Endpoint is the source) and was
	// dropped. Told for every such datagram.
	DatagramRefused
	// EndpointConnected: the TCP connection to the address is up (after
	// EndpointOpened, and again after each reconnection).
	EndpointConnected
	// EndpointDisconnected: the TCP connection to the address went down
	// (Err says why; the flow reconnects by itself).
	EndpointDisconnected
	// EndpointAnnounced: the name server told of an address received from
	// already (its publisher registered again, or the subscription was
	// renewed after a reconnection to the name server).
	EndpointAnnounced
	// EndpointFiltered: SubscribeOptions.AcceptEndpoint said no; it is
	// not received from (until it is registered again and accepted).
	EndpointFiltered
	// EndpointUnregistered: stkd told that a registration of the address
	// went (a C name server never tells). Its flow is closed once it is
	// down (at once for a datagram flow) unless the name is still, or
	// again, registered at that address; EndpointClosed follows then.
	EndpointUnregistered
)

var endpointEventNames = [...]string{
	EndpointOpened:  "receiving from a publisher",
	EndpointSkipped: "skipping a publisher address of another protocol",
	EndpointRefused: "ignoring a publisher address outside the accepted networks",
	EndpointTooMany: "subscription at its MaxEndpoints; ignoring more addresses until some go",
	EndpointFailed:  "cannot receive from a publisher",
	EndpointClosed:  "address no longer registered; closing its flow",
	DatagramRefused: "dropping a datagram from outside the accepted networks",

	EndpointConnected:    "connected to a publisher",
	EndpointDisconnected: "disconnected from a publisher",
	EndpointAnnounced:    "publisher address registered again",
	EndpointFiltered:     "publisher address not accepted by AcceptEndpoint",
	EndpointUnregistered: "publisher address no longer registered",
}

func (k EndpointEventKind) String() string {
	if k >= 0 && int(k) < len(endpointEventNames) {
		return endpointEventNames[k]
	}
	return fmt.Sprintf("EndpointEventKind(%d)", int(k))
}

// EndpointEvent is what happened to one publisher address of a
// subscription (SubscribeOptions.OnEndpoint).
type EndpointEvent struct {
	Kind EndpointEventKind
	// Name is the subscribed name (the address for SubscribeAddress).
	Name string
	// Endpoint is the registered address ("tcp" when the registration said
	// no protocol); for DatagramRefused, the datagram's source.
	Endpoint namesvc.Endpoint
	// Err is why, for EndpointSkipped and EndpointFailed (and
	// EndpointDisconnected: nil when Close ended the connection).
	Err error
}
