package flow

import (
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"

	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/seq"
)

// testSeq returns data sequence number i with a payload of size bytes whose
// first 8 bytes carry i.
func testSeq(i uint64, size int) *seq.Sequence {
	s := seq.New(0x1000+i, "test sequence", seq.TypeData)
	p := make([]byte, max(size, 8))
	binary.LittleEndian.PutUint64(p, i)
	for j := 8; j < len(p); j++ {
		p[j] = byte(i + uint64(j))
	}
	s.Add(seq.UTExampleData, p[:max(size, 8)])
	return s
}

// checkSeq verifies that s is testSeq(i, size) and returns i.
func checkSeq(t testing.TB, s *seq.Sequence, size int) uint64 {
	t.Helper()
	if len(s.Elements) != 1 || len(s.Elements[0].Data) != max(size, 8) {
		t.Fatalf("got %v, want one element of %d bytes", s, size)
	}
	i := binary.LittleEndian.Uint64(s.Elements[0].Data)
	want := testSeq(i, size)
	if s.ID != want.ID || s.Name != want.Name || !bytes.Equal(s.Elements[0].Data, want.Elements[0].Data) {
		t.Fatalf("sequence %d corrupted: %v", i, s)
	}
	return i
}

func listen(t testing.TB, opts Options) *TCPServer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testutil.Discard()
	}
	if opts.EventLoops == 0 {
		opts.EventLoops = 2
	}
	s, err := ListenTCP("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t testing.TB, addr string, opts Options) *TCPClient {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testutil.Discard()
	}
	c, err := DialTCP(addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitConnected(t testing.TB, c *TCPClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatalf("client did not connect: %v", err)
	}
}

// counter counts the test sequences a handler receives, in order.
type counter struct {
	t    testing.TB
	size int
	mu   sync.Mutex
	next map[uint64]uint64 // per peer id: next expected index
	n    atomic.Int64
}

func newCounter(t testing.TB, size int) *counter {
	return &counter{t: t, size: size, next: map[uint64]uint64{}}
}

func (c *counter) handle(p Peer, s *seq.Sequence) {
	i := checkSeq(c.t, s, c.size)
	c.mu.Lock()
	if want := c.next[p.ID()]; i != want {
		c.t.Errorf("peer %d: got sequence %d, want %d (lost or reordered)", p.ID(), i, want)
	}
	c.next[p.ID()] = i + 1
	c.mu.Unlock()
	c.n.Add(1)
}

func TestFramerEverySplit(t *testing.T) {
	var stream []byte
	var want []*seq.Sequence
	for i, size := range []int{0, 1, 10, 100, 3000} {
		s := testSeq(uint64(i), size)
		if size == 0 {
			s.Elements = nil
		}
		want = append(want, s)
		stream, _ = seq.AppendTCP(stream, s)
	}
	named := seq.New(99, "", seq.TypeQuery) // unnamed, no elements: a bare header
	want = append(want, named)
	stream, _ = seq.AppendTCP(stream, named)

	for cut := 0; cut <= len(stream); cut++ {
		fr := framer{maxSize: 1 << 20}
		var got []*seq.Sequence
		keep := func(s *seq.Sequence) { got = append(got, s.Clone()) }
		// Deliver the stream in two reads split at cut, the way a reader
		// buffers: unconsumed bytes stay and new ones are appended.
		buf := append([]byte(nil), stream[:cut]...)
		if fr.ready(len(buf)) {
			n, err := fr.consume(buf, keep)
			if err != nil {
				t.Fatalf("cut %d: %v", cut, err)
			}
			buf = buf[n:]
		}
		buf = append(buf, stream[cut:]...)
		if len(buf) == 0 {
			continue
		}
		if !fr.ready(len(buf)) {
			t.Fatalf("cut %d: %d bytes buffered, framer needs %d", cut, len(buf), fr.need)
		}
		n, err := fr.consume(buf, keep)
		if err != nil || n != len(buf) {
			t.Fatalf("cut %d: consumed %d of %d: %v", cut, n, len(buf), err)
		}
		if len(got) != len(want) {
			t.Fatalf("cut %d: %d sequences, want %d", cut, len(got), len(want))
		}
		for i := range want {
			a, _ := seq.AppendTCP(nil, got[i])
			b, _ := seq.AppendTCP(nil, want[i])
			if !bytes.Equal(a, b) {
				t.Fatalf("cut %d: sequence %d differs", cut, i)
			}
		}
	}
}

