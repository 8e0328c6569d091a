// Command publish registers a name and publishes sequences under it.
//
// Over TCP it listens on the -i address, registers it, waits for
// subscribers and sends every sequence to all of them. Over udp, rawudp and
// multicast it registers the address the subscribers must listen on and
// sends there. It prints how many sequences it sent and how fast.
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

const defaultPort = 29312

func main() {
	fs := pflag.NewFlagSet("publish", pflag.ContinueOnError)
	iface := fs.StringP("interface", "i", "tcp:127.0.0.1:29312", "where to publish: [tcp|udp|rawudp|multicast:]ip[:port]; tcp listens there, the others send there (multicast defaults to 224.10.10.20)")
	bind := fs.StringP("bind", "B", "", "TCP: IP to listen on (default: the -i IP; 0.0.0.0 serves every interface, and -i then says which IP to register)")
	count := fs.IntP("sequences", "s", 100, "number of sequences to send")
	batch := fs.IntP("batch", "a", 10, "sequences per batch; -p pauses between batches")
	length := fs.IntP("length", "l", 10, "element length in bytes (0 sends empty sequences)")
	pause := fs.IntP("pause", "p", 0, "milliseconds to pause between batches")
	subs := fs.IntP("wait", "w", 1, "TCP: subscribers to wait for before sending")
	delay := fs.DurationP("delay", "d", 200*time.Millisecond, "udp, rawudp, multicast: pause between registering and sending, so that subscribers already watching the name can start listening (datagrams sent before that are lost)")
	linger := fs.IntP("linger", "L", 5, "seconds the name outlives this program")
	nameServer := fs.StringP("name-server", "R", cli.DefaultNameServer, "name server: [tcp|udp:]ip[:port]")
	verbose := fs.BoolP("verbose", "v", false, "log what happens")
	cli.Usage(fs, "publish [flags] <name>", "Registers <name> and publishes sequences to its subscribers.")
	name := cli.Parse(fs, os.Args[1:], 1)[0]
	if *count < 0 || *batch < 1 || *length < 0 || *pause < 0 {
		cli.Fail("publish", fmt.Errorf("-s, -l and -p must be >= 0 and -a >= 1"))
	}
	log := cli.Logger(*verbose)

	addr, err := flow.ParseAddress(*iface)
	if err == nil && addr.Lookup != "" {
		err = fmt.Errorf("-i %s: publish needs an address, not a lookup", *iface)
	}
	if err != nil {
		cli.Fail("publish", err)
	}
	addr = addr.WithDefaults("127.0.0.1", defaultPort)
	ap, err := addr.AddrPort()
	if err != nil {
		cli.Fail("publish", err)
	}

	ctx, cancel := cli.SignalContext()
	defer cancel()
	names, err := cli.DialNames(*nameServer, "", log)
	if err != nil {
		cli.Fail("publish", err)
	}
	defer names.Close()

	var out flow.Flow
	var server *flow.TCPServer
	switch addr.Protocol {
	case flow.TCP:
		listen := ap
		if *bind != "" {
			ip, err := flow.ParseAddress(*bind)
			if err != nil {
				cli.Fail("publish", fmt.Errorf("-B: %w", err))
			}
			ip.Port = ap.Port() // the port always comes from -i
			if listen, err = ip.AddrPort(); err != nil {
				cli.Fail("publish", fmt.Errorf("-B: %w", err))
			}
		}
		if server, err = flow.ListenTCP(listen.String(), flow.Options{Logger: log, Name: "publish"}); err != nil {
			cli.Fail("publish", err)
		}
		if ap.Port() == 0 {
			ap = netip.AddrPortFrom(ap.Addr(), server.LocalAddr().Port())
		}
		out = server
	default:
		cfg := flow.UDPConfig{Destination: ap.String(), Raw: addr.Protocol == flow.RawUDP}
		if out, err = flow.NewUDP(cfg, flow.Options{Logger: log, Name: "publish"}); err != nil {
			cli.Fail("publish", err)
		}
	}

	fmt.Printf("Publishing to '%s' on %s\n", name, addr.Protocol.String()+":"+ap.String())
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	err = names.Register(rctx, namesvc.Info{
		Name:      name,
		Addresses: []namesvc.Endpoint{{Protocol: addr.Protocol.String(), Addr: ap}},
		Linger:    time.Duration(*linger) * time.Second,
		FT:        namesvc.FTActive,
	})
	rcancel()
	if err != nil {
		out.Close()
		cli.Fail("publish", fmt.Errorf("%w; %s", err, cli.NamesHint))
	}

	if server != nil && *subs > 0 {
		fmt.Printf("Waiting for %d subscriber(s)\n", *subs)
		for server.Conns() < *subs {
			select {
			case <-ctx.Done():
				out.Close()
				fmt.Println("publish: interrupted before any subscriber came")
				os.Exit(1)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}

	if server == nil && *delay > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(*delay):
		}
	}

	s := seq.New(rand.Uint64()>>33, "publish sequence", seq.TypeData)
	if *length > 0 {
		s.Add(seq.UTExampleData, payload(*length))
	}
	fmt.Printf("Sending %d sequences\n", *count)
	start := time.Now()
	sent := 0
	for sent < *count && ctx.Err() == nil {
		for range min(*batch, *count-sent) {
			if err := out.Send(s); err != nil {
				cli.Fail("publish", fmt.Errorf("send: %w", err))
			}
			sent++
		}
		if *pause > 0 {
			time.Sleep(time.Duration(*pause) * time.Millisecond)
		}
	}
	queued := time.Now()
	out.Close() // delivers what is queued
	end := time.Now()
	st := out.Stats()
	fmt.Printf("Sent %s\n", cli.Rate(int64(sent), int64(sent)*int64(*length), start, end))
	fmt.Printf("(queueing took %.6f s, delivering the rest %.6f s; %d subscriber(s) at the end, %d dropped)\n",
		queued.Sub(start).Seconds(), end.Sub(queued).Seconds(), st.Connections, st.Dropped)
}

// payload is the C publish example's element: repeated 0x0123456789abcdef,
// starting with "default data" and ending with de ad.
func payload(n int) []byte {
	p := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(p[i:], 0x0123456789abcdef)
	}
	p = p[:n]
	copy(p[:max(0, min(12, n-2))], "default data")
	if n >= 2 {
		p[n-2], p[n-1] = 0xde, 0xad
	}
	return p
}
