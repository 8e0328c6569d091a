// Package multicast tells tests whether IPv4 multicast works on this host,
// so that every multicast test skips for the same, stated reason where it
// does not, and fails where it does. It imports nothing of this module:
// the flow, namesvc and smartbeat tests (which internal/testprog cannot
// serve, it imports them) use it too.
package multicast

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

var (
	once sync.Once
	// why is why multicast does not work on this host, or "".
	why string
)

// Need skips the test unless IPv4 multicast works on this host: a
// datagram sent to a group (TTL 1, multicast loopback on, the interface the
// system picks, as the flow package does by default) comes back to a socket
// that joined the group. The probe uses plain sockets, not the code under
// test, so that after it passes a multicast test that fails has found a bug,
// not a host without multicast. It runs once per test binary.
func Need(t testing.TB) {
	t.Helper()
	once.Do(func() {
		if err := probe(); err != nil {
			why = fmt.Sprintf("multicast does not work on this host: %v (the multicast tests need an "+
				"interface with multicast on and a route for 224.0.0.0/4, e.g. "+
				"`ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo`)", err)
		}
	})
	if why != "" {
		t.Skip(why)
	}
}

// probe joins a random group in 239.255.0.0/16 (organisation-local
// scope) on a free port and sends datagrams to it until one comes back.
func probe() error {
	group := net.IPv4(239, 255, byte(mrand.IntN(256)), byte(1+mrand.IntN(254)))
	rx, err := net.ListenMulticastUDP("udp4", nil, &net.UDPAddr{IP: group})
	if err != nil {
		return fmt.Errorf("cannot join group %v: %w", group, err)
	}
	defer rx.Close()
	dest := &net.UDPAddr{IP: group, Port: rx.LocalAddr().(*net.UDPAddr).Port}
	tx, err := net.DialUDP("udp4", nil, dest)
	if err != nil {
		return fmt.Errorf("cannot send to %v: %w", dest, err)
	}
	defer tx.Close()
	nonce := make([]byte, 16)
	rand.Read(nonce)
	buf := make([]byte, 64)
	const wait = 2 * time.Second
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
		if _, err := tx.Write(nonce); err != nil {
			return fmt.Errorf("cannot send to %v: %w", dest, err)
		}
		// Resend every 100 ms: one datagram may be dropped.
		rx.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		for {
			n, err := rx.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return fmt.Errorf("receiving on %v: %w", dest, err)
			}
			if bytes.Equal(buf[:n], nonce) {
				return nil
			}
		}
	}
	return fmt.Errorf("nothing sent to %v came back within %v", dest, wait)
}
