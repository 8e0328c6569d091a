package stepbus

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"
)

// mk returns a valid STEP of type typ on host, started at ms (Unix ms).
func mk(typ, host string, ms int64) *step.Step {
	s := step.New(typ, "test event", host, time.UnixMilli(ms))
	s.Space.IP = "10.0.0.1"
	return s
}

// metric returns a metric STEP with an instance field.
func metric(typ, host string, ms int64, kv ...any) *step.Step {
	s := mk(typ, host, ms)
	s.Set("kind", "metric")
	for i := 0; i+1 < len(kv); i += 2 {
		s.Set(kv[i].(string), kv[i+1])
	}
	return s
}

// newBus makes a bus closed at the end of the test.
func newBus(t testing.TB, cfg Config) *Bus {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testutil.Discard()
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func publish(t testing.TB, b *Bus, ss ...*step.Step) {
	t.Helper()
	for _, s := range ss {
		if err := b.Publish(s, "test"); err != nil {
			t.Fatalf("Publish %s: %v", s.Event.Type, err)
		}
	}
}

// starts returns the time.start of each STEP.
func starts(ss []*step.Step) []int64 {
	out := make([]int64, len(ss))
	for i, s := range ss {
		out[i] = s.Time.Start
	}
	return out
}

// jsonOf returns s's JSON, the archive's form.
func jsonOf(t testing.TB, s *step.Step) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newClock returns a hand-moved clock at the tests' epoch.
func newClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2026, 11, 22, 5, 30, 0, 0, time.UTC))
}

func ms(v ...int64) string { return fmt.Sprint(v) }
