// Command simple_client is a client of simple_server that is also a
// monitored service, whose notifications travel on its data connection.
//
// It looks the server's service group name up (-i lookup:name) and
// connects to the address registered there. It then creates a service (-S)
// whose notification flow is that data connection and whose monitoring
// flow is the monitor (-m): its CREATE, STATE, DESTROY and smartbeats go
// both to the monitor and, in-band, to the server, whose service group
// mirrors the service (docs/protocol.md §8.6). It sets the service running,
// sends -s "simple_client sequence" sequences (id 0xfedcba98, one element
// "sequence N\0" of user type 0x135), waits for the server's replies (the
// checkpoint counts them), optionally stays up for -w, sets the service
// stopping and closes it.
//
// Unlike the C program it also takes a server address, [tcp|udp|multicast:]
// ip[:port], and talks STK-UDP to a server that registered udp or
// multicast. The C program exits with status 5 for any -i that is not a
// lookup; this one does for addresses it cannot use (rawudp). It sends
// exactly -s sequences (C rounds down to a multiple of 5).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
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
	prog        = "simple_client"
	defaultPort = 29312

	seqID   = 0xfedcba98
	seqName = "simple_client sequence"
)

// exitBadServer is C's exit status for an -i it cannot use.
const exitBadServer = 5

func main() {
	fs := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	iface := fs.StringP("interface", "i", "lookup:Simple Server Service Group", "server: lookup:name (the service group name simple_server registers), or [tcp|udp|multicast:]host[:port] (port 29312 if left out)")
	count := fs.IntP("sequences", "s", 100, "number of sequences to send")
	name := fs.StringP("service-name", "S", "simple_client service", "service name")
	monitor := fs.StringP("monitor", "m", "tcp:127.0.0.1:20001", "monitor: lookup:name or [tcp|udp|multicast|tls:]host[:port] (tls: with --tls-ca, --tls-cert, --tls-key); \"\" for none (the server still gets the notifications)")
	nameServer := fs.StringP("name-server", "R", cli.DefaultNameServer, "name server for lookup: addresses: [tcp|udp|tls:]host[:port] (tls: with --tls-ca, --tls-cert, --tls-key)")
	activity := fs.Duration("activity-timeout", smartbeat.DefaultActivityTimeout, "the service's activity timeout: receivers declare it failed after this long without a smartbeat (at least the 500ms smartbeat period)")
	wait := fs.DurationP("wait", "w", 0, "stay running this long after the last reply before stopping (Ctrl-C ends the wait)")
	timeout := fs.DurationP("timeout", "t", 10*time.Second, "give up looking up, connecting, or waiting for replies after this long without progress")
	quiet := fs.BoolP("quiet", "q", false, "quiet: print only the result")
	verbose := fs.BoolP("verbose", "v", false, "log what happens")
	cli.Usage(fs, prog+" [flags]",
		"Sends sequences to simple_server and counts its replies, as a service whose notifications\n"+
			"travel on the data connection: the server's service group mirrors it.",
		"0  sent -s sequences and got a reply to each",
		"1  it did not: the lookup, the connection or a send failed, replies are missing, or interrupted",
		fmt.Sprintf("%d  -i is not a server address it can use (as the C program)", exitBadServer))
	cli.Parse(fs, os.Args[1:], 0)
	if *count < 0 || *timeout <= 0 || *wait < 0 {
		cli.Fail(prog, cli.BadUsage(errors.New("-s and -w must be >= 0 and -t > 0")))
	}
	if *activity < smartbeat.DefaultPeriod {
		cli.Fail(prog, cli.BadUsage(fmt.Errorf("--activity-timeout %v is shorter than the smartbeat period %v", *activity, smartbeat.DefaultPeriod)))
	}
	if *monitor != "" {
		var err error
		if *monitor, err = cli.ResolveAddressString("-m", *monitor); err != nil {
			cli.Fail(prog, err)
		}
	}
	log := cli.Logger(*verbose)

	ctx, cancel := cli.SignalContext()
	defer cancel()
	c := &client{
		name: *name, count: *count, monitor: *monitor, nameServer: *nameServer,
		activity: *activity, wait: *wait, timeout: *timeout, quiet: *quiet, log: log,
		progress: make(chan struct{}, 1),
	}
	proto, ap, err := c.resolve(ctx, *iface)
	if err != nil {
		cli.Fail(prog, err)
	}
	if err := c.run(ctx, proto, ap); err != nil {
		cli.Fail(prog, err)
	}
}

