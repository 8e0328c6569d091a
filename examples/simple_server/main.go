// Command simple_server is a server with a service group: it answers the
// data sequences of its clients and mirrors their services.
//
// It listens on -B (TCP, or STK-UDP / multicast with -P and -M) and
// registers the service group name (-G) with the name server, so that
// clients such as simple_client find it with lookup:<group name>. On
// 0.0.0.0 (every interface) it registers the address other hosts reach it
// at, flow.AdvertiseIP toward the name server (the C library registers
// nothing then); a multicast server registers its group address.
//
// Every non-data sequence a client sends (its service's CREATE, STATE,
// DESTROY and smartbeats, travelling in-band on the data connection) is
// handed to the service group (service-group automation, docs/protocol.md §8.6),
// which keeps a mirror of each client service and reports the mirrors to
// the monitor (-m) with the group name attached: stkd's UI lists them under
// the group. A client that stops sending smartbeats for its activity
// timeout is timed out.
//
// Each data sequence is answered with "simple_server_return_data" (id
// 0x7edcba90, one 10-byte element 00..09 whose user type counts the
// replies), unless -0. Over UDP and multicast the reply goes to the
// datagram's source.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/smartbeat"
)

const (
	prog        = "simple_server"
	defaultPort = 29312

	replyID   = 0x7edcba90
	replyName = "simple_server_return_data"
)

// registerTimeout bounds the wait for the name server's confirmation at
// start-up; the name-service client keeps trying afterwards.
const registerTimeout = 5 * time.Second

func main() {
	fs := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	bind := fs.StringP("bind", "B", "127.0.0.1:29312", "listening address host[:port] (port 29312 if left out; 0 picks a free one). On 0.0.0.0 the group name is registered with the IP facing the name server")
	groupName := fs.StringP("group", "G", "Simple Server Service Group", "service group name, registered with the name server")
	protoName := fs.StringP("protocol", "P", "tcp", "receive protocol: tcp, udp or multicast")
	mcast := fs.StringP("multicast", "M", "", "multicast group[:port] to receive on (forces -P multicast; group 224.10.10.20 by default, port from -B)")
	monitor := fs.StringP("monitor", "m", "tcp:127.0.0.1:20001", "monitor the mirrored services report to: lookup:name or [tcp|udp|multicast|tls:]host[:port] (tls: with --tls-ca, --tls-cert, --tls-key); \"\" for none")
	nameServer := fs.StringP("name-server", "R", cli.DefaultNameServer, "name server: [tcp|udp|tls:]host[:port] (tls: with --tls-ca, --tls-cert, --tls-key)")
	passive := fs.BoolP("passive", "0", false, "passive: do not answer data sequences")
	quiet := fs.BoolP("quiet", "q", false, "quiet: do not print the service group's events")
	verbose := fs.BoolP("verbose", "v", false, "also print every smartbeat of the members, and log what happens")
	cli.Usage(fs, prog+" [flags]",
		"Answers the data sequences of its clients (such as simple_client) and keeps a service group\n"+
			"of their services, reported to the monitor with the group name.",
		"0  served until Ctrl-C or SIGTERM (a registration the name server has not confirmed yet is retried meanwhile, with a warning)",
		"1  could not serve: cannot listen, bad -m, or the name server refused the registration")
	cli.Parse(fs, os.Args[1:], 0)
	log := cli.Logger(*verbose)

	proto, listen, group, err := parseListen(*bind, *protoName, *mcast, fs.Changed("protocol"))
	if err != nil {
		cli.Fail(prog, cli.BadUsage(err))
	}
	if *monitor != "" {
		if *monitor, err = cli.ResolveAddressString("-m", *monitor); err != nil {
			cli.Fail(prog, err)
		}
	}
	if err := run(runConfig{
		group: *groupName, proto: proto, listen: listen, mcastGroup: group,
		monitor: *monitor, nameServer: *nameServer,
		passive: *passive, quiet: *quiet, verbose: *verbose, log: log,
	}); err != nil {
		cli.Fail(prog, err)
	}
}

