package stk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// ListenOptions configure Listen. The zero value works.
type ListenOptions struct {
	// Name labels the publisher's log lines and flow; default "publisher".
	Name string
	// Logger receives the publisher's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Flow are the options of the publisher's TCP server flow (queue
	// sizes, slow-consumer policy, event loops...). Its Handler receives
	// what subscribers send (nil: it is ignored); Logger, Name, OnConnect
	// and OnDisconnect are set by this package.
	Flow flow.Options
}

// Listen starts a TCP publisher that no name server knows of, on listen
// ("[tcp:]ip:port"; port 0: a free one): subscribers connect to its
// address (SubscribeAddress, flow.DialTCP), or Env.Announce registers it
// under one name or several, with one name server or several, and keeps
// going without one. It is Env.Publish without the Env, for a program
// whose name server is optional (stepmon, stkd's STEP feed). Addr returns
// the address listened on.
func Listen(listen string, opts ListenOptions) (*Publisher, error) {
	name := opts.Name
	if name == "" {
		name = "publisher"
	}
	a, err := flow.ParseAddress(listen)
	if err == nil && (a.Lookup != "" || a.TLS || a.Protocol != flow.TCP) {
		err = errors.New("Listen serves TCP: want [tcp:]ip:port")
	}
	var ap netip.AddrPort
	if err == nil {
		ap, err = a.WithDefaults("127.0.0.1", 0).AddrPort()
	}
	if err != nil {
		return nil, fmt.Errorf("stk: listen %q: %w", listen, err)
	}
	p := &Publisher{name: name, wake: make(chan struct{}), close: make(chan struct{})}
	fo := opts.Flow
	fo.Name = name
	fo.Logger = opts.Logger
	if fo.Logger == nil {
		fo.Logger = slog.Default()
	}
	if fo.Handler == nil {
		fo.Handler = func(flow.Peer, *seq.Sequence) {} // a subscriber has nothing to say
	}
	if err := p.listenTCP(ap, fo); err != nil {
		return nil, fmt.Errorf("stk: listen %q: %w", listen, err)
	}
	p.addr = namesvc.Endpoint{Protocol: "tcp", Addr: p.local}
	return p, nil
}

// Flow returns the publisher's data flow, for its counters and peers
// (a *flow.TCPServer over TCP).
func (p *Publisher) Flow() flow.Flow { return p.flow }

// DefaultAnnounceAttempt is how long Env.Announce waits for the name
// server's confirmation before it tells AnnounceOptions.OnResult and sends
// the registration again.
const DefaultAnnounceAttempt = 5 * time.Second

// AnnounceOptions configure Env.Announce. The zero value works.
type AnnounceOptions struct {
	// Group is the name group to register in; "" means Options.Group.
	Group string
	// Linger is how long the name server keeps the registration after
	// this program's connection to it breaks. Default DefaultLinger;
	// negative: 0.
	Linger time.Duration
	// AdvertiseIP is the IP registered for a publisher listening on the
	// unspecified address (0.0.0.0), which subscribers cannot connect to.
	// Default: the address of this host's interface toward the name
	// server (flow.AdvertiseAddr). Ignored for a publisher on a given IP.
	AdvertiseIP netip.Addr
	// Attempt bounds each wait for the name server's confirmation; when it
	// passes, OnResult is told and the registration is sent again. The
	// name-service client also sends it again after every reconnect and
	// name-server restart. Default DefaultAnnounceAttempt.
	Attempt time.Duration
	// OnResult, when set, is called after each attempt, on the
	// announcement's own goroutine: with nil once the name server has
	// confirmed the registration (then no more), else with why not yet.
	// It must not call Close.
	OnResult func(err error)
	// KeepOnClose makes Close leave the registration on the name server
	// for Linger, as a crash does, instead of removing it at once: a
	// program restarted within its linger is found without a gap.
	KeepOnClose bool
}

// Announcement is a publisher's address registered under a name by
// Env.Announce. Close takes the name off (see KeepOnClose).
type Announcement struct {
	reg       *Registration
	keep      bool
	confirmed atomic.Bool
	stop      chan struct{}
	done      chan struct{}
	once      sync.Once
	err       error
}

