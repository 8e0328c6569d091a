package stk

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// Publisher sends sequences to every subscriber of its name. Over TCP it
// listens, and each subscriber connects to it; over UDP and multicast it
// sends to the registered address, where subscribers listen. Its methods are
// safe for concurrent use.
type Publisher struct {
	env   *Env
	name  string
	flow  flow.Flow
	tcp   *flow.TCPServer // nil over UDP and multicast
	addr  namesvc.Endpoint
	local netip.AddrPort // listened on (TCP) or sent to
	reg   *Registration  // nil for Listen

	joined, left atomic.Uint64 // TCP subscribers that connected, and that went
	once         sync.Once
	err          error
	mu           sync.Mutex
	wake         chan struct{} // closed and replaced when the subscriber count changes
	close        chan struct{} // closed by Close
}

// Publish starts a publisher of name: it listens (or, over UDP, opens its
// socket) as opts.Listen says, registers its address with the name server,
// and waits for the confirmation (opts.RegisterWait). It fails when the
// address cannot be bound or the name server does not confirm in time; the
// error says which.
func (e *Env) Publish(name string, opts PublishOptions) (*Publisher, error) {
	if name == "" || len(name) > namesvc.MaxNameLen {
		return nil, fmt.Errorf("stk: publish %q: a name has 1 to %d bytes", name, namesvc.MaxNameLen)
	}
	listen := opts.Listen
	if listen == "" {
		listen = DefaultListen
	}
	a, err := flow.ParseAddress(listen)
	if err == nil && (a.Lookup != "" || a.TLS) {
		err = errors.New("a publisher listens on tcp, or sends to udp, rawudp or multicast")
	}
	if err == nil && a.Protocol != flow.TCP && a.Port == 0 {
		err = errors.New("a UDP or multicast publisher needs a port: subscribers listen there")
	}
	var ap netip.AddrPort
	if err == nil {
		ap, err = a.WithDefaults("127.0.0.1", 0).AddrPort()
	}
	if err != nil {
		return nil, fmt.Errorf("stk: publish %q: Listen %q: %w", name, listen, err)
	}
	fo := e.flowOptions(name)
	if opts.SlowConsumer != flow.Disconnect {
		fo.SlowConsumer = opts.SlowConsumer
	}
	if opts.SlowConsumerWait > 0 {
		fo.SlowConsumerWait = opts.SlowConsumerWait
	}
	if opts.QueueBytes > 0 {
		fo.QueueBytes = opts.QueueBytes
	}
	p := &Publisher{env: e, name: name, wake: make(chan struct{}), close: make(chan struct{})}
	if a.Protocol == flow.TCP {
		if err := p.listenTCP(ap, fo); err != nil {
			return nil, fmt.Errorf("stk: publish %q: %w", name, err)
		}
		reg := p.local
		switch {
		case opts.AdvertiseIP.IsValid():
			reg = netip.AddrPortFrom(opts.AdvertiseIP, reg.Port())
		default:
			// 0.0.0.0 cannot be connected to: register the address of the
			// interface that faces the name server, where subscribers
			// come from.
			reg = flow.AdvertiseAddr(reg, e.client.ServerAddr().Addr())
		}
		p.addr = namesvc.Endpoint{Protocol: "tcp", Addr: reg}
	} else {
		u, err := flow.NewUDP(flow.UDPConfig{Destination: ap.String(), Raw: a.Protocol == flow.RawUDP}, fo)
		if err != nil {
			return nil, fmt.Errorf("stk: publish %q: %w", name, err)
		}
		p.flow = u
		p.local = ap
		p.addr = namesvc.Endpoint{Protocol: a.Protocol.String(), Addr: ap}
	}
	linger := opts.Linger
	switch {
	case linger == 0:
		linger = DefaultLinger
	case linger < 0:
		linger = 0
	}
	info := namesvc.Info{
		Name:      name,
		Group:     opts.Group,
		Addresses: []namesvc.Endpoint{p.addr},
		Linger:    linger,
		FT:        namesvc.FTActive,
		Meta:      opts.Meta,
	}
	if opts.Standby {
		info.FT = namesvc.FTStandby
	}
	wait := opts.RegisterWait
	if wait == 0 {
		wait = DefaultRegisterWait
	}
	if wait < 0 {
		p.reg, err = e.registerNoWait(info)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		p.reg, err = e.register(ctx, info)
		cancel()
	}
	if err != nil {
		p.flow.Close()
		return nil, err // it names the name and the name server
	}
	p.reg.keep = opts.KeepOnClose
	e.log.Info("stk: publishing", "name", name, "address", p.addr.String(), "group", p.reg.info.Group)
	if !e.adopt(p) {
		p.Close()
		return nil, fmt.Errorf("stk: publish %q: %w", name, ErrClosed)
	}
	return p, nil
}

// listenTCP starts p's TCP server flow on ap, counting the subscribers
// that come and go.
func (p *Publisher) listenTCP(ap netip.AddrPort, fo flow.Options) error {
	fo.OnConnect = func(flow.Peer) {
		p.joined.Add(1)
		p.changed()
	}
	fo.OnDisconnect = func(flow.Peer, error) {
		p.left.Add(1)
		p.changed()
	}
	var err error
	if p.tcp, err = flow.ListenTCP(ap.String(), fo); err != nil {
		return err
	}
	p.flow = p.tcp
	p.local = p.tcp.LocalAddr()
	return nil
}

