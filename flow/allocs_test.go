package flow

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
)

// allocPath is one flow's send and receive path, set up for counting
// allocations: send queues one sequence, received counts deliveries.
type allocPath struct {
	name  string
	setup func(t testing.TB, handler Handler) (send func() error)
}

// allocPaths are the send and receive paths that must not allocate per
// sequence: TCP client to server, server to one and to two clients, STK-UDP
// with the batch system calls and with the one-datagram-per-call fallback.
func allocPaths() []*allocPath {
	s := seq.New(1, "alloc", seq.TypeData)
	s.Add(seq.UTExampleData, make([]byte, 16))
	tcpServerTo := func(clients int) func(t testing.TB, h Handler) func() error {
		return func(t testing.TB, h Handler) func() error {
			srv := listen(t, Options{})
			for range clients {
				waitConnected(t, dial(t, srv.LocalAddr().String(), Options{Handler: h}))
			}
			testutil.WaitFor(t, 10*time.Second, "connections", func() bool { return srv.Conns() == clients })
			return func() error { return srv.Send(s) }
		}
	}
	udp := func(mode udpIOMode) func(t testing.TB, h Handler) func() error {
		return func(t testing.TB, h Handler) func() error {
			rx, err := newUDP(UDPConfig{Bind: "127.0.0.1:0"}, Options{ReceiveBuffer: 4 << 20, Handler: h, Logger: testutil.Discard()}, mode)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rx.Close() })
			tx, err := newUDP(UDPConfig{Bind: "127.0.0.1:0", Destination: rx.LocalAddr().String()}, Options{Logger: testutil.Discard()}, mode)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tx.Close() })
			return func() error { return tx.Send(s) }
		}
	}
	return []*allocPath{
		{name: "tcp/client-to-server", setup: func(t testing.TB, h Handler) func() error {
			srv := listen(t, Options{Handler: h})
			c := dial(t, srv.LocalAddr().String(), Options{})
			waitConnected(t, c)
			return func() error { return c.Send(s) }
		}},
		{name: "tcp/server-to-1", setup: tcpServerTo(1)},
		{name: "tcp/server-to-2", setup: tcpServerTo(2)},
		{name: "udp/batch", setup: udp(udpIOBatch)},
		{name: "udp/single", setup: udp(udpIOSingle)},
	}
}

// allocCounter counts deliveries and wakes a waiter when they reach a
// target, without allocating (a channel and a reused timer).
type allocCounter struct {
	received, target atomic.Int64
	reached          chan struct{}
	timer            *time.Timer
}

func newAllocCounter() *allocCounter {
	c := &allocCounter{reached: make(chan struct{}, 1), timer: time.NewTimer(time.Hour)}
	c.timer.Stop()
	return c
}

// handle is the receiving flow's Handler.
func (c *allocCounter) handle(Peer, *seq.Sequence) {
	if c.received.Add(1) == c.target.Load() {
		select {
		case c.reached <- struct{}{}:
		default:
		}
	}
}

// sendAndWait sends n sequences and waits until want have been received.
func (c *allocCounter) sendAndWait(t testing.TB, send func() error, n int, want int64) {
	c.target.Store(want)
	for range n {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	for c.received.Load() < want {
		c.timer.Reset(10 * time.Second)
		select {
		case <-c.reached: // maybe an earlier target's: look again
		case <-c.timer.C:
			t.Fatalf("%d of %d sequences received", c.received.Load(), want)
		}
		c.timer.Stop()
	}
}

// The send and receive paths of TCP and UDP flows allocate nothing per
// sequence: sending a batch of sequences and receiving them all, idle
// (one at a time, written directly) and busy (a burst through the writer),
// allocates nothing: at most one allocation in ten batches is allowed, for
// the runtime's own.
func TestFlowsDoNotAllocatePerSequence(t *testing.T) {
	leakcheck.Check(t)
	if testing.Short() {
		t.Skip("-short: counts allocations over many round trips")
	}
	for _, p := range allocPaths() {
		t.Run(p.name, func(t *testing.T) {
			if raceEnabled {
				t.Skip("the race detector allocates on its own")
			}
			fan := int64(1)
			if p.name == "tcp/server-to-2" {
				fan = 2
			}
			cnt := newAllocCounter()
			send := p.setup(t, cnt.handle)
			for _, burst := range []int{1, 100} {
				var sent int64
				run := func() {
					sent += int64(burst)
					cnt.sendAndWait(t, send, burst, sent*fan)
				}
				run() // warm up: buffers grow to their steady size
				allocs := testing.AllocsPerRun(100, run)
				perSeq := allocs / float64(burst)
				t.Logf("burst %d: %.3f allocations per batch, %.4f per sequence", burst, allocs, perSeq)
				if allocs > 0.1 {
					t.Errorf("burst %d: %.2f allocations per batch of %d sequences: the send or receive path allocates", burst, allocs, burst)
				}
			}
		})
	}
}
