package stk

import (
	"context"
	"errors"
	"fmt"
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
	env     *Env
	name    string
	group   string
	max     int
	prune   time.Duration
	fo      flow.Options
	handler func(*seq.Sequence)
	ch      chan *seq.Sequence // SubscribeChan's; nil for Subscribe

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

	stop chan struct{}
	done chan struct{} // the pruner returned
	once sync.Once
}

// endpoint is one publisher address and the flow receiving from it.
type endpoint struct {
	ep      namesvc.Endpoint
	f       flow.Flow
	tcp     *flow.TCPClient // nil for a datagram flow
	created time.Time
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
	return e.subscribe(name, handler, nil, opts)
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
	return e.subscribe(name, nil, make(chan *seq.Sequence, buffer), opts)
}

func (e *Env) subscribe(name string, handler func(*seq.Sequence), ch chan *seq.Sequence, opts SubscribeOptions) (*Subscription, error) {
	if name == "" || len(name) > namesvc.MaxNameLen {
		return nil, fmt.Errorf("stk: subscribe %q: a name has 1 to %d bytes", name, namesvc.MaxNameLen)
	}
	s := &Subscription{
		env: e, name: name, group: opts.Group, max: opts.MaxEndpoints, prune: opts.PruneInterval,
		handler: handler, ch: ch,
		eps:  map[string]*endpoint{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if s.group == "" {
		s.group = e.opts.Group
	}
	if s.max <= 0 {
		s.max = DefaultMaxEndpoints
	}
	if s.prune <= 0 {
		s.prune = DefaultPruneInterval
	}
	s.fo = e.flowOptions(name)
	if opts.MaxSequenceSize > 0 {
		s.fo.MaxSequenceSize = opts.MaxSequenceSize
	}
	s.fo.Handler = s.deliver
	sub, err := e.client.Subscribe(name, namesvc.SubscribeOptions{Group: s.group}, s.connect)
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

// deliver is every flow's Handler.
func (s *Subscription) deliver(_ flow.Peer, q *seq.Sequence) {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	if s.stopped {
		return
	}
	if s.ch == nil {
		s.received.Add(1)
		s.handler(q)
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
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ep := range info.Addresses {
		if ep.Protocol == "" {
			ep.Protocol = "tcp"
		}
		key := ep.String()
		if s.closed || s.eps[key] != nil {
			continue // already there; a TCP flow reconnects by itself
		}
		if len(s.eps) >= s.max {
			if !s.warned {
				s.warned = true
				s.env.log.Warn("stk: subscription at its MaxEndpoints; ignoring more addresses until some go",
					"name", s.name, "address", key, "max_endpoints", s.max)
			}
			continue
		}
		e, err := s.open(ep)
		if err != nil {
			s.env.log.Error("stk: cannot receive from a publisher", "name", s.name, "address", key, "err", err)
			continue
		}
		s.eps[key] = e
		s.env.log.Debug("stk: receiving", "name", s.name, "address", key)
	}
}

// open starts the flow of one address: a TCP connection, or a UDP socket
// bound to the address (multicast: to its port, joining its group).
func (s *Subscription) open(ep namesvc.Endpoint) (*endpoint, error) {
	p, err := flow.ParseProtocol(ep.Protocol)
	if err != nil {
		return nil, err
	}
	e := &endpoint{ep: ep, created: time.Now()}
	switch p {
	case flow.TCP:
		e.tcp, err = flow.DialTCP(ep.Addr.String(), s.fo)
		e.f = e.tcp
	case flow.UDP, flow.RawUDP:
		o := s.fo
		o.ReceiveBuffer = max(o.ReceiveBuffer, datagramReceiveBuffer)
		e.f, err = flow.NewUDP(flow.UDPConfig{Bind: ep.Addr.String(), Raw: p == flow.RawUDP}, o)
	case flow.Multicast:
		o := s.fo
		o.ReceiveBuffer = max(o.ReceiveBuffer, datagramReceiveBuffer)
		bind := netip.AddrPortFrom(netip.IPv4Unspecified(), ep.Addr.Port())
		e.f, err = flow.NewUDP(flow.UDPConfig{Bind: bind.String(), Group: ep.Addr.Addr().String()}, o)
	default:
		err = fmt.Errorf("protocol %v: not received by this package", p)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// pruner closes the flows of addresses no longer registered: STK tells
// subscribers of new registrations only, so a publisher that went (or
// restarted on another port) would leave a connection retrying for ever
// and a slot of MaxEndpoints taken. While a TCP connection is down (or a
// datagram flow is open), it looks the name up every prune interval.
func (s *Subscription) pruner() {
	defer close(s.done)
	t := time.NewTicker(s.prune)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		var candidates []string
		s.mu.Lock()
		for k, e := range s.eps {
			if time.Since(e.created) >= s.prune && (e.tcp == nil || !e.tcp.Connected()) {
				candidates = append(candidates, k)
			}
		}
		s.mu.Unlock()
		if len(candidates) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.prune)
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
			if e == nil || registered[k] || (e.tcp != nil && e.tcp.Connected()) {
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
			s.env.log.Info("stk: address no longer registered; closing its flow", "name", s.name, "address", e.ep.String())
			e.f.Close()
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

// Stats returns the sum of the counters of the subscription's flows.
func (s *Subscription) Stats() flow.Stats {
	var sum flow.Stats
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.eps {
		fs := e.f.Stats()
		sum.SequencesIn += fs.SequencesIn
		sum.BytesIn += fs.BytesIn
		sum.Dropped += fs.Dropped
		sum.Malformed += fs.Malformed
		sum.Reconnects += fs.Reconnects
		sum.Connections += fs.Connections
	}
	return sum
}

// Close ends the subscription: the handler is not called again once Close
// returns (Close waits for a call in progress), the flows close, and C's
// channel is closed. It must not be called from the handler.
func (s *Subscription) Close() error {
	s.once.Do(func() {
		s.env.forget(s)
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
			s.env.log.Debug("stk: closing a subscription's flows", "name", s.name, "err", err)
		}
	})
	return nil
}
