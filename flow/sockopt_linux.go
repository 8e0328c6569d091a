//go:build linux

package flow

import (
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// udpControl returns the net.ListenConfig.Control function of a UDP flow: it
// sets the options that must be in place before bind (SO_REUSEADDR for
// multicast receivers, so that several subscribers on one host can bind the
// group's port, and for sockets on a fixed port, so that a multicast
// receiver can bind beside them; see UDPConfig.Bind) and the socket buffer
// sizes.
func udpControl(reuseAddr bool, sndbuf, rcvbuf int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			if reuseAddr {
				if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
					serr = fmt.Errorf("flow: SO_REUSEADDR: %w", err)
					return
				}
			}
			if sndbuf > 0 {
				setBuffer(s, unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, sndbuf)
			}
			if rcvbuf > 0 {
				setBuffer(s, unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, rcvbuf)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// setBuffer asks for a socket buffer of n bytes. Linux silently caps SO_RCVBUF
// and SO_SNDBUF at net.core.[rw]mem_max; when the cap bites (getsockopt reports
// twice the granted size) the privileged ...FORCE option is tried, and its
// failure (no CAP_NET_ADMIN) ignored: the buffer then stays at the cap, as
// with the C library, which also keeps whatever size it gets.
func setBuffer(s, opt, force, n int) {
	_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, opt, n)
	if got, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, opt); err == nil && got >= 2*n {
		return
	}
	_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, force, n)
}

// multicastConfig is what setupMulticast applies to a bound socket.
type multicastConfig struct {
	group    netip.Addr // join it when valid
	iface    netip.Addr // interface address for joining and sending; zero: any
	ttl      int
	loopback bool
}

// setupMulticast joins the group (if any) and sets the sending options
// IP_MULTICAST_TTL, IP_MULTICAST_LOOP and, when an interface is given,
// IP_MULTICAST_IF. The sending options are set on every UDP flow, so that
// SendTo a group honours Options like Send to a multicast Destination does;
// on a unicast socket they have no effect.
//
// A socket that joins a group also gets IP_MULTICAST_ALL=0: without it Linux
// delivers to a socket bound to 0.0.0.0:port the datagrams of every group
// that any socket of the host joined on that port, not only its own.
func setupMulticast(c syscall.RawConn, m multicastConfig) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		s := int(fd)
		var ifaddr [4]byte
		if m.iface.IsValid() {
			ifaddr = m.iface.As4()
		}
		if m.group.IsValid() {
			mreq := &unix.IPMreq{Multiaddr: m.group.As4(), Interface: ifaddr}
			if err := unix.SetsockoptIPMreq(s, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
				serr = fmt.Errorf("flow: join multicast group %v on interface %v: %w", m.group, ifaceString(m.iface), err)
				return
			}
			if err := unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0); err != nil {
				serr = fmt.Errorf("flow: IP_MULTICAST_ALL: %w", err)
				return
			}
		}
		if err := unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, m.ttl); err != nil {
			serr = fmt.Errorf("flow: IP_MULTICAST_TTL %d: %w", m.ttl, err)
			return
		}
		loop := 0
		if m.loopback {
			loop = 1
		}
		if err := unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, loop); err != nil {
			serr = fmt.Errorf("flow: IP_MULTICAST_LOOP: %w", err)
			return
		}
		if m.iface.IsValid() {
			if err := unix.SetsockoptInet4Addr(s, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, ifaddr); err != nil {
				serr = fmt.Errorf("flow: IP_MULTICAST_IF %v: %w", m.iface, err)
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

func ifaceString(a netip.Addr) string {
	if !a.IsValid() {
		return "any"
	}
	return a.String()
}
