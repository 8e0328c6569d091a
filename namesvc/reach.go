package namesvc

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ServerLocation says where a client's name server is, as its address
// tells.
type ServerLocation int

const (
	// ServerLoopback: the server is dialled at a loopback (or unspecified)
	// address, so it is on this host and so are, in all likelihood, the
	// programs registering with it.
	ServerLoopback ServerLocation = iota
	// ServerLocalAddr: the server is dialled at a network address of this
	// host; programs on other hosts may register with it.
	ServerLocalAddr
	// ServerOtherHost: the server is dialled at an address of another host.
	ServerOtherHost
)

// String returns "loopback", "local address" or "other host".
func (l ServerLocation) String() string {
	switch l {
	case ServerLoopback:
		return "loopback"
	case ServerLocalAddr:
		return "local address"
	case ServerOtherHost:
		return "other host"
	}
	return fmt.Sprintf("ServerLocation(%d)", int(l))
}

// Describe completes a sentence that begins "but the name server": where
// the server is, from l's point of view ("at 10.99.0.2:20002 is on another
// host"), for warnings about addresses that other hosts cannot reach.
func (l ServerLocation) Describe(server netip.AddrPort) string {
	if l == ServerOtherHost {
		return fmt.Sprintf("at %v is on another host", server)
	}
	return fmt.Sprintf("is reached at %v, a network address, so the registrant may be on another host", server)
}

// locate returns the location of a server dialled at ip.
func locate(ip netip.Addr) ServerLocation {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsUnspecified() {
		return ServerLoopback
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ServerOtherHost
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if own, ok := netip.AddrFromSlice(n.IP); ok && own.Unmap() == ip {
				return ServerLocalAddr
			}
		}
	}
	return ServerOtherHost
}

// Unreachable reports whether ip cannot be connected to from another host:
// a loopback or unspecified address (dialling either reaches the dialler's
// own host).
func Unreachable(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsUnspecified()
}

// loopbackOnly reports whether info has addresses and all of them are
// Unreachable from another host.
func loopbackOnly(info *Info) bool {
	if len(info.Addresses) == 0 {
		return false
	}
	for _, e := range info.Addresses {
		if !Unreachable(e.Addr.Addr()) {
			return false
		}
	}
	return true
}

// checkReachable warns, once per name, when the server is reached over the
// network and an answer for a name carries only loopback addresses: a
// registrant on another host registered an address only it can use, and
// this client would connect to (or listen on) its own host instead. That
// is silent otherwise: a subscriber retries its own loopback forever.
func (c *Client) checkReachable(info *Info) {
	if c.location == ServerLoopback || !loopbackOnly(info) {
		return
	}
	c.mu.Lock()
	if c.warned == nil {
		c.warned = map[string]bool{}
	}
	k := info.Group + "\x00" + info.Name
	seen := c.warned[k]
	c.warned[k] = true
	c.mu.Unlock()
	if seen {
		return
	}
	addrs := make([]string, len(info.Addresses))
	for i, e := range info.Addresses {
		addrs[i] = e.Addr.String()
	}
	c.log.Warn(fmt.Sprintf("name %q is registered at %s only, but the name server %s: "+
		"the publisher must listen on an address this host can reach; start it with -B 0.0.0.0 or -i tcp:<its IP>:<port>",
		info.Name, strings.Join(addrs, ", "), c.location.Describe(c.server)),
		"name", info.Name, "location", c.location.String())
}
