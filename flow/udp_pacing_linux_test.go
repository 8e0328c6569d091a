//go:build linux

package flow

import (
	"net"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelTimestamps asks the kernel to stamp each datagram c receives with
// the time it was queued (SO_TIMESTAMPNS). On loopback that is when the
// sender sent it, whenever the reader gets the CPU: a receiver that a
// loaded machine holds off still sees the sender's spacing.
func kernelTimestamps(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return false
	}
	return true
}

// kernelTimestamp returns the SO_TIMESTAMPNS stamp in a datagram's control
// messages.
func kernelTimestamp(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix()), true
		}
	}
	return time.Time{}, false
}