func TestTCPSplitWritesOverSockets(t *testing.T) {
	leakcheck.Check(t)
	const size = 200
	cnt := newCounter(t, size)
	srv := listen(t, Options{Handler: cnt.handle})
	var stream []byte
	for i := range 3 {
		stream, _ = seq.AppendTCP(stream, testSeq(uint64(i), size))
	}
	// Every cut over real sockets, several connections at a time.
	var wg sync.WaitGroup
	cuts := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cut := range cuts {
				conn, err := net.Dial("tcp", srv.LocalAddr().String())
				if err != nil {
					t.Error(err)
					return
				}
				conn.(*net.TCPConn).SetNoDelay(true)
				conn.Write(stream[:cut])
				time.Sleep(200 * time.Microsecond) // make the split visible to the reader; correctness does not depend on it
				conn.Write(stream[cut:])
				conn.Close()
			}
		}()
	}
	for cut := 1; cut < len(stream); cut++ {
		cuts <- cut
	}
	close(cuts)
	wg.Wait()
	want := int64(3 * (len(stream) - 1))
	testutil.WaitFor(t, 10*time.Second, "all sequences", func() bool { return cnt.n.Load() == want })
}

func TestTCPOneServerEightClients(t *testing.T) {
	leakcheck.Check(t)
	const n, size = 2000, 100
	srv := listen(t, Options{})
	var clients []*TCPClient
	var counters []*counter
	for range 8 {
		cnt := newCounter(t, size)
		counters = append(counters, cnt)
		c := dial(t, srv.LocalAddr().String(), Options{Handler: cnt.handle})
		waitConnected(t, c)
		clients = append(clients, c)
	}
	testutil.WaitFor(t, 10*time.Second, "8 connections", func() bool { return srv.Conns() == 8 })
	for i := range n {
		if err := srv.Send(testSeq(uint64(i), size)); err != nil {
			t.Fatal(err)
		}
	}
	for _, cnt := range counters {
		testutil.WaitFor(t, 10*time.Second, "every sequence at every client", func() bool { return cnt.n.Load() == n })
	}
	if st := srv.Stats(); st.SequencesOut != 8*n || st.Dropped != 0 {
		t.Fatalf("server stats %+v, want %d out and no drops", st, 8*n)
	}
}

func TestTCPClientToServerAndReply(t *testing.T) {
	leakcheck.Check(t)
	srv := listen(t, Options{Handler: func(p Peer, s *seq.Sequence) {
		r := seq.New(s.ID, "reply", seq.TypeData)
		r.Add(1, s.Elements[0].Data)
		if err := p.Send(r); err != nil {
			t.Error(err)
		}
	}})
	got := make(chan string, 1)
	c := dial(t, srv.LocalAddr().String(), Options{Handler: func(p Peer, s *seq.Sequence) {
		got <- s.Name + ":" + string(s.Elements[0].Data)
	}})
	q := seq.New(7, "ask", seq.TypeData)
	q.AddCopy(1, []byte("hello"))
	if err := c.Send(q); err != nil { // queued before the connection exists
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "reply:hello" {
			t.Fatalf("got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply")
	}
}

func TestTCPLargeSequence(t *testing.T) {
	leakcheck.Check(t)
	const size = 32 << 20
	// Built before, not in the Handler: under -race on one loaded CPU,
	// making 32 MiB takes seconds, and the whole transfer took up to 24 s.
	want := testSeq(5, size).Elements[0].Data
	got := make(chan bool, 1)
	srv := listen(t, Options{})
	c := dial(t, srv.LocalAddr().String(), Options{Handler: func(p Peer, s *seq.Sequence) {
		got <- len(s.Elements) == 1 && bytes.Equal(s.Elements[0].Data, want)
	}})
	waitConnected(t, c)
	testutil.WaitFor(t, 10*time.Second, "connection", func() bool { return srv.Conns() == 1 })
	if err := srv.Send(testSeq(5, size)); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("32 MiB sequence corrupted")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("32 MiB sequence not received within 60 s")
	}
}

