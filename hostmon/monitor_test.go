package hostmon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"

	"github.com/stk-go/stk/internal/syncbuf"
)

// Test collectors. The registry is global, so their names start with
// "test-mon-"; their behaviour comes from testState, set by each test.
var testState struct {
	mu        sync.Mutex
	memory    float64     // what test-mon-metric reports
	nows      []time.Time // the now of each test-mon-metric call
	closerNow []time.Time // the now of each test-mon-closer call
	fail      atomic.Bool // test-mon-failing fails while set
	failCalls atomic.Int64
	gone      atomic.Int64 // calls of test-mon-vanishing
	closed    atomic.Int64 // Close calls of test-mon-closer
	watchRuns atomic.Int64
	events    chan string // test-mon-watcher emits one file.create per path
}

func resetTestState() {
	s := &testState
	s.mu.Lock()
	s.memory, s.nows, s.closerNow = 0, nil, nil
	s.mu.Unlock()
	s.fail.Store(false)
	s.failCalls.Store(0)
	s.gone.Store(0)
	s.closed.Store(0)
	s.watchRuns.Store(0)
	s.events = make(chan string, 16)
}

type funcCollector struct {
	name    string
	collect func(ctx context.Context, now time.Time) ([]*step.Step, error)
	close   func() error
}

func (f *funcCollector) Name() string { return f.name }
func (f *funcCollector) Collect(ctx context.Context, now time.Time) ([]*step.Step, error) {
	return f.collect(ctx, now)
}

type closingCollector struct{ funcCollector }

func (c *closingCollector) Close() error { return c.close() }

// bothCollector is a Collector and a Watcher with a Close method.
type bothCollector struct{ env Env }

func (b *bothCollector) Name() string { return "test-mon-both" }
func (b *bothCollector) Collect(_ context.Context, now time.Time) ([]*step.Step, error) {
	return []*step.Step{b.env.NewMetric("system.users", "users", now)}, nil
}
func (b *bothCollector) Watch(ctx context.Context, emit func(*step.Step)) error {
	emit(b.env.NewStep("user.login", "login", time.Now()))
	<-ctx.Done()
	return ctx.Err()
}
func (b *bothCollector) Close() error { testState.closed.Add(1); return nil }

type funcWatcher struct {
	name  string
	watch func(ctx context.Context, emit func(*step.Step)) error
}

func (f *funcWatcher) Name() string { return f.name }
func (f *funcWatcher) Watch(ctx context.Context, emit func(*step.Step)) error {
	return f.watch(ctx, emit)
}

func init() {
	Register("test-mon-metric", false, func(cfg Config) (any, error) {
		return &funcCollector{name: "test-mon-metric", collect: func(_ context.Context, now time.Time) ([]*step.Step, error) {
			testState.mu.Lock()
			v := testState.memory
			testState.nows = append(testState.nows, now)
			testState.mu.Unlock()
			m := cfg.Env.NewMetric("system.memory", "memory", now)
			m.Set("memory_percent", v)
			return []*step.Step{m}, nil
		}}, nil
	})
	Register("test-mon-unavailable", false, func(Config) (any, error) {
		return nil, fmt.Errorf("no widget driver: %w", ErrUnavailable)
	})
	Register("test-mon-failing", false, func(Config) (any, error) {
		return &funcCollector{name: "test-mon-failing", collect: func(context.Context, time.Time) ([]*step.Step, error) {
			testState.failCalls.Add(1)
			if testState.fail.Load() {
				return nil, errors.New("reading /proc/widgets: permission denied")
			}
			return nil, nil
		}}, nil
	})
	Register("test-mon-vanishing", false, func(Config) (any, error) {
		return &funcCollector{name: "test-mon-vanishing", collect: func(context.Context, time.Time) ([]*step.Step, error) {
			if testState.gone.Add(1) >= 2 {
				return nil, fmt.Errorf("device removed: %w", ErrUnavailable)
			}
			return nil, nil
		}}, nil
	})
	Register("test-mon-closer", false, func(cfg Config) (any, error) {
		return &closingCollector{funcCollector{name: "test-mon-closer",
			collect: func(_ context.Context, now time.Time) ([]*step.Step, error) {
				testState.mu.Lock()
				testState.closerNow = append(testState.closerNow, now)
				testState.mu.Unlock()
				return []*step.Step{cfg.Env.NewMetric("system.users", "users", now)}, nil
			},
			close: func() error { testState.closed.Add(1); return nil }}}, nil
	})
	Register("test-mon-watcher", false, func(cfg Config) (any, error) {
		return &funcWatcher{name: "test-mon-watcher", watch: func(ctx context.Context, emit func(*step.Step)) error {
			if testState.watchRuns.Add(1) == 1 {
				return errors.New("inotify watch limit reached") // the first run fails: restarted
			}
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case p := <-testState.events:
					s := cfg.Env.NewStep("file.create", "created "+p, time.Now())
					s.Set("path", p)
					emit(s)
				}
			}
		}}, nil
	})
	Register("test-mon-both", false, func(cfg Config) (any, error) {
		return &bothCollector{env: cfg.Env}, nil
	})
	Register("test-mon-broken", false, func(Config) (any, error) {
		return nil, errors.New("bad path list")
	})
	Register("test-mon-neither", false, func(Config) (any, error) { return "a string", nil })
}

