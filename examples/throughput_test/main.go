// Command throughput_test sends sequences to a server and measures how fast
// they go out and, over TCP, how fast the server's replies come back.
//
// It sends -s sequences ("throughput_test sequence", one -l byte element of
// user type 0x135, or none for -l 0) in batches of -a, pausing -p
// milliseconds between batches. Over TCP it then waits for one reply per
// sequence, as the C simple_server sends ("simple_server_return_data"), and
// prints the send rate (until the last sequence was written to the socket)
// and the reply rate (until the last reply arrived). With -0 it does not
// wait: it prints the send rate once everything was delivered. Over udp,
// rawudp and multicast there is no reply path, so it always behaves as with
// -0. An address "lookup:name" is resolved through the name server (-R): the
// first address of the answer gives the protocol, ip and port.
//
// The C program also reports itself as a service to a monitor (-S service
// name, -m monitor, custom states "sending" and "waiting"). Service reporting
// arrives with the smartbeat package; until then this program has no such
// flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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

const (
	prog        = "throughput_test"
	defaultPort = 29312
)

func main() {
	fs := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	iface := fs.StringP("interface", "i", "tcp:127.0.0.1:29312", "server: lookup:name, or [tcp|udp|rawudp|multicast:]host[:port] (port 29312 if left out; multicast defaults to 224.10.10.20)")
	length := fs.IntP("length", "l", 0, "element length in bytes; 0 sends sequences without elements (rawudp sends at least 1 byte: an empty sequence sends no datagram)")
	count := fs.IntP("sequences", "s", 100, "number of sequences to send")
	batch := fs.IntP("batch", "a", 10, "sequences per batch; -p pauses between batches")
	pause := fs.IntP("pause", "p", 0, "milliseconds to pause between batches")
	passive := fs.BoolP("passive", "0", false, "TCP: do not wait for replies (udp, rawudp and multicast never wait)")
	timeout := fs.DurationP("timeout", "t", 10*time.Second, "give up connecting, looking up, or waiting for replies after this long without progress")
	nameServer := fs.StringP("name-server", "R", cli.DefaultNameServer, "name server for -i lookup:name: [tcp|udp|tls:]host[:port] (tls: with --tls-ca, --tls-cert, --tls-key)")
	verbose := fs.BoolP("verbose", "v", false, "log what happens")
	cli.Usage(fs, prog+" [flags]", "Sends sequences to a server (such as simple_server) and measures the send rate and, over TCP, the rate of its replies.",
		"0  sent -s sequences: over TCP it got a reply to each (-0: delivered them all); over udp, rawudp and multicast the system sent them all",
		"1  it did not: the lookup, the connection or a send failed, replies are missing, sequences were dropped, or interrupted")
	cli.Parse(fs, os.Args[1:], 0)
	if *count < 0 || *batch < 1 || *length < 0 || *pause < 0 || *timeout <= 0 {
		cli.Fail(prog, cli.BadUsage(fmt.Errorf("-s, -l and -p must be >= 0, -a >= 1 and -t > 0")))
	}
	log := cli.Logger(*verbose)

	ctx, cancel := cli.SignalContext()
	defer cancel()
	proto, ap, err := resolve(ctx, *iface, *nameServer, *timeout, log)
	if err != nil {
		cli.Fail(prog, err)
	}
	if proto == flow.RawUDP && *length == 0 {
		*length = 1
	}
	opts := flow.Options{Logger: log, Name: prog}
	target := proto.String() + ":" + ap.String()

	s := seq.New(uint64(rand.Uint32()), "throughput_test sequence", seq.TypeData)
	if *length > 0 {
		s.Add(seq.UTExampleData, payload(*length))
	}
	total := int64(*count)

	if proto != flow.TCP {
		out, err := flow.NewUDP(flow.UDPConfig{Destination: ap.String(), Raw: proto == flow.RawUDP}, opts)
		if err != nil {
			cli.Fail(prog, err)
		}
		fmt.Printf("Sending %d sequences of %d bytes to %s\n", total, *length, target)
		start := time.Now()
		sent, err := send(ctx, out, s, total, *batch, *pause)
		end := time.Now()
		out.Close()
		if err != nil {
			cli.Fail(prog, err)
		}
		st := out.Stats()
		fmt.Printf("Sent %s\n", cli.Rate(sent, sent*int64(*length), start, end))
		switch {
		case st.Dropped > 0:
			cli.Fail(prog, fmt.Errorf("%d of %d sequences not sent to %s (see the warning above: no route to it?)", st.Dropped, sent, target))
		case sent < total:
			cli.Fail(prog, fmt.Errorf("interrupted after %d of %d sequences", sent, total))
		}
		return
	}

	m := &meter{want: total, done: make(chan struct{})}
	if !*passive {
		opts.Handler = m.handle
	}
	c, err := flow.DialTCP(ap.String(), opts)
	if err != nil {
		cli.Fail(prog, err)
	}
	cctx, ccancel := context.WithTimeout(ctx, *timeout)
	err = c.WaitConnected(cctx)
	ccancel()
	if err != nil {
		c.Close()
		if ctx.Err() != nil {
			cli.Fail(prog, errors.New("interrupted while connecting"))
		}
		cli.Fail(prog, fmt.Errorf("cannot connect to %s within %v: is the server running?", target, *timeout))
	}

	fmt.Printf("Sending %d sequences of %d bytes to %s\n", total, *length, target)
	start := time.Now()
	sent, err := send(ctx, c, s, total, *batch, *pause)
	if err != nil {
		c.Close()
		cli.Fail(prog, err)
	}
	if *passive {
		c.Close() // delivers what is queued
		end := time.Now()
		st := c.Stats()
		fmt.Printf("Sent %s\n", cli.Rate(int64(st.SequencesOut), int64(st.SequencesOut)*int64(*length), start, end))
		switch {
		case st.Dropped > 0:
			cli.Fail(prog, fmt.Errorf("%d of %d sequences not delivered to %s (connection lost?)", st.Dropped, sent, target))
		case sent < total:
			cli.Fail(prog, fmt.Errorf("interrupted after %d of %d sequences", sent, total))
		}
		return
	}

	written, complete := m.wait(ctx, c, sent, *timeout)
	c.Close()
	if !written.IsZero() {
		fmt.Printf("Sent %s\n", cli.Rate(sent, sent*int64(*length), start, written))
	} else {
		st := c.Stats()
		fmt.Printf("Sent %d sequences, %d written before giving up\n", sent, st.SequencesOut)
	}
	fmt.Printf("Replies: %d of %d\n", m.n.Load(), sent)
	fmt.Printf("Received %s\n", cli.Rate(m.lastN.Load(), m.lastBytes.Load(), start, time.Unix(0, m.last.Load())))
	switch {
	case !complete && ctx.Err() == nil:
		cli.Fail(prog, fmt.Errorf("%d of %d replies missing: none came for %v", sent-m.n.Load(), sent, *timeout))
	case !complete || sent < total:
		cli.Fail(prog, fmt.Errorf("interrupted after %d of %d sequences and %d replies", sent, total, m.n.Load()))
	}
}