type client struct {
	name       string
	count      int
	monitor    string
	nameServer string
	activity   time.Duration
	wait       time.Duration
	timeout    time.Duration
	quiet      bool
	log        *slog.Logger

	replies  atomic.Int64
	svc      atomic.Pointer[smartbeat.Service]
	progress chan struct{} // a reply came
}

// resolve turns -i into the server's protocol and address, asking the name
// server for a lookup:name. An address this program cannot use exits with
// status 5, as C.
func (c *client) resolve(ctx context.Context, iface string) (flow.Protocol, netip.AddrPort, error) {
	a, err := cli.ResolveAddress("-i", iface)
	if err != nil {
		badServer(err)
	}
	if a.Lookup == "" {
		if a.Protocol == flow.RawUDP {
			badServer(fmt.Errorf("-i %s: rawudp cannot carry the service's notifications; use lookup:name, tcp, udp or multicast", iface))
		}
		ap, err := a.WithDefaults("127.0.0.1", defaultPort).AddrPort()
		if err != nil {
			badServer(fmt.Errorf("-i: %w", err))
		}
		return a.Protocol, ap, nil
	}
	// Nothing queued for the name server matters once the lookup is over:
	// do not wait for an absent one to take it.
	names, err := cli.DialNamesOptions(c.nameServer, namesvc.ClientOptions{Logger: c.log, Flow: flow.Options{CloseTimeout: 100 * time.Millisecond}})
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	defer names.Close()
	lctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	info, err := names.LookupOnce(lctx, a.Lookup, namesvc.LookupOptions{})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer from the name server at %s within %v", c.nameServer, c.timeout)
		}
		if !names.Connected() {
			err = cli.NotConnected(names, c.nameServer, err)
		} else if errors.Is(err, namesvc.ErrNotFound) {
			err = fmt.Errorf("%w (is simple_server running with -B ip[:port] and -G %q?)", err, a.Lookup)
		}
		return 0, netip.AddrPort{}, fmt.Errorf("lookup %s: %w", a.Lookup, err)
	}
	if !c.quiet {
		cli.PrintInfo(os.Stdout, info)
	}
	if len(info.Addresses) == 0 {
		return 0, netip.AddrPort{}, fmt.Errorf("lookup %s: the registration has no address", a.Lookup)
	}
	e := info.Addresses[0]
	proto := flow.TCP
	if e.Protocol != "" {
		if proto, err = flow.ParseProtocol(e.Protocol); err != nil || proto == flow.RawUDP {
			badServer(fmt.Errorf("lookup %s: registered with protocol %q, which this client cannot use", a.Lookup, e.Protocol))
		}
	}
	return proto, e.Addr, nil
}

func badServer(err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
	os.Exit(exitBadServer)
}

