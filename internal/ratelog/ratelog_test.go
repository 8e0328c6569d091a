package ratelog

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/syncbuf"
	"github.com/stk-go/stk/internal/testutil"
)

func TestAllow(t *testing.T) {
	clk := testutil.NewClock(time.Unix(1_800_000_000, 0))
	l := &Limiter{Every: 10 * time.Second, Now: clk.Now}
	if ok, n := l.Allow(); !ok || n != 0 {
		t.Fatalf("first line: allowed %v, %d suppressed; want allowed, 0", ok, n)
	}
	for i := range 3 {
		clk.Advance(3 * time.Second)
		if ok, _ := l.Allow(); ok {
			t.Fatalf("line %d, %v after the first, allowed within Every (10 s)", i+2, time.Duration(i+1)*3*time.Second)
		}
	}
	clk.Advance(time.Second) // 10 s after the first
	if ok, n := l.Allow(); !ok || n != 3 {
		t.Fatalf("10 s after the first: allowed %v, %d suppressed; want allowed, 3", ok, n)
	}
	clk.Advance(9 * time.Second)
	if ok, _ := l.Allow(); ok {
		t.Fatal("9 s after the last allowed line: allowed")
	}
	clk.Advance(time.Hour)
	if ok, n := l.Allow(); !ok || n != 1 {
		t.Fatalf("an hour later: allowed %v, %d suppressed; want allowed, 1", ok, n)
	}
}

func TestZeroValueOneASecond(t *testing.T) {
	clk := testutil.NewClock(time.Unix(1_800_000_000, 0))
	var l Limiter
	l.Now = clk.Now
	l.Allow()
	clk.Advance(999 * time.Millisecond)
	if ok, _ := l.Allow(); ok {
		t.Fatal("zero Every: a second line within 999 ms allowed")
	}
	clk.Advance(time.Millisecond)
	if ok, n := l.Allow(); !ok || n != 1 {
		t.Fatalf("zero Every, 1 s later: allowed %v, %d suppressed; want allowed, 1", ok, n)
	}
}

// TestConcurrent: of many goroutines logging at the same moment, one
// line gets through and the others are counted toward the next line, none
// toward that one (run with -race). It failed once in a full -race run
// with both cores busy: the winner zeroed the count after publishing its
// time, taking lines refused because of it as refused before it.
func TestConcurrent(t *testing.T) {
	// The race is between the line let through and lines refused at the
	// same moment; many rounds give it many chances.
	for round := range 200 {
		clk := testutil.NewClock(time.Unix(1_800_000_000, 0))
		l := &Limiter{Now: clk.Now}
		var allowed, early atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					if ok, n := l.Allow(); ok {
						allowed.Add(1)
						early.Add(int32(n))
					}
				}
			})
		}
		wg.Wait()
		if n := allowed.Load(); n != 1 {
			t.Fatalf("round %d: %d of 800 simultaneous lines allowed, want 1", round, n)
		}
		if n := early.Load(); n != 0 {
			t.Fatalf("round %d: the first line said %d were suppressed before it, want 0", round, n)
		}
		clk.Advance(time.Second)
		if ok, n := l.Allow(); !ok || n != 799 {
			t.Fatalf("round %d: a second later: allowed %v, %d suppressed; want allowed, 799", round, ok, n)
		}
	}
}

func TestWarn(t *testing.T) {
	clk := testutil.NewClock(time.Unix(1_800_000_000, 0))
	var buf syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := &Limiter{Now: clk.Now}
	for range 5 {
		l.Warn(log, "flow: dropped malformed datagram", "from", "127.0.0.1:9")
	}
	clk.Advance(time.Second)
	l.Warn(log, "flow: dropped malformed datagram", "from", "127.0.0.1:9")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines logged, want 2:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "from=127.0.0.1:9") || strings.Contains(lines[0], "suppressed") {
		t.Errorf("first line %q: want the warning with its attributes and no count", lines[0])
	}
	if !strings.Contains(lines[1], "suppressed=4") {
		t.Errorf("second line %q does not say the 4 lines left out", lines[1])
	}
}

// TestClockSetBack: a clock set back does not silence the kind until it
// catches up with the last line's time.
func TestClockSetBack(t *testing.T) {
	clk := testutil.NewClock(time.Unix(1_800_000_000, 0))
	l := &Limiter{Every: time.Minute, Now: clk.Now}
	l.Allow()
	l.Allow()
	clk.Advance(-time.Hour)
	if ok, n := l.Allow(); !ok || n != 1 {
		t.Fatalf("after the clock went back an hour: allowed %v, %d suppressed; want allowed, 1", ok, n)
	}
	clk.Advance(time.Second)
	if ok, _ := l.Allow(); ok {
		t.Fatal("a second after that line: allowed within Every (1 min)")
	}
}

func TestFlush(t *testing.T) {
	clk := testutil.NewClock(time.Unix(1_800_000_000, 0))
	l := &Limiter{Now: clk.Now}
	for range 4 {
		l.Allow()
	}
	if n := l.Flush(); n != 3 {
		t.Fatalf("Flush after 1 allowed and 3 refused lines = %d, want 3", n)
	}
	if n := l.Flush(); n != 0 {
		t.Fatalf("second Flush = %d, want 0", n)
	}
	if ok, _ := l.Allow(); ok {
		t.Fatal("Flush let the next line through within the second")
	}
	clk.Advance(time.Second)
	if ok, n := l.Allow(); !ok || n != 1 {
		t.Fatalf("a second later: allowed %v, %d suppressed; want allowed, 1 (the one after Flush)", ok, n)
	}
}

func TestLogLevel(t *testing.T) {
	clk := testutil.NewClock(time.Unix(1_800_000_000, 0))
	var buf syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := &Limiter{Now: clk.Now}
	l.Info(log, "closing a connection")
	l.Info(log, "closing a connection")
	clk.Advance(time.Second)
	l.Log(log, slog.LevelError, "closing a connection")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=INFO") || !strings.Contains(lines[1], "level=ERROR") ||
		!strings.Contains(lines[1], "suppressed=1") {
		t.Fatalf("want an INFO line, then an ERROR line with suppressed=1; got:\n%s", buf.String())
	}
}
