// Command subscribe subscribes to a name and receives what its publishers
// send.
//
// It asks the name server for every registration of the name, now and
// later, and connects to each address (TCP) or listens on it (udp, rawudp,
// multicast). It prints each sequence unless -q, and when it stops (Ctrl-C,
// or after exactly -c sequences) it prints one summary line: "Received: N
// sequences, B bytes in T s: R sequences/s, M MB/s", from the first
// sequence to the last.
//
// --accept limits whom it trusts: registrations whose address is outside
// those networks are ignored (said on standard error), and so are the
// datagrams of a UDP or multicast flow from a source outside them.
package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

const prog = "subscribe"

func main() {
	fs := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	quiet := fs.BoolP("quiet", "q", false, "do not print each sequence")
	limit := fs.Int64P("count", "c", 0, "stop after exactly this many sequences (0: run until Ctrl-C)")
	bind := fs.StringP("bind", "B", "0.0.0.0", "multicast: IP to bind the group's port on")
	group := fs.StringP("group", "G", "", "name group to look in")
	nameServer := fs.StringP("name-server", "R", cli.DefaultNameServer, "name server: [tcp|udp:]host[:port]")
	maxSize := fs.Int("max-size", seq.DefaultMaxSize, "largest sequence accepted, in bytes: a publisher sending a larger one is disconnected (TCP) or its datagrams dropped, so one cannot make this program hold more than this per connection")
	maxEndpoints := fs.Int("max-endpoints", defaultMaxEndpoints, "receive from at most this many addresses of the name; more registrations are ignored with a warning")
	accept := fs.String("accept", "", "receive only from endpoints inside these networks, comma-separated CIDRs (10.1.0.0/16,127.0.0.1): registered addresses elsewhere, and datagrams from sources elsewhere, are ignored and said on stderr (default: any)")
	verbose := fs.BoolP("verbose", "v", false, "log what happens")
	cli.Usage(fs, "subscribe [flags] <name>", "Receives the sequences published under <name>.",
		"0  received -c sequences; without -c, stopped by Ctrl-C or SIGTERM after reaching the name server",
		"1  interrupted before -c sequences came, or the name server was never reached")
	name := cli.Parse(fs, os.Args[1:], 1)[0]
	if *limit < 0 {
		cli.Fail(prog, cli.BadUsage(fmt.Errorf("-c %d: want >= 0", *limit)))
	}
	if *maxSize <= 0 || *maxEndpoints <= 0 {
		cli.Fail(prog, cli.BadUsage(fmt.Errorf("--max-size %d, --max-endpoints %d: want > 0", *maxSize, *maxEndpoints)))
	}
	acceptNets, err := cli.ParseNetworks("--accept", *accept)
	if err != nil {
		cli.Fail(prog, cli.BadUsage(err))
	}
	log := cli.Logger(*verbose)
	b, err := cli.ResolveAddress("-B", *bind)
	if err == nil && (b.Lookup != "" || b.Port != 0 || b.Host == "") {
		err = cli.BadUsage(fmt.Errorf("-B %q: want an IP address", *bind))
	}
	if err != nil {
		cli.Fail(prog, err)
	}
	bindIP, _ := b.AddrPort()

	ctx, cancel := cli.SignalContext()
	defer cancel()
	names, err := cli.DialNames(*nameServer, *group, log)
	if err != nil {
		cli.Fail(prog, err)
	}
	defer names.Close()
	var reached atomic.Bool // the name server was connected at some point
	go func() {
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		defer wcancel()
		if names.WaitConnected(wctx) == nil {
			reached.Store(true)
			return
		}
		if ctx.Err() != nil {
			return
		}
		fmt.Fprintf(os.Stderr, "%s: no name server yet at %s (%s); still trying\n", prog, *nameServer, cli.NamesHint)
		if names.WaitConnected(ctx) == nil {
			reached.Store(true)
		}
	}()

	s := &subscriber{quiet: *quiet, limit: *limit, bind: bindIP.Addr(), maxFlows: *maxEndpoints, flows: map[string]flow.Flow{}, done: make(chan struct{}),
		accept: acceptNets, acceptText: *accept, ignored: map[string]bool{}}
	s.opts = flow.Options{Logger: log, Name: prog, Handler: s.handle, MaxSequenceSize: *maxSize}
	fmt.Printf("Subscribing to '%s'\n", name)
	if _, err := names.Subscribe(name, namesvc.SubscribeOptions{}, s.connect); err != nil {
		cli.Fail(prog, err)
	}
	select {
	case <-ctx.Done():
	case <-s.done:
	}
	s.close() // returns once no handler runs: nothing is printed after the summary
	n := s.count.Load()
	fmt.Println(s.summary())
	switch {
	case *limit > 0 && n < *limit:
		cli.Fail(prog, fmt.Errorf("interrupted after %d of %d sequences", n, *limit))
	case !reached.Load() && !names.Connected():
		cli.Fail(prog, fmt.Errorf("never reached the name server at %s; %s", *nameServer, cli.NamesHint))
	}
}

