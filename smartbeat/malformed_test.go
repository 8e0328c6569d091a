package smartbeat

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/syncbuf"
)

// TestMalformedWarningsRateLimited: a peer sending malformed notifications
// gets one warning a second, the next one saying how many were left out;
// every one is counted.
func TestMalformedWarningsRateLimited(t *testing.T) {
	m, clock := testMonitor(t, MonitorConfig{})
	var logs syncbuf.Buffer
	m.log = slog.New(slog.NewTextHandler(&logs, nil))
	m.badLog.Now = clock.Now
	bad := stateSequence("svc", Running, "running")
	bad.Elements[2].Data = []byte{1, 2} // a state element of 2 bytes
	p := peerOf(flow.TCP, "127.0.0.1:40000")
	for range 5 {
		m.Handle(p, bad)
	}
	const msg = "ignoring a malformed notification"
	if w := logLines(&logs, "WARN", msg); len(w) != 1 || strings.Contains(w[0], "suppressed") {
		t.Fatalf("after 5 malformed notifications within a second, warnings %q; want one, with no count", w)
	}
	clock.Advance(time.Second)
	m.Handle(p, bad)
	w := logLines(&logs, "WARN", msg)
	if len(w) != 2 || !strings.Contains(w[1], "suppressed=4") {
		t.Fatalf("a second later, warnings %q; want a second one saying 4 were left out", w)
	}
	if n := m.Stats().Malformed; n != 6 {
		t.Errorf("Stats().Malformed = %d, want 6", n)
	}
}
