package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// listener is one address stkd is configured to bind.
type listener struct {
	flag  string // the stkd flag that sets it
	kind  string // "tcp", "udp" or "multicast"
	addr  string // as configured: "ip:port", "group:port"; the HTTP UI: "host:port"
	group netip.Addr
	bind  netip.AddrPort // what the socket binds; invalid for the HTTP UI
}

// listeners lists what c binds, in start's order.
func listeners(c config) []listener {
	var out []listener
	add := func(on bool, flag, kind, addr string) {
		if !on || addr == "" {
			return
		}
		l := listener{flag: flag, kind: kind, addr: addr}
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			l.bind = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			if kind == "multicast" { // ServeMulticast binds 0.0.0.0:port and joins the group
				l.group, l.bind = l.bind.Addr(), netip.AddrPortFrom(netip.IPv4Unspecified(), ap.Port())
			}
		}
		out = append(out, l)
	}
	add(c.names, "names-tcp", "tcp", c.namesTCP)
	add(c.names, "names-udp", "udp", c.namesUDP)
	add(c.names, "names-multicast", "multicast", c.namesMcast)
	add(c.names, "names-tls", "tcp", c.tls.names)
	add(c.monitor, "monitor-tcp", "tcp", c.monTCP)
	add(c.monitor, "monitor-udp", "udp", c.monUDP)
	add(c.monitor, "monitor-multicast", "multicast", c.monMcast)
	add(c.monitor, "monitor-tls", "tcp", c.tls.monitor)
	add(c.steps, "steps-feed", "tcp", c.stepsFeed)
	add(true, "http", "tcp", c.http)
	return out
}

// overlaps reports whether a and b, both bound by this stkd, would take
// the same datagrams or connections: same protocol and port, and the same
// address or one of them 0.0.0.0. A unicast UDP listener and a multicast
// one may share a port (the C stkd.cfg "-U 127.0.0.1:20002 -M
// 224.10.10.20:20002"); two multicast listeners only clash on one group.
func overlaps(a, b listener) bool {
	if !a.bind.IsValid() || !b.bind.IsValid() || a.bind.Port() == 0 || a.bind.Port() != b.bind.Port() {
		return false
	}
	switch {
	case a.kind == "tcp" && b.kind == "tcp", a.kind == "udp" && b.kind == "udp":
		return a.bind.Addr() == b.bind.Addr() || a.bind.Addr().IsUnspecified() || b.bind.Addr().IsUnspecified()
	case a.kind == "multicast" && b.kind == "multicast":
		return a.group == b.group
	}
	return false
}

// probe binds l's address the way a plain program would, without
// SO_REUSEADDR on UDP, and closes it at once. stkd's own UDP sockets set
// SO_REUSEADDR (so that unicast and multicast can share a port), which
// would let a second stkd bind beside the first without a word; this bind
// still fails on any port another socket holds.
func probe(l listener) error {
	if l.bind.IsValid() && l.bind.Port() == 0 {
		return nil // the system picks a free port
	}
	addr := l.addr
	if l.bind.IsValid() {
		addr = l.bind.String()
	}
	if l.kind == "tcp" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		return ln.Close()
	}
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return err
	}
	return pc.Close()
}

// cause explains a failed bind in a few words and what to do about it.
func cause(err error, l listener) string {
	port := "PORT"
	if l.bind.IsValid() {
		port = fmt.Sprint(l.bind.Port())
	} else if _, p, e := net.SplitHostPort(l.addr); e == nil {
		port = p
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Sprintf("address already in use by another program (`ss -tulpn | grep :%s` shows which)", port)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no interface of this host has this address"
	case errors.Is(err, syscall.EACCES):
		return "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
	}
	return err.Error()
}

// preflight checks every address c binds before anything starts: the
// listeners of c must not clash with each other, and each must be free.
// It reports every problem in one error, each line naming the flag (or
// config file line), the address and the cause, and what to do.
func preflight(c config, o origins) error {
	ls := listeners(c)
	var lines []string
	inUse := false
	for i, l := range ls {
		what := fmt.Sprintf("%s %s (%s)", o.label(l.flag), l.addr, l.kind)
		clash := ""
		for _, m := range ls[:i] {
			if overlaps(l, m) {
				clash = fmt.Sprintf("the same address as %s %s: give each its own port", o.label(m.flag), m.addr)
				break
			}
		}
		if clash != "" {
			lines = append(lines, what+": "+clash)
			continue
		}
		if err := probe(l); err != nil {
			inUse = inUse || errors.Is(err, syscall.EADDRINUSE)
			lines = append(lines, what+": "+cause(err, l))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cannot listen on %d of the %d configured addresses, so nothing was started:\n  %s",
		len(lines), len(ls), strings.Join(lines, "\n  "))
	if inUse {
		b.WriteString("\nIf another stkd runs on this host, stop it, or run this one beside it with --port-base" +
			" (e.g. --port-base 21000: names on 21002, monitor on 21001, STEP feed on 21003, HTTP on 21080);" +
			" otherwise move each address above with its flag (\"\" turns a listener off).")
	} else {
		b.WriteString("\nMove each address above with its flag (\"\" turns a listener off).")
	}
	return errors.New(b.String())
}