// sinkRecorder records what the monitor hands to its sink.
type sinkRecorder struct {
	mu    sync.Mutex
	steps []*step.Step
	busy  atomic.Bool // set while the sink runs: it must never run twice at once
	twice atomic.Bool
}

func (r *sinkRecorder) sink(s *step.Step) {
	if r.busy.Swap(true) {
		r.twice.Store(true)
	}
	r.mu.Lock()
	r.steps = append(r.steps, s.Clone())
	r.mu.Unlock()
	r.busy.Store(false)
}

func (r *sinkRecorder) snapshot() []*step.Step {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*step.Step(nil), r.steps...)
}

func (r *sinkRecorder) find(pred func(*step.Step) bool) (int, *step.Step) {
	for i, s := range r.snapshot() {
		if pred(s) {
			return i, s
		}
	}
	return -1, nil
}

// startMonitor runs a monitor until the test ends; stop ends it earlier
// and checks that Run returned.
func startMonitor(t *testing.T, cfg MonitorConfig) (m *Monitor, stop func()) {
	t.Helper()
	m, err := NewMonitor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 5 s of the stop")
			}
		})
	}
	t.Cleanup(stop)
	return m, stop
}

func TestMonitorRun(t *testing.T) {
	leakcheck.Check(t)
	resetTestState()
	testState.mu.Lock()
	testState.memory = 50
	testState.mu.Unlock()
	testState.fail.Store(true)
	var logs syncbuf.Buffer
	alerter, err := NewAlerter(AlertConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &sinkRecorder{}
	var count atomic.Int64
	m, stop := startMonitor(t, MonitorConfig{
		Config: Config{Env: testEnv(), Interval: 10 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		Collectors: []string{"test-mon-metric", "test-mon-unavailable", "test-mon-failing", "test-mon-closer",
			"test-mon-watcher", "test-mon-metric"},
		Alerter: alerter,
		Sinks:   []func(*step.Step){rec.sink, func(*step.Step) { count.Add(1) }},
	})
	if got, want := strings.Join(m.Names(), ","), "test-mon-metric,test-mon-failing,test-mon-closer,test-mon-watcher"; got != want {
		t.Errorf("Names() = %s, want %s", got, want)
	}
	if got := m.Skipped(); len(got) != 1 || got[0] != "test-mon-unavailable" {
		t.Errorf("Skipped() = %v", got)
	}

	// Metrics flow; a value over the threshold raises an alert right after
	// its metric.
	testutil.WaitFor(t, 10*time.Second, "three memory metrics", func() bool {
		n := 0
		for _, s := range rec.snapshot() {
			if s.Event.Type == "system.memory" {
				n++
			}
		}
		return n >= 3
	})

	testState.mu.Lock()
	testState.memory = 93
	testState.mu.Unlock()
	testutil.WaitFor(t, 10*time.Second, "a critical memory alert", func() bool {
		i, _ := rec.find(func(s *step.Step) bool { return s.Level() == step.LevelCritical })
		return i >= 0
	})

	i, alert := rec.find(func(s *step.Step) bool { return s.Level() == step.LevelCritical })
	prev := rec.snapshot()[i-1]
	if v, _ := prev.Float("memory_percent"); prev.Event.Type != "system.memory" || v != 93 {
		t.Errorf("the STEP before the alert is %s %v, want the system.memory metric at 93", prev.Event.Type, v)
	}
	if alert.Event.Type != "system.memory.high" || alert.Space.Hostname != "db-2" {
		t.Errorf("alert %s on %q", alert.Event.Type, alert.Space.Hostname)
	}
	if prev.Psychology != PsychCritical {
		t.Errorf("metric psychology %+v, want the critical score", prev.Psychology)
	}

	// The watcher failed once, was restarted after its back-off, and its
	// events arrive.
	testutil.WaitFor(t, 10*time.Second, "the watcher's second run", func() bool { return testState.watchRuns.Load() >= 2 })
	testState.events <- "/tmp/x"
	testutil.WaitFor(t, 10*time.Second, "the file event", func() bool {
		i, _ := rec.find(func(s *step.Step) bool { return s.Event.Type == "file.create" })
		return i >= 0
	})

	// One now per tick: collectors called in the same tick see one time.
	testState.mu.Lock()
	nows, closerNows := append([]time.Time(nil), testState.nows...), append([]time.Time(nil), testState.closerNow...)
	testState.mu.Unlock()
	for i := range min(len(nows), len(closerNows)) {
		if !nows[i].Equal(closerNows[i]) {
			t.Fatalf("tick %d: collectors saw %v and %v", i, nows[i], closerNows[i])
		}
	}

	stop()
	if testState.closed.Load() != 1 {
		t.Errorf("test-mon-closer closed %d times, want 1", testState.closed.Load())
	}
	n := count.Load()
	time.Sleep(30 * time.Millisecond)
	if count.Load() != n {
		t.Error("sinks called after Run returned")
	}
	if rec.twice.Load() {
		t.Error("the sink ran concurrently with itself")
	}
	st := m.Stats()
	if st.Ticks < 3 || st.Alerts != 1 || st.Steps != uint64(n) || st.Errors < 3 {
		t.Errorf("stats %+v (sink saw %d)", st, n)
	}

	out := logs.String()
	if c := strings.Count(out, `msg="collector skipped"`); c != 1 {
		t.Errorf("unavailable collector logged %d times:\n%s", c, out)
	}
	if calls, c := testState.failCalls.Load(), strings.Count(out, `msg="collector failed"`); c != 1 || calls < 3 {
		t.Errorf("%d failures logged %d times, want once (rate limit):\n%s", calls, c, out)
	}
	if !strings.Contains(out, `msg="watcher failed" collector=test-mon-watcher err="inotify watch limit reached"`) {
		t.Errorf("the watcher's failure was not logged:\n%s", out)
	}
}

func TestMonitorErrorLogRateAndRecovery(t *testing.T) {
	leakcheck.Check(t)
	resetTestState()
	testState.fail.Store(true)
	var logs syncbuf.Buffer
	began := time.Now()
	_, stop := startMonitor(t, MonitorConfig{
		Config: Config{Interval: 2 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		Collectors:    []string{"test-mon-failing", "test-mon-vanishing"},
		ErrorLogEvery: 40 * time.Millisecond,
	})
	time.Sleep(200 * time.Millisecond) // failures for a while
	testState.fail.Store(false)
	// The failures lasted 200 ms or, on a loaded machine, longer: the
	// bound on the log lines is taken from the time they really lasted.
	failing := time.Since(began)
	testutil.WaitFor(t, 10*time.Second, "the recovery line", func() bool { return strings.Contains(logs.String(), "collector working again") })
	stop()
	out := logs.String()
	calls, lines := testState.failCalls.Load(), strings.Count(out, `msg="collector failed"`)
	if most := int(failing/(40*time.Millisecond)) + 3; lines < 2 || lines > most || int64(lines) >= calls/3 {
		t.Errorf("%d failures in %v gave %d log lines; want one per 40 ms (at most %d):\n%s", calls, failing, lines, most, out)
	}
	if !regexp.MustCompile(`msg="collector failed".*suppressed=[1-9]`).MatchString(out) {
		t.Errorf("no count of unlogged errors:\n%s", out)
	}
	if g := testState.gone.Load(); g != 2 {
		t.Errorf("the vanishing collector was called %d times, want 2 (dropped at ErrUnavailable)", g)
	}
	if c := strings.Count(out, "collector became unavailable"); c != 1 {
		t.Errorf("vanishing logged %d times:\n%s", c, out)
	}
}

func TestMonitorCollectorAndWatcher(t *testing.T) {
	leakcheck.Check(t)
	resetTestState()
	rec := &sinkRecorder{}
	_, stop := startMonitor(t, MonitorConfig{Config: Config{Interval: 5 * time.Millisecond},
		Collectors: []string{"test-mon-both"}, Sinks: []func(*step.Step){rec.sink}})
	testutil.WaitFor(t, 10*time.Second, "a metric and an event of the one collector", func() bool {
		m, _ := rec.find(func(s *step.Step) bool { return s.Event.Type == "system.users" })
		e, _ := rec.find(func(s *step.Step) bool { return s.Event.Type == "user.login" })
		return m >= 0 && e >= 0
	})

	stop()
	if n := testState.closed.Load(); n != 1 {
		t.Errorf("closed %d times, want once", n)
	}
}

func TestMonitorConfigErrors(t *testing.T) {
	leakcheck.Check(t)
	resetTestState()
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"test-mon-closer", "no-such-collector"}, `unknown collector "no-such-collector"`},
		{[]string{"test-mon-closer", "test-mon-broken"}, "collector test-mon-broken: bad path list"},
		{[]string{"test-mon-closer", "test-mon-neither"}, "neither a Collector nor a Watcher"},
	} {
		testState.closed.Store(0)
		_, err := NewMonitor(MonitorConfig{Collectors: tc.names})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.names, err, tc.want)
		}
		if testState.closed.Load() != 1 {
			t.Errorf("%v: the collector built before the error was not closed", tc.names)
		}
	}
	m, err := NewMonitor(MonitorConfig{Collectors: []string{"test-mon-closer"}})
	if err != nil {
		t.Fatal(err)
	}
	testState.closed.Store(0)
	m.Close()
	if err := m.Run(context.Background()); err == nil {
		t.Error("Run after Close did not fail")
	}
	if testState.closed.Load() != 1 {
		t.Errorf("Close closed %d collectors, want 1", testState.closed.Load())
	}
}

// BenchmarkMonitorTick is one interval of the default collectors on this
// host, with the default alert rules and a sink that encodes nothing: the
// per-interval cost of a host monitor (profile it with -cpuprofile).
func BenchmarkMonitorTick(b *testing.B) {
	alerter, err := NewAlerter(AlertConfig{})
	if err != nil {
		b.Fatal(err)
	}
	steps := 0
	m, err := NewMonitor(MonitorConfig{Config: Config{Env: Env{Hostname: "bench"}}, Alerter: alerter,
		Sinks: []func(*step.Step){func(*step.Step) { steps++ }}})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	m.tick(ctx) // first samples: rates need two
	b.ReportAllocs()
	steps = 0
	for b.Loop() {
		m.tick(ctx)
	}
	b.ReportMetric(float64(steps)/float64(b.N), "steps/op")
}