// defaultMaxEndpoints bounds the addresses a subscription receives from: a
// registrant listing a thousand addresses would otherwise make every
// subscriber dial them all, for ever.
const defaultMaxEndpoints = 64

// subscriber receives on one flow per registered address.
type subscriber struct {
	quiet    bool
	limit    int64
	bind     netip.Addr
	opts     flow.Options
	maxFlows int  // addresses received from at most
	warned   bool // about addresses beyond maxFlows

	accept     []netip.Prefix // --accept; nil: any
	acceptText string         // as given, for messages
	ignoredMu  sync.Mutex
	ignored    map[string]bool // addresses and datagram sources said on stderr, at most maxIgnored

	mu     sync.Mutex
	flows  map[string]flow.Flow
	closed bool

	count, bytes     atomic.Int64 // sequences accepted (at most limit) and their bytes
	first, last      atomic.Int64 // unix nanoseconds of the first and of the last timed sequence
	lastN, lastBytes atomic.Int64 // count and bytes at last
	done             chan struct{}
	doneOnce         sync.Once
	printMu          sync.Mutex
}

// connect opens a flow to every address of a registration (name-service
// callback: must not block).
func (s *subscriber) connect(info namesvc.Info) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range info.Addresses {
		key := e.String()
		if s.closed || s.flows[key] != nil {
			continue // already receiving there; a TCP flow reconnects by itself
		}
		if !s.accepts(e.Addr.Addr()) {
			s.ignore(key, fmt.Sprintf("subscribe: ignoring %s of %q: not in --accept %s\n", key, info.Name, s.acceptText))
			continue
		}
		if len(s.flows) >= s.maxFlows {
			if !s.warned {
				s.warned = true
				fmt.Fprintf(os.Stderr, "subscribe: %q has more than %d addresses; ignoring %s and any more (--max-endpoints raises the bound)\n", info.Name, s.maxFlows, key)
			}
			continue
		}
		proto := flow.TCP
		if e.Protocol != "" {
			p, err := flow.ParseProtocol(e.Protocol)
			if err != nil {
				fmt.Fprintf(os.Stderr, "subscribe: ignoring %s: %v\n", key, err)
				continue
			}
			proto = p
		}
		var f flow.Flow
		var err error
		switch proto {
		case flow.TCP:
			f, err = flow.DialTCP(e.Addr.String(), s.opts)
		case flow.UDP, flow.RawUDP:
			f, err = flow.NewUDP(flow.UDPConfig{Bind: e.Addr.String(), Raw: proto == flow.RawUDP}, s.datagramOpts())
		case flow.Multicast:
			bind := netip.AddrPortFrom(s.bind, e.Addr.Port())
			f, err = flow.NewUDP(flow.UDPConfig{Bind: bind.String(), Group: e.Addr.Addr().String()}, s.datagramOpts())
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "subscribe: cannot receive from %s: %v\n", key, err)
			continue
		}
		s.flows[key] = f
		fmt.Printf("Receiving '%s' from %s\n", info.Name, key)
	}
}

