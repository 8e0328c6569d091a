package main

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
)

// checkAdvertise checks --advertise: empty, or the IPv4 address other
// hosts reach this one at.
func checkAdvertise(ip string) error {
	if ip == "" {
		return nil
	}
	a, err := netip.ParseAddr(ip)
	switch {
	case err != nil || !a.Unmap().Is4():
		return fmt.Errorf("--advertise %q: want this host's IPv4 address that other hosts reach it at, as in 10.0.0.5", ip)
	case a.IsUnspecified() || a.IsMulticast():
		return fmt.Errorf("--advertise %v: other hosts cannot connect to it; give this host's address, as in 10.0.0.5", a)
	}
	return nil
}

// advertisedIP is the IP registered for the listeners of c bound to
// 0.0.0.0: --advertise, else what the monitor and the STEP bus pick by
// flow.AdvertiseIP, the address of the interface toward the name server
// (when stkd runs it on 0.0.0.0 too: the host's primary address).
func advertisedIP(c config, d *daemon) netip.Addr {
	if ip, err := netip.ParseAddr(c.advertise); err == nil {
		return ip
	}
	ns := c.nameServer
	if d.names != nil {
		ns = "tcp:" + d.namesTCP
	}
	var toward netip.Addr
	if a, err := flow.ParseAddress(ns); err == nil {
		if ap, err := a.WithDefaults(namesvc.DefaultHost, namesvc.DefaultPort).HostAddrPort(); err == nil {
			toward = ap.Addr()
		}
	}
	return flow.AdvertiseIP(netip.IPv4Unspecified(), toward)
}

// logAdvertised logs, for each listener bound to 0.0.0.0, the address
// other hosts reach it at (and, for the monitor and the STEP feed, the one
// registered): clients elsewhere need it for -R, and a wrong one is the
// first thing to check when they cannot connect.
func (d *daemon) logAdvertised(c config, log *slog.Logger) {
	var ip netip.Addr
	for _, l := range []struct{ name, addr string }{
		{"names-tcp", d.namesTCP}, {"names-udp", d.namesUDP}, {"monitor-tcp", d.monTCP}, {"monitor-udp", d.monUDP},
		{"steps-feed", d.stepsFeed}, {"http", d.http},
	} {
		ap, err := netip.ParseAddrPort(l.addr)
		if err != nil || !ap.Addr().IsUnspecified() {
			continue
		}
		if !ip.IsValid() {
			ip = advertisedIP(c, d)
		}
		from := "--advertise"
		if c.advertise == "" {
			from = "the interface toward the name server, else the host's primary address (--advertise names another)"
		}
		log.Info("listening on every interface; other hosts reach it at the advertised address",
			"listener", l.name, "listen", ap, "advertised", netip.AddrPortFrom(ip, ap.Port()), "from", from)
	}
}