// resolve turns -i into a protocol and address, asking the name server
// for a lookup:name address.
func resolve(ctx context.Context, iface, nameServer string, timeout time.Duration, log *slog.Logger) (flow.Protocol, netip.AddrPort, error) {
	addr, err := cli.ResolveAddress("-i", iface)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	if addr.Lookup == "" {
		ap, err := addr.WithDefaults("127.0.0.1", defaultPort).AddrPort()
		return addr.Protocol, ap, err
	}
	names, err := cli.DialNames(nameServer, "", log)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	defer names.Close()
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	info, err := names.LookupOnce(lctx, addr.Lookup, namesvc.LookupOptions{})
	if err != nil {
		err = cli.NotConnected(names, nameServer, err)
		return 0, netip.AddrPort{}, fmt.Errorf("lookup %s: %w", addr.Lookup, err)
	}
	if len(info.Addresses) == 0 {
		return 0, netip.AddrPort{}, fmt.Errorf("lookup %s: the registration has no address", addr.Lookup)
	}
	e := info.Addresses[0]
	proto := flow.TCP
	if e.Protocol != "" {
		if proto, err = flow.ParseProtocol(e.Protocol); err != nil {
			return 0, netip.AddrPort{}, fmt.Errorf("lookup %s: %w", addr.Lookup, err)
		}
	}
	fmt.Printf("Name %s is at %s\n", addr.Lookup, e)
	return proto, e.Addr, nil
}

// send sends s total times in batches, pausing between them, until done or
// ctx ends, and returns how many it sent.
func send(ctx context.Context, out flow.Flow, s *seq.Sequence, total int64, batch, pause int) (int64, error) {
	var sent int64
	for sent < total && ctx.Err() == nil {
		for range min(int64(batch), total-sent) {
			if err := out.Send(s); err != nil {
				return sent, fmt.Errorf("send: %w", err)
			}
			sent++
		}
		if pause > 0 && sent < total {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(pause) * time.Millisecond):
			}
		}
	}
	return sent, nil
}

// meter counts the replies (flow Handler) and keeps the time of a recent
// one.
type meter struct {
	want             int64
	n, bytes         atomic.Int64
	last             atomic.Int64 // unix nanoseconds of a recent reply
	lastN, lastBytes atomic.Int64 // count and bytes at last
	done             chan struct{}
	once             sync.Once
}

func (m *meter) handle(_ flow.Peer, q *seq.Sequence) {
	n := m.n.Add(1)
	b := m.bytes.Add(int64(q.Size()))
	if n == 1 || n%256 == 0 || n == m.want {
		// Not every reply: time.Now would cost a good part of the budget.
		m.last.Store(time.Now().UnixNano())
		m.lastN.Store(n)
		m.lastBytes.Store(b)
	}
	if n == m.want {
		m.once.Do(func() { close(m.done) })
	}
}

// wait waits for sent replies, or until neither a write nor a reply has
// happened for idle, or ctx ends. It returns when the flow had written all
// sent sequences, as seen by polling every millisecond (zero if it had not),
// and whether every reply came.
func (m *meter) wait(ctx context.Context, c *flow.TCPClient, sent int64, idle time.Duration) (written time.Time, complete bool) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	progress, since := int64(-1), time.Now()
	for {
		now := time.Now()
		out := int64(c.Stats().SequencesOut)
		n := m.n.Load()
		if n >= sent {
			if written.IsZero() {
				// The last reply came before this loop saw the last
				// write, which happened before that reply.
				written = time.Unix(0, m.last.Load())
			}
			return written, true
		}
		if written.IsZero() && out >= sent {
			written = now
		}
		if p := out + n; p != progress {
			progress, since = p, now
		} else if now.Sub(since) >= idle {
			return written, false
		}
		select {
		case <-ctx.Done():
			return written, false
		case <-m.done:
		case <-tick.C:
		}
	}
}

// payload is an element of n bytes counting up from 0.
func payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i)
	}
	return p
}
