package smartbeat

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/syncbuf"
	"github.com/stk-go/stk/internal/testutil"
)

// logLines returns the lines of logs logged at level (as "WARN")
// containing msg.
func logLines(logs *syncbuf.Buffer, level, msg string) []string {
	var out []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level="+level+" ") && strings.Contains(l, msg) {
			out = append(out, l)
		}
	}
	return out
}

// stallMonitor is testMonitor with a debug logger into a buffer.
func stallMonitor(t *testing.T) (*Monitor, *testutil.Clock, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	clock := newFakeClock()
	m, err := NewMonitor(MonitorConfig{
		Now: clock.Now, manualChecks: true, CheckInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, clock, logs
}

// TestMonitorStallQuietWithoutServices: a busy machine stalls the checks
// of a monitor that has no services; that extends nothing and warns
// nobody (stkd logged 85 such warnings in 23 minutes), but is counted and
// logged at Debug.
func TestMonitorStallQuietWithoutServices(t *testing.T) {
	m, clock, logs := stallMonitor(t)
	m.tick()
	for range 100 {
		clock.Advance(600 * time.Millisecond) // 500 ms late, above the 250 ms threshold
		m.tick()
	}
	if st := m.Stats(); st.Stalls != 100 || st.StallTime != 100*500*time.Millisecond {
		t.Fatalf("stalls %d, stall time %v; want 100 stalls of 500 ms", st.Stalls, st.StallTime)
	}
	if w := logLines(logs, "WARN", "stalled"); len(w) != 0 {
		t.Fatalf("%d stall warnings with no services, want none; first: %s", len(w), w[0])
	}
	if d := logLines(logs, "DEBUG", "stalled"); len(d) != 100 || !strings.Contains(d[0], "services=0") {
		t.Fatalf("%d stall debug lines, want 100 with services=0: %q", len(d), d)
	}
}

// TestMonitorStallWarnsWhenItMatters: a stall shorter than the slack of
// every service is logged at Debug (its deadline is still extended); one
// that would have timed a service out warns, at most once a minute, and
// the next warning counts the stalls it stood for.
func TestMonitorStallWarnsWhenItMatters(t *testing.T) {
	m, clock, logs := stallMonitor(t)
	p := peerOf(flow.TCP, "127.0.0.1:40000")
	m.tick()
	m.Handle(p, createSeq(1, "a", 1200*time.Millisecond))
	run(m, clock, p, 2*time.Second, 500*time.Millisecond, 1)

	// 400 ms late, right after a beat: the service had 1.2 s of slack.
	m.Handle(p, beatSeq(1, 1))
	clock.Advance(500 * time.Millisecond)
	m.tick()
	if st := m.Stats(); st.Stalls != 1 {
		t.Fatalf("stalls %d after a 400 ms stall, want 1", st.Stalls)
	}
	if c := credits(m); len(c) != 1 || c[0] != 400*time.Millisecond {
		t.Fatalf("stall credits %v: want one service with 400 ms (the extension is kept)", c)
	}
	if w := logLines(logs, "WARN", "stalled"); len(w) != 0 {
		t.Fatalf("a stall within every service's slack warned: %s", w[0])
	}
	if d := logLines(logs, "DEBUG", "stalled"); len(d) != 1 || !strings.Contains(d[0], "services=1") {
		t.Fatalf("stall debug lines %q, want one with services=1", d)
	}

	// Frozen for 3 s: without the credit the service would be timed out.
	stall := func() {
		t.Helper()
		m.Handle(p, beatSeq(2, 1))
		clock.Advance(3 * time.Second)
		m.tick()
		if len(m.Services()) != 1 {
			t.Fatal("the monitor's own stall timed the service out")
		}
		run(m, clock, p, 2*time.Second, 500*time.Millisecond, 1) // recovers, beating
	}
	stall()
	w := logLines(logs, "WARN", "stalled")
	if len(w) != 1 || !strings.Contains(w[0], "saved=1") || !strings.Contains(w[0], "such_stalls=1") {
		t.Fatalf("stall warnings %q, want one with saved=1 such_stalls=1", w)
	}
	// Four more within the minute: Debug only.
	for range 4 {
		stall()
	}
	if w := logLines(logs, "WARN", "stalled"); len(w) != 1 {
		t.Fatalf("%d stall warnings within a minute, want 1 (rate-limited): %q", len(w), w)
	}
	run(m, clock, p, time.Minute, 500*time.Millisecond, 1) // a minute without stalls
	stall()
	w = logLines(logs, "WARN", "stalled")
	if len(w) != 2 || !strings.Contains(w[1], "such_stalls=") {
		t.Fatalf("stall warnings %q, want a second one after a minute", w)
	}
	if !strings.Contains(w[1], "such_stalls=5") || !strings.Contains(w[1], "since=1m") {
		t.Fatalf("second stall warning %q: want such_stalls=5 (4 suppressed and this one) since=1m…", w[1])
	}
}

// credits returns the stall credit of each current record.
func credits(m *Monitor) []time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []time.Duration
	for _, r := range m.t.current {
		out = append(out, r.credit)
	}
	return out
}
