package flow

import (
	"github.com/stk-go/stk/internal/leakcheck"

	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testprog/multicast"
	"github.com/stk-go/stk/seq"
)

// udpEventually polls cond until it holds or timeout passes.
func udpEventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(time.Millisecond) // poll
	}
}

// newUDPFlow opens a flow and closes it when the test ends.
func newUDPFlow(t testing.TB, cfg UDPConfig, opts Options) *UDPFlow {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = udpTestLogger(t)
	}
	f, err := NewUDP(cfg, opts)
	if err != nil {
		t.Fatalf("NewUDP(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func udpTestLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(udpTestWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type udpTestWriter struct{ t testing.TB }

func (w udpTestWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// Test sequences: element 0 is the index (u64), element 1 a payload whose
// bytes derive from the index, and sometimes a third small element.
const udpTestSeqName = "udp test sequence"

func udpTestSeq(i, size int) *seq.Sequence {
	s := seq.New(uint64(0x5000+i), udpTestSeqName, seq.TypeData)
	s.AddUint64(1, uint64(i))
	s.Add(2, udpPayload(i, size))
	if i%3 == 0 {
		s.AddCString(3, "third")
	}
	return s
}

func udpPayload(i, size int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(i*31 + j*7 + j>>8)
	}
	return b
}

// udpCheckSeq verifies a received test sequence and returns its index.
func udpCheckSeq(s *seq.Sequence, size func(i int) int) (int, error) {
	if s.Name != udpTestSeqName || s.Type != seq.TypeData {
		return -1, fmt.Errorf("got %v, want a test sequence", s)
	}
	if len(s.Elements) < 2 {
		return -1, fmt.Errorf("got %d elements", len(s.Elements))
	}
	v, ok := s.Elements[0].Uint64()
	if !ok || s.Elements[0].UserType != 1 {
		return -1, fmt.Errorf("bad index element")
	}
	i := int(v)
	if s.ID != uint64(0x5000+i) {
		return i, fmt.Errorf("sequence %d: id %#x", i, s.ID)
	}
	if e := s.Elements[1]; e.UserType != 2 || !bytes.Equal(e.Data, udpPayload(i, size(i))) {
		return i, fmt.Errorf("sequence %d: payload of %d bytes is wrong (want %d)", i, len(e.Data), size(i))
	}
	want := 2
	if i%3 == 0 {
		want = 3
		if e := s.Elements[2]; e.UserType != 3 || e.CString() != "third" {
			return i, fmt.Errorf("sequence %d: third element wrong", i)
		}
	}
	if len(s.Elements) != want {
		return i, fmt.Errorf("sequence %d: %d elements, want %d", i, len(s.Elements), want)
	}
	return i, nil
}

// udpReceiver collects test sequences and the first error.
type udpReceiver struct {
	size  func(int) int
	mu    sync.Mutex
	seen  map[int]int // index -> times received
	peers map[int]netip.AddrPort
	err   error
	n     atomic.Int64
}

func newUDPReceiver(size func(int) int) *udpReceiver {
	return &udpReceiver{size: size, seen: make(map[int]int), peers: make(map[int]netip.AddrPort)}
}

func (r *udpReceiver) handle(from Peer, s *seq.Sequence) {
	if s.Name == "probe" {
		return // TestUDPMulticast's
	}
	i, err := udpCheckSeq(s, r.size)
	r.mu.Lock()
	if err != nil && r.err == nil {
		r.err = err
	}
	if err == nil {
		r.seen[i]++
		r.peers[i] = from.RemoteAddr()
		if s.Generation != 1 {
			r.err = fmt.Errorf("sequence %d: generation %d, want 1", i, s.Generation)
		}
	}
	r.mu.Unlock()
	r.n.Add(1)
}

func (r *udpReceiver) check(t *testing.T, n int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		t.Fatal(r.err)
	}
	for i := range n {
		if r.seen[i] != 1 {
			t.Fatalf("sequence %d received %d times", i, r.seen[i])
		}
	}
	if len(r.seen) != n {
		t.Fatalf("received %d distinct sequences, want %d", len(r.seen), n)
	}
}

// udpSendPaced sends sequences 0..n-1 in bursts, waiting after each burst until
// every udpReceiver has them all: loopback UDP loses nothing unless a socket
// buffer overflows, and this keeps the buffers from overflowing.
func udpSendPaced(t *testing.T, f *UDPFlow, n, burst int, size func(int) int, rs ...*udpReceiver) {
	t.Helper()
	for i := 0; i < n; {
		end := min(i+burst, n)
		for ; i < end; i++ {
			s := udpTestSeq(i, size(i))
			if err := f.Send(s); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			if s.Generation != 1 {
				t.Fatalf("send %d: generation %d after the first send, want 1", i, s.Generation)
			}
		}
		for k, r := range rs {
			udpEventually(t, 10*time.Second, func() bool { return r.n.Load() >= int64(end) },
				"udpReceiver %d got %d of the first %d sequences (lost on loopback?)", k, r.n.Load(), end)
		}
	}
}

func udpUnicastSize(i int) int {
	if i == 500 {
		return 200 << 10 // four fragments
	}
	return [...]int{0, 16, 100, 1000, 9000, 30000, 65400, 70000}[i%8]
}

func TestUDPUnicast(t *testing.T) {
	leakcheck.Check(t)
	r := newUDPReceiver(udpUnicastSize)
	rx := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{Handler: r.handle, ReceiveBuffer: 4 << 20})
	tx := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0", Destination: rx.LocalAddr().String()}, Options{})
	if rx.Protocol() != UDP || tx.Protocol() != UDP {
		t.Fatalf("protocols %v, %v; want udp", rx.Protocol(), tx.Protocol())
	}
	if rx.LocalAddr().Port() == 0 || rx.LocalAddr().Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("LocalAddr %v", rx.LocalAddr())
	}
	const n = 1000
	udpSendPaced(t, tx, n, 16, udpUnicastSize, r)
	r.check(t, n)
	for i, from := range r.peers {
		if from != tx.LocalAddr() {
			t.Fatalf("sequence %d from %v, want %v", i, from, tx.LocalAddr())
		}
	}
	// The writer counts a datagram when the system call returns, which can
	// be after the receiver has it.
	udpEventually(t, 10*time.Second, func() bool { return tx.Stats().SequencesOut == n }, "sender stats %+v", tx.Stats())
	ts, rs := tx.Stats(), rx.Stats()
	if ts.SequencesOut != n || rs.SequencesIn != n || ts.BytesOut != rs.BytesIn || rs.Malformed != 0 || rs.Dropped != 0 || ts.Dropped != 0 {
		t.Fatalf("stats: sender %+v, udpReceiver %+v", ts, rs)
	}
}

