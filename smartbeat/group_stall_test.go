package smartbeat

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/syncbuf"
)

// TestGroupStallWarnsOnlyWhenItMatters: a late check with no member, or
// whose members still had slack, logs at Debug; one whose credit saved a
// member from a false timeout warns.
func TestGroupStallWarnsOnlyWhenItMatters(t *testing.T) {
	clock := newFakeClock()
	logs := &syncbuf.Buffer{}
	g, err := NewGroup("g", GroupOptions{
		MonitorFlow: newRecFlow("127.0.0.1:50000"), Sender: NewSender(SenderOptions{Period: -1}), Now: clock.Now,
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		CheckInterval: 500 * time.Millisecond, manualChecks: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	const msg = "service group checks were stalled"
	g.check(true)
	clock.Advance(2 * time.Second) // no member: nothing to save
	g.check(true)
	if w, d := len(logLines(logs, "WARN", msg)), len(logLines(logs, "DEBUG", msg)); w != 0 || d != 1 {
		t.Fatalf("stall without members: %d warnings, %d debug lines; want 0 and 1", w, d)
	}
	p := peerOf(flow.TCP, "127.0.0.1:40000")
	if err := g.Invoke(p, createSeq(1, "one", 1200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	g.check(true)
	clock.Advance(1100 * time.Millisecond) // late by 600 ms, still within the 1.2 s timeout
	g.check(true)
	if w := len(logLines(logs, "WARN", msg)); w != 0 {
		t.Fatalf("a stall within the member's slack warned %d times", w)
	}
	clock.Advance(3 * time.Second) // the member would have timed out but for the credit
	g.check(true)
	if w := len(logLines(logs, "WARN", msg)); w != 1 || len(g.Members()) != 1 {
		t.Fatalf("a stall that saved a member: %d warnings, %d members; want 1 and 1", w, len(g.Members()))
	}
}
