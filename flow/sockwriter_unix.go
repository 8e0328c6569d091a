//go:build unix

package flow

import (
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
)

// sockWriter is the writing side of a connection that a gnet event loop
// reads: a duplicate of its socket, written by the connection's writer
// goroutine and by senders that find its queue idle (outQueue.attach).
//
// It is written with plain non-blocking write(2) calls and is not
// registered with Go's network poller until a write finds the socket
// buffer full. The runtime's poller watches every registered descriptor
// for reading too, and the duplicate shares the socket with the event
// loop: each sequence arriving on the connection would wake the runtime's
// poller thread as well as the loop, for nothing: an echo server spent
// 38.8-42.9 µs of CPU and 2.8 context switches per round trip with the
// duplicate registered, 27.2-32.9 µs and 1.6-1.8 without, on the 2-core test
// machine (bench/README.md, "Measuring latency"). Only a writer that must
// wait for room registers the socket (net.FileConn), and writes through
// it from then on: such a connection is sending in bulk, and its peer
// rarely sends back.
type sockWriter struct {
	mu   sync.Mutex // held over each write(2) and by Close: the descriptor is never closed, and its number reused, under a write
	fd   int        // -1 once closed
	conn net.Conn   // the socket registered with Go's poller, once a write had to wait
}

// newSockWriter takes ownership of fd, a duplicate of a connected socket.
func newSockWriter(fd int) (*sockWriter, error) {
	return &sockWriter{fd: fd}, nil
}

// Write writes all of b, waiting for room in the socket buffer when it is
// full.
func (w *sockWriter) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		w.mu.Lock()
		if w.fd < 0 {
			w.mu.Unlock()
			return n, net.ErrClosed
		}
		if c := w.conn; c != nil {
			w.mu.Unlock()
			m, err := c.Write(b[n:])
			return n + m, err
		}
		m, err := syscall.Write(w.fd, b[n:])
		if m > 0 {
			n += m
		}
		switch err {
		case nil, syscall.EINTR:
		case syscall.EAGAIN:
			err = w.register()
		default:
			err = &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", err)}
		}
		w.mu.Unlock()
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// register makes w.conn, the socket registered with Go's poller, for a
// writer that has to wait (w.mu held).
func (w *sockWriter) register() error {
	fd, err := syscall.Dup(w.fd)
	if err != nil {
		return fmt.Errorf("duplicating the socket to wait for room: %w", err)
	}
	f := os.NewFile(uintptr(fd), "stk-tcp")
	c, err := net.FileConn(f) // a duplicate of its own
	f.Close()
	if err != nil {
		return fmt.Errorf("registering the socket to wait for room: %w", err)
	}
	w.conn = c
	return nil
}

// Close closes the socket duplicate; a Write waiting for room returns.
func (w *sockWriter) Close() error {
	w.mu.Lock()
	fd, c := w.fd, w.conn
	w.fd, w.conn = -1, nil
	w.mu.Unlock()
	if c != nil {
		c.Close()
	}
	if fd < 0 {
		return net.ErrClosed
	}
	return syscall.Close(fd)
}

// raw returns w as the socket outQueue writes directly.
func (w *sockWriter) raw() rawConn { return sockRaw{w} }

// sockRaw is a sockWriter's descriptor for direct writes.
type sockRaw struct{ w *sockWriter }

// Write calls f with the descriptor, unless it is closed.
func (r sockRaw) Write(f func(fd uintptr) bool) error {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	if r.w.fd < 0 {
		return net.ErrClosed
	}
	f(uintptr(r.w.fd))
	return nil
}
