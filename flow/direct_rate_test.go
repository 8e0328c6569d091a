package flow

import (
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
)

// A sender at 100 k sequences/s (a push every 10 µs) is not busy: the
// writer would take one frame per wake-up anyway, so batching saves no
// system call and costs a hand-off to the writer goroutine per sequence.
// Its sequences are written by Send itself. (With directGap at 20 µs none
// were, and the one-way latency at 100 k/s paid the hand-off on each.)
func TestTCPSenderAt100kWritesDirectly(t *testing.T) {
	leakcheck.Check(t)
	if !rawWriteSupported {
		t.Skip("direct writes need a Unix socket")
	}
	cnt := newCounter(t, 16)
	srv := listen(t, Options{Handler: cnt.handle})
	c := dial(t, srv.LocalAddr().String(), Options{})
	waitConnected(t, c)
	testutil.WaitFor(t, 5*time.Second, "connection", func() bool { return srv.Conns() == 1 })

	const n = 2000
	const period = 10 * time.Microsecond
	for i := range uint64(n) {
		if err := c.Send(testSeq(i, 16)); err != nil {
			t.Fatal(err)
		}
		// Wait for the next send time: busy, as a paced publisher does
		// (time.Sleep cannot wait 10 µs).
		for t0 := time.Now(); time.Since(t0) < period; {
		}
	}
	testutil.WaitFor(t, 20*time.Second, "all received", func() bool { return cnt.n.Load() == n })
	// Nearly all should be direct; a loaded machine that stops the sender
	// only makes gaps longer, but a push may still find the previous one
	// with the writer (a full socket buffer, a slow receiver).
	if d := c.queue.directWrites(); d < n/2 {
		t.Errorf("a sender pushing every %v wrote %d of %d sequences directly, want most", period, d, n)
	}
}
