package flow

import (
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/seq"
	"golang.org/x/sys/unix"
)

// A receive ring starts as large as the socket's buffer holds, up to
// udpRingStart slots: a flow given a large buffer expects bursts and reads
// 512 KiB a call from its first datagram on; one with the system's default
// buffer keeps a small ring.
func TestUDPRingSizedToReceiveBuffer(t *testing.T) {
	leakcheck.Check(t)
	for _, c := range []struct {
		name   string
		buffer int
	}{{"4MiB", 4 << 20}, {"default", 0}} {
		t.Run(c.name, func(t *testing.T) {
			r := newUDPReceiver(func(int) int { return 100 })
			rx := newUDPFlowMode(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{Handler: r.handle, ReceiveBuffer: c.buffer}, udpIOBatch)
			if rx.r.batch == nil {
				t.Skip("no recvmmsg on this system")
			}
			got := rcvbuf(rx)
			tx := newUDPFlowMode(t, UDPConfig{Destination: rx.LocalAddr().String()}, Options{}, udpIOBatch)
			if err := tx.Send(udpTestSeq(0, 100)); err != nil {
				t.Fatal(err)
			}
			udpEventually(t, 10*time.Second, func() bool { return r.n.Load() == 1 }, "received %d of 1", r.n.Load())
			rx.Close() // the read goroutine has returned: its ring is ours to read
			slots, calls := int(rx.r.batch.slots.Load()), rx.r.batch.calls
			t.Logf("SO_RCVBUF %d: a ring of %d slots, %d recvmmsg calls", got, slots, calls)
			if calls != 1 {
				t.Fatalf("%d recvmmsg calls returned datagrams, want 1", calls)
			}
			switch {
			case c.buffer > 0 && got < udpRingStart*udpReadBuffer:
				t.Skipf("the kernel granted a receive buffer of %d bytes only (needs CAP_NET_ADMIN or net.core.rmem_max >= 4 MiB)", got)
			case c.buffer > 0 && slots != udpRingStart:
				t.Fatalf("a flow with a %d-byte receive buffer read its first datagram into a ring of %d slots, want %d",
					got, slots, udpRingStart)
			case c.buffer == 0 && (slots < 1 || slots > max(got/udpReadBuffer, 1)):
				t.Fatalf("a flow with the default %d-byte receive buffer mapped %d slots, want 1 to %d", got, slots, max(got/udpReadBuffer, 1))
			}
		})
	}
}

// A burst that fills the ring makes it grow to udpReadBatch slots, mapped
// by another goroutine while the reader goes on with the old ring (here the
// mapping waits until the whole burst has been read: a reader that waited
// for it would never read on); every datagram arrives, in order, and Close
// unmaps all of it.
func TestUDPRingGrowsWhileReading(t *testing.T) {
	leakcheck.Check(t)
	mapped := make(chan struct{})
	t.Cleanup(func() { mapRingLater = newUDPRing })
	mapRingLater = func(n int, background bool) udpRing {
		<-mapped
		return newUDPRing(n, background)
	}
	hold := make(chan struct{})
	size := func(int) int { return 100 }
	r := newUDPReceiver(size)
	var next int   // the next sequence to send
	var want int   // the next one expected, on the read goroutine
	var order bool // false until one arrives out of order
	rx := newUDPFlowMode(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{ReceiveBuffer: 4 << 20, Handler: func(p Peer, s *seq.Sequence) {
		<-hold
		if i, err := udpCheckSeq(s, size); err == nil && i != want && !order {
			order = true
			t.Errorf("sequence %d arrived where %d was expected", i, want)
		}
		want++
		r.handle(p, s)
	}}, udpIOBatchNoOffload)
	if rx.r.batch == nil {
		t.Skip("no recvmmsg on this system")
	}
	tx := newUDPFlowMode(t, UDPConfig{Destination: rx.LocalAddr().String()}, Options{}, udpIOBatchNoOffload)
	send := func() {
		if err := tx.Send(udpTestSeq(next, 100)); err != nil {
			t.Fatal(err)
		}
		next++
	}
	const burst = 200
	for range burst { // waiting in the socket while the Handler holds
		send()
	}
	udpEventually(t, 10*time.Second, func() bool { return tx.Stats().SequencesOut == burst }, "sent %d of %d", tx.Stats().SequencesOut, burst)
	close(hold)
	udpEventually(t, 10*time.Second, func() bool { return r.n.Load() == burst },
		"received %d of %d while the larger ring was being mapped", r.n.Load(), burst)
	if s := rx.r.batch.slots.Load(); s >= udpReadBatch {
		t.Fatalf("the ring has %d slots before the larger one was mapped", s)
	}
	close(mapped)
	// The grown ring is installed at the first call after it is ready.
	udpEventually(t, 10*time.Second, func() bool {
		send()
		return rx.r.batch.slots.Load() == udpReadBatch
	}, "the ring has %d slots, want %d", rx.r.batch.slots.Load(), udpReadBatch)
	udpEventually(t, 10*time.Second, func() bool { return r.n.Load() == int64(next) }, "received %d of %d", r.n.Load(), next)
	r.check(t, next)
	rx.Close()
	if b := rx.r.batch.mappedBytes(); b != 0 {
		t.Fatalf("%d bytes of the receive ring still mapped after Close", b)
	}
}

// rcvbuf is the receive buffer the kernel gave f's socket.
func rcvbuf(f *UDPFlow) int {
	var n int
	f.r.batch.rc.Control(func(fd uintptr) { n, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	return n
}

// Close while a larger ring is being mapped waits for it and unmaps it.
func TestUDPRingCloseWhileGrowing(t *testing.T) {
	leakcheck.Check(t)
	mapped := make(chan struct{})
	t.Cleanup(func() { mapRingLater = newUDPRing })
	started := make(chan struct{})
	var grown []byte // the ring mapped for growing, which Close must unmap
	mapRingLater = func(n int, background bool) udpRing {
		close(started)
		<-mapped
		ring := newUDPRing(n, background)
		grown = ring.mapped
		return ring
	}
	hold := make(chan struct{})
	r := newUDPReceiver(func(int) int { return 100 })
	rx := newUDPFlowMode(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{ReceiveBuffer: 4 << 20, Handler: func(p Peer, s *seq.Sequence) {
		<-hold
		r.handle(p, s)
	}}, udpIOBatchNoOffload)
	if rx.r.batch == nil {
		t.Skip("no recvmmsg on this system")
	}
	tx := newUDPFlowMode(t, UDPConfig{Destination: rx.LocalAddr().String()}, Options{}, udpIOBatchNoOffload)
	for i := range 50 { // waiting in the socket while the Handler holds
		if err := tx.Send(udpTestSeq(i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	udpEventually(t, 10*time.Second, func() bool { return tx.Stats().SequencesOut == 50 }, "sent %d of 50", tx.Stats().SequencesOut)
	close(hold)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("50 waiting datagrams did not make the ring grow")
	}
	closed := make(chan error)
	go func() { closed <- rx.Close() }()
	time.Sleep(10 * time.Millisecond) // Close waits for the mapping
	close(mapped)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if b := rx.r.batch.mappedBytes(); b != 0 {
		t.Fatalf("%d bytes of the receive ring still mapped after Close", b)
	}
	if grown == nil {
		t.Skip("the ring could not be mapped (Go memory instead)")
	}
	// msync fails with ENOMEM for memory that is not mapped.
	if err := unix.Msync(grown, unix.MS_ASYNC); err != unix.ENOMEM {
		t.Fatalf("the ring being mapped at Close is still mapped (msync: %v)", err)
	}
}
