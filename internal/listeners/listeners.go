// Package listeners is the listener set that namesvc.Server and
// smartbeat.Monitor share: TCP, TLS, STK-UDP and multicast flows opened for
// one handler with one set of flow options, listed for status pages and
// closed together. Each server keeps its own protocol core and
// bookkeeping (what it registers, what it logs); what is here is what
// both wrote out before.
package listeners

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	"github.com/stk-go/stk/flow"
)

// Config says how a Set opens its flows.
type Config struct {
	// What names the owner in errors and flow names ("namesvc",
	// "smartbeat: monitor").
	What string
	// Kind is the short name in default flow names ("namesvc" gives
	// "namesvc tcp 127.0.0.1:20002"); "" uses What.
	Kind string
	// Flow is the base of every flow's options. Handler, OnConnect and
	// OnDisconnect are replaced by the fields below; an empty Name becomes
	// "Kind proto addr", a nil Logger Logger.
	Flow flow.Options
	// Handler receives every sequence of every flow.
	Handler flow.Handler
	// OnDisconnect, when set, is called when a TCP or TLS connection
	// closes (datagram flows have no connections).
	OnDisconnect func(flow.Peer)
	// Logger is the flows' logger when Flow.Logger is nil.
	Logger *slog.Logger
	// Closed is the error the Serve methods return once the set is
	// closed (each package has its sentinel).
	Closed error
}

// Set is a server's listeners. Its methods are safe for concurrent use.
type Set struct {
	cfg    Config
	mu     sync.Mutex
	flows  []flow.Flow
	closed bool
}

// New returns an empty set.
func New(cfg Config) *Set {
	if cfg.Kind == "" {
		cfg.Kind = cfg.What
	}
	if cfg.Closed == nil {
		cfg.Closed = errors.New(cfg.What + ": closed")
	}
	return &Set{cfg: cfg}
}

// Options returns the flow options of a listener named kind+" "+addr
// when the base options name none.
func (s *Set) Options(proto, addr string) flow.Options {
	opts := s.cfg.Flow
	opts.Handler = s.cfg.Handler
	opts.OnConnect, opts.OnDisconnect = nil, nil
	if opts.Name == "" {
		opts.Name = s.cfg.Kind + " " + proto + " " + addr
	}
	if opts.Logger == nil {
		opts.Logger = s.cfg.Logger
	}
	return opts
}

func (s *Set) connOptions(proto, addr string) flow.Options {
	opts := s.Options(proto, addr)
	if d := s.cfg.OnDisconnect; d != nil {
		opts.OnDisconnect = func(p flow.Peer, _ error) { d(p) }
	}
	return opts
}

// TCP listens for STK TCP connections on addr ("ip:port"; port 0 picks
// one).
func (s *Set) TCP(addr string) (flow.Flow, error) {
	f, err := flow.ListenTCP(addr, s.connOptions("tcp", addr))
	if err != nil {
		return nil, fmt.Errorf("%s: serve TCP: %w", s.cfg.What, err)
	}
	return s.add(f)
}

// TLS listens for STK TCP connections inside TLS on addr with cfg
// (flow.NewServerTLS builds one from certificate files; mutual TLS when
// it has client CAs). The peers the handler sees are flow.TLSPeers.
func (s *Set) TLS(addr string, cfg *tls.Config) (flow.Flow, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%s: serve TLS on %s: no TLS configuration (flow.NewServerTLS makes one from a certificate and its key)", s.cfg.What, addr)
	}
	opts := s.connOptions("tls", addr)
	opts.TLS = cfg
	f, err := flow.ListenTLS(addr, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: serve TLS: %w", s.cfg.What, err)
	}
	return s.add(f)
}

// UDP receives STK-UDP datagrams on addr ("ip:port").
func (s *Set) UDP(addr string) (flow.Flow, error) {
	f, err := flow.NewUDP(flow.UDPConfig{Bind: addr}, s.Options("udp", addr))
	if err != nil {
		return nil, fmt.Errorf("%s: serve UDP: %w", s.cfg.What, err)
	}
	return s.add(f)
}

// Multicast joins the group of groupPort ("group[:port]", defaultPort
// when it has none) on a socket bound to 0.0.0.0:port, and receives the
// STK-UDP datagrams sent to it; interface and loopback come from the flow
// options. It returns the flow and the group and port it serves.
func (s *Set) Multicast(groupPort string, defaultPort uint16) (flow.Flow, netip.AddrPort, error) {
	ap, err := ParseGroupPort(groupPort, defaultPort)
	if err != nil {
		return nil, netip.AddrPort{}, fmt.Errorf("%s: serve multicast: %w", s.cfg.What, err)
	}
	cfg := flow.UDPConfig{Bind: fmt.Sprintf("0.0.0.0:%d", ap.Port()), Group: ap.Addr().String()}
	f, err := flow.NewUDP(cfg, s.Options("multicast", groupPort))
	if err != nil {
		return nil, netip.AddrPort{}, fmt.Errorf("%s: serve multicast: %w", s.cfg.What, err)
	}
	if _, err := s.add(f); err != nil {
		return nil, netip.AddrPort{}, err
	}
	return f, netip.AddrPortFrom(ap.Addr(), f.LocalAddr().Port()), nil
}

// ParseGroupPort parses "group[:port]", defaultPort when the port is
// left out.
func ParseGroupPort(groupPort string, defaultPort uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(groupPort); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(groupPort)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not group[:port] (as in 224.10.10.20:%d)", groupPort, defaultPort)
	}
	return netip.AddrPortFrom(a, defaultPort), nil
}

// add keeps f, or closes it when the set is closed.
func (s *Set) add(f flow.Flow) (flow.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		f.Close()
		return nil, s.cfg.Closed
	}
	s.flows = append(s.flows, f)
	return f, nil
}

// Flows returns the listeners opened, in order.
func (s *Set) Flows() []flow.Flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.flows)
}

// Closed reports whether Close was called.
func (s *Set) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close closes every listener; later Serve calls fail with Config.Closed.
// A second Close does nothing.
func (s *Set) Close() error {
	s.mu.Lock()
	flows := s.flows
	s.flows, s.closed = nil, true
	s.mu.Unlock()
	var errs []error
	for _, f := range flows {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ServerDefaults returns o with the server limits it leaves unset taken
// from d: MaxSequenceSize (unset when <= 0), IdleTimeout, FrameTimeout and
// MaxConnsPerIP (unset when 0; a negative value turns a limit off, so it is
// kept). Each server passes its own defaults.
func ServerDefaults(o, d flow.Options) flow.Options {
	if o.MaxSequenceSize <= 0 {
		o.MaxSequenceSize = d.MaxSequenceSize
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	if o.FrameTimeout == 0 {
		o.FrameTimeout = d.FrameTimeout
	}
	if o.MaxConnsPerIP == 0 {
		o.MaxConnsPerIP = d.MaxConnsPerIP
	}
	return o
}
