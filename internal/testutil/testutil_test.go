package testutil

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records the message and ends the
// goroutine as the real one does, so WaitFor's failure can be checked.
type recorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	panic(r) // unwound by run, as runtime.Goexit unwinds a test
}

// run calls f with r and reports whether f failed.
func (r *recorder) run(f func(testing.TB)) (failed bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != r {
				panic(v)
			}
			failed = true
		}
	}()
	f(r)
	return false
}

func TestWaitForHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			time.Sleep(5 * time.Millisecond)
			n.Add(1)
		}
	}()
	r := &recorder{TB: t}
	start := time.Now()
	if r.run(func(tb testing.TB) { WaitFor(tb, 5*time.Second, "three ticks", func() bool { return n.Load() == 3 }) }) {
		t.Fatalf("WaitFor failed on a condition that came true: %s", r.msg)
	}
	if n.Load() != 3 {
		t.Fatalf("WaitFor returned before the condition held (n = %d)", n.Load())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("WaitFor took %v to see a condition true after ~15 ms", d)
	}
}

func TestWaitForTimesOut(t *testing.T) {
	r := &recorder{TB: t}
	start := time.Now()
	calls := 0
	failed := r.run(func(tb testing.TB) {
		WaitFor(tb, 50*time.Millisecond, "a condition that never holds", func() bool { calls++; return false })
	})
	if !failed {
		t.Fatal("WaitFor returned on a condition that never held")
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("WaitFor gave up after %v, before its 50 ms", d)
	}
	if !strings.Contains(r.msg, "a condition that never holds") || !strings.Contains(r.msg, "50ms") {
		t.Errorf("failure message %q does not say what was waited for and how long", r.msg)
	}
	if calls < 3 {
		t.Errorf("cond polled %d times in 50 ms", calls)
	}
}

func TestWaitForf(t *testing.T) {
	r := &recorder{TB: t}
	built := 0
	var n atomic.Int32
	go func() {
		time.Sleep(5 * time.Millisecond)
		n.Store(1)
	}()
	if r.run(func(tb testing.TB) {
		WaitForf(tb, 5*time.Second, func() bool { return n.Load() == 1 }, func() string { built++; return "n = 1" })
	}) {
		t.Fatalf("WaitForf failed on a condition that came true: %s", r.msg)
	}
	if built != 0 {
		t.Errorf("the message was built %d times for a wait that succeeded, want 0", built)
	}
	failed := r.run(func(tb testing.TB) {
		WaitForf(tb, 30*time.Millisecond, func() bool { return false }, func() string { built++; return fmt.Sprintf("n = %d, want 2", n.Load()) })
	})
	if !failed || built != 1 || !strings.Contains(r.msg, "n = 1, want 2") || !strings.Contains(r.msg, "30ms") {
		t.Errorf("failed %v, message built %d times, %q; want a failure built once, saying the state and the 30ms", failed, built, r.msg)
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 11, 22, 5, 30, 0, 0, time.UTC)
	c := NewClock(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	c.Advance(90 * time.Second)
	if got, want := c.Now(), start.Add(90*time.Second); !got.Equal(want) {
		t.Fatalf("after Advance(90s): %v, want %v", got, want)
	}
	earlier := start.Add(-time.Hour)
	c.Set(earlier)
	if got := c.Now(); !got.Equal(earlier) {
		t.Fatalf("after Set(%v), earlier: %v", earlier, got)
	}
	later := start.Add(time.Hour)
	c.Set(later)
	if got := c.Now(); !got.Equal(later) {
		t.Fatalf("after Set(%v): %v", later, got)
	}

	// Concurrent use (run with -race).
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Millisecond)
				_ = c.Now()
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), later.Add(400*time.Millisecond); !got.Equal(want) {
		t.Fatalf("after 400 concurrent Advance(1ms): %v, want %v", got, want)
	}
}

func TestLoggers(t *testing.T) {
	if Discard().Enabled(context.Background(), 12) {
		t.Error("Discard's logger is enabled at Error")
	}
	l := Logger(t)
	if got := l.Enabled(context.Background(), -4); got != testing.Verbose() {
		t.Errorf("Logger(t) enabled at Debug: %v; want it only with -v (%v)", got, testing.Verbose())
	}
	l.Info("a line of the code under test") // shown with -v
}

// TestFreePort: the port FreePort returns can be bound right after, on the
// network asked for.
func TestFreePort(t *testing.T) {
	tp := FreePort(t, "tcp")
	l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", tp))
	if err != nil {
		t.Fatalf("listen on the free TCP port %d: %v", tp, err)
	}
	l.Close()
	up := FreePort(t, "udp")
	c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", up))
	if err != nil {
		t.Fatalf("listen on the free UDP port %d: %v", up, err)
	}
	c.Close()
	if tp == 0 || up == 0 {
		t.Fatalf("FreePort returned port 0 (tcp %d, udp %d)", tp, up)
	}
}
