package namesvc

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
)

var testPeerIDs atomic.Uint64

// fakePeer is a flow.Peer that records what it is sent.
type fakePeer struct {
	id     uint64
	remote netip.AddrPort
	proto  flow.Protocol

	mu     sync.Mutex
	got    []*seq.Sequence
	closed bool
}

func newFakePeer(proto flow.Protocol, remote string) *fakePeer {
	return &fakePeer{id: 1<<40 + testPeerIDs.Add(1), remote: netip.MustParseAddrPort(remote), proto: proto}
}

// datagramPeer returns a peer of the same UDP flow as p with another
// source address.
func (p *fakePeer) datagramPeer(remote string) *fakePeer {
	return &fakePeer{id: p.id, remote: netip.MustParseAddrPort(remote), proto: p.proto}
}

func (p *fakePeer) ID() uint64                 { return p.id }
func (p *fakePeer) RemoteAddr() netip.AddrPort { return p.remote }
func (p *fakePeer) LocalAddr() netip.AddrPort  { return netip.MustParseAddrPort("127.0.0.1:20002") }
func (p *fakePeer) Protocol() flow.Protocol    { return p.proto }
func (p *fakePeer) Send(s *seq.Sequence) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return flow.ErrClosed
	}
	p.got = append(p.got, s.Clone())
	return nil
}
func (p *fakePeer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proto == flow.TCP {
		p.closed = true
	}
	return nil
}

// take returns and forgets what p was sent.
func (p *fakePeer) take() []*seq.Sequence {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.got
	p.got = nil
	return g
}

func (p *fakePeer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.t = t
	}
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newTestServer returns a server with a fake clock and no listeners.
func newTestServer(t testing.TB, cfg ServerConfig) (*Server, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.GCInterval == 0 {
		cfg.GCInterval = time.Hour // tests call collect themselves
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clk
}

// elems describes a sequence's elements compactly for comparisons:
// "type:data" with C strings shown as text.
func elems(s *seq.Sequence) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v", s.Type)
	for _, e := range s.Elements {
		fmt.Fprintf(&b, " %d:", e.UserType)
		if n := len(e.Data); n > 0 && e.Data[n-1] == 0 && isPrint(e.Data[:n-1]) {
			fmt.Fprintf(&b, "%q", e.Data[:n-1])
		} else {
			fmt.Fprintf(&b, "%x", e.Data)
		}
	}
	return b.String()
}

func isPrint(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// sameSeq reports how a differs from b (id, name, type, elements in order).
func sameSeq(a, b *seq.Sequence) error {
	if a.ID != b.ID || a.Name != b.Name || a.Type != b.Type {
		return fmt.Errorf("header: got id=%#x name=%q type=%v, want id=%#x name=%q type=%v", a.ID, a.Name, a.Type, b.ID, b.Name, b.Type)
	}
	if !sameElements(a.Elements, b.Elements) {
		return fmt.Errorf("elements:\n got  %s\n want %s", elems(a), elems(b))
	}
	return nil
}

func regInfo(name string) Info {
	return Info{Name: name, Linger: 5 * time.Second, FT: FTActive,
		Addresses: []Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:7000")}}}
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
