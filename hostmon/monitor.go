package hostmon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/internal/ratelog"
	"github.com/stk-go/stk/step"
)

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	// Config is what the collectors read; its Interval is also the
	// monitor's period (default 1 s).
	Config
	// Collectors names the collectors and watchers to run; nil means
	// Defaults().
	Collectors []string
	// Alerter, if set, reads every metric STEP; its alerts follow the
	// metric that caused them.
	Alerter *Alerter
	// Sinks receive every STEP, one at a time and in order (never
	// concurrently), and must not keep it past the call unless they copy
	// it: the monitor hands the same STEP to each sink in turn. A slow sink
	// delays the next interval.
	Sinks []func(*step.Step)
	// Now gives each interval's time; nil means time.Now.
	Now func() time.Time
	// ErrorLogEvery is the least time between two log lines about one
	// collector's errors; 0 means one minute. Errors in between are
	// counted and the count is logged with the next line.
	ErrorLogEvery time.Duration
}

// MonitorStats are a Monitor's counters.
type MonitorStats struct {
	Ticks  uint64 // intervals run
	Steps  uint64 // STEPs handed to the sinks, alerts included
	Alerts uint64 // alert STEPs
	Errors uint64 // failed Collect calls and Watch runs
}

// Monitor runs collectors every interval and watchers all along, feeds
// metric STEPs through the Alerter and hands every STEP to the sinks.
type Monitor struct {
	cfg        MonitorConfig
	log        *slog.Logger
	collectors []*running
	watchers   []*running
	names      []string
	skipped    []string

	emitMu  sync.Mutex // serialises the sinks
	stopped bool       // under emitMu: late emits from watchers are dropped

	started atomic.Bool
	ticks   atomic.Uint64
	steps   atomic.Uint64
	alerts  atomic.Uint64
	errs    atomic.Uint64
}

// running is one collector or watcher with its error-log state.
type running struct {
	name    string
	kind    string // "collector" or "watcher", for the logs
	c       Collector
	w       Watcher
	errLog  ratelog.Limiter // one error line per MonitorConfig.ErrorLogEvery
	failing bool            // the last call failed
	gone    bool            // reported ErrUnavailable while running
}

// NewMonitor builds the configured collectors. One that reports
// ErrUnavailable is logged and skipped; an unknown name, or any other
// error, fails NewMonitor, since it means the configuration is wrong.
func NewMonitor(cfg MonitorConfig) (*Monitor, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ErrorLogEvery <= 0 {
		cfg.ErrorLogEvery = time.Minute
	}
	names := cfg.Collectors
	if names == nil {
		names = Defaults()
	}
	m := &Monitor{cfg: cfg, log: cfg.Logger}
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		if known := Registered(); !slices.Contains(known, name) {
			m.closeAll()
			return nil, fmt.Errorf("unknown collector %q (known: %s)", name, strings.Join(known, ", "))
		}
		v, err := Build(name, cfg.Config)
		if errors.Is(err, ErrUnavailable) {
			m.log.Info("collector skipped", "collector", name, "reason", err)
			m.skipped = append(m.skipped, name)
			continue
		}
		if err != nil {
			m.closeAll()
			return nil, fmt.Errorf("collector %s: %w", name, err)
		}
		r := &running{name: name, kind: "collector", errLog: ratelog.Limiter{Every: cfg.ErrorLogEvery}}
		r.c, _ = v.(Collector)
		r.w, _ = v.(Watcher)
		switch {
		case r.c == nil && r.w == nil:
			m.closeAll()
			closeIt(v)
			return nil, fmt.Errorf("collector %s: its factory returned %T, neither a Collector nor a Watcher", name, v)
		case r.c != nil && r.w != nil: // both: collected and watched, as one name
			m.collectors = append(m.collectors, r)
			m.watchers = append(m.watchers, &running{name: name, kind: "watcher", c: r.c, w: r.w, errLog: ratelog.Limiter{Every: cfg.ErrorLogEvery}})
		case r.c != nil:
			m.collectors = append(m.collectors, r)
		default:
			r.kind = "watcher"
			m.watchers = append(m.watchers, r)
		}
		m.names = append(m.names, name)
	}
	return m, nil
}

// Names returns the collectors and watchers the monitor runs.
func (m *Monitor) Names() []string { return append([]string(nil), m.names...) }

