package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/step"
)

// Feed settings. The queue holds thousands of STEPs (a few hundred bytes
// each); a subscriber that lets it fill for feedSlowWait is disconnected,
// so that it delays the monitor's interval once, briefly.
const (
	feedQueueBytes = 1 << 20
	feedSlowWait   = 200 * time.Millisecond
	// feedLinger keeps the names registered this long after stepmon's
	// name-server connection closes (a restart keeps its subscribers).
	feedLinger = 5 * time.Second
)

// feed publishes every STEP as a sequence on a TCP data flow (an
// stk.Publisher), announced under stepmon's names.
type feed struct {
	pub  *stk.Publisher
	addr netip.AddrPort // the registered address
	log  *slog.Logger
	q    seq.Sequence // reused: the sink runs one STEP at a time
	env  *stk.Env     // nil until register

	lastErr time.Time
}

// newFeed listens on listen ("[tcp:]ip:port"). When the IP is unspecified
// (0.0.0.0), which subscribers cannot connect to, the address to register
// is the host's primary address until register knows the name server (see
// flow.AdvertiseIP).
func newFeed(listen string, log *slog.Logger) (*feed, error) {
	a, err := flow.ParseAddress(listen)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	if a.Lookup != "" || a.Protocol != flow.TCP {
		return nil, fmt.Errorf("--listen %q: want a TCP address, [tcp:]ip:port", listen)
	}
	ap, err := a.WithDefaults("127.0.0.1", 0).AddrPort()
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	pub, err := stk.Listen(ap.String(), stk.ListenOptions{Name: "stepmon-feed", Logger: log, Flow: flow.Options{
		EventLoops: 1, // a feed of a few STEPs a second
		QueueBytes: feedQueueBytes, SlowConsumerWait: feedSlowWait,
	}})
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w (use --listen 127.0.0.1:0 for any free port)", listen, err)
	}
	return &feed{pub: pub, addr: flow.AdvertiseAddr(pub.Addr().Addr, netip.Addr{}), log: log}, nil
}

// publish is a Monitor sink. Without a subscriber there is nothing to
// encode.
func (f *feed) publish(s *step.Step) {
	if f.pub.Subscribers() == 0 {
		return
	}
	err := step.Encode(&f.q, s)
	if err == nil {
		err = f.pub.Send(&f.q)
	}
	if err != nil && time.Since(f.lastErr) >= time.Minute {
		f.lastErr = time.Now()
		f.log.Warn("a STEP could not be published", "type", s.Event.Type, "err", err)
	}
}

// register announces the feed under each name (skipping empty ones) to
// the name server at addr, showing token ("NAME:SECRET", "" for none) to a
// server whose policy asks for one; tlsCfg is for a tls: addr (nil: the
// system's roots, no client certificate). It returns at once; each name is
// registered when the server answers, and again after a reconnect or a
// server restart.
func (f *feed) register(addr, token string, tlsCfg *tls.Config, names ...string) error {
	env, err := stk.Connect(addr, stk.Options{Logger: f.log.With("client", "names"), Token: token, TLS: tlsCfg})
	if err != nil {
		return fmt.Errorf("--name-server: %w", err)
	}
	f.env = env
	listen := f.pub.Addr().Addr
	if listen.Addr().IsUnspecified() {
		// The interface toward the name server faces the subscribers who
		// find the feed there.
		f.addr = flow.AdvertiseAddr(listen, env.Names().ServerAddr().Addr())
	}
	names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == "" })
	f.log.Info("registering the feed", "names", strings.Join(names, ","),
		"address", "tcp:"+f.addr.String(), "listen", listen, "name_server", addr)
	for _, name := range names {
		warned := false
		_, err := env.Announce(f.pub, name, stk.AnnounceOptions{Linger: feedLinger, KeepOnClose: true, AdvertiseIP: f.addr.Addr(),
			OnResult: func(err error) {
				switch {
				case err == nil:
					f.log.Debug("registered", "name", name, "address", "tcp:"+f.addr.String(), "name_server", addr)
				case !warned:
					warned = true
					f.log.Warn("name not registered yet; the client keeps trying", "name", name, "name_server", addr, "err", err)
				}
			}})
		if err != nil {
			return fmt.Errorf("--name %q: %w", name, err)
		}
	}
	return nil
}

// close ends the registrations (they linger for feedLinger) and delivers
// what the subscribers have queued.
func (f *feed) close() error {
	if f.env != nil {
		f.env.Close()
	}
	return f.pub.Close()
}