// parseListen turns -B, -P and -M into the protocol and the address to
// bind; for multicast also the group to join.
func parseListen(bind, protoName, mcast string, protoGiven bool) (flow.Protocol, netip.AddrPort, netip.Addr, error) {
	listen, err := parseIPPort(bind, netip.IPv4Unspecified(), defaultPort)
	if err != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, fmt.Errorf("-B %q: %w", bind, err)
	}
	proto, err := flow.ParseProtocol(protoName)
	if err != nil || proto == flow.RawUDP {
		return 0, netip.AddrPort{}, netip.Addr{}, fmt.Errorf("-P %q: want tcp, udp or multicast", protoName)
	}
	if mcast != "" {
		if protoGiven && proto != flow.Multicast {
			return 0, netip.AddrPort{}, netip.Addr{}, fmt.Errorf("-M receives multicast, but -P says %s", proto)
		}
		proto = flow.Multicast
	}
	if proto != flow.Multicast {
		return proto, listen, netip.Addr{}, nil
	}
	if mcast == "" {
		mcast = flow.DefaultMulticastGroup.String()
	}
	g, err := parseIPPort(mcast, flow.DefaultMulticastGroup, listen.Port())
	if err != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, fmt.Errorf("-M %q: %w", mcast, err)
	}
	if !g.Addr().IsMulticast() {
		return 0, netip.AddrPort{}, netip.Addr{}, fmt.Errorf("-M %q: %v is not a multicast group (224.0.0.0/4)", mcast, g.Addr())
	}
	return proto, g, g.Addr(), nil
}

// parseIPPort parses "host[:port]" ("" or ":port" take the default ip); a
// host name is resolved to its IPv4 address.
func parseIPPort(s string, defIP netip.Addr, defPort uint16) (netip.AddrPort, error) {
	host, port, hasPort := strings.Cut(s, ":")
	ip := defIP
	if strings.ContainsAny(s, "[]") || strings.Count(s, ":") > 1 {
		host = s // flow says what is wrong: IPv6, or too many ':'
	}
	if host != "" {
		ctx, cancel := context.WithTimeout(context.Background(), cli.ResolveTimeout)
		a, err := flow.ResolveAddress(ctx, host)
		cancel()
		if err != nil {
			return netip.AddrPort{}, err
		}
		if ip, err = netip.ParseAddr(a.Host); err != nil || a.Port != 0 || a.Lookup != "" {
			return netip.AddrPort{}, fmt.Errorf("%q is not an IPv4 address or host name (want host[:port])", host)
		}
	}
	p := defPort
	if hasPort {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("bad port %q (want 0-65535)", port)
		}
		p = uint16(n)
	}
	return netip.AddrPortFrom(ip, p), nil
}

type runConfig struct {
	group      string
	proto      flow.Protocol
	listen     netip.AddrPort // multicast: group:port
	mcastGroup netip.Addr
	monitor    string
	nameServer string
	passive    bool
	quiet      bool
	verbose    bool
	log        *slog.Logger
}

// server answers data sequences and feeds the rest to the group.
type server struct {
	cfg     runConfig
	group   *smartbeat.Group
	data    atomic.Int64  // data sequences received
	failed  atomic.Int64  // replies that could not be sent
	replies atomic.Uint64 // replies sent: the user type of the next one
}