// A sequence sent again carries the next generation, as in C.
func TestUDPGeneration(t *testing.T) {
	leakcheck.Check(t)
	gens := make(chan uint16, 10)
	rx := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{Handler: func(_ Peer, s *seq.Sequence) { gens <- s.Generation }})
	tx := newUDPFlow(t, UDPConfig{Destination: rx.LocalAddr().String()}, Options{})
	s := udpTestSeq(1, 10)
	for want := uint16(1); want <= 3; want++ {
		if err := tx.Send(s); err != nil {
			t.Fatal(err)
		}
		if got := <-gens; got != want || s.Generation != want {
			t.Fatalf("send %d: received generation %d, sequence has %d", want, got, s.Generation)
		}
	}
	if tx.Protocol() != UDP || tx.LocalAddr().Addr() != netip.IPv4Unspecified() {
		t.Fatalf("sender %v bound to %v", tx.Protocol(), tx.LocalAddr())
	}
}

func TestUDPRaw(t *testing.T) {
	leakcheck.Check(t)
	type got struct {
		from netip.AddrPort
		p    Protocol
		s    *seq.Sequence
	}
	ch := make(chan got, 100)
	label := seq.RawUDPConfig{ID: 0xabc, Type: seq.TypeMgmt, Name: "raw in", UserType: 0x135}
	rx := newUDPFlow(t, UDPConfig{Raw: true, Bind: "127.0.0.1:0"}, Options{
		RawUDP:  &label,
		Handler: func(from Peer, s *seq.Sequence) { ch <- got{from.RemoteAddr(), from.Protocol(), s.Clone()} },
	})
	tx := newUDPFlow(t, UDPConfig{Raw: true, Bind: "127.0.0.1:0", Destination: rx.LocalAddr().String()}, Options{})
	if rx.Protocol() != RawUDP || tx.Protocol() != RawUDP {
		t.Fatalf("protocols %v, %v; want rawudp", rx.Protocol(), tx.Protocol())
	}

	// No element: nothing is sent. Several: refused.
	empty := seq.New(1, "x", seq.TypeData)
	if err := tx.Send(empty); err != nil || empty.Generation != 0 {
		t.Fatalf("empty raw send: %v, generation %d", err, empty.Generation)
	}
	two := udpTestSeq(0, 5)
	if err := tx.Send(two); !errors.Is(err, seq.ErrRawUDPElements) {
		t.Fatalf("two-element raw send: %v, want ErrRawUDPElements", err)
	}

	sizes := []int{1, 10, 1000, 65507}
	for i, size := range sizes {
		s := seq.New(99, "ignored", seq.TypeData)
		s.Add(7, udpPayload(i, size))
		if err := tx.Send(s); err != nil {
			t.Fatalf("send %d bytes: %v", size, err)
		}
	}
	for i, size := range sizes {
		var g got
		select {
		case g = <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("raw datagram %d not received", i)
		}
		s := g.s
		if s.ID != label.ID || s.Type != label.Type || s.Name != label.Name || len(s.Elements) != 1 || s.Elements[0].UserType != label.UserType {
			t.Fatalf("received %v (user type %#x), want it labelled by %+v", s, s.Elements[0].UserType, label)
		}
		if !bytes.Equal(s.Elements[0].Data, udpPayload(i, size)) {
			t.Fatalf("datagram %d: payload of %d bytes differs", i, len(s.Elements[0].Data))
		}
		if g.from != tx.LocalAddr() || g.p != RawUDP {
			t.Fatalf("from %v over %v, want %v over rawudp", g.from, g.p, tx.LocalAddr())
		}
	}
	// One byte over the maximum datagram is refused.
	big := seq.New(1, "", seq.TypeData)
	big.Add(0, make([]byte, seq.MRU+1))
	if err := tx.Send(big); err == nil {
		t.Fatal("oversized raw datagram sent")
	}
	udpEventually(t, 10*time.Second, func() bool { return tx.Stats().SequencesOut == uint64(len(sizes)) }, "sender stats %+v", tx.Stats())
	if st := tx.Stats(); st.SequencesOut != uint64(len(sizes)) || st.Dropped != 1 {
		t.Fatalf("sender stats %+v", st)
	}

	// Default labels: type data, name "UDP", user type 0, id 0.
	ch2 := make(chan *seq.Sequence, 1)
	rx2 := newUDPFlow(t, UDPConfig{Raw: true, Bind: "127.0.0.1:0"}, Options{Handler: func(_ Peer, s *seq.Sequence) { ch2 <- s.Clone() }})
	s := seq.New(5, "", seq.TypeData)
	s.AddCString(9, "hi")
	if err := tx.SendTo(s, rx2.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-ch2:
		if s.ID != 0 || s.Type != seq.TypeData || s.Name != "UDP" || s.Elements[0].UserType != 0 || s.Elements[0].CString() != "hi" {
			t.Fatalf("default raw labels: %v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("raw datagram to the default-labelled flow not received")
	}
}

// Request/response over UDP, the way the name service answers: the server
// replies through the Peer, during the Handler and later from another
// goroutine, to each client's own address.
func TestUDPReplyViaPeer(t *testing.T) {
	leakcheck.Check(t)
	peers := make(chan Peer, 10)
	srv := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{Handler: func(from Peer, s *seq.Sequence) {
		req, _ := s.Find(seq.UTNSRequestID)
		reply := seq.New(s.ID, "reply", seq.TypeRequest)
		reply.AddCopy(seq.UTNSRequestID, req.Data) // the request dies with the Handler
		reply.AddCString(seq.UTNSName, "pong to "+from.RemoteAddr().String())
		if err := from.Send(reply); err != nil {
			t.Errorf("reply: %v", err)
		}
		peers <- from
	}})

	type client struct {
		f       *UDPFlow
		replies chan *seq.Sequence
	}
	var clients []client
	for range 2 {
		c := client{replies: make(chan *seq.Sequence, 10)}
		c.f = newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0", Destination: srv.LocalAddr().String()},
			Options{Handler: func(from Peer, s *seq.Sequence) {
				if from.RemoteAddr() != srv.LocalAddr() {
					t.Errorf("reply from %v, want %v", from.RemoteAddr(), srv.LocalAddr())
				}
				c.replies <- s.Clone()
			}})
		clients = append(clients, c)
	}
	wait := func(c client) *seq.Sequence {
		t.Helper()
		select {
		case s := <-c.replies:
			return s
		case <-time.After(10 * time.Second):
			t.Fatalf("no reply for %v", c.f.LocalAddr())
			return nil
		}
	}
	var kept []Peer
	for k, c := range clients {
		req := seq.New(seq.IDNameRequest, seq.NameNameRequest, seq.TypeQuery)
		req.AddUint64(seq.UTNSRequestID, uint64(1000+k))
		if err := c.f.Send(req); err != nil {
			t.Fatal(err)
		}
		s := wait(c)
		id, _ := s.Elements[0].Uint64()
		name, _ := s.Find(seq.UTNSName)
		if s.ID != seq.IDNameRequest || s.Type != seq.TypeRequest || id != uint64(1000+k) || name.CString() != "pong to "+c.f.LocalAddr().String() {
			t.Fatalf("client %d: reply %v id %d %q", k, s, id, name.CString())
		}
		p := <-peers
		if p.RemoteAddr() != c.f.LocalAddr() || p.LocalAddr() != srv.LocalAddr() || p.Protocol() != UDP || p.Close() != nil {
			t.Fatalf("peer %v/%v/%v for client %v", p.RemoteAddr(), p.LocalAddr(), p.Protocol(), c.f.LocalAddr())
		}
		kept = append(kept, p)
	}
	if kept[0].ID() != kept[1].ID() {
		t.Fatalf("datagram peers of one flow have ids %d and %d, want the flow's", kept[0].ID(), kept[1].ID())
	}
	// Later, from this goroutine: each kept Peer still reaches its client.
	for k := len(kept) - 1; k >= 0; k-- {
		note := seq.New(42, "notification", seq.TypeQuery)
		note.AddUint64(seq.UTNSRequestID, uint64(k))
		if err := kept[k].Send(note); err != nil {
			t.Fatal(err)
		}
		s := wait(clients[k])
		if v, _ := s.Elements[0].Uint64(); s.ID != 42 || v != uint64(k) {
			t.Fatalf("client %d got %v", k, s)
		}
	}
}

