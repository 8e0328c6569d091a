// Command subscribe subscribes to a name and receives what its publishers
// send.
//
// It asks the name server for every registration of the name, now and
// later, and connects to each address (TCP) or listens on it (udp, rawudp,
// multicast). It prints each sequence unless -q, and when it stops (Ctrl-C,
// or after exactly -c sequences) it prints one summary line: "Received: N
// sequences, B bytes in T s: R sequences/s, M MB/s", from the first
// sequence to the last, and a "Lost: ..." line when its UDP flows noticed
// loss (see flow.Stats: sequences given up or missing, fragments, datagrams
// dropped by a full receive buffer).
//
// --accept limits whom it trusts: registrations whose address is outside
// those networks are ignored (said on standard error), and so are the
// datagrams of a UDP or multicast flow from a source outside them.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/seq"
)

const prog = "subscribe"

func main() {
	fs := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	quiet := fs.BoolP("quiet", "q", false, "do not print each sequence")
	limit := fs.Int64P("count", "c", 0, "stop after exactly this many sequences (0: run until Ctrl-C)")
	bind := fs.StringP("bind", "B", "0.0.0.0", "multicast: IP to bind the group's port on")
	group := fs.StringP("group", "G", "", "name group to look in")
	nameServer := fs.StringP("name-server", "R", cli.DefaultNameServer, "name server: [tcp|udp|tls:]host[:port] (tls: with --tls-ca, --tls-cert, --tls-key)")
	maxSize := fs.Int("max-size", seq.DefaultMaxSize, "largest sequence accepted, in bytes: a publisher sending a larger one is disconnected (TCP) or its datagrams dropped, so one cannot make this program hold more than this per connection")
	maxEndpoints := fs.Int("max-endpoints", stk.DefaultMaxEndpoints, "receive from at most this many addresses of the name; more registrations are ignored with a warning")
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
	env, err := cli.Connect(*nameServer, stk.Options{Group: *group, Logger: log})
	if err != nil {
		cli.Fail(prog, err)
	}
	defer env.Close()
	var reached atomic.Bool // the name server was connected at some point
	go func() {
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		defer wcancel()
		if env.WaitConnected(wctx) == nil {
			reached.Store(true)
			return
		}
		if ctx.Err() != nil {
			return
		}
		fmt.Fprintf(os.Stderr, "%s: no name server yet at %s (%s); still trying\n", prog, *nameServer, cli.WhyNotConnected(env.Names(), *nameServer))
		if env.WaitConnected(ctx) == nil {
			reached.Store(true)
		}
	}()

	s := &subscriber{quiet: *quiet, limit: *limit, maxEndpoints: *maxEndpoints, done: make(chan struct{}),
		acceptText: *accept, ignored: map[string]bool{}}
	fmt.Printf("Subscribing to '%s'\n", name)
	sub, err := env.Subscribe(name, s.handle, stk.SubscribeOptions{
		MaxSequenceSize: *maxSize, MaxEndpoints: *maxEndpoints,
		Accept: acceptNets, MulticastBind: bindIP.Addr(), OnEndpoint: s.endpoint,
	})
	if err != nil {
		cli.Fail(prog, err)
	}
	select {
	case <-ctx.Done():
	case <-s.done:
	}
	st := sub.Stats() // before Close, which forgets the flows
	sub.Close()       // returns once no handler runs: nothing is printed after the summary
	n := s.count.Load()
	fmt.Println(s.summary())
	if st.LostSequences+st.LostFragments+st.ReceiveDrops > 0 {
		fmt.Printf("Lost: %d sequences (%d fragments of incomplete ones), %d datagrams dropped by a full receive buffer\n",
			st.LostSequences, st.LostFragments, st.ReceiveDrops)
	}
	switch {
	case *limit > 0 && n < *limit:
		cli.Fail(prog, fmt.Errorf("interrupted after %d of %d sequences", n, *limit))
	case !reached.Load() && !env.Connected():
		cli.Fail(prog, fmt.Errorf("never reached the name server at %s; %s", *nameServer, cli.WhyNotConnected(env.Names(), *nameServer)))
	}
}

// subscriber counts and prints what its subscription receives. stk calls
// handle one sequence at a time.
type subscriber struct {
	quiet        bool
	limit        int64
	maxEndpoints int
	warned       bool // about addresses beyond --max-endpoints

	acceptText string          // --accept as given, for messages
	ignoredMu  sync.Mutex      // endpoint runs on the name client's goroutine, datagram refusals on the flows'
	ignored    map[string]bool // addresses and datagram sources said on stderr, at most maxIgnored

	count, bytes     atomic.Int64 // sequences accepted (at most limit) and their bytes
	first, last      atomic.Int64 // unix nanoseconds of the first and of the last timed sequence
	lastN, lastBytes atomic.Int64 // count and bytes at last
	done             chan struct{}
	doneOnce         sync.Once
}

// endpoint says what happens to the publisher addresses, as STK's C
// subscribe does.
func (s *subscriber) endpoint(ev stk.EndpointEvent) {
	key := ev.Endpoint.String()
	switch ev.Kind {
	case stk.EndpointOpened:
		fmt.Printf("Receiving '%s' from %s\n", ev.Name, key)
	case stk.EndpointRefused:
		s.ignore(key, fmt.Sprintf("subscribe: ignoring %s of %q: not in --accept %s\n", key, ev.Name, s.acceptText))
	case stk.DatagramRefused:
		src := ev.Endpoint.Addr.Addr()
		s.ignore("from "+src.String(), fmt.Sprintf("subscribe: ignoring datagrams from %v: not in --accept %s\n", src, s.acceptText))
	case stk.EndpointTooMany:
		if !s.warned {
			s.warned = true
			fmt.Fprintf(os.Stderr, "subscribe: %q has more than %d addresses; ignoring %s and any more (--max-endpoints raises the bound)\n", ev.Name, s.maxEndpoints, key)
		}
	case stk.EndpointSkipped:
		fmt.Fprintf(os.Stderr, "subscribe: ignoring %s: %v\n", key, ev.Err)
	case stk.EndpointFailed:
		fmt.Fprintf(os.Stderr, "subscribe: cannot receive from %s: %v\n", key, ev.Err)
	}
}

// handle counts and prints a received sequence. Past -c it drops the
// sequence: exactly -c are counted and printed.
func (s *subscriber) handle(q *seq.Sequence) {
	n := s.count.Load()
	if s.limit > 0 && n >= s.limit {
		return
	}
	n++
	s.count.Store(n)
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
		fmt.Printf("Received sequence %#x %q type %v, %d element(s), %d bytes\n", q.ID, q.Name, q.Type, len(q.Elements), q.Size())
	}
	if n == s.limit {
		s.doneOnce.Do(func() { close(s.done) })
	}
}

// maxIgnored bounds the addresses the ignored messages remember: past it,
// further ones are ignored silently.
const maxIgnored = 1024

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
