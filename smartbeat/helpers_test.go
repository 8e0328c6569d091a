package smartbeat

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/pcap"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/testutil/testpeer"
	"github.com/stk-go/stk/seq"
)

const capturesDir = "../testdata/captures/"

// recFlow is a flow.Flow that records the TCP frames it is sent.
type recFlow struct {
	local netip.AddrPort
	mu    sync.Mutex
	buf   []byte
	seqs  []*seq.Sequence
}

func newRecFlow(local string) *recFlow {
	return &recFlow{local: netip.MustParseAddrPort(local)}
}

func (f *recFlow) Send(s *seq.Sequence) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var err error
	f.buf, err = seq.AppendTCP(f.buf, s)
	f.seqs = append(f.seqs, s.Clone())
	return err
}
func (f *recFlow) LocalAddr() netip.AddrPort { return f.local }
func (f *recFlow) Stats() flow.Stats         { return flow.Stats{} }
func (f *recFlow) Close() error              { return nil }

func (f *recFlow) bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.buf...)
}

func (f *recFlow) sent() []*seq.Sequence {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*seq.Sequence(nil), f.seqs...)
}

// peerOf returns a peer for feeding Handle and Invoke by hand.
func peerOf(proto flow.Protocol, addr string) *testpeer.Peer { return testpeer.New(proto, addr) }

// scriptClock returns the given times in turn, then keeps the last.
type scriptClock struct {
	mu    sync.Mutex
	times []time.Time
}

func (c *scriptClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.times[0]
	if len(c.times) > 1 {
		c.times = c.times[1:]
	}
	return t
}

func tv(sec, usec int64) time.Time { return time.Unix(sec, usec*1000) }

// newFakeClock returns a hand-moved clock at the tests' epoch.
func newFakeClock() *testutil.Clock { return testutil.NewClock(time.Unix(1795313400, 0)) }

// frames splits a TCP stream into its frames.
func frames(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	var s seq.Sequence
	for len(b) > 0 {
		n, _, err := seq.DecodeTCP(&s, b, 0)
		if err != nil || n == 0 {
			t.Fatalf("undecodable stream at %d bytes before its end: %v", len(b), err)
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// decode decodes one TCP frame.
func decode(t testing.TB, b []byte) *seq.Sequence {
	t.Helper()
	var s seq.Sequence
	if _, _, err := seq.DecodeTCP(&s, b, 0); err != nil {
		t.Fatal(err)
	}
	return s.Clone()
}

// captureStream returns the bytes src sent to dst in a capture.
func captureStream(t testing.TB, file, src, dst string) []byte {
	t.Helper()
	ps, err := pcap.Read(capturesDir + file)
	if err != nil {
		t.Fatal(err)
	}
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	for _, st := range pcap.Streams(ps) {
		if st.Src == s && st.Dst == d {
			return st.Data
		}
	}
	t.Fatalf("%s: no stream %s -> %s", file, src, dst)
	return nil
}

// withoutData drops the DATA frames of a stream (in-band notifications
// share the data connection).
func withoutData(t testing.TB, fs [][]byte) [][]byte {
	var out [][]byte
	for _, f := range fs {
		if decode(t, f).Type != seq.TypeData {
			out = append(out, f)
		}
	}
	return out
}

// compareFrames fails with the first differing frame.
func compareFrames(t testing.TB, what string, got, want [][]byte) {
	t.Helper()
	for i := 0; i < max(len(got), len(want)); i++ {
		if i >= len(got) || i >= len(want) {
			t.Fatalf("%s: %d frames, want %d", what, len(got), len(want))
		}
		if string(got[i]) != string(want[i]) {
			t.Fatalf("%s: frame %d differs\n got  %x\n want %x\n (%v)", what, i, got[i], want[i], decode(t, want[i]))
		}
	}
}

// checkNoLeakedGoroutines fails the test if it leaves goroutines behind.
func checkNoLeakedGoroutines(t testing.TB) { leakcheck.Check(t) }