func TestTCPOversizedFrameClosesOnlyThatConnection(t *testing.T) {
	leakcheck.Check(t)
	cnt := newCounter(t, 10)
	srv := listen(t, Options{Handler: cnt.handle, MaxSequenceSize: 1 << 16})
	good := dial(t, srv.LocalAddr().String(), Options{})
	waitConnected(t, good)

	bad, err := net.Dial("tcp", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	hdr, _ := seq.AppendTCP(nil, testSeq(0, 10))
	binary.LittleEndian.PutUint32(hdr[24+2+len("test sequence")+1+4:], 0xfffffff0) // claims a 4 GiB element
	bad.Write(hdr[:60])
	bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bad.Read(make([]byte, 1)); err == nil {
		t.Fatal("server kept a connection that claimed a 4 GiB element")
	}
	for i := range 10 {
		good.Send(testSeq(uint64(i), 10))
	}
	testutil.WaitFor(t, 10*time.Second, "the good client's sequences", func() bool { return cnt.n.Load() == 10 })
	if srv.Stats().Malformed != 1 {
		t.Fatalf("malformed = %d, want 1", srv.Stats().Malformed)
	}
}

func TestTCPPeerDisconnectsMidFrame(t *testing.T) {
	leakcheck.Check(t)
	cnt := newCounter(t, 1000)
	closed := make(chan error, 2)
	srv := listen(t, Options{Handler: cnt.handle, OnDisconnect: func(p Peer, err error) { closed <- err }})
	frame, _ := seq.AppendTCP(nil, testSeq(0, 1000))
	conn, err := net.Dial("tcp", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(frame)
	conn.Write(frame[:500]) // the second frame stops half way
	testutil.WaitFor(t, 10*time.Second, "the whole frame", func() bool { return cnt.n.Load() == 1 })
	conn.Close()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("no disconnect reported")
	}
	// The server keeps serving.
	c := dial(t, srv.LocalAddr().String(), Options{})
	c.Send(testSeq(0, 1000)) // a new peer starts its own count at 0
	testutil.WaitFor(t, 10*time.Second, "a later client's sequence", func() bool { return cnt.n.Load() == 2 })
}

func TestTCPSlowSubscriber(t *testing.T) {
	for _, policy := range []SlowConsumerPolicy{Disconnect, Drop} {
		t.Run(policy.String(), func(t *testing.T) {
			leakcheck.Check(t)
			const size, queue = 1000, 256 << 10
			srv := listen(t, Options{QueueBytes: queue, SlowConsumer: policy, SendBuffer: 64 << 10,
				SlowConsumerWait: 2 * time.Second}) // a fast subscriber stalled by a loaded machine must not count as slow
			var fast []*counter
			for range 2 {
				cnt := newCounter(t, size)
				fast = append(fast, cnt)
				waitConnected(t, dial(t, srv.LocalAddr().String(), Options{Handler: cnt.handle}))
			}
			// The stuck subscriber: connected, never reads.
			stuck, err := net.Dial("tcp", srv.LocalAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer stuck.Close()
			stuck.(*net.TCPConn).SetReadBuffer(16 << 10)
			testutil.WaitFor(t, 10*time.Second, "3 connections", func() bool { return srv.Conns() == 3 })

			const n = 20000 // 20 MB: far beyond the stuck peer's queue and socket buffers
			for i := range n {
				if err := srv.Send(testSeq(uint64(i), size)); err != nil {
					t.Fatal(err)
				}
			}
			for _, cnt := range fast {
				testutil.WaitFor(t, 20*time.Second, "every sequence at the fast subscribers", func() bool { return cnt.n.Load() == n })
			}
			st := srv.Stats()
			if st.Dropped == 0 {
				t.Fatalf("stats %+v: nothing dropped for the stuck peer", st)
			}
			switch policy {
			case Disconnect:
				if st.SlowConsumers != 1 {
					t.Fatalf("stats %+v: want one slow consumer disconnected", st)
				}
				testutil.WaitFor(t, 10*time.Second, "the stuck peer's disconnection", func() bool { return srv.Conns() == 2 })
			case Drop:
				if st.SlowConsumers != 0 || srv.Conns() != 3 {
					t.Fatalf("stats %+v, %d conns: policy drop must keep the peer", st, srv.Conns())
				}
			}
		})
	}
}

func TestTCPClientReconnectsAfterServerRestart(t *testing.T) {
	leakcheck.Check(t)
	cnt := newCounter(t, 10)
	srv := listen(t, Options{Handler: cnt.handle})
	addr := srv.LocalAddr().String()
	var connects atomic.Int32
	c := dial(t, addr, Options{ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
		OnConnect: func(Peer) { connects.Add(1) }})
	waitConnected(t, c)
	c.Send(testSeq(0, 10))
	testutil.WaitFor(t, 10*time.Second, "first sequence", func() bool { return cnt.n.Load() == 1 })
	srv.Close()
	testutil.WaitFor(t, 10*time.Second, "the client to notice", func() bool { return !c.Connected() })

	cnt2 := newCounter(t, 10)
	var srv2 *TCPServer
	testutil.WaitFor(t, 10*time.Second, "the port to be free again", func() bool {
		var err error
		srv2, err = ListenTCP(addr, Options{Handler: cnt2.handle, Logger: testutil.Discard()})
		return err == nil
	})

	defer srv2.Close()
	waitConnected(t, c)
	c.Send(testSeq(0, 10))
	testutil.WaitFor(t, 10*time.Second, "a sequence after the restart", func() bool { return cnt2.n.Load() == 1 })
	// The client may also have caught the old listener in its last moments.
	if n, r := connects.Load(), c.Stats().Reconnects; n < 2 || uint64(n) != r+1 {
		t.Fatalf("connects %d, reconnects %d; want at least 2 and one fewer", n, r)
	}
}

func TestTCPCloseDeliversQueued(t *testing.T) {
	leakcheck.Check(t)
	const n, size = 5000, 1000
	cnt := newCounter(t, size)
	srv := listen(t, Options{Handler: cnt.handle})
	c, err := DialTCP(srv.LocalAddr().String(), Options{Logger: testutil.Discard(), QueueBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := c.Send(testSeq(uint64(i), size)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close() // before or while connecting: everything queued must still arrive
	if err := c.Send(testSeq(0, size)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%d sequences", n), func() bool { return cnt.n.Load() == n })
}

func TestTCPSendRefusesWhatCCannotTake(t *testing.T) {
	srv := listen(t, Options{})
	c := dial(t, srv.LocalAddr().String(), Options{})
	if err := c.Send(seq.New(1, "", seq.TypeInvalid)); !errors.Is(err, seq.ErrInvalidType) {
		t.Fatalf("type 0: %v", err)
	}
	s := seq.New(1, "", seq.TypeData)
	for range 256 {
		s.Add(1, nil)
	}
	if err := c.Send(s); !errors.Is(err, seq.ErrTooManyElements) {
		t.Fatalf("256 elements: %v", err)
	}
}
