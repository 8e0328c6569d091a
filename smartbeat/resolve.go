package smartbeat

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// ErrNoMonitorAddress: a looked-up registration carries no usable address.
var ErrNoMonitorAddress = errors.New("smartbeat: the registration carries no monitor address")

// LookupMonitor looks name up with the name service and returns the address
// to report to, from the first answer: the 0x1000 "tcp:…" meta-data string
// of a monitor registration if there is one, else 0x1001 "udp:…", else
// 0x1002 (multicast), else the first registered address (a service group
// registers its listening address that way).
//
// This prefers TCP, which delivers notifications reliably. The C library
// feeds every string to its address parser in turn, so the last one wins:
// with the shipped stkd.cfg a C service doing lookup:monitor reports over
// UDP (bug B27).
func LookupMonitor(ctx context.Context, c *namesvc.Client, name string) (flow.Address, error) {
	info, err := c.LookupOnce(ctx, name, namesvc.LookupOptions{})
	if err != nil {
		return flow.Address{}, fmt.Errorf("smartbeat: look up %q: %w", name, err)
	}
	return addressFromInfo(&info)
}

// addressFromInfo picks the address of a registration (see LookupMonitor).
func addressFromInfo(info *namesvc.Info) (flow.Address, error) {
	for _, ut := range []uint64{seq.UTMonitorTCP, seq.UTMonitorUDP, seq.UTMonitorMcast} {
		s, ok := info.MetaString(ut)
		if !ok || s == "" {
			continue
		}
		a, err := flow.ParseAddress(s)
		if err != nil || a.Lookup != "" {
			return flow.Address{}, fmt.Errorf("smartbeat: %q registers the unusable monitor address %q", info.Name, s)
		}
		if ut == seq.UTMonitorMcast && a.Protocol == flow.UDP {
			a.Protocol = flow.Multicast
		}
		return a.WithDefaults("127.0.0.1", DefaultMonitorPort), nil
	}
	for _, e := range info.Addresses {
		p := flow.TCP
		if e.Protocol != "" {
			var err error
			if p, err = flow.ParseProtocol(e.Protocol); err != nil {
				continue
			}
		}
		return flow.Address{Protocol: p, Host: e.Addr.Addr().String(), Port: e.Addr.Port()}, nil
	}
	return flow.Address{}, fmt.Errorf("%w (%s)", ErrNoMonitorAddress, info.Name)
}

// resolver resolves "lookup:" addresses for NewService and NewGroup.
type resolver struct {
	client *namesvc.Client
	addr   string
}

// parse parses an address string and resolves a lookup.
func (r resolver) parse(ctx context.Context, s string) (flow.Address, error) {
	a, err := flow.ParseAddress(strings.TrimSpace(s))
	if err != nil {
		return flow.Address{}, err
	}
	if a.Lookup == "" {
		return a.WithDefaults("127.0.0.1", DefaultMonitorPort), nil
	}
	c := r.client
	if c == nil {
		ns := r.addr
		if ns == "" {
			ns = DefaultNameServer
		}
		if c, err = namesvc.Dial(ns, namesvc.ClientOptions{}); err != nil {
			return flow.Address{}, err
		}
		defer c.Close()
	}
	return LookupMonitor(ctx, c, a.Lookup)
}
