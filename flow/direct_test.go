package flow

import (
	"bytes"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
)

// An idle flow's lone sequences are written by Send itself, on both the
// client and the server side (the echo), and a busy sender's go through
// the writer in batches: far fewer direct writes than sequences, every
// sequence delivered, in order.
func TestTCPIdleSendsDirectlyBusyBatches(t *testing.T) {
	leakcheck.Check(t)
	if !rawWriteSupported {
		t.Skip("direct writes need a Unix socket")
	}
	srv := listen(t, Options{Handler: func(p Peer, s *seq.Sequence) {
		if err := p.Send(s); err != nil {
			t.Error(err)
		}
	}})
	echoes := make(chan uint64, 1)
	var busy atomic.Bool
	cnt := newCounter(t, 16)
	c := dial(t, srv.LocalAddr().String(), Options{Handler: func(p Peer, s *seq.Sequence) {
		if busy.Load() {
			cnt.handle(p, s)
			return
		}
		echoes <- checkSeq(t, s, 16)
	}})
	waitConnected(t, c)
	testutil.WaitFor(t, 10*time.Second, "connection", func() bool { return srv.Conns() == 1 })

	checkIdleDirectBusyBatched(t, c, c.queue, srv.conns.load()[0].queue, echoes, &busy, cnt, 20000)
}

