package flow

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stk-go/stk/internal/leakcheck"
)

// reuseAddr reports whether f's socket has SO_REUSEADDR.
func reuseAddr(t *testing.T, f *UDPFlow) bool {
	t.Helper()
	rc, err := f.conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v != 0
}

// A flow on a fixed port lets a multicast receiver's 0.0.0.0:port bind
// beside it (as the C library does), while a bind without SO_REUSEADDR, the
// check stkd runs before starting, still sees the port taken. Ephemeral
// ports do not get the option.
func TestUDPFixedPortReuseAddr(t *testing.T) {
	leakcheck.Check(t)
	// A free port: the system picks it, then it is released for the flows.
	probe, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()

	uni := newUDPFlow(t, UDPConfig{Bind: fmt.Sprintf("127.0.0.1:%d", port)}, Options{})
	if !reuseAddr(t, uni) {
		t.Fatalf("flow on fixed port %d has no SO_REUSEADDR", port)
	}
	// What ServeMulticast binds, minus the group join (which would need a
	// multicast route; the socket rule is the same).
	wild := newUDPFlow(t, UDPConfig{Bind: fmt.Sprintf("0.0.0.0:%d", port)}, Options{})
	if wild.LocalAddr().Port() != uint16(port) {
		t.Fatalf("second flow bound %v, want port %d", wild.LocalAddr(), port)
	}

	// Another process's pre-start check (a plain bind) sees both.
	for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("0.0.0.0:%d", port)} {
		c, err := net.ListenPacket("udp4", addr)
		if err == nil {
			c.Close()
			t.Fatalf("a bind without SO_REUSEADDR of %s succeeded beside the flows", addr)
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("bind %s: %v, want EADDRINUSE", addr, err)
		}
	}

	eph := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{})
	if reuseAddr(t, eph) {
		t.Fatal("flow on an ephemeral port has SO_REUSEADDR: the system could hand out a port another socket holds")
	}
}
