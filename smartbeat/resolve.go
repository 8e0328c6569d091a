package smartbeat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"

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
// UDP (docs/differences.md B27).
//
// When the name server is reached at a network address and the monitor
// is registered at a loopback or unspecified address, it logs a warning
// (once per name server and name) to slog.Default(): such an address
// leads to this host, not to the monitor on the name server's host.
func LookupMonitor(ctx context.Context, c *namesvc.Client, name string) (flow.Address, error) {
	return lookupMonitor(ctx, c, name, slog.Default())
}

func lookupMonitor(ctx context.Context, c *namesvc.Client, name string, log *slog.Logger) (flow.Address, error) {
	info, err := c.LookupOnce(ctx, name, namesvc.LookupOptions{})
	if err != nil {
		return flow.Address{}, fmt.Errorf("smartbeat: look up %q: %w", name, err)
	}
	a, err := addressFromInfo(&info)
	if err == nil {
		warnUnreachable(log, c, name, a)
	}
	return a, err
}

// warnedMonitors holds the name servers and names warnUnreachable warned
// about: a process creating many services warns once.
var warnedMonitors sync.Map

// warnUnreachable warns when a monitor found through a name server on the
// network is registered at an address that leads back to this host (what
// a monitor bound to 127.0.0.1 or 0.0.0.0 registered before its daemon
// named an address): the service would report to nobody, or to a monitor
// of its own host, without a word.
func warnUnreachable(log *slog.Logger, c *namesvc.Client, name string, a flow.Address) {
	if c.ServerLocation() == namesvc.ServerLoopback || a.Protocol == flow.Multicast {
		return
	}
	ip, err := netip.ParseAddr(a.Host)
	if err != nil || !namesvc.Unreachable(ip) {
		return
	}
	if _, seen := warnedMonitors.LoadOrStore(c.ServerAddr().String()+"\x00"+name, true); seen {
		return
	}
	log.Warn(fmt.Sprintf("monitor %q is registered at %v, but the name server %s: "+
		"this service would report to its own host, not to that monitor; "+
		"start the monitor's stkd with --advertise <its IP> or bind it to its IP (--monitor-tcp <its IP>:%d), "+
		"or give the monitor's address with -m tcp:<its IP>:<port>",
		name, a, c.ServerLocation().Describe(c.ServerAddr()), DefaultMonitorPort),
		"name", name, "location", c.ServerLocation().String())
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
	log    *slog.Logger // nil: slog.Default()
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
		if c, err = namesvc.Dial(ns, namesvc.ClientOptions{Logger: r.log}); err != nil {
			return flow.Address{}, err
		}
		defer c.Close()
	}
	log := r.log
	if log == nil {
		log = slog.Default()
	}
	return lookupMonitor(ctx, c, a.Lookup, log)
}
