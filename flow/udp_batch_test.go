package flow

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/syncbuf"
	"github.com/stk-go/stk/seq"
)

// The system-call modes of a UDP flow: batch calls with segmentation
// offload where the kernel has it, batch calls without it, one datagram per
// call (the fallback), and batch calls failing with ENOSYS (falling back).
var udpIOModes = []struct {
	name string
	mode udpIOMode
}{{"batch", udpIOBatch}, {"nooffload", udpIOBatchNoOffload}, {"single", udpIOSingle}, {"enosys", udpIOBatchENOSYS}}

// newUDPFlowMode is newUDPFlow with a system-call mode.
func newUDPFlowMode(t testing.TB, cfg UDPConfig, opts Options, mode udpIOMode) *UDPFlow {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = udpTestLogger(t)
	}
	f, err := newUDP(cfg, opts, mode)
	if err != nil {
		t.Fatalf("newUDP(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// udpCapture is a plain UDP socket that records the datagrams it gets.
type udpCapture struct {
	conn *net.UDPConn
}

func newUDPCapture(t *testing.T) *udpCapture {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadBuffer(4 << 20); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &udpCapture{conn: conn}
}

func (c *udpCapture) addr() netip.AddrPort {
	return c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// read returns the next n datagrams and checks they come from from.
func (c *udpCapture) read(t *testing.T, n int, from netip.AddrPort) [][]byte {
	t.Helper()
	buf := make([]byte, 1<<16)
	var out [][]byte
	for len(out) < n {
		c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, src, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("captured %d of %d datagrams: %v", len(out), n, err)
		}
		if src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port()); src != from {
			t.Fatalf("datagram %d from %v, want %v", len(out), src, from)
		}
		out = append(out, append([]byte(nil), buf[:k]...))
	}
	return out
}

// udpBatchTestSizes: small sequences in runs (so that batches form), and
// sequences of two and four fragments.
func udpBatchTestSize(i int) int {
	switch i % 50 {
	case 10:
		return 70000
	case 30:
		return 200 << 10
	case 40:
		return 65400 // one full datagram
	}
	return [...]int{0, 16, 100, 1000}[i%4]
}

// The datagrams a flow sends are byte-identical whatever its system calls,
// and identical to seq.AppendUDP's (whose output the seq golden tests
// compare with the C library's): the batched sender changes nothing on the
// wire. Sequences alternate between two destinations, so batches mix them.
func TestUDPBatchSendsSameDatagrams(t *testing.T) {
	leakcheck.Check(t)
	const n, uniqueID = 200, 0x5eed1234
	caps := []*udpCapture{newUDPCapture(t), newUDPCapture(t)}

	// What the unbatched encoder emits, per destination.
	want := make([][][]byte, len(caps))
	for i := range n {
		s := udpTestSeq(i, udpBatchTestSize(i))
		s.Generation = 1
		if _, err := seq.AppendUDP(nil, s, uniqueID, func(d []byte) error {
			want[i%2] = append(want[i%2], append([]byte(nil), d...))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	for _, m := range udpIOModes {
		t.Run(m.name, func(t *testing.T) {
			tx := newUDPFlowMode(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{}, m.mode)
			tx.uniqueID = uniqueID
			for i := range n { // about 1 MB: the capture buffers hold it
				if err := tx.SendTo(udpTestSeq(i, udpBatchTestSize(i)), caps[i%2].addr()); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			for k, c := range caps {
				got := c.read(t, len(want[k]), tx.LocalAddr())
				for j := range got {
					if !bytes.Equal(got[j], want[k][j]) {
						t.Fatalf("destination %d, datagram %d: %d bytes differ from the encoder's %d", k, j, len(got[j]), len(want[k][j]))
					}
				}
			}
			tx.Close()
			var bytesOut uint64
			for k := range want {
				for _, d := range want[k] {
					bytesOut += uint64(len(d))
				}
			}
			if st := tx.Stats(); st.SequencesOut != n || st.BytesOut != bytesOut || st.Dropped != 0 {
				t.Fatalf("stats %+v, want %d sequences of %d bytes", st, n, bytesOut)
			}
			checkUDPBatchUse(t, tx, m.mode, true)
		})
	}
}

// Raw datagrams are the payload, whatever the system calls.
func TestUDPBatchSendsSameRawDatagrams(t *testing.T) {
	leakcheck.Check(t)
	c := newUDPCapture(t)
	sizes := []int{0, 1, 16, 1000, 9000, seq.MRU}
	for _, m := range udpIOModes {
		t.Run(m.name, func(t *testing.T) {
			tx := newUDPFlowMode(t, UDPConfig{Raw: true, Destination: c.addr().String()}, Options{}, m.mode)
			for i, size := range sizes {
				s := seq.New(1, "raw", seq.TypeData)
				s.Add(0, udpPayload(i, size))
				if err := tx.Send(s); err != nil {
					t.Fatal(err)
				}
			}
			// Bound to 0.0.0.0, the flow sends to loopback from 127.0.0.1.
			got := c.read(t, len(sizes), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tx.LocalAddr().Port()))
			for i, size := range sizes {
				if !bytes.Equal(got[i], udpPayload(i, size)) {
					t.Fatalf("raw datagram %d: %d bytes, want the %d-byte payload", i, len(got[i]), size)
				}
			}
		})
	}
}

// A receiver whose Handler was held up reads what piled up in few calls
// (batch) and delivers every sequence in order whatever its system calls.
func TestUDPBatchReceive(t *testing.T) {
	leakcheck.Check(t)
	const n = 300
	size := func(i int) int {
		if i == 150 {
			return 70000 // two fragments, in the middle of a batch
		}
		return 16 + i%100
	}
	for _, m := range udpIOModes {
		t.Run(m.name, func(t *testing.T) {
			hold := make(chan struct{})
			r := newUDPReceiver(size)
			var mu sync.Mutex
			var order []int
			rx := newUDPFlowMode(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{
				ReceiveBuffer: 4 << 20,
				Handler: func(from Peer, s *seq.Sequence) {
					if r.n.Load() == 0 {
						<-hold
					}
					i, _ := udpCheckSeq(s, size)
					mu.Lock()
					order = append(order, i)
					mu.Unlock()
					r.handle(from, s)
				},
			}, m.mode)
			tx := newUDPFlowMode(t, UDPConfig{Destination: rx.LocalAddr().String()}, Options{}, m.mode)
			if err := tx.Send(udpTestSeq(0, size(0))); err != nil {
				t.Fatal(err)
			}
			for i := 1; i < n; i++ {
				if err := tx.Send(udpTestSeq(i, size(i))); err != nil {
					t.Fatal(err)
				}
			}
			udpEventually(t, 10*time.Second, func() bool { return tx.Stats().SequencesOut == n }, "sent %d of %d", tx.Stats().SequencesOut, n)
			close(hold)
			udpEventually(t, 10*time.Second, func() bool { return r.n.Load() == n }, "received %d of %d", r.n.Load(), n)
			r.check(t, n)
			mu.Lock()
			for k, i := range order {
				if i != k {
					t.Fatalf("sequence %d received in place %d", i, k)
				}
			}
			mu.Unlock()
			rx.Close()
			if st := rx.Stats(); st.SequencesIn != n || st.Malformed != 0 || st.Dropped != 0 || st.BytesIn != tx.Stats().BytesOut {
				t.Fatalf("receiver stats %+v, sender %+v", st, tx.Stats())
			}
			checkUDPBatchUse(t, rx, m.mode, false)
			if m.mode == udpIOBatch && rx.r.batch != nil {
				// The first read got sequence 0; the rest were waiting, so each
				// call filled the ring (3 slots with the default buffer), which
				// grew meanwhile to take up to 64 a call.
				if calls := rx.r.batch.calls; calls > n/3 {
					t.Fatalf("%d recvmmsg calls for %d datagrams waiting", calls, n+1)
				}
				t.Logf("%d recvmmsg calls for %d sequences", rx.r.batch.calls, n)
				if b := rx.r.batch.mappedBytes(); b != 0 {
					t.Fatalf("%d bytes of the receive ring still mapped after Close", b)
				}
			}
		})
	}
}

// Close sends everything Send accepted before it returns.
func TestUDPCloseDeliversQueued(t *testing.T) {
	leakcheck.Check(t)
	const n = 2000
	size := func(i int) int { return 100 + i%200 }
	for _, m := range udpIOModes[:2] {
		t.Run(m.name, func(t *testing.T) {
			r := newUDPReceiver(size)
			rx := newUDPFlowMode(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{Handler: r.handle, ReceiveBuffer: 4 << 20}, m.mode)
			tx := newUDPFlowMode(t, UDPConfig{Destination: rx.LocalAddr().String()}, Options{}, m.mode)
			for i := range n {
				if err := tx.Send(udpTestSeq(i, size(i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Close(); err != nil {
				t.Fatal(err)
			}
			if st := tx.Stats(); st.SequencesOut != n || st.Dropped != 0 {
				t.Fatalf("after Close: %+v", st)
			}
			if err := tx.Send(udpTestSeq(0, 1)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Send after Close: %v", err)
			}
			udpEventually(t, 10*time.Second, func() bool { return r.n.Load() == n }, "received %d of %d", r.n.Load(), n)
			r.check(t, n)
		})
	}
}

// stallUDPWriter holds tx's writer before its next system call until the
// returned function is called. It must be called before tx sends anything.
func stallUDPWriter(tx *UDPFlow) (stalled <-chan struct{}, release func()) {
	ch, in := make(chan struct{}), make(chan struct{}, 1)
	tx.w.stall = func() {
		select {
		case in <- struct{}{}:
		default:
		}
		<-ch
	}
	var once sync.Once
	return in, func() { once.Do(func() { close(ch) }) }
}

// A full queue makes Send wait SlowConsumerWait, then refuse; then it refuses
// at once until the writer has drained half of it. Peer.Send never waits.
func TestUDPQueueFull(t *testing.T) {
	leakcheck.Check(t)
	// Sends that must not wait are allowed wait/2: 500 ms, for a sender
	// preempted on a loaded machine (with 200 ms, 100 ms was short).
	const wait = time.Second
	r := newUDPReceiver(func(int) int { return 1000 })
	rx := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{Handler: r.handle, ReceiveBuffer: 4 << 20})
	// Sequences 1, 2, 4, 5, 7 ... (i%3 != 0) are all the same size.
	size := udpQueuedSize(udpTestSeq(1, 1000))
	var logs bytes.Buffer
	var logMu sync.Mutex
	tx := newUDPFlow(t, UDPConfig{Destination: rx.LocalAddr().String()}, Options{
		QueueBytes:       3*size + size/2,
		SlowConsumerWait: wait,
		Logger:           slog.New(slog.NewTextHandler(udpLockedWriter{&logMu, &logs}, nil)),
	})
	stalled, release := stallUDPWriter(tx)
	defer release()

	var sent []int
	send := func(i int, wantErr error, minWait, maxWait time.Duration) {
		t.Helper()
		start := time.Now()
		err := tx.Send(udpTestSeq(i, 1000))
		took := time.Since(start)
		if !errors.Is(err, wantErr) || took < minWait || took > maxWait {
			t.Fatalf("send %d: %v after %v, want %v after %v to %v", i, err, took, wantErr, minWait, maxWait)
		}
		if err == nil {
			sent = append(sent, i)
		}
	}
	send(1, nil, 0, wait/2)
	<-stalled // the writer holds sequence 1
	send(2, nil, 0, wait/2)
	send(4, nil, 0, wait/2)
	// The queue is full: a reply does not wait, Send does.
	peer := &udpPeer{f: tx, addr: rx.LocalAddr()}
	start := time.Now()
	if err := peer.Send(udpTestSeq(5, 1000)); !errors.Is(err, ErrQueueFull) || time.Since(start) > wait/2 {
		t.Fatalf("reply to a full queue: %v after %v", err, time.Since(start))
	}
	send(5, ErrQueueFull, wait, 10*wait)
	send(7, ErrQueueFull, 0, wait/2) // lagging: refused at once
	if st := tx.Stats(); st.Dropped != 3 || st.SequencesOut != 0 {
		t.Fatalf("stats while stalled: %+v", st)
	}

	release()
	udpEventually(t, 10*time.Second, func() bool { return tx.Stats().SequencesOut == 3 }, "sent %+v", tx.Stats())
	send(8, nil, 0, wait/2) // drained: accepted again
	udpEventually(t, 10*time.Second, func() bool { return r.n.Load() == int64(len(sent)) }, "received %d of %d", r.n.Load(), len(sent))
	r.mu.Lock()
	for _, i := range sent {
		if r.seen[i] != 1 {
			t.Errorf("sequence %d received %d times", i, r.seen[i])
		}
	}
	r.mu.Unlock()
	logMu.Lock()
	defer logMu.Unlock()
	// Three refusals within about a second: one line, or two across a
	// second.
	if got := strings.Count(logs.String(), "outbound queue full"); got < 1 || got > 2 {
		t.Fatalf("%d log lines about the full queue, want one a second:\n%s", got, logs.String())
	}
}

// Close gives up on a writer that does not finish within CloseTimeout and
// counts what was not sent as dropped.
func TestUDPCloseTimeout(t *testing.T) {
	leakcheck.Check(t)
	rx := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{})
	var logs syncbuf.Buffer
	tx := newUDPFlow(t, UDPConfig{Destination: rx.LocalAddr().String()}, Options{CloseTimeout: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	stalled, release := stallUDPWriter(tx)
	defer release()
	for i := range 3 {
		if err := tx.Send(udpTestSeq(i, 10)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-stalled
		}
	}
	// Close waits for the writer once it has given up: release it when
	// Close says it gave up (after a fixed 200 ms, as before, it could send
	// before a Close delayed on a loaded machine had given up).
	go func() {
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "queue not drained in time") && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond) // poll
		}
		release()
	}()
	start := time.Now()
	if err := tx.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Fatalf("Close returned after %v, before its timeout", took)
	}
	if st := tx.Stats(); st.Dropped != 3 || st.SequencesOut != 0 {
		t.Fatalf("stats %+v, want the 3 queued sequences dropped", st)
	}
	if st := rx.Stats(); st.SequencesIn != 0 {
		t.Fatalf("receiver got %d sequences", st.SequencesIn)
	}
}

// A datagram the system refuses loses its sequence (and the rest of its
// fragments), which is counted and logged; the sequences around it go out.
func TestUDPSendRefused(t *testing.T) {
	leakcheck.Check(t)
	// Port 0: the kernel refuses it (EINVAL) on every route.
	refused := netip.MustParseAddrPort("127.0.0.1:0")
	// Good sequences are 0, 1, 2 ...; refused ones are 1000 + their place.
	// 1128 is fragmented and its fragments straddle the end of the first
	// udpSendBatch datagrams the writer takes.
	size := func(idx int) int {
		switch {
		case idx == 1000+udpSendBatch:
			return 70000
		case idx <= udpSendBatch:
			return 100
		}
		return 100 + 70000*(idx%2)
	}
	for _, m := range udpIOModes[:2] {
		t.Run(m.name, func(t *testing.T) {
			r := newUDPReceiver(size)
			rx := newUDPFlowMode(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{Handler: r.handle, ReceiveBuffer: 4 << 20}, m.mode)
			var logs bytes.Buffer
			var logMu sync.Mutex
			tx := newUDPFlowMode(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{
				Logger: slog.New(slog.NewTextHandler(udpLockedWriter{&logMu, &logs}, nil)),
			}, m.mode)
			stalled, release := stallUDPWriter(tx)
			// Queue everything while the writer holds sequence 0, so that
			// the rest is taken at once: udpSendBatch-1 good ones, the
			// straddling refused one, then refused ones (some fragmented)
			// between good ones (some fragmented).
			const n = udpSendBatch + 20
			good := 0
			for i := range n {
				to, idx := refused, 1000+i
				if i < udpSendBatch || i%3 == 0 {
					to, idx = rx.LocalAddr(), good
					good++
				}
				if err := tx.SendTo(udpTestSeq(idx, size(idx)), to); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				if i == 0 {
					<-stalled
				}
			}
			release()
			tx.Close()
			if st := tx.Stats(); st.SequencesOut != uint64(good) || st.Dropped != uint64(n-good) {
				t.Fatalf("sender stats %+v, want %d sent and %d dropped", st, good, n-good)
			}
			udpEventually(t, 10*time.Second, func() bool { return r.n.Load() == int64(good) }, "received %d of %d", r.n.Load(), good)
			r.check(t, good)
			logMu.Lock()
			out := logs.String()
			logMu.Unlock()
			if !strings.Contains(out, "UDP send failed") || !strings.Contains(out, refused.String()) {
				t.Fatalf("no log line about the refused send:\n%s", out)
			}
			t.Logf("log: %s", out)
		})
	}
}

// checkUDPBatchUse checks, after Close, that a flow used the system calls
// its mode says: batch calls where the system has them, else one datagram
// per call (an ENOSYS flow falls back on its first call). send says which
// direction the test used.
func checkUDPBatchUse(t *testing.T, f *UDPFlow, mode udpIOMode, send bool) {
	t.Helper()
	batch := f.r.batch != nil
	if send {
		batch = f.w.batch != nil
	}
	if want := (mode == udpIOBatch || mode == udpIOBatchNoOffload) && udpBatchSupported; batch != want {
		t.Fatalf("mode %d, sending %v: batch calls in use %v, want %v", mode, send, batch, want)
	}
}