// handle counts and prints a received sequence (flow callback; the flows
// call it concurrently). Past -c it drops the sequence: exactly -c are
// counted and printed.
func (s *subscriber) handle(p flow.Peer, q *seq.Sequence) {
	// A TCP peer is an address connect accepted; a datagram's source can
	// be anyone who reaches the port.
	if s.accept != nil && p.Protocol() != flow.TCP {
		if src := p.RemoteAddr(); !s.accepts(src.Addr()) {
			s.ignore("from "+src.Addr().String(), fmt.Sprintf("subscribe: ignoring datagrams from %v: not in --accept %s\n", src.Addr(), s.acceptText))
			return
		}
	}
	var n int64
	for {
		c := s.count.Load()
		if s.limit > 0 && c >= s.limit {
			return
		}
		if s.count.CompareAndSwap(c, c+1) {
			n = c + 1
			break
		}
	}
	b := s.bytes.Add(int64(q.Size()))
	// time.Now costs about 55 ns: timing every sequence of a quiet run cut
	// its rate by a fifth or more at 3 M/s. Printing costs far more.
	if !s.quiet || n == 1 || n%256 == 0 || n == s.limit {
		now := time.Now().UnixNano()
		if n == 1 {
			s.first.Store(now)
		}
		s.last.Store(now)
		s.lastN.Store(n)
		s.lastBytes.Store(b)
	}
	if !s.quiet {
		s.printMu.Lock()
		fmt.Printf("Received sequence %#x %q type %v, %d element(s), %d bytes\n", q.ID, q.Name, q.Type, len(q.Elements), q.Size())
		s.printMu.Unlock()
	}
	if n == s.limit {
		s.doneOnce.Do(func() { close(s.done) })
	}
}

// maxIgnored bounds the addresses the ignored messages remember: past it,
// further ones are ignored silently.
const maxIgnored = 1024

// accepts reports whether ip is inside --accept (any ip without it).
func (s *subscriber) accepts(ip netip.Addr) bool {
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

// ignore prints msg on stderr the first time key is ignored.
func (s *subscriber) ignore(key, msg string) {
	s.ignoredMu.Lock()
	first := !s.ignored[key] && len(s.ignored) < maxIgnored
	if first {
		s.ignored[key] = true
	}
	s.ignoredMu.Unlock()
	if first {
		fmt.Fprint(os.Stderr, msg)
	}
}

// summary is the one summary line: exact counts, and the rate from the
// first sequence to the last one timed (the last one unless a quiet run was
// interrupted).
func (s *subscriber) summary() string {
	n, b, tn, tb := s.count.Load(), s.bytes.Load(), s.lastN.Load(), s.lastBytes.Load()
	first, last := time.Unix(0, s.first.Load()), time.Unix(0, s.last.Load())
	if tn == n {
		return "Received: " + cli.Rate(n, b, first, last)
	}
	return fmt.Sprintf("Received: %d sequences, %d bytes; the first %s", n, b, cli.Rate(tn, tb, first, last))
}

func (s *subscriber) close() {
	s.mu.Lock()
	s.closed = true
	flows := s.flows
	s.mu.Unlock()
	for _, f := range flows {
		f.Close()
	}
}

// datagramReceiveBuffer is the socket receive buffer asked for UDP flows: a
// publisher bursts faster than one reader drains, and with the system's
// default (about 208 KiB) a burst of a million sequences lost 9 % here;
// with 4 MiB none. TCP flows keep the system's auto-tuned buffer.
const datagramReceiveBuffer = 4 << 20

// datagramOpts are the flow options of a UDP, raw UDP or multicast flow.
func (s *subscriber) datagramOpts() flow.Options {
	o := s.opts
	o.ReceiveBuffer = datagramReceiveBuffer
	return o
}
