package namesvc

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
)

// testConfig fills in what cfg leaves out with the tests' defaults: the
// clock, a hand-moved one it returns, and a logger shown with -v.
func testConfig(t testing.TB, cfg ServerConfig) (ServerConfig, *testutil.Clock) {
	clk := testutil.NewClock(time.Unix(1_800_000_000, 0))
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = testutil.Logger(t)
	}
	return cfg, clk
}

// newTestServer returns a server with a fake clock and no listeners.
func newTestServer(t testing.TB, cfg ServerConfig) (*Server, *testutil.Clock) {
	t.Helper()
	cfg, clk := testConfig(t, cfg)
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
	if !seq.ElementsEqual(a.Elements, b.Elements) {
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