func run(cfg runConfig) error {
	ctx, cancel := cli.SignalContext()
	defer cancel()
	s := &server{cfg: cfg}

	// The client keeps the registration across reconnects, and resolves
	// -m lookup:name (so over -R's TLS, with its token). At exit there is
	// nothing left worth waiting for an absent name server to take.
	names, err := cli.DialNamesOptions(cfg.nameServer, namesvc.ClientOptions{Logger: cfg.log, Flow: flow.Options{CloseTimeout: 100 * time.Millisecond}})
	if err != nil {
		return err
	}
	fmt.Printf("Creating service group '%s'\n", cfg.group)
	g, err := smartbeat.NewGroup(cfg.group, smartbeat.GroupOptions{
		Monitor:       cfg.monitor,
		NameServer:    names,
		Sender:        smartbeat.NewSender(smartbeat.SenderOptions{Logger: cfg.log, Flow: flow.Options{TLS: cli.TLS()}}), // TLS for a tls: -m
		OnAdded:       s.added,
		OnRemoved:     s.removed,
		OnTimedOut:    s.timedOut,
		OnSmartbeat:   s.smartbeat,
		OnStateChange: s.stateChanged,
		Logger:        cfg.log,
	})
	if err != nil {
		names.Close()
		return fmt.Errorf("%w (-m says where the monitor is; \"\" for none)", err)
	}
	s.group = g

	opts := flow.Options{Handler: s.handle, Logger: cfg.log, Name: prog}
	var in flow.Flow
	switch cfg.proto {
	case flow.TCP:
		in, err = flow.ListenTCP(cfg.listen.String(), opts)
	case flow.UDP:
		in, err = flow.NewUDP(flow.UDPConfig{Bind: cfg.listen.String()}, opts)
	case flow.Multicast:
		in, err = flow.NewUDP(flow.UDPConfig{Bind: fmt.Sprintf("0.0.0.0:%d", cfg.listen.Port()), Group: cfg.mcastGroup.String()}, opts)
	}
	if err != nil {
		g.Close()
		names.Close()
		return err
	}
	addr := in.LocalAddr()
	if cfg.proto == flow.Multicast {
		addr = netip.AddrPortFrom(cfg.mcastGroup, addr.Port())
	}
	fmt.Printf("Listening on %s:%s\n", cfg.proto, addr)

	reg, listening := addr, ""
	if addr.Addr().IsUnspecified() {
		// 0.0.0.0 cannot be connected to: register the IP that faces the
		// name server, where the clients look the group up.
		reg = flow.AdvertiseAddr(addr, names.ServerAddr().Addr())
		listening = fmt.Sprintf(" (listening on %s)", addr)
	}
	rctx, rcancel := context.WithTimeout(ctx, registerTimeout)
	err = g.Register(rctx, names, reg, cfg.proto)
	rcancel()
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(os.Stderr, "%s: warning: the name server at %s has not confirmed the registration of '%s' within %v; still trying (%s)\n",
			prog, cfg.nameServer, cfg.group, registerTimeout, cli.WhyNotConnected(names, cfg.nameServer))
	case err != nil && ctx.Err() == nil:
		in.Close()
		g.Close()
		names.Close()
		return fmt.Errorf("register '%s' as %s:%s with the name server at %s: %w", cfg.group, cfg.proto, reg, cfg.nameServer, err)
	case err == nil:
		fmt.Printf("Registered '%s' as %s:%s with the name server at %s%s\n", cfg.group, cfg.proto, reg, cfg.nameServer, listening)
	}

	<-ctx.Done()
	fmt.Println("Received SIGTERM/SIGINT, exiting...")
	errs := []error{in.Close(), g.Close(), names.Close()}
	fmt.Printf("Received: %d Failed sends: %d\n", s.data.Load(), s.failed.Load())
	fmt.Printf("%s terminated\n", prog)
	return errors.Join(errs...)
}

// handle is the flow's Handler: data is answered, everything else goes to
// the service group.
func (s *server) handle(from flow.Peer, q *seq.Sequence) {
	if q.Type != seq.TypeData {
		if err := s.group.Invoke(from, q); err != nil {
			s.cfg.log.Warn("service notification not understood", "from", from.RemoteAddr(), "seq", q.Name, "err", err)
		}
		return
	}
	s.data.Add(1)
	if s.cfg.passive {
		return
	}
	r := seq.New(replyID, replyName, seq.TypeData)
	r.Add(s.replies.Add(1)-1, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	if err := from.Send(r); err != nil {
		if s.failed.Add(1) == 1 {
			s.cfg.log.Warn("reply not sent", "to", from.RemoteAddr(), "err", err)
		}
	}
}

// The group's callbacks print what C's simple_server prints.

func (s *server) added(g *smartbeat.Group, m *smartbeat.Member) {
	if !s.cfg.quiet {
		fmt.Printf("Service '%s' added to service group '%s' [state 2]\n", m.Name(), g.Name())
	}
}

func (s *server) removed(g *smartbeat.Group, m *smartbeat.Member) {
	if !s.cfg.quiet {
		fmt.Printf("Service '%s' removed from service group '%s' [state 2]\n", m.Name(), g.Name())
		fmt.Printf("Received: %d Failed sends: %d\n", s.data.Load(), s.failed.Load())
	}
}

func (s *server) timedOut(g *smartbeat.Group, m *smartbeat.Member) {
	if !s.cfg.quiet {
		fmt.Printf("Service '%s' timed out in service group '%s' (no smartbeat from %s:%s for %v)\n",
			m.Name(), g.Name(), m.Protocol(), m.Peer(), m.Service().ActivityTimeout())
	}
}

func (s *server) smartbeat(g *smartbeat.Group, m *smartbeat.Member) {
	if s.cfg.verbose && !s.cfg.quiet {
		fmt.Printf("Service '%s' group '%s' smartbeat received, checkpoint %d.\n", m.Name(), g.Name(), m.Checkpoint())
	}
}

func (s *server) stateChanged(_ *smartbeat.Group, m *smartbeat.Member, old, new smartbeat.State) {
	if !s.cfg.quiet {
		svc := m.Service()
		fmt.Printf("Service '%s' changed from state %s to %s\n", m.Name(), svc.StateName(old), svc.StateName(new))
	}
}
