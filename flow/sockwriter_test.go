//go:build unix

package flow

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// socketPair returns a sockWriter on a duplicate of one end of a loopback
// TCP connection (the way a gnet connection's is made) and the other end.
func socketPair(t *testing.T) (*sockWriter, *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	local, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close() // the duplicate keeps the socket open
	rc, err := local.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	var dupErr error
	if err := rc.Control(func(f uintptr) { fd, dupErr = syscall.Dup(int(f)) }); err != nil || dupErr != nil {
		t.Fatal(err, dupErr)
	}
	w, err := newSockWriter(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, peer
}

func (w *sockWriter) registered() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conn != nil
}

// A writer that never has to wait stays off Go's poller; one that fills the
// socket buffer registers, waits, and every byte arrives in order.
func TestSockWriterRegistersOnlyToWait(t *testing.T) {
	w, peer := socketPair(t)
	small := []byte("a frame that fits")
	for i := 0; i < 100; i++ {
		if n, err := w.Write(small); err != nil || n != len(small) {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	got := make([]byte, 100*len(small))
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.Repeat(small, 100)) {
		t.Fatal("the small writes arrived changed")
	}
	if w.registered() {
		t.Fatal("the socket was registered with Go's poller although no write had to wait")
	}

	// 32 MiB does not fit in loopback's socket buffers: the write waits
	// until the peer reads.
	big := make([]byte, 32<<20)
	for i := range big {
		big[i] = byte(i * 7 / 3)
	}
	done := make(chan error, 1)
	go func() {
		n, err := w.Write(big)
		if err == nil && n != len(big) {
			err = errors.New("short write")
		}
		done <- err
	}()
	// The peer reads only once the writer has had to wait for room.
	deadline := time.Now().Add(10 * time.Second)
	for !w.registered() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	got = make([]byte, len(big))
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("the large write arrived changed")
	}
	if !w.registered() {
		t.Fatal("a write of 32 MiB to a peer not reading never waited for room")
	}
	if n, err := w.Write(small); err != nil || n != len(small) { // through the registered socket now
		t.Fatalf("write after waiting: %d, %v", n, err)
	}
	if _, err := io.ReadFull(peer, got[:len(small)]); err != nil || !bytes.Equal(got[:len(small)], small) {
		t.Fatalf("read after waiting: %q, %v", got[:len(small)], err)
	}
}

// Close returns a Write that waits for a peer that never reads, and later
// writes, direct ones included, fail with net.ErrClosed.
func TestSockWriterCloseUnblocks(t *testing.T) {
	w, _ := socketPair(t)
	done := make(chan error, 1)
	go func() {
		_, err := w.Write(make([]byte, 32<<20))
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !w.registered() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a write to a closed socket succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return the waiting Write")
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
	}
	called := false
	if err := w.raw().Write(func(uintptr) bool { called = true; return true }); !errors.Is(err, net.ErrClosed) || called {
		t.Fatalf("direct write after Close: %v (called %v), want net.ErrClosed", err, called)
	}
	if err := w.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v, want net.ErrClosed", err)
	}
}