func (c *client) run(ctx context.Context, proto flow.Protocol, ap netip.AddrPort) error {
	target := proto.String() + ":" + ap.String()
	opts := flow.Options{Handler: c.handle, Logger: c.log, Name: prog}
	var conn flow.Flow
	switch proto {
	case flow.TCP:
		t, err := flow.DialTCP(ap.String(), opts)
		if err != nil {
			return err
		}
		cctx, ccancel := context.WithTimeout(ctx, c.timeout)
		err = t.WaitConnected(cctx)
		ccancel()
		if err != nil {
			t.Close()
			if ctx.Err() != nil {
				return errors.New("interrupted while connecting")
			}
			return fmt.Errorf("cannot connect to %s within %v: is simple_server running?", target, c.timeout)
		}
		conn = t
	default: // udp, multicast: replies come back to this socket
		u, err := flow.NewUDP(flow.UDPConfig{Destination: ap.String()}, opts)
		if err != nil {
			return err
		}
		conn = u
	}

	sopts := smartbeat.Options{
		Monitor:         c.monitor,
		NotifyFlow:      conn,
		Sender:          smartbeat.NewSender(smartbeat.SenderOptions{Logger: c.log, Flow: flow.Options{TLS: cli.TLS()}}), // TLS for a tls: -m
		ActivityTimeout: c.activity,
		LookupTimeout:   c.timeout,
		Logger:          c.log,
	}
	if a, err := flow.ParseAddress(c.monitor); err == nil && a.Lookup != "" {
		// -m lookup:name is resolved over -R's TLS, with its token.
		names, err := cli.DialNamesOptions(c.nameServer, namesvc.ClientOptions{Logger: c.log, Flow: flow.Options{CloseTimeout: 100 * time.Millisecond}})
		if err != nil {
			conn.Close()
			return err
		}
		defer names.Close()
		sopts.NameServer = names
	}
	svc, err := smartbeat.NewService(c.name, sopts)
	if err != nil {
		conn.Close()
		return fmt.Errorf("%w (-m says where the monitor is; \"\" for none)", err)
	}
	c.svc.Store(svc)
	svc.SetCheckpoint(uint64(c.replies.Load()))
	if !c.quiet {
		fmt.Printf("Using random service ID: %d\n", svc.ID())
	}
	svc.SetState(smartbeat.Running)

	if !c.quiet {
		fmt.Printf("Sending %d sequences to %s\n", c.count, target)
	}
	sent, sendErr := c.send(ctx, conn)
	got, waitErr := c.waitReplies(ctx, sent)
	if !c.quiet {
		fmt.Printf("Received %d sequences, waiting for %d\n", got, sent)
	}
	if sendErr == nil && waitErr == nil && c.wait > 0 && ctx.Err() == nil {
		if !c.quiet {
			fmt.Printf("Waiting for %v before closing\n", c.wait)
		}
		select {
		case <-ctx.Done():
		case <-time.After(c.wait):
		}
	}

	svc.SetState(smartbeat.Stopping)
	errs := []error{svc.Close(), conn.Close()} // Close delivers the DESTROY first
	if got == int64(sent) && sendErr == nil {
		fmt.Printf("%s: Sent and Received %d sequences\n", prog, sent)
	} else {
		fmt.Printf("%s: Sent %d and Received %d sequences\n", prog, sent, got)
	}
	errs = append([]error{sendErr, waitErr}, errs...)
	return errors.Join(errs...)
}

// send sends the sequences and returns how many it sent.
func (c *client) send(ctx context.Context, conn flow.Flow) (int, error) {
	for i := range c.count {
		if ctx.Err() != nil {
			return i, nil
		}
		q := seq.New(seqID, seqName, seq.TypeData)
		q.Add(seq.UTExampleData, append([]byte("sequence "+strconv.Itoa(i)), 0))
		if err := conn.Send(q); err != nil {
			return i, fmt.Errorf("send: %w", err)
		}
	}
	return c.count, nil
}

// waitReplies waits until want replies came, none came for the timeout, or
// ctx ended.
func (c *client) waitReplies(ctx context.Context, want int) (int64, error) {
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	for {
		n := c.replies.Load()
		if n >= int64(want) {
			return n, nil
		}
		select {
		case <-ctx.Done():
			n := c.replies.Load()
			return n, fmt.Errorf("interrupted with %d of %d replies", n, want)
		case <-t.C:
			n := c.replies.Load()
			return n, fmt.Errorf("%d of %d replies missing: none came for %v (is the server passive, -0?)", int64(want)-n, want, c.timeout)
		case <-c.progress:
			t.Reset(c.timeout) // Go 1.23 timers: no stale tick after Reset
		}
	}
}

// handle counts the server's replies; the checkpoint follows them.
func (c *client) handle(_ flow.Peer, q *seq.Sequence) {
	if q.Type != seq.TypeData {
		return
	}
	n := c.replies.Add(1)
	if svc := c.svc.Load(); svc != nil {
		svc.SetCheckpoint(uint64(n))
	}
	select {
	case c.progress <- struct{}{}:
	default:
	}
}
