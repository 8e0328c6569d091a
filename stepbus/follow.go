package stepbus

import (
	"errors"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/step"
)

// follower receives the STEPs of every publisher registered under the
// directory name (an stk.Subscription: connections, reconnections and the
// pruning of publishers gone are its) and publishes them.
type follower struct {
	b *Bus

	mu      sync.Mutex
	sub     *stk.Subscription
	pubs    map[netip.AddrPort]*publisher // the addresses received from
	ignored map[string]bool               // addresses outside Config.AcceptNetworks, logged once
}

// publisher is what the bus keeps of one followed feed beside its
// subscription's status.
type publisher struct {
	source  string // "tcp:ip:port", the source of its STEPs
	invalid atomic.Uint64
	down    time.Time // when its connection last went down (zero: up or never)
}

// PublisherInfo describes a followed publisher.
type PublisherInfo struct {
	// Addr is its feed's address, "ip:port".
	Addr string `json:"addr"`
	// Connected says whether the bus has a connection to it now, Since
	// since when (or since when it has been trying).
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since"`
	// LastRegistered is when the name server last answered its
	// registration (on Follow, when it registered, after reconnects).
	LastRegistered time.Time `json:"last_registered"`
	// Received counts the sequences received from it; Invalid those that
	// were not valid STEPs.
	Received uint64 `json:"received"`
	Invalid  uint64 `json:"invalid"`
}

// Follow subscribes to Config.Directory on the name server and from then
// on receives the STEPs of every publisher registered there (TCP
// addresses; one connection per address, never to the bus's own feed).
// Sequences that are not valid STEPs are counted as Invalid. A publisher
// whose connection stays down for Config.PublisherGrace and whose address
// is no longer registered is dropped.
func (b *Bus) Follow() error {
	env, err := b.names()
	if err != nil {
		return err
	}
	f := &follower{b: b, pubs: map[netip.AddrPort]*publisher{}, ignored: map[string]bool{}}
	if err := attach(b, &b.follow, f, "stepbus: already following"); err != nil {
		return err
	}
	opts := stk.SubscribeOptions{
		MaxEndpoints:   math.MaxInt, // every host monitor of the directory
		PruneInterval:  b.cfg.PublisherGrace,
		Protocols:      []string{"tcp"},
		AcceptEndpoint: func(ep namesvc.Endpoint) bool { return !b.isOwnFeed(ep.Addr) },
		OnEndpoint:     f.event,
		Logger:         b.log,
	}
	if len(b.cfg.AcceptNetworks) > 0 { // stk: an empty, non-nil Accept accepts nothing
		opts.Accept = b.cfg.AcceptNetworks
	}
	sub, err := env.SubscribeFrom(b.cfg.Directory, f.receive, opts)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.sub = sub
	f.mu.Unlock()
	b.log.Info("following STEP publishers", "directory", b.cfg.Directory, "name_server", b.cfg.NameServer)
	return nil
}

// event keeps the bus's record of the publisher addresses and logs what
// happens to them (stk.SubscribeOptions.OnEndpoint).
func (f *follower) event(ev stk.EndpointEvent) {
	addr := ev.Endpoint.Addr.String()
	switch ev.Kind {
	case stk.EndpointOpened:
		f.publisher(ev.Endpoint)
		f.b.log.Info("following STEP publisher", "addr", addr)
	case stk.EndpointConnected, stk.EndpointDisconnected:
		p := f.publisher(ev.Endpoint)
		f.mu.Lock()
		p.down = time.Time{}
		if ev.Kind == stk.EndpointDisconnected {
			p.down = f.b.now()
		}
		f.mu.Unlock()
	case stk.EndpointClosed:
		f.mu.Lock()
		p := f.pubs[ev.Endpoint.Addr]
		delete(f.pubs, ev.Endpoint.Addr)
		f.mu.Unlock()
		args := []any{"addr", addr}
		if p != nil && !p.down.IsZero() {
			args = append(args, "down_for", f.b.now().Sub(p.down).Round(time.Second))
		}
		f.b.log.Info("dropped STEP publisher: down and no longer registered", args...)
	case stk.EndpointRefused:
		f.mu.Lock()
		first := !f.ignored[addr] && len(f.ignored) < MaxStatKeys
		if first {
			f.ignored[addr] = true
		}
		f.mu.Unlock()
		if first {
			f.b.log.Warn("ignoring a STEP publisher outside the accepted networks", "addr", addr,
				"name", ev.Name, "accept", f.b.cfg.AcceptNetworks)
		}
	case stk.EndpointSkipped:
		f.b.log.Debug("ignoring a STEP publisher address that is not TCP", "addr", ev.Endpoint.String())
	case stk.EndpointFailed:
		f.b.log.Warn("cannot follow STEP publisher", "addr", addr, "err", ev.Err)
	}
}

// publisher returns the record of the publisher at ep, made on first use.
func (f *follower) publisher(ep namesvc.Endpoint) *publisher {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pubs[ep.Addr]
	if p == nil {
		p = &publisher{source: "tcp:" + ep.Addr.String()}
		f.pubs[ep.Addr] = p
	}
	return p
}

// receive publishes one sequence from the publisher at from (the
// subscription's handler).
func (f *follower) receive(from namesvc.Endpoint, q *seq.Sequence) {
	p := f.publisher(from)
	s, err := step.Decode(q)
	if err != nil {
		p.invalid.Add(1)
		f.b.countInvalid(p.source, err)
		return
	}
	if err := f.b.Publish(s, p.source); err != nil && !errors.Is(err, ErrClosed) {
		p.invalid.Add(1) // Publish counted it
	}
}

// isOwnFeed reports whether ap is the bus's own feed.
func (b *Bus) isOwnFeed(ap netip.AddrPort) bool {
	b.mu.RLock()
	fd := b.feed
	b.mu.RUnlock()
	return fd != nil && (ap == fd.adv || ap == fd.pub.Addr().Addr)
}

// subscription returns the follower's subscription (nil until Follow has
// subscribed, or when it could not).
func (f *follower) subscription() *stk.Subscription {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sub
}

func (f *follower) counts() (n, connected, ignored int) {
	if sub := f.subscription(); sub != nil {
		n, connected = len(sub.Endpoints()), sub.Connected()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return n, connected, len(f.ignored)
}

func (f *follower) flows() []flow.Flow {
	if sub := f.subscription(); sub != nil {
		return sub.Flows()
	}
	return nil
}

func (f *follower) list() []PublisherInfo {
	sub := f.subscription()
	if sub == nil {
		return []PublisherInfo{}
	}
	st := sub.Status() // sorted by "tcp:ip:port", so by address
	out := make([]PublisherInfo, 0, len(st))
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range st {
		info := PublisherInfo{Addr: s.Endpoint.Addr.String(), Connected: s.Connected, Since: s.Since,
			LastRegistered: s.Announced, Received: s.Stats.SequencesIn}
		if p := f.pubs[s.Endpoint.Addr]; p != nil {
			info.Invalid = p.invalid.Load()
		}
		out = append(out, info)
	}
	return out
}

// Publishers lists the followed publishers, sorted by address.
func (b *Bus) Publishers() []PublisherInfo {
	b.mu.RLock()
	fl := b.follow
	b.mu.RUnlock()
	if fl == nil {
		return nil
	}
	return fl.list()
}

// close stops following and closes every publisher's flow.
func (f *follower) close() {
	if sub := f.subscription(); sub != nil {
		sub.Close()
	}
}
