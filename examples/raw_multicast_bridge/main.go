// Command raw_multicast_bridge receives raw UDP datagrams sent to a
// multicast group and forwards each one as an STK sequence to a TCP server.
//
// It joins the group on the group's port (bound on -B, default 0.0.0.0)
// and connects to the TCP address, reconnecting whenever the connection
// fails. Each datagram becomes a sequence with one element holding the whole
// payload, labelled like the C raw UDP listener labels it: id --sequence-id,
// type DATA, name --sequence-name, element user type --user-type. While the
// TCP server is unreachable the sequences wait in a bounded queue; what does
// not fit is dropped and counted. Unless -q it prints the counts every
// second while datagrams flow. At SIGINT or SIGTERM it delivers what is
// queued and prints how many datagrams it forwarded and dropped.
//
// Unlike the C program, it connects to the TCP address it is given (the C
// bridge always connects to 127.0.0.1:29312) and it accepts -v. The C
// program's service reporting to a monitor (-S, -m, -R) arrives with the
// smartbeat package; until then this program has no such flags.
package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/seq"
)

const (
	prog        = "raw_multicast_bridge"
	defaultPort = 29312
)

func main() {
	fs := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	bind := fs.StringP("bind", "B", "0.0.0.0", "IP to bind the group's port on")
	id := fs.Uint64P("sequence-id", "I", 0, "id of the forwarded sequences (decimal, or hex as 0x...)")
	name := fs.StringP("sequence-name", "n", "UDP", "name of the forwarded sequences")
	userType := fs.Uint64P("user-type", "u", 0, "user type of the element holding the datagram (decimal, or hex as 0x...)")
	quiet := fs.BoolP("quiet", "q", false, "print only the first line and the summary: no connection notices, no counts every second")
	verbose := fs.BoolP("verbose", "v", false, "log what happens, every datagram included")
	cli.Usage(fs, prog+" [flags] <mcast-ip[:port]> <tcp-host[:port]>",
		fmt.Sprintf("Forwards every raw UDP datagram sent to the multicast group mcast-ip:port as an STK sequence\nto the TCP server at tcp-host:port (both ports default to %d).", defaultPort),
		"0  stopped by Ctrl-C or SIGTERM with every datagram received forwarded",
		"1  it could not start (cannot join the group or bind), or datagrams were dropped or not delivered")
	args := cli.Parse(fs, os.Args[1:], 2)
	log := cli.Logger(*verbose)

	group, err := parseAddr(args[0], true)
	if err != nil {
		cli.Fail(prog, cli.BadUsage(fmt.Errorf("multicast address %w", err)))
	}
	dest, err := parseAddr(args[1], false)
	if err != nil {
		cli.Fail(prog, cli.BadUsage(fmt.Errorf("TCP address %w", err)))
	}
	if len(*name) > seq.MaxNameLen {
		cli.Fail(prog, cli.BadUsage(fmt.Errorf("--sequence-name: longer than %d bytes", seq.MaxNameLen)))
	}
	b, err := cli.ResolveAddress("-B", *bind)
	if err == nil && (b.Lookup != "" || b.Host == "" || b.Port != 0) {
		err = cli.BadUsage(fmt.Errorf("-B %q: want an IPv4 address", *bind))
	}
	if err != nil {
		cli.Fail(prog, err)
	}
	bindAP, _ := b.AddrPort()
	bindIP := bindAP.Addr()

	ctx, cancel := cli.SignalContext()
	defer cancel()
	out, err := flow.DialTCP(dest.String(), flow.Options{
		Logger:       log,
		Name:         prog,
		SlowConsumer: flow.Drop, // a slow server loses datagrams, not the connection
		OnConnect: func(p flow.Peer) {
			if !*quiet {
				fmt.Printf("Connected to tcp:%s\n", p.RemoteAddr())
			}
		},
	})
	if err != nil {
		cli.Fail(prog, err)
	}
	forward := func(from flow.Peer, s *seq.Sequence) {
		err := out.Send(s)
		if *verbose {
			log.Debug("datagram", "from", from.RemoteAddr(), "bytes", s.Size(), "err", err)
		}
	}
	in, err := flow.NewUDP(flow.UDPConfig{
		Raw:   true,
		Bind:  netip.AddrPortFrom(bindIP, group.Port()).String(),
		Group: group.Addr().String(),
	}, flow.Options{
		Logger:        log,
		Name:          prog,
		Handler:       forward,
		ReceiveBuffer: 4 << 20, // bursts wait in the socket while a Send waits for queue room
		RawUDP:        &seq.RawUDPConfig{ID: *id, Type: seq.TypeData, Name: *name, UserType: *userType},
	})
	if err != nil {
		out.Close()
		cli.Fail(prog, err)
	}
	fmt.Printf("Forwarding rawudp datagrams of multicast:%s (bound on %s) to tcp:%s\n", group, in.LocalAddr(), dest)

	go func() {
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		defer wcancel()
		if out.WaitConnected(wctx) != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "%s: not connected to tcp:%s yet; still trying, datagrams wait in a bounded queue\n", prog, dest)
		}
	}()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var shownIn, shown flow.Stats
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			ist, st := in.Stats(), out.Stats()
			if !*quiet && (ist.SequencesIn != shownIn.SequencesIn || st != shown) {
				fmt.Printf("Received %d datagrams, forwarded %d (%d in the last second), %d dropped\n",
					ist.SequencesIn, st.SequencesOut, st.SequencesOut-shown.SequencesOut, st.Dropped)
				shownIn, shown = ist, st
			}
		}
	}

	in.Close() // no more datagrams
	ist := in.Stats()
	if st := out.Stats(); !*quiet && ist.SequencesIn > st.SequencesOut+st.Dropped {
		fmt.Printf("Delivering the %d queued datagrams (at most %v; Ctrl-C again quits at once)\n",
			ist.SequencesIn-st.SequencesOut-st.Dropped, flow.DefaultCloseTimeout)
	}
	out.Close() // delivers what is queued
	ost := out.Stats()
	fmt.Printf("Forwarded %d of %d datagrams (%d bytes), %d dropped\n", ost.SequencesOut, ist.SequencesIn, ist.BytesIn, ost.Dropped)
	if ist.SequencesIn > ost.SequencesOut || ist.Dropped > 0 {
		lost := ist.SequencesIn - min(ost.SequencesOut, ist.SequencesIn)
		cli.Fail(prog, fmt.Errorf("%d of %d datagrams not forwarded to tcp:%s (%d dropped while it was unreachable or slow, %d lost on receive)",
			lost, ist.SequencesIn, dest, ost.Dropped, ist.Dropped))
	}
}

