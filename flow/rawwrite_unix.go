//go:build unix

package flow

import "syscall"

// rawWriteSupported says whether outQueue may write to a socket directly.
const rawWriteSupported = true

// rawWrite makes one write(2) of b to fd, which is non-blocking (Go's
// sockets are), and returns the bytes written: 0 when the socket buffer is
// full (EAGAIN), interrupted, or the connection failed.
func rawWrite(fd uintptr, b []byte) int {
	n, err := syscall.Write(int(fd), b)
	if err != nil || n < 0 {
		return 0
	}
	return n
}
