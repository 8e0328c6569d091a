package flow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Protocol is the transport of a data flow.
type Protocol uint8

// Protocols, named as in STK address strings and name registrations.
const (
	TCP       Protocol = iota + 1 // STK TCP frames
	UDP                           // STK-UDP datagrams, unicast
	RawUDP                        // raw UDP: the datagram is the single element
	Multicast                     // STK-UDP datagrams to a multicast group
)

var protocolNames = map[Protocol]string{TCP: "tcp", UDP: "udp", RawUDP: "rawudp", Multicast: "multicast"}

// String returns the protocol's name in address strings ("tcp", "udp", ...).
func (p Protocol) String() string {
	if s, ok := protocolNames[p]; ok {
		return s
	}
	return "protocol(" + strconv.Itoa(int(p)) + ")"
}

// ParseProtocol parses a protocol name, case-insensitively.
func ParseProtocol(s string) (Protocol, error) {
	for p, name := range protocolNames {
		if strings.EqualFold(s, name) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("flow: unknown protocol %q (want tcp, udp, rawudp or multicast)", s)
}

// DefaultMulticastGroup is the group STK's examples and daemons use.
var DefaultMulticastGroup = netip.MustParseAddr("224.10.10.20")

// Address is a parsed STK address string.
type Address struct {
	Protocol Protocol // TCP when the string names none
	Host     string   // IP address as written; empty when absent
	Port     uint16   // 0 when absent
	Lookup   string   // the name of a "lookup:name" address; then the rest is empty
	// TLS is set by a "tls:ip:port" address: STK TCP frames inside TLS.
	// Protocol is then TCP, so code that asks for TCP handles it as such.
	TLS bool
}

// ParseAddress parses "[tcp|udp|rawudp|multicast|tls:]ip[:port]" or
// "lookup:name" (docs/protocol.md §6; "tls:" is this implementation's: a TCP
// address with TLS, see Address.TLS). The protocol defaults to TCP; ip and port
// may be left out and are filled by the caller's defaults (WithDefaults).
//
// ip must be an IPv4 literal: STK's wire format carries IPv4 addresses
// only, and ParseAddress does no I/O. ResolveAddress also takes host names.
func ParseAddress(s string) (Address, error) {
	a, err := splitAddress(s)
	if err != nil || a.Lookup != "" || a.Host == "" {
		return a, err
	}
	ip, err := netip.ParseAddr(a.Host)
	if err != nil {
		return Address{}, fmt.Errorf("flow: address %q: %q is not an IPv4 address (host names are resolved by ResolveAddress, not here)", s, a.Host)
	}
	if !ip.Is4() {
		return Address{}, errIPv6(s)
	}
	return a, nil
}

// ResolveAddress is ParseAddress that also takes a host name for ip and
// resolves it to its first IPv4 address, so that the Address holds an IP
// (what is registered with the name server and sent on the wire). ctx
// bounds the lookup.
func ResolveAddress(ctx context.Context, s string) (Address, error) {
	a, err := splitAddress(s)
	if err != nil || a.Lookup != "" || a.Host == "" {
		return a, err
	}
	if ip, err := netip.ParseAddr(a.Host); err == nil {
		if !ip.Is4() {
			return Address{}, errIPv6(s)
		}
		return a, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", a.Host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return Address{}, fmt.Errorf("flow: address %q: unknown host %q (or it has no IPv4 address: STK's wire format carries IPv4 only)", s, a.Host)
		}
		return Address{}, fmt.Errorf("flow: address %q: cannot resolve host %q: %w", s, a.Host, err)
	}
	for _, ip := range ips {
		if ip = ip.Unmap(); ip.Is4() {
			a.Host = ip.String()
			return a, nil
		}
	}
	return Address{}, fmt.Errorf("flow: address %q: host %q has no IPv4 address (STK's wire format carries IPv4 only)", s, a.Host)
}

// splitAddress splits an address string into protocol, host (unchecked)
// and port.
func splitAddress(s string) (Address, error) {
	parts := strings.Split(s, ":")
	if strings.EqualFold(parts[0], "lookup") {
		name := strings.TrimPrefix(s, parts[0]+":")
		if len(parts) < 2 || name == "" {
			return Address{}, fmt.Errorf("flow: address %q: lookup needs a name, as in lookup:monitor", s)
		}
		return Address{Lookup: name}, nil
	}
	if strings.ContainsAny(s, "[]") {
		return Address{}, errIPv6(s)
	}
	a := Address{Protocol: TCP}
	first := parts[0]
	p, err := ParseProtocol(first)
	if err == nil {
		a.Protocol = p
		parts = parts[1:]
	} else if strings.EqualFold(parts[0], "tls") { // TCP with TLS; not a Protocol, so ParseProtocol does not take it
		a.TLS, err = true, nil
		parts = parts[1:]
	}
	if err == nil && len(parts) > 0 && isTransport(parts[0]) {
		// "tcp:tls:ip": without this, the second would be taken for the
		// host or the host for the port (bad port "1.2.3.4").
		return Address{}, fmt.Errorf("flow: address %q: two transports, %q and %q (want one: [tcp|udp|rawudp|multicast|tls:]ip[:port]; tls: is TCP inside TLS)",
			s, strings.ToLower(first), strings.ToLower(parts[0]))
	}
	rest := strings.Join(parts, ":")
	switch {
	case len(parts) > 2 && looksIPv6(rest):
		return Address{}, errIPv6(s)
	case err != nil && !isIP(parts[0]) && (len(parts) == 3 || len(parts) == 2 && !isPort(parts[1])):
		// "foo:1.2.3.4" or "foo:host:port": foo was meant as a protocol.
		return Address{}, fmt.Errorf("flow: address %q: unknown protocol %q (want tcp, udp, rawudp, multicast, tls or lookup)", s, parts[0])
	case len(parts) > 2:
		return Address{}, fmt.Errorf("flow: address %q: too many ':' (want [protocol:]ip[:port])", s)
	}
	if len(parts) > 0 {
		a.Host = parts[0]
	}
	if len(parts) == 2 && parts[1] != "" {
		port, err := strconv.ParseUint(parts[1], 10, 16)
		if err != nil {
			return Address{}, fmt.Errorf("flow: address %q: bad port %q (want 0-65535)", s, parts[1])
		}
		a.Port = uint16(port)
	}
	return a, nil
}

// errIPv6 is the error for an IPv6 address.
func errIPv6(s string) error {
	return fmt.Errorf("flow: address %q: IPv6 is not supported: STK's wire format carries IPv4 addresses only "+
		"(a name registration holds a 4-byte address, docs/protocol.md §7.2); use an IPv4 address or a host name that has one", s)
}

// looksIPv6 reports whether s is an IPv6 address, with or without a
// trailing ":port".
func looksIPv6(s string) bool {
	if strings.Contains(s, "::") {
		return true
	}
	if ip, err := netip.ParseAddr(s); err == nil && ip.Is6() {
		return true
	}
	if i := strings.LastIndexByte(s, ':'); i > 0 {
		if ip, err := netip.ParseAddr(s[:i]); err == nil && ip.Is6() {
			return true
		}
	}
	return false
}

// isTransport reports whether s names a transport of an address string
// (a protocol, tls or lookup), case-insensitively.
func isTransport(s string) bool {
	_, err := ParseProtocol(s)
	return err == nil || strings.EqualFold(s, "tls") || strings.EqualFold(s, "lookup")
}

// isPort reports whether s is empty or all decimal digits: the text after
// a host.
func isPort(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// WithDefaults fills an empty host and a zero port. For Multicast an empty
// host becomes DefaultMulticastGroup whatever host is given.
func (a Address) WithDefaults(host string, port uint16) Address {
	if a.Host == "" {
		a.Host = host
		if a.Protocol == Multicast {
			a.Host = DefaultMulticastGroup.String()
		}
	}
	if a.Port == 0 {
		a.Port = port
	}
	return a
}

// AddrPort returns the host and port as a netip.AddrPort; an empty host is
// 0.0.0.0.
//
// A "tls:" address is refused: connecting to it in plain TCP would send in
// clear what its user meant to protect. Code that does speak TLS (the name
// service's client, the smartbeat sender, DialTCP and ListenTLS with
// Options.TLS) calls HostAddrPort and sets up TLS itself.
func (a Address) AddrPort() (netip.AddrPort, error) {
	if a.TLS {
		return netip.AddrPort{}, fmt.Errorf("flow: address %v: TLS is not supported here, only for the name server (-R / --name-server, stkd --names-tls) and the monitor (stkd --monitor-tls); give this one as tcp:", a)
	}
	return a.HostAddrPort()
}

// HostAddrPort is AddrPort whatever the transport, tls: included: for code
// that sets up TLS itself, or only wants the host (to find a route).
func (a Address) HostAddrPort() (netip.AddrPort, error) {
	if a.Lookup != "" {
		return netip.AddrPort{}, fmt.Errorf("flow: address lookup:%s must be resolved through the name service first", a.Lookup)
	}
	ip := netip.IPv4Unspecified()
	if a.Host != "" {
		var err error
		if ip, err = netip.ParseAddr(a.Host); err != nil {
			return netip.AddrPort{}, fmt.Errorf("flow: bad IP address %q", a.Host)
		}
	}
	return netip.AddrPortFrom(ip, a.Port), nil
}

// String formats a as an STK address string.
func (a Address) String() string {
	if a.Lookup != "" {
		return "lookup:" + a.Lookup
	}
	s := a.Protocol.String() + ":" + a.Host
	if a.TLS {
		s = "tls:" + a.Host
	}
	if a.Port != 0 {
		s += ":" + strconv.Itoa(int(a.Port))
	}
	return s
}