func TestUDPMulticast(t *testing.T) {
	multicast.Need(t)
	leakcheck.Check(t)
	group := netip.AddrFrom4([4]byte{239, 77, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
	size := func(i int) int {
		if i == 50 {
			return 100 << 10 // fragmented
		}
		return [...]int{0, 10, 1000, 8000}[i%4]
	}
	ra, rb := newUDPReceiver(size), newUDPReceiver(size)
	a, err := NewUDP(UDPConfig{Bind: "0.0.0.0:0", Group: group.String()}, Options{Handler: ra.handle, ReceiveBuffer: 4 << 20, Logger: udpTestLogger(t)})
	if err != nil {
		t.Fatalf("join multicast group %v: %v", group, err)
	}
	t.Cleanup(func() { a.Close() })
	port := a.LocalAddr().Port()
	dest := netip.AddrPortFrom(group, port).String()
	tx := newUDPFlow(t, UDPConfig{Destination: dest}, Options{})
	for _, f := range []*UDPFlow{a, tx} {
		if f.Protocol() != Multicast {
			t.Fatalf("flow on %v reports %v, want multicast", f.LocalAddr(), f.Protocol())
		}
	}

	// Wait until a sequence sent through the flows comes back (multicast
	// itself works: multicast.Need checked it with plain sockets).
	probes := make(chan struct{}, 100)
	probe := newUDPFlow(t, UDPConfig{Bind: fmt.Sprintf(":%d", port), Group: group.String()},
		Options{Handler: func(Peer, *seq.Sequence) { probes <- struct{}{} }})
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
probing:
	for {
		if err := tx.Send(seq.New(7, "probe", seq.TypeMgmt)); err != nil {
			t.Fatalf("send to multicast group %v: %v", dest, err)
		}
		select {
		case <-probes:
			break probing
		case <-deadline:
			t.Fatalf("nothing sent through a flow to %v came back within 10 s, though multicast works on this host", dest)
		case <-tick.C:
		}
	}
	probe.Close()

	b := newUDPFlow(t, UDPConfig{Bind: fmt.Sprintf("0.0.0.0:%d", port), Group: group.String()}, Options{Handler: rb.handle, ReceiveBuffer: 4 << 20})
	// A flow on the same port that joined another group must not get this
	// group's datagrams (IP_MULTICAST_ALL off).
	var other atomic.Int64
	otherGroup := netip.AddrFrom4([4]byte{239, 78, group.As4()[2], group.As4()[3]})
	newUDPFlow(t, UDPConfig{Bind: fmt.Sprintf(":%d", port), Group: otherGroup.String()}, Options{Handler: func(Peer, *seq.Sequence) { other.Add(1) }})

	const n = 200
	udpSendPaced(t, tx, n, 8, size, ra, rb)
	ra.check(t, n)
	rb.check(t, n)
	if b.Protocol() != Multicast {
		t.Fatalf("udpReceiver reports %v", b.Protocol())
	}
	if got := other.Load(); got != 0 {
		t.Fatalf("a flow in group %v received %d sequences sent to %v", otherGroup, got, group)
	}
	t.Logf("multicast to %v: both receivers got all %d sequences", dest, n)
}

func TestUDPMalformed(t *testing.T) {
	leakcheck.Check(t)
	var logs bytes.Buffer
	var logMu sync.Mutex
	good := make(chan *seq.Sequence, 1)
	rx := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{
		Handler: func(_ Peer, s *seq.Sequence) { good <- s.Clone() },
		Logger:  slog.New(slog.NewTextHandler(udpLockedWriter{&logMu, &logs}, nil)),
	})
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(rx.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	header := func(nfrag, idx uint64, extra int) []byte {
		d := make([]byte, 40+extra)
		binary.LittleEndian.PutUint64(d[0:], 0x77)
		binary.LittleEndian.PutUint64(d[8:], nfrag)
		binary.LittleEndian.PutUint64(d[16:], idx)
		binary.LittleEndian.PutUint16(d[28:], 1)
		return d
	}
	var bad [][]byte
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 { // random bytes, most of them longer than a header
		d := make([]byte, 1+rng.IntN(3000))
		for i := range d {
			d[i] = byte(rng.Uint32())
		}
		if len(d) >= 16 {
			d[15] |= 0x80 // num_fragments ≥ 2^63
		}
		bad = append(bad, d)
	}
	for n := range 40 { // truncated headers
		bad = append(bad, header(1, 0, 0)[:n])
	}
	bad = append(bad,
		header(1<<60, 0, 100),  // 2^60 fragments
		header(1<<60, 5, 100),  // ... not the first one
		header(0, 0, 100),      // no fragments
		header(3, 3, 100),      // index past the count
		header(1, 0, 10),       // first fragment too short for its type/name header
		header(1, 0, 18+24+10), // a segment whose offset is beyond its length
	)
	// Fix up the last two: a first-fragment header with a bad segment.
	d := bad[len(bad)-1]
	binary.LittleEndian.PutUint16(d[48:], 1)
	binary.LittleEndian.PutUint32(d[58+4:], 5)  // len
	binary.LittleEndian.PutUint32(d[58+8:], 50) // offset
	nameOverrun := header(1, 0, 18+5)
	binary.LittleEndian.PutUint16(nameOverrun[56:], 100)
	bad = append(bad, nameOverrun)
	for _, d := range bad {
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
	}

	tx := newUDPFlow(t, UDPConfig{Destination: rx.LocalAddr().String()}, Options{})
	if err := tx.Send(udpTestSeq(4, 5000)); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-good:
		if i, err := udpCheckSeq(s, func(int) int { return 5000 }); err != nil || i != 4 {
			t.Fatalf("good sequence after garbage: %d %v", i, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("good sequence after the garbage not received")
	}
	udpEventually(t, 10*time.Second, func() bool { return rx.Stats().Malformed == uint64(len(bad)) },
		"malformed count %d, want %d", rx.Stats().Malformed, len(bad))
	if st := rx.Stats(); st.SequencesIn != 1 {
		t.Fatalf("stats %+v", st)
	}
	logMu.Lock()
	lines := strings.Count(logs.String(), "dropped malformed datagram")
	out := logs.String()
	logMu.Unlock()
	if lines < 1 || lines > 2 { // one a second; the test takes milliseconds
		t.Fatalf("%d log lines about %d malformed datagrams:\n%s", lines, len(bad), out)
	}
	t.Logf("log: %s", out)
}

type udpLockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l udpLockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// A half-received sequence is dropped after ReassemblyTimeout even when no
// more datagrams arrive, and the flow then takes the whole sequence.
func TestUDPReassemblyExpiry(t *testing.T) {
	leakcheck.Check(t)
	got := make(chan *seq.Sequence, 1)
	rx := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{
		Handler: func(_ Peer, s *seq.Sequence) { got <- s.Clone() },
		// Long enough for the two writes of the complete sequence at the
		// end to arrive within it on a loaded machine (50 ms did not
		// always).
		ReassemblyTimeout: 500 * time.Millisecond,
	})
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(rx.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := udpTestSeq(1, 70000)
	s.Generation = 1
	var frags [][]byte
	if _, err := seq.AppendUDP(nil, s, 1, func(d []byte) error {
		frags = append(frags, append([]byte(nil), d...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(frags) != 2 {
		t.Fatalf("%d fragments", len(frags))
	}
	if _, err := conn.Write(frags[0]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	udpEventually(t, 10*time.Second, func() bool { return rx.Stats().Dropped == 1 }, "half-received sequence not expired: %+v", rx.Stats())
	t.Logf("partial expired after %v", time.Since(start))
	// The second fragment alone is now a new partial, expired in turn.
	if _, err := conn.Write(frags[1]); err != nil {
		t.Fatal(err)
	}
	udpEventually(t, 10*time.Second, func() bool { return rx.Stats().Dropped == 2 }, "second partial not expired: %+v", rx.Stats())
	for _, d := range frags {
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case s := <-got:
		if _, err := udpCheckSeq(s, func(int) int { return 70000 }); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("complete sequence not received")
	}
	if st := rx.Stats(); st.SequencesIn != 1 || st.Malformed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUDPCloseAndErrors(t *testing.T) {
	leakcheck.Check(t)
	f, err := NewUDP(UDPConfig{Bind: "127.0.0.1:0"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := udpTestSeq(0, 1)
	if err := f.Send(s); !errors.Is(err, ErrNoDestination) {
		t.Fatalf("Send without destination: %v", err)
	}
	if err := f.SendTo(seq.New(1, "", seq.TypeInvalid), netip.MustParseAddrPort("127.0.0.1:9")); !errors.Is(err, seq.ErrInvalidType) {
		t.Fatalf("type 0: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := f.SendTo(s, netip.MustParseAddrPort("127.0.0.1:9")); !errors.Is(err, ErrClosed) {
		t.Fatalf("SendTo after Close: %v", err)
	}
	g, err := NewUDP(UDPConfig{Destination: "127.0.0.1:9"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if err := g.Send(s); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}

	for _, cfg := range []UDPConfig{
		{Bind: "nonsense"},
		{Bind: "[::1]:0"},
		{Bind: ":99999"},
		{Destination: "127.0.0.1"},
		{Destination: "127.0.0.1:0"},
		{Group: "10.0.0.1"},
		{Group: "x"},
	} {
		if f, err := NewUDP(cfg, Options{}); err == nil {
			f.Close()
			t.Errorf("NewUDP(%+v) succeeded", cfg)
		}
	}
	if f, err := NewUDP(UDPConfig{}, Options{MulticastInterface: netip.MustParseAddr("::1")}); err == nil {
		f.Close()
		t.Error("IPv6 multicast interface accepted")
	}
}

// Concurrent senders on one flow: fragments of different sequences are not
// interleaved, and nothing races (run with -race).
func TestUDPConcurrentSend(t *testing.T) {
	leakcheck.Check(t)
	size := func(i int) int { return 1000 + (i%2)*70000 }
	r := newUDPReceiver(size)
	rx := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{Handler: r.handle, ReceiveBuffer: 4 << 20})
	tx := newUDPFlow(t, UDPConfig{Destination: rx.LocalAddr().String()}, Options{})
	const senders, each = 4, 10
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for k := range each {
				i := g*each + k
				if err := tx.Send(udpTestSeq(i, size(i))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	udpEventually(t, 10*time.Second, func() bool { return r.n.Load() == senders*each }, "received %d of %d", r.n.Load(), senders*each)
	r.check(t, senders*each)
}
