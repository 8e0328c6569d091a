package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
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

// feed publishes every STEP as a sequence on a TCP data flow, registered in
// the name service.
type feed struct {
	server *flow.TCPServer
	addr   netip.AddrPort // the registered address
	log    *slog.Logger
	q      seq.Sequence // reused: the sink runs one STEP at a time

	names *namesvc.Client
	wg    sync.WaitGroup

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
	a = a.WithDefaults("127.0.0.1", 0)
	ap, err := a.AddrPort()
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	server, err := flow.ListenTCP(ap.String(), flow.Options{
		Logger: log, Name: "stepmon-feed",
		EventLoops: 1, // a feed of a few STEPs a second
		QueueBytes: feedQueueBytes, SlowConsumerWait: feedSlowWait,
	})
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w (use --listen 127.0.0.1:0 for any free port)", listen, err)
	}
	return &feed{server: server, addr: flow.AdvertiseAddr(server.LocalAddr(), netip.Addr{}), log: log}, nil
}

// publish is a Monitor sink. Without a subscriber there is nothing to
// encode.
func (f *feed) publish(s *step.Step) {
	if f.server.Conns() == 0 {
		return
	}
	err := step.Encode(&f.q, s)
	if err == nil {
		err = f.server.Send(&f.q)
	}
	if err != nil && time.Since(f.lastErr) >= time.Minute {
		f.lastErr = time.Now()
		f.log.Warn("a STEP could not be published", "type", s.Event.Type, "err", err)
	}
}

// register registers the feed under each name (skipping empty ones) with
// the name server at addr, showing token ("NAME:SECRET", "" for none) to
// a server whose policy asks for one. It returns at once; the client registers when
// the server answers, and again after a reconnect or a server restart.
func (f *feed) register(ctx context.Context, addr, token string, names ...string) error {
	c, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: f.log.With("client", "names"), Token: token})
	if err != nil {
		return fmt.Errorf("--name-server: %w", err)
	}
	f.names = c
	if listen := f.server.LocalAddr(); listen.Addr().IsUnspecified() {
		// The interface toward the name server faces the subscribers who
		// find the feed there.
		f.addr = flow.AdvertiseAddr(listen, c.ServerAddr().Addr())
	}
	f.log.Info("registering the feed", "names", strings.Join(slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == "" }), ","),
		"address", "tcp:"+f.addr.String(), "listen", f.server.LocalAddr(), "name_server", addr)
	for _, name := range names {
		if name == "" {
			continue
		}
		info := namesvc.Info{
			Name:      name,
			Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: f.addr}},
			Linger:    feedLinger,
			FT:        namesvc.FTActive,
		}
		f.wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := c.Register(rctx, info); err != nil {
				if ctx.Err() == nil {
					f.log.Warn("name not registered yet; the client keeps trying", "name", name, "name_server", addr, "err", err)
				}
				return
			}
			f.log.Debug("registered", "name", name, "address", "tcp:"+f.addr.String(), "name_server", addr)
		})
	}
	return nil
}

// close ends the registrations (they linger for feedLinger) and delivers
// what the subscribers have queued.
func (f *feed) close() error {
	if f.names != nil {
		f.names.Close()
	}
	f.wg.Wait()
	return f.server.Close()
}