// Announce registers the address of p under name with the Env's name
// server, in the background: it returns at once, and the registration is
// sent again until the name server confirms it (AnnounceOptions.Attempt,
// OnResult), after a reconnect and after a name-server restart, until
// Close. A publisher may be announced under several names, and with
// several Envs (name servers). It fails only on a bad name or a closed
// Env.
//
// The address is p.Addr(), except for a publisher listening on 0.0.0.0
// (Listen): then the IP registered is AnnounceOptions.AdvertiseIP, or that
// of this host's interface toward the name server.
func (e *Env) Announce(p *Publisher, name string, opts AnnounceOptions) (*Announcement, error) {
	if name == "" || len(name) > namesvc.MaxNameLen {
		return nil, fmt.Errorf("stk: announce %q: a name has 1 to %d bytes", name, namesvc.MaxNameLen)
	}
	ep := p.Addr()
	if ep.Addr.Addr().IsUnspecified() {
		if opts.AdvertiseIP.IsValid() {
			ep.Addr = netip.AddrPortFrom(opts.AdvertiseIP, ep.Addr.Port())
		} else {
			ep.Addr = flow.AdvertiseAddr(ep.Addr, e.client.ServerAddr().Addr())
		}
	}
	info := namesvc.Info{Name: name, Group: opts.Group, Addresses: []namesvc.Endpoint{ep}, Linger: opts.Linger, FT: namesvc.FTActive}
	if info.Group == "" {
		info.Group = e.opts.Group
	}
	switch {
	case info.Linger == 0:
		info.Linger = DefaultLinger
	case info.Linger < 0:
		info.Linger = 0
	}
	if opts.Attempt <= 0 {
		opts.Attempt = DefaultAnnounceAttempt
	}
	c, err := e.dial()
	if err != nil {
		return nil, err
	}
	a := &Announcement{reg: &Registration{env: e, client: c, info: info}, keep: opts.KeepOnClose,
		stop: make(chan struct{}), done: make(chan struct{})}
	if !e.adopt(a) {
		c.Close()
		return nil, fmt.Errorf("stk: announce %q: %w", name, ErrClosed)
	}
	go a.run(e, opts)
	return a, nil
}

// run registers until the name server confirms, or Close.
func (a *Announcement) run(e *Env, opts AnnounceOptions) {
	defer close(a.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-a.stop:
			cancel()
		case <-a.done:
		}
	}()
	for {
		actx, acancel := context.WithTimeout(ctx, opts.Attempt)
		start := time.Now()
		err := a.reg.client.Register(actx, a.reg.info)
		if err != nil && ctx.Err() == nil && actx.Err() == nil {
			<-actx.Done() // refused at once (a bad name): try again after the attempt's time, not in a loop
		}
		acancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			a.confirmed.Store(true)
		} else if errors.Is(err, context.DeadlineExceeded) {
			err = notConfirmed(e.nsString, a.reg.info.Name, time.Since(start).Round(time.Millisecond), err)
		}
		if opts.OnResult != nil {
			opts.OnResult(err)
		}
		if err == nil {
			return
		}
	}
}

// Name returns the announced name.
func (a *Announcement) Name() string { return a.reg.info.Name }

// Addr returns the registered address.
func (a *Announcement) Addr() namesvc.Endpoint { return a.reg.info.Addresses[0] }

// Confirmed reports whether the name server has confirmed the
// registration (it stays true across reconnects, which register again).
func (a *Announcement) Confirmed() bool { return a.confirmed.Load() }

// Close stops registering and takes the name off the name server (at once,
// or after its linger with AnnounceOptions.KeepOnClose).
func (a *Announcement) Close() error {
	a.once.Do(func() {
		a.reg.env.forget(a)
		close(a.stop)
		<-a.done
		if a.keep {
			a.err = a.reg.client.Close()
		} else {
			a.err = a.reg.Close()
		}
	})
	return a.err
}