// registerNoWait registers info without waiting for the confirmation: the
// client remembers it and sends it once connected, so only an immediate
// refusal (a bad name) is an error.
func (e *Env) registerNoWait(info namesvc.Info) (*Registration, error) {
	if info.Group == "" {
		info.Group = e.opts.Group
	}
	c, err := e.dial()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = c.Register(ctx, info)
	if err != nil && !errors.Is(err, context.Canceled) {
		c.Close()
		return nil, fmt.Errorf("stk: register %q: %w", info.Name, err)
	}
	return &Registration{env: e, client: c, info: info}, nil
}

// changed wakes WaitSubscribers.
func (p *Publisher) changed() {
	p.mu.Lock()
	close(p.wake)
	p.wake = make(chan struct{})
	p.mu.Unlock()
}

// Name returns the published name.
func (p *Publisher) Name() string { return p.name }

// Addr returns the registered address: where subscribers connect (TCP) or
// listen (UDP, multicast).
func (p *Publisher) Addr() namesvc.Endpoint { return p.addr }

// LocalAddr returns the address the publisher listens on (TCP; 0.0.0.0
// stays 0.0.0.0, unlike Addr) or sends to (UDP, multicast).
func (p *Publisher) LocalAddr() netip.AddrPort { return p.local }

// Send sends s to every subscriber connected now (none: it goes nowhere and
// Send returns nil, as in STK). s may be changed or reused when Send
// returns. Over TCP a subscriber that does not keep up does not make Send
// fail: Send waits up to SlowConsumerWait for room in its queue, then it
// is disconnected (flow.Disconnect) or misses s (flow.Drop), counted in
// Stats().SlowConsumers or Stats().Dropped, and the others get s all the
// same. Over UDP and multicast a full queue makes Send return an error
// wrapping flow.ErrQueueFull (s is not sent). After Close, Send returns an
// error wrapping flow.ErrClosed.
func (p *Publisher) Send(s *seq.Sequence) error {
	if err := p.flow.Send(s); err != nil {
		return fmt.Errorf("stk: publish %q: %w", p.name, err)
	}
	return nil
}

// SendBatch sends each sequence of batch as Send does and returns how many
// were sent. A full queue (flow.ErrQueueFull, UDP and multicast) does not
// stop the batch: it is returned at the end, the sequences that fitted
// having been sent. Any other error stops it.
func (p *Publisher) SendBatch(batch []*seq.Sequence) (int, error) {
	var slow error
	for i, s := range batch {
		err := p.flow.Send(s)
		switch {
		case err == nil:
		case errors.Is(err, flow.ErrQueueFull) || errors.Is(err, flow.ErrSlowConsumer):
			slow = err
		default:
			return i, fmt.Errorf("stk: publish %q: sequence %d of %d: %w", p.name, i, len(batch), err)
		}
	}
	if slow != nil {
		return len(batch), fmt.Errorf("stk: publish %q: %w", p.name, slow)
	}
	return len(batch), nil
}

// Subscribers returns the number of subscribers connected now; 0 over UDP
// and multicast, which have no connections.
func (p *Publisher) Subscribers() int {
	if p.tcp == nil {
		return 0
	}
	return p.tcp.Conns()
}

// SubscriberCounts returns how many subscribers connected since Publish,
// and how many of those have gone since (disconnected, cut off as slow, or
// closed by Close); 0, 0 over UDP and multicast.
func (p *Publisher) SubscriberCounts() (joined, left uint64) {
	return p.joined.Load(), p.left.Load()
}

// WaitSubscribers waits until at least n subscribers are connected, or ctx
// ends, or the publisher is closed. Sequences sent before a subscriber
// connects do not reach it, so a program that must not lose its first
// sequences waits for the subscribers it expects. Over UDP and multicast it
// returns ErrNoConnections.
func (p *Publisher) WaitSubscribers(ctx context.Context, n int) error {
	if p.tcp == nil {
		return fmt.Errorf("stk: publish %q: WaitSubscribers: %w", p.name, ErrNoConnections)
	}
	for {
		p.mu.Lock()
		wake := p.wake
		p.mu.Unlock()
		have := p.tcp.Conns()
		if have >= n {
			return nil
		}
		select {
		case <-wake:
		case <-p.close:
			return fmt.Errorf("stk: publish %q: %w", p.name, ErrClosed)
		case <-ctx.Done():
			return fmt.Errorf("stk: publish %q: %d of %d subscribers connected: %w", p.name, have, n, ctx.Err())
		}
	}
}

// Stats returns the counters of the publisher's flow: sequences and bytes
// sent, Dropped (sequences a subscriber missed), SlowConsumers,
// Connections.
func (p *Publisher) Stats() flow.Stats { return p.flow.Stats() }

// Close removes the name's registration (at once: subscribers' lookups no
// longer find it; with KeepOnClose it lingers), then delivers what Send accepted to the subscribers
// still connected (waiting at most Options.Flow.CloseTimeout, 5 s by
// default) and closes the connections.
func (p *Publisher) Close() error {
	p.once.Do(func() {
		if p.env != nil { // nil for Listen
			p.env.forget(p)
		}
		close(p.close)
		var err error
		if p.reg != nil {
			err = p.reg.Close()
		}
		p.err = errors.Join(err, p.flow.Close())
	})
	return p.err
}
