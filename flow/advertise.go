package flow

import (
	"bufio"
	"net"
	"net/netip"
	"os"
	"strings"
)

// AdvertiseIP returns the IP address to register for a listener bound to
// ip, so that peers on other hosts can connect to it.
//
// A specific ip is returned as it is. An unspecified one (0.0.0.0, which
// cannot be connected to from elsewhere) becomes:
//   - when toward is a specific, non-loopback address (typically the name
//     server's), the source address this host uses to reach it: the address
//     of the interface that faces the peers who find the listener there;
//   - otherwise the host's primary address: the first IPv4 address of the
//     interface holding the default route, else of the first interface that
//     is up and not loopback;
//   - 127.0.0.1 on a host with nothing but loopback.
//
// Finding the route sends nothing: it connects a UDP socket, which only asks
// the kernel's routing table.
func AdvertiseIP(ip, toward netip.Addr) netip.Addr {
	if ip.IsValid() && !ip.IsUnspecified() {
		return ip
	}
	if toward.IsValid() && !toward.IsUnspecified() && !toward.IsLoopback() {
		if src, ok := routeSource(toward); ok {
			return src
		}
	}
	if p, ok := PrimaryIP(); ok {
		return p
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

// AdvertiseAddr is AdvertiseIP for an address with a port.
func AdvertiseAddr(ap netip.AddrPort, toward netip.Addr) netip.AddrPort {
	return netip.AddrPortFrom(AdvertiseIP(ap.Addr(), toward), ap.Port())
}

// PrimaryIP returns the host's primary IPv4 address as AdvertiseIP defines
// it, and false when the host has no IPv4 address beyond loopback.
func PrimaryIP() (netip.Addr, bool) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, false
	}
	if name := defaultRouteInterface(); name != "" {
		for _, ifc := range ifaces {
			if ifc.Name == name {
				if a, ok := firstIPv4(ifc); ok {
					return a, true
				}
			}
		}
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		if a, ok := firstIPv4(ifc); ok {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// firstIPv4 returns ifc's first IPv4 address that is neither loopback nor
// link-local (169.254/16 is not routed beyond the link).
func firstIPv4(ifc net.Interface) (netip.Addr, bool) {
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !ip.IsUnspecified() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// routeSource returns the local address the kernel would send from to
// reach dst.
func routeSource(dst netip.Addr) (netip.Addr, bool) {
	network := "udp4"
	if !dst.Unmap().Is4() {
		network = "udp6"
	}
	c, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst.Unmap(), 9)))
	if err != nil {
		return netip.Addr{}, false
	}
	defer c.Close()
	src := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	if !src.IsValid() || src.IsUnspecified() {
		return netip.Addr{}, false
	}
	return src, true
}

// defaultRouteInterface names the interface of the IPv4 default route, from
// Linux's /proc/net/route; "" elsewhere or without one.
func defaultRouteInterface() string {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Scan() // header
	for s.Scan() {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		fields := strings.Fields(s.Text())
		if len(fields) >= 8 && fields[1] == "00000000" && fields[7] == "00000000" {
			return fields[0]
		}
	}
	return ""
}
