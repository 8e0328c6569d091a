//go:build !linux

package flow

import (
	"errors"
	"net/netip"
	"syscall"
)

// On systems other than Linux a UDP flow keeps the system's socket options:
// no SO_REUSEADDR, buffer sizes unchanged, and no multicast.

func udpControl(reuseAddr bool, sndbuf, rcvbuf int) func(network, address string, c syscall.RawConn) error {
	return nil
}

type multicastConfig struct {
	group    netip.Addr
	iface    netip.Addr
	ttl      int
	loopback bool
}

func setupMulticast(c syscall.RawConn, m multicastConfig) error {
	if m.group.IsValid() {
		return errors.New("flow: multicast UDP flows are only implemented on Linux")
	}
	return nil
}
