// Command subscribe subscribes to a name and receives what its publishers
// send.
//
// It asks the name server for every registration of the name, now and
// later, and connects to each address (TCP) or listens on it (udp, rawudp,
// multicast). It prints each sequence unless -q, and when it stops (Ctrl-C,
// or after -c sequences) it prints "Received: N" and the rate from the first
// sequence to the last.
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

func main() {
	fs := pflag.NewFlagSet("subscribe", pflag.ContinueOnError)
	quiet := fs.BoolP("quiet", "q", false, "do not print each sequence")
	limit := fs.Int64P("count", "c", 0, "stop after this many sequences (0: run until Ctrl-C)")
	bind := fs.StringP("bind", "B", "0.0.0.0", "multicast: IP to bind the group's port on")
	group := fs.StringP("group", "G", "", "name group to look in")
	nameServer := fs.StringP("name-server", "R", cli.DefaultNameServer, "name server: [tcp|udp:]ip[:port]")
	verbose := fs.BoolP("verbose", "v", false, "log what happens")
	cli.Usage(fs, "subscribe [flags] <name>", "Receives the sequences published under <name>.")
	name := cli.Parse(fs, os.Args[1:], 1)[0]
	log := cli.Logger(*verbose)
	bindIP, err := netip.ParseAddr(*bind)
	if err != nil {
		cli.Fail("subscribe", fmt.Errorf("-B %q: not an IP address", *bind))
	}

	ctx, cancel := cli.SignalContext()
	defer cancel()
	names, err := cli.DialNames(*nameServer, *group, log)
	if err != nil {
		cli.Fail("subscribe", err)
	}
	defer names.Close()

	s := &subscriber{quiet: *quiet, limit: *limit, bind: bindIP, flows: map[string]flow.Flow{}, done: make(chan struct{})}
	s.opts = flow.Options{Logger: log, Name: "subscribe", Handler: s.handle}
	fmt.Printf("Subscribing to '%s'\n", name)
	if _, err := names.Subscribe(name, namesvc.SubscribeOptions{}, s.connect); err != nil {
		cli.Fail("subscribe", err)
	}
	go func() {
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		defer wcancel()
		if names.WaitConnected(wctx) != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "subscribe: no name server yet at %s (%s); still trying\n", *nameServer, cli.NamesHint)
		}
	}()
	select {
	case <-ctx.Done():
	case <-s.done:
	}
	s.close()
	fmt.Printf("Received: %d\n", s.count.Load())
	fmt.Printf("Received %s\n", cli.Rate(s.lastN.Load(), s.lastBytes.Load(), time.Unix(0, s.first.Load()), time.Unix(0, s.last.Load())))
}

// subscriber receives on one flow per registered address.
type subscriber struct {
	quiet bool
	limit int64
	bind  netip.Addr
	opts  flow.Options

	mu     sync.Mutex
	flows  map[string]flow.Flow
	closed bool

	count, bytes     atomic.Int64
	first, last      atomic.Int64 // unix nanoseconds of the first and of a recent sequence
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

// handle counts a received sequence (flow callback).
func (s *subscriber) handle(_ flow.Peer, q *seq.Sequence) {
	n := s.count.Add(1)
	b := s.bytes.Add(int64(q.Size()))
	if n == 1 || n%256 == 0 || n == s.limit {
		now := time.Now().UnixNano() // not every sequence: time.Now would cost a tenth of the budget
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
