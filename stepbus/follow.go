package stepbus

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/step"
)

// follower connects to every publisher registered under the directory
// name and publishes what they send.
type follower struct {
	b   *Bus
	ns  *namesvc.Client
	sub *namesvc.Subscription

	mu      sync.Mutex
	pubs    map[string]*publisher // by "ip:port"
	ignored map[string]bool       // addresses outside Config.AcceptNetworks, logged once
	closed  bool

	stop chan struct{}
	done chan struct{}
}

// publisher is one followed feed.
type publisher struct {
	addr   string
	source string
	fl     *flow.TCPClient

	mu        sync.Mutex
	connected bool
	since     time.Time // when connected last changed (or the publisher appeared)
	lastReg   time.Time // when its registration was last answered

	received, invalid atomic.Uint64
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
	ns := env.Names()
	f := &follower{b: b, ns: ns, pubs: map[string]*publisher{}, ignored: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	b.mu.Lock()
	switch {
	case b.closed:
		err = ErrClosed
	case b.follow != nil:
		err = errors.New("stepbus: already following")
	default:
		b.follow = f
	}
	b.mu.Unlock()
	if err != nil {
		return err
	}
	// f.sub is set before any callback can need it: callbacks only read
	// f.pubs.
	sub, err := ns.Subscribe(b.cfg.Directory, namesvc.SubscribeOptions{}, f.onAnswer)
	if err != nil {
		close(f.done)
		return err
	}
	f.mu.Lock()
	f.sub = sub
	f.mu.Unlock()
	go f.janitor()
	b.log.Info("following STEP publishers", "directory", b.cfg.Directory, "name_server", b.cfg.NameServer)
	return nil
}

// onAnswer connects to the addresses of a registration under the
// directory name (name-service callback: it must not block; DialTCP
// returns at once).
func (f *follower) onAnswer(info namesvc.Info) {
	now := f.b.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	for _, e := range info.Addresses {
		if e.Protocol != "" && e.Protocol != "tcp" {
			f.b.log.Debug("ignoring a STEP publisher address that is not TCP", "addr", e.String())
			continue
		}
		addr := e.Addr.String()
		if f.b.isOwnFeed(e.Addr) {
			continue
		}
		if !f.b.accepts(e.Addr.Addr()) {
			if !f.ignored[addr] && len(f.ignored) < MaxStatKeys {
				f.ignored[addr] = true
				f.b.log.Warn("ignoring a STEP publisher outside the accepted networks", "addr", addr,
					"name", info.Name, "accept", f.b.cfg.AcceptNetworks)
			}
			continue
		}
		if p := f.pubs[addr]; p != nil {
			p.mu.Lock()
			p.lastReg = now
			p.mu.Unlock()
			continue
		}
		p := &publisher{addr: addr, source: "tcp:" + addr, since: now, lastReg: now}
		fl, err := flow.DialTCP(addr, flow.Options{
			Name:         "steps from " + addr,
			Logger:       f.b.log,
			Handler:      func(_ flow.Peer, q *seq.Sequence) { f.receive(p, q) },
			OnConnect:    func(flow.Peer) { p.setConnected(true, f.b.now()) },
			OnDisconnect: func(flow.Peer, error) { p.setConnected(false, f.b.now()) },
			CloseTimeout: 500 * time.Millisecond, // nothing is ever sent to a publisher
		})
		if err != nil {
			f.b.log.Warn("cannot follow STEP publisher", "addr", addr, "err", err)
			continue
		}
		p.fl = fl
		f.pubs[addr] = p
		f.b.log.Info("following STEP publisher", "addr", addr)
	}
}

func (p *publisher) setConnected(up bool, now time.Time) {
	p.mu.Lock()
	p.connected, p.since = up, now
	p.mu.Unlock()
}

// receive publishes one sequence from p (flow callback).
func (f *follower) receive(p *publisher, q *seq.Sequence) {
	p.received.Add(1)
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

// accepts reports whether a publisher at ip may be followed
// (Config.AcceptNetworks).
func (b *Bus) accepts(ip netip.Addr) bool {
	if len(b.cfg.AcceptNetworks) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, n := range b.cfg.AcceptNetworks {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// isOwnFeed reports whether ap is the bus's own feed.
func (b *Bus) isOwnFeed(ap netip.AddrPort) bool {
	b.mu.RLock()
	fd := b.feed
	b.mu.RUnlock()
	return fd != nil && (ap == fd.adv || ap == fd.pub.Addr().Addr)
}

// janitor drops publishers that stay down and are no longer registered.
func (f *follower) janitor() {
	defer close(f.done)
	grace := f.b.cfg.PublisherGrace
	t := time.NewTicker(min(max(grace/4, 10*time.Millisecond), 15*time.Second))
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		now := f.b.now()
		var gone []*publisher
		f.mu.Lock()
		for _, p := range f.pubs {
			p.mu.Lock()
			if !p.connected && now.Sub(p.since) >= grace && now.Sub(p.lastReg) >= grace {
				gone = append(gone, p)
			}
			p.mu.Unlock()
		}
		f.mu.Unlock()
		if len(gone) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		go func() { // end the lookup early on close
			select {
			case <-f.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		infos, err := f.ns.LookupAll(ctx, f.b.cfg.Directory, namesvc.LookupOptions{})
		cancel()
		if err != nil && !errors.Is(err, namesvc.ErrNotFound) {
			f.b.log.Debug("cannot check STEP publisher registrations", "err", err)
			continue // the name server cannot say: keep them
		}
		registered := map[string]bool{}
		for _, info := range infos {
			for _, e := range info.Addresses {
				registered[e.Addr.String()] = true
			}
		}
		for _, p := range gone {
			if registered[p.addr] {
				p.mu.Lock()
				p.lastReg = now // still registered: look again after another grace
				p.mu.Unlock()
				continue
			}
			f.mu.Lock()
			if f.pubs[p.addr] == p {
				delete(f.pubs, p.addr)
			}
			f.mu.Unlock()
			p.fl.Close()
			f.b.log.Info("dropped STEP publisher: down and no longer registered", "addr", p.addr, "down_for", now.Sub(p.since).Round(time.Second))
		}
	}
}

func (f *follower) counts() (n, connected, ignored int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.pubs {
		n++
		if p.fl.Connected() {
			connected++
		}
	}
	return n, connected, len(f.ignored)
}

func (f *follower) flows() []flow.Flow {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]flow.Flow, 0, len(f.pubs))
	for _, addr := range slices.Sorted(maps.Keys(f.pubs)) {
		out = append(out, f.pubs[addr].fl)
	}
	return out
}

func (f *follower) list() []PublisherInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]PublisherInfo, 0, len(f.pubs))
	for _, p := range f.pubs {
		p.mu.Lock()
		out = append(out, PublisherInfo{Addr: p.addr, Connected: p.connected, Since: p.since, LastRegistered: p.lastReg,
			Received: p.received.Load(), Invalid: p.invalid.Load()})
		p.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b PublisherInfo) int { return cmp.Compare(a.Addr, b.Addr) })
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
	f.mu.Lock()
	f.closed = true
	pubs := f.pubs
	f.pubs = map[string]*publisher{}
	sub := f.sub
	f.mu.Unlock()
	if sub != nil {
		sub.Unsubscribe()
	}
	close(f.stop)
	<-f.done
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.fl.Close()
		}()
	}
	wg.Wait()
}