// checkIdleDirectBusyBatched pings through the echo of the flow whose
// queue is srvQ, one outstanding and a pause between, and checks that
// nearly all pings and echoes were sent directly (a preempted test on a
// loaded machine may send within directGap of nothing while a write is
// still in flight); then sends a burst, which the Handler counts in cnt
// once busy is set, and checks that it went through the writer.
func checkIdleDirectBusyBatched(t *testing.T, c Flow, cQ, srvQ *outQueue, echoes <-chan uint64, busy *atomic.Bool, cnt *counter, burst int) {
	t.Helper()
	const pings = 50
	for i := range uint64(pings) {
		if err := c.Send(testSeq(i, 16)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-echoes:
			if got != i {
				t.Fatalf("echo %d, want %d", got, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no echo of %d", i)
		}
		time.Sleep(2 * directGap) // idle again
	}
	if d := cQ.directWrites(); d < pings*9/10 {
		t.Errorf("client sent %d of %d idle sequences directly", d, pings)
	}
	if d := srvQ.directWrites(); d < pings*9/10 {
		t.Errorf("server sent %d of %d idle echoes directly", d, pings)
	}

	// Back to back: each echo answers a ping just received, and each ping
	// answers an echo, however soon after the last send: all direct.
	const volleys = 200
	cBefore, srvBefore := cQ.directWrites(), srvQ.directWrites()
	for i := range uint64(volleys) {
		if err := c.Send(testSeq(pings+i, 16)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-echoes:
			if got != pings+i {
				t.Fatalf("echo %d, want %d", got, pings+i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no echo of %d", pings+i)
		}
	}
	// The first ping follows the idle phase's last echo, as answer.
	if d := cQ.directWrites() - cBefore; d != volleys {
		t.Errorf("client sent %d of %d back-to-back pings directly, want all", d, volleys)
	}
	if d := srvQ.directWrites() - srvBefore; d != volleys {
		t.Errorf("server sent %d of %d back-to-back echoes directly, want all: an answer must not wait for the writer", d, volleys)
	}

	busy.Store(true)
	before := cQ.directWrites()
	for i := range uint64(burst) {
		if err := c.Send(testSeq(i, 16)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 20*time.Second, "burst echoed", func() bool { return cnt.n.Load() == int64(burst) })
	if d := cQ.directWrites() - before; d > uint64(burst/10) {
		t.Errorf("a burst of %d sequences made %d direct sends: a busy sender should batch", burst, d)
	}
	// The writer counts a batch once its write returns, which can be after
	// the echoes of it arrived.
	want := uint64(pings + volleys + burst)
	testutil.WaitFor(t, 10*time.Second, "the client's writer to count the burst", func() bool { return c.Stats().SequencesOut >= want })
	if st := c.Stats(); st.SequencesOut != want || st.Dropped != 0 {
		t.Errorf("client stats %+v, want %d sequences out, none dropped", st, want)
	}
}

// A push within directGap of the last one goes to the writer (a busy
// sender's), unless data arrived on the connection since the last direct
// send: then it is an answer and goes directly, once per arrival.
func TestOutQueueAnswerAfterReceiveGoesDirect(t *testing.T) {
	var ctr counters
	q := newOutQueue(1 << 20)
	rc := recordingConn{q: q}
	q.attach(&rc, &ctr)
	frame, _ := seq.AppendTCP(nil, testSeq(1, 16))
	push := func(what string, wantDirect bool) {
		t.Helper()
		q.mu.Lock()
		q.lastPush = nanotime() + int64(time.Hour) // the last push was just now, whatever the clock does
		q.mu.Unlock()
		before := rc.writes
		if r := q.push(frame, 0); r != pushed {
			t.Fatalf("%s: push %v", what, r)
		}
		if direct := rc.writes > before; direct != wantDirect || direct && len(q.pending) > 0 {
			t.Fatalf("%s: written directly %v with %d bytes left pending, want %v", what, direct, len(q.pending), wantDirect)
		}
		if !wantDirect { // let the writer take it, as drain would
			buf, _, _ := q.take(nil)
			q.written(buf)
		}
	}
	push("a push soon after the last", false)
	q.received()
	push("the answer to data just received", true)
	push("a second push for the same arrival", false)
	q.received()
	q.received()
	push("the answer to two reads", true)
	push("then a busy sender's push", false)
}

// recordingConn is q's rawConn: it takes every direct write whole and
// counts them.
type recordingConn struct {
	q      *outQueue
	writes int
}

func (c *recordingConn) Write(func(fd uintptr) bool) error {
	c.writes++
	c.q.dn = len(c.q.dbuf)
	return nil
}

// A direct write the socket takes only in part leaves the rest to the
// writer, ahead of everything sent after it: large sequences through a
// small send buffer arrive whole and in order. (Buffers under loopback's
// 64 KiB segments make Linux crawl: with the server's receive buffer at
// 16 KiB the kernel's sender waited for zero-window probes, which back off
// to seconds on a loaded machine, and the test took 13-35 s now and then.)
func TestTCPDirectPartialWriteKeepsOrder(t *testing.T) {
	leakcheck.Check(t)
	const size = 1 << 20
	const n = 8
	var got atomic.Int64
	srv := listen(t, Options{Handler: func(p Peer, s *seq.Sequence) {
		if i := checkSeq(t, s, size); int64(i) != got.Load() {
			t.Errorf("got sequence %d, want %d", i, got.Load())
		}
		got.Add(1)
	}})
	c := dial(t, srv.LocalAddr().String(), Options{SendBuffer: 64 << 10, QueueBytes: 64 << 20})
	waitConnected(t, c)
	for i := range uint64(n) {
		if err := c.Send(testSeq(i, size)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * directGap) // each finds the queue idle if the writer is done
	}
	testutil.WaitFor(t, 30*time.Second, "large sequences", func() bool { return got.Load() == n })
	if d := c.queue.directWrites(); d == 0 {
		t.Error("no sequence was written directly (in part)")
	}
	if c.queue.partials == 0 { // only Send, on this goroutine, sets it
		t.Error("no direct write was partial: the test did not test what it says")
	}
}

// detach drops the end of a frame written in part to a connection that is
// gone, so that the next connection starts at a frame boundary, and keeps
// the frames queued behind it.
func TestOutQueueDetachDropsPartialFrame(t *testing.T) {
	if !rawWriteSupported {
		t.Skip("direct writes need a Unix socket")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	conn.(*net.TCPConn).SetWriteBuffer(4 << 10)
	peer.(*net.TCPConn).SetReadBuffer(4 << 10)

	var ctr counters
	q := newOutQueue(64 << 20)
	q.attachConn(conn, &ctr)
	big := testSeq(1, 8<<20) // far more than both socket buffers hold
	if r, err := q.pushEncode(big, seq.TCPSize(big), 0); r != pushed || err != nil {
		t.Fatalf("push: %v %v", r, err)
	}
	written := ctr.bytesOut.Load()
	if written == 0 || written >= uint64(seq.TCPSize(big)) {
		t.Fatalf("direct write of an 8 MiB frame wrote %d bytes, want part of it", written)
	}
	small := testSeq(2, 16)
	if r, _ := q.pushEncode(small, seq.TCPSize(small), 0); r != pushed {
		t.Fatalf("second push: %v", r)
	}
	if lost := q.detach(); lost != 1 {
		t.Fatalf("detach lost %d sequences, want 1", lost)
	}
	want, _ := seq.AppendTCP(nil, small)
	if !bytes.Equal(q.pending, want) || q.seqs != 1 || q.queued != len(want) {
		t.Fatalf("after detach: %d pending bytes, %d sequences, %d queued; want the second frame alone (%d bytes)",
			len(q.pending), q.seqs, q.queued, len(want))
	}
	// The next connection gets whole frames only.
	var out bytes.Buffer
	q.close()
	if _, err := q.drain(&out, &ctr, nil); err != nil {
		t.Fatal(err)
	}
	var s seq.Sequence
	if n, _, err := seq.DecodeTCP(&s, out.Bytes(), 1<<20); err != nil || n != out.Len() {
		t.Fatalf("the next connection would get %d bytes that do not decode as one frame: %v", out.Len(), err)
	}
	checkSeq(t, &s, 16)
}

// The same for STK-UDP: an idle flow's lone sequences of one datagram are
// sent by Send itself, a burst goes through the writer (and its
// segmentation offload), every sequence arrives.
func TestUDPIdleSendsDirectlyBusyBatches(t *testing.T) {
	leakcheck.Check(t)
	if !udpBatchSupported {
		t.Skip("direct UDP sends use sendmmsg, which this system does not have")
	}
	srv := newUDPFlowMode(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{ReceiveBuffer: 4 << 20, Handler: func(p Peer, s *seq.Sequence) {
		if err := p.Send(s); err != nil {
			t.Error(err)
		}
	}}, udpIOBatch)
	echoes := make(chan uint64, 1)
	var busy atomic.Bool
	cnt := newCounter(t, 16)
	c := newUDPFlowMode(t, UDPConfig{Bind: "127.0.0.1:0", Destination: srv.LocalAddr().String()}, Options{ReceiveBuffer: 4 << 20, Handler: func(p Peer, s *seq.Sequence) {
		if busy.Load() {
			cnt.handle(p, s)
			return
		}
		echoes <- checkSeq(t, s, 16)
	}}, udpIOBatch)

	checkIdleDirectBusyBatched(t, c, c.queue, srv.queue, echoes, &busy, cnt, 5000)
}