// Skipped returns the collectors left out as unavailable on this host.
func (m *Monitor) Skipped() []string { return append([]string(nil), m.skipped...) }

// Stats returns the monitor's counters.
func (m *Monitor) Stats() MonitorStats {
	return MonitorStats{Ticks: m.ticks.Load(), Steps: m.steps.Load(), Alerts: m.alerts.Load(), Errors: m.errs.Load()}
}

// Run collects at once and then every interval, and runs the watchers,
// until ctx ends. It returns when every goroutine it started has ended,
// after closing the collectors that have a Close method. A Monitor runs
// once.
func (m *Monitor) Run(ctx context.Context) error {
	if m.started.Swap(true) {
		return errors.New("hostmon: Monitor.Run called twice")
	}
	var wg sync.WaitGroup
	for _, r := range m.watchers {
		wg.Go(func() { m.watch(ctx, r) })
	}
	t := time.NewTicker(m.cfg.Interval)
	for {
		m.tick(ctx)
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		break
	}
	t.Stop()
	wg.Wait()
	m.emitMu.Lock()
	m.stopped = true
	m.emitMu.Unlock()
	m.closeAll()
	return nil
}

// tick calls every collector once with one time.
func (m *Monitor) tick(ctx context.Context) {
	m.ticks.Add(1)
	now := m.cfg.Now()
	for _, r := range m.collectors {
		if r.gone || ctx.Err() != nil {
			continue
		}
		steps, err := r.c.Collect(ctx, now)
		for _, s := range steps {
			if s != nil {
				m.emit(s)
			}
		}
		if ctx.Err() != nil {
			return // errors of a stopping collector are not news
		}
		m.result(r, err)
	}
}

// result logs a collector's errors, at most one line per ErrorLogEvery,
// and its recovery.
func (m *Monitor) result(r *running, err error) {
	if err == nil {
		if r.failing {
			r.failing = false
			m.log.Info(r.kind+" working again", "collector", r.name, "suppressed", r.errLog.Flush())
		}
		return
	}
	m.errs.Add(1)
	if errors.Is(err, ErrUnavailable) {
		r.gone = true
		m.log.Warn("collector became unavailable, running without it", "collector", r.name, "reason", err)
		return
	}
	r.failing = true
	r.errLog.Warn(m.log, r.kind+" failed", "collector", r.name, "err", err)
}

// watch runs a watcher, restarting it with a capped back-off when it
// fails, until ctx ends or it reports ErrUnavailable.
func (m *Monitor) watch(ctx context.Context, r *running) {
	backoff := time.Second
	for {
		started := time.Now()
		err := r.w.Watch(ctx, m.emit)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("watcher returned without an error")
		}
		if errors.Is(err, ErrUnavailable) {
			m.errs.Add(1)
			m.log.Warn("watcher unavailable, running without it", "collector", r.name, "reason", err)
			return
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second // it ran a good while: a fresh failure
		}
		m.result(r, err) // r's log state belongs to this goroutine
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// emit hands s, and the alerts it causes, to the sinks.
func (m *Monitor) emit(s *step.Step) {
	m.emitMu.Lock()
	defer m.emitMu.Unlock()
	if m.stopped {
		return
	}
	var alerts []*step.Step
	if m.cfg.Alerter != nil && IsMetric(s) {
		alerts = m.cfg.Alerter.Observe(s)
	}
	m.sink(s)
	for _, a := range alerts {
		m.alerts.Add(1)
		m.sink(a)
	}
}

func (m *Monitor) sink(s *step.Step) {
	m.steps.Add(1)
	for _, f := range m.cfg.Sinks {
		f(s)
	}
}

// Close releases the collectors of a Monitor that will not Run (Run
// closes them itself when it ends).
func (m *Monitor) Close() {
	if !m.started.Swap(true) {
		m.closeAll()
	}
}

// closeAll closes the collectors and watchers that hold resources.
func (m *Monitor) closeAll() {
	for _, r := range m.collectors {
		closeIt(r.c)
	}
	for _, r := range m.watchers {
		if r.c == nil { // a collector that is also a watcher was closed above
			closeIt(r.w)
		}
	}
}

func closeIt(v any) {
	if c, ok := v.(io.Closer); ok {
		c.Close()
	}
}
