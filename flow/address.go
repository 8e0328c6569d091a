package flow

import (
	"fmt"
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
}

// ParseAddress parses "[tcp|udp|rawudp|multicast:]ip[:port]" or
// "lookup:name" (PROTOCOL.md §6). The protocol defaults to TCP; ip and port
// may be left out and are filled by the caller's defaults (WithDefaults).
func ParseAddress(s string) (Address, error) {
	parts := strings.SplitN(s, ":", 4)
	if strings.EqualFold(parts[0], "lookup") {
		name := strings.TrimPrefix(s, parts[0]+":")
		if len(parts) < 2 || name == "" {
			return Address{}, fmt.Errorf("flow: address %q: lookup needs a name, as in lookup:monitor", s)
		}
		return Address{Lookup: name}, nil
	}
	a := Address{Protocol: TCP}
	if p, err := ParseProtocol(parts[0]); err == nil {
		a.Protocol = p
		parts = parts[1:]
	}
	if len(parts) > 2 {
		return Address{}, fmt.Errorf("flow: address %q: too many ':' (want [protocol:]ip[:port])", s)
	}
	if len(parts) > 0 {
		a.Host = parts[0]
	}
	if a.Host != "" {
		if _, err := netip.ParseAddr(a.Host); err != nil {
			return Address{}, fmt.Errorf("flow: address %q: %q is not an IPv4 address", s, a.Host)
		}
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
func (a Address) AddrPort() (netip.AddrPort, error) {
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
	if a.Port != 0 {
		s += ":" + strconv.Itoa(int(a.Port))
	}
	return s
}