// parseAddr parses "host[:port]" (port defaultPort; a host name is
// resolved), a multicast group when mcast. An STK protocol prefix is
// accepted if it fits: multicast or rawudp for the group, tcp for the
// destination.
func parseAddr(s string, mcast bool) (netip.AddrPort, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cli.ResolveTimeout)
	defer cancel()
	a, err := flow.ResolveAddress(ctx, s)
	switch {
	case err != nil:
		return netip.AddrPort{}, err
	case a.Lookup != "":
		return netip.AddrPort{}, fmt.Errorf("%q: want ip[:port], not a lookup", s)
	case a.Host == "":
		return netip.AddrPort{}, fmt.Errorf("%q: no IP address", s)
	case mcast && a.Protocol != flow.TCP && a.Protocol != flow.Multicast && a.Protocol != flow.RawUDP,
		!mcast && a.Protocol != flow.TCP:
		return netip.AddrPort{}, fmt.Errorf("%q: wrong protocol %s", s, a.Protocol)
	}
	ap, err := a.WithDefaults("", defaultPort).AddrPort()
	if err != nil {
		return netip.AddrPort{}, err
	}
	if !ap.Addr().Is4() {
		return netip.AddrPort{}, fmt.Errorf("%q: not an IPv4 address", s)
	}
	if mcast && !ap.Addr().IsMulticast() {
		return netip.AddrPort{}, fmt.Errorf("%q: %s is not a multicast group", s, ap.Addr())
	}
	return ap, nil
}
