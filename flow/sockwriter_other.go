//go:build !unix

package flow

import (
	"fmt"
	"net"
	"os"
)

// sockWriter is the writing side of a connection that a gnet event loop
// reads: a duplicate of its socket, written by the connection's writer
// goroutine. (On Unix it avoids Go's network poller; see
// sockwriter_unix.go.)
type sockWriter struct{ net.Conn }

// newSockWriter takes ownership of fd, a duplicate of a connected socket.
func newSockWriter(fd int) (*sockWriter, error) {
	f := os.NewFile(uintptr(fd), "stk-tcp")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("wrapping the socket: %w", err)
	}
	return &sockWriter{c}, nil
}

// raw returns nil: senders do not write directly here (rawWriteSupported).
func (w *sockWriter) raw() rawConn { return nil }
