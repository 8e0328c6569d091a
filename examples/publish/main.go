// Command publish registers a name and publishes sequences under it.
//
// Over TCP it listens on the -i address, registers it, waits for
// subscribers and sends every sequence to all of them. Over udp, rawudp and
// multicast it registers the address the subscribers must listen on and
// sends there. It prints how many sequences it sent and how fast.
//
// Listening on every interface (-B 0.0.0.0, or -i tcp:0.0.0.0), it
// registers the address other hosts reach it at: flow.AdvertiseIP toward
// the name server, unless -i names the IP to register.
package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/seq"
)

const (
	prog        = "publish"
	defaultPort = 29312
)

// subscriberInputMax bounds a sequence a subscriber sends the publisher
// (ignored anyway): a peer claiming more is disconnected before it costs
// memory.
const subscriberInputMax = 64 << 10

func main() {
	fs := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	iface := fs.StringP("interface", "i", "tcp:127.0.0.1:29312", "where to publish: [tcp|udp|rawudp|multicast:]host[:port]; tcp listens there (port 0: a free one), the others send there (multicast defaults to 224.10.10.20)")
	bind := fs.StringP("bind", "B", "", "TCP: IP to listen on (default: the -i IP; 0.0.0.0 serves every interface and registers the IP facing the name server, unless -i names the IP to register)")
	count := fs.IntP("sequences", "s", 100, "number of sequences to send")
	batch := fs.IntP("batch", "a", 10, "sequences per batch; -p pauses between batches")
	length := fs.IntP("length", "l", 10, "element length in bytes (0 sends empty sequences)")
	pause := fs.IntP("pause", "p", 0, "milliseconds to pause between batches")
	subs := fs.IntP("wait", "w", 1, "TCP: subscribers to wait for before sending")
	delay := fs.DurationP("delay", "d", 200*time.Millisecond, "udp, rawudp, multicast: pause between registering and sending, so that subscribers already watching the name can start listening (datagrams sent before that are lost)")
	linger := fs.IntP("linger", "L", 5, "seconds the name outlives this program")
	nameServer := fs.StringP("name-server", "R", cli.DefaultNameServer, "name server: [tcp|udp|tls:]host[:port] (tls: with --tls-ca, --tls-cert, --tls-key)")
	verbose := fs.BoolP("verbose", "v", false, "log what happens")
	cli.Usage(fs, "publish [flags] <name>", "Registers <name> and publishes sequences to its subscribers.",
		"0  registered <name> and sent every sequence: over TCP to the subscribers connected (one that leaves early loses the rest), over udp, rawudp and multicast to the network",
		"1  it did not: cannot listen or send, the name server did not confirm the registration, interrupted, no TCP subscriber was there, a subscriber was cut off for reading too slowly, or datagrams were not sent")
	name := cli.Parse(fs, os.Args[1:], 1)[0]
	if *count < 0 || *batch < 1 || *length < 0 || *pause < 0 || *subs < 0 {
		cli.Fail(prog, cli.BadUsage(fmt.Errorf("-s, -l, -p and -w must be >= 0 and -a >= 1")))
	}
	log := cli.Logger(*verbose)

	addr, err := cli.ResolveAddress("-i", *iface)
	if err == nil && addr.Lookup != "" {
		err = cli.BadUsage(fmt.Errorf("-i %s: publish needs an address, not a lookup", *iface))
	}
	if err != nil {
		cli.Fail(prog, err)
	}
	// -i names the IP to register unless it was left out (or to default).
	ipGiven := fs.Changed("interface") && addr.Host != ""
	freePort := addr.Protocol == flow.TCP && portZero(*iface) // a free one, not the default
	addr = addr.WithDefaults("127.0.0.1", defaultPort)
	ap, err := addr.AddrPort()
	if err != nil {
		cli.Fail(prog, cli.BadUsage(fmt.Errorf("-i: %w", err)))
	}
	if freePort {
		ap = netip.AddrPortFrom(ap.Addr(), 0)
	}
	listen := ap
	if *bind != "" {
		b, err := cli.ResolveAddress("-B", *bind)
		if err == nil && (b.Lookup != "" || b.Host == "") {
			err = cli.BadUsage(fmt.Errorf("-B %q: want an IP address", *bind))
		}
		if err != nil {
			cli.Fail(prog, err)
		}
		b.Port = ap.Port() // the port always comes from -i
		listen, _ = b.AddrPort()
		if !ipGiven {
			ap = listen
		}
	}

	ctx, cancel := cli.SignalContext()
	defer cancel()
	env, err := cli.Connect(*nameServer, stk.Options{Logger: log, Flow: flow.Options{
		// Subscribers send nothing: whatever one does send is read and
		// dropped, so it needs no more room than a small sequence, and a
		// frame left half-sent only holds a slot until it is cut.
		MaxSequenceSize: subscriberInputMax, FrameTimeout: 10 * time.Second}})
	if err != nil {
		cli.Fail(prog, err)
	}
	defer env.Close()

	popts := stk.PublishOptions{
		Listen: addr.Protocol.String() + ":" + listen.String(),
		// Like STK's C programs, the name outlives this one for -L.
		Linger: time.Duration(*linger) * time.Second, KeepOnClose: true,
		// What a name server that never answers costs: the error below.
		RegisterWait: 5 * time.Second,
	}
	if popts.Linger == 0 {
		popts.Linger = -1 // 0 is stk's default: -L 0 means none
	}
	if addr.Protocol == flow.TCP && ap.Addr() != listen.Addr() && !ap.Addr().IsUnspecified() {
		popts.AdvertiseIP = ap.Addr()
	}
	pub, err := env.Publish(name, popts)
	if err != nil {
		var listenErr *net.OpError
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			err = fmt.Errorf("%w (another publisher there? -i tcp:127.0.0.1:0 picks a free port)", err)
		case !errors.As(err, &listenErr):
			err = fmt.Errorf("register %s with the name server at %s: %w", name, *nameServer, err)
			if last := cli.LastAttempt(env.Names(), *nameServer); last != "" {
				err = fmt.Errorf("%w; %s", err, last)
			}
		}
		cli.Fail(prog, err)
	}
	tcp := addr.Protocol == flow.TCP
	where := pub.Addr().String()
	if tcp && pub.LocalAddr() != pub.Addr().Addr {
		where += fmt.Sprintf(" (listening on %s)", pub.LocalAddr())
	}
	fmt.Printf("Publishing to '%s' on %s\n", name, where)

	if tcp && *subs > 0 {
		fmt.Printf("Waiting for %d subscriber(s)\n", *subs)
		if err := pub.WaitSubscribers(ctx, *subs); err != nil {
			n := pub.Subscribers()
			pub.Close()
			cli.Fail(prog, fmt.Errorf("interrupted while waiting for subscribers (%d of %d came)", n, *subs))
		}
	}

	if !tcp && *delay > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(*delay):
		}
	}

	s := seq.New(rand.Uint64()>>33, "publish sequence", seq.TypeData)
	if *length > 0 {
		s.Add(seq.UTExampleData, cli.ExamplePayload(*length))
	}
	fmt.Printf("Sending %d sequences\n", *count)
	start := time.Now()
	sent := 0
	for sent < *count && ctx.Err() == nil {
		for range min(*batch, *count-sent) {
			if err := pub.Send(s); err != nil {
				pub.Close()
				cli.Fail(prog, fmt.Errorf("send: %w", err))
			}
			sent++
		}
		if *pause > 0 {
			time.Sleep(time.Duration(*pause) * time.Millisecond)
		}
	}
	queued := time.Now()
	subscribed, leftEarly := pub.SubscriberCounts() // Close ends every connection: count those that left before
	pub.Close()                                     // delivers what is queued
	end := time.Now()
	st := pub.Stats()
	fmt.Printf("Sent %s\n", cli.Rate(int64(sent), int64(sent)*int64(*length), start, end))
	if tcp {
		fmt.Printf("(queueing took %.6f s, delivering the rest %.6f s; %d subscriber(s), %d left before the end, %d dropped)\n",
			queued.Sub(start).Seconds(), end.Sub(queued).Seconds(), subscribed, leftEarly, st.Dropped)
	} else {
		fmt.Printf("(queueing took %.6f s, sending the rest %.6f s; %d sent, %d dropped, %d pauses pacing large sequences)\n",
			queued.Sub(start).Seconds(), end.Sub(queued).Seconds(), st.SequencesOut, st.Dropped, st.Paced)
	}

	switch {
	case sent < *count:
		cli.Fail(prog, fmt.Errorf("interrupted after %d of %d sequences", sent, *count))
	case tcp && subscribed == 0 && *count > 0:
		cli.Fail(prog, fmt.Errorf("no subscriber connected: the %d sequences went nowhere (-w waits for subscribers)", sent))
	case tcp && st.SlowConsumers > 0:
		cli.Fail(prog, fmt.Errorf("%d subscriber(s) cut off for not reading fast enough (-p slows the publisher down)", st.SlowConsumers))
	case !tcp && st.Dropped > 0:
		cli.Fail(prog, fmt.Errorf("%d of %d sequences not sent to %s (see the warning above: no route to it?)", st.Dropped, sent, where))
	}
}

// portZero reports whether the address string s ends in an explicit port
// 0 ("tcp:127.0.0.1:0"), which WithDefaults cannot tell from no port.
func portZero(s string) bool {
	parts := strings.Split(s, ":")
	if _, err := flow.ParseProtocol(parts[0]); err == nil {
		parts = parts[1:]
	}
	return len(parts) == 2 && parts[1] != "" && strings.Trim(parts[1], "0") == ""
}
