package hostmon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/common"
	"github.com/stk-go/stk/step"
)

// ErrUnavailable marks a collector that cannot work on this host (no NVML
// library, no inotify, ...). The monitor logs it once and runs without.
var ErrUnavailable = errors.New("collector unavailable on this host")

// A Collector gathers one kind of host data once per interval.
type Collector interface {
	// Name is the collector's registered name ("cpu", "memory", ...).
	Name() string
	// Collect returns the collector's STEPs for this interval: its metric
	// STEPs and the events it saw since the last call (a process that
	// started, say). now is the interval's time, for time.start and rates.
	// The returned STEPs belong to the caller.
	Collect(ctx context.Context, now time.Time) ([]*step.Step, error)
}

// A Watcher reports events as they happen instead of once per interval
// (file-system events). Watch blocks until ctx is done or it fails.
type Watcher interface {
	Name() string
	Watch(ctx context.Context, emit func(*step.Step)) error
}

// Env says which host the collectors describe and where they read it.
type Env struct {
	// Hostname and IP go into every STEP's space.
	Hostname string
	IP       string
	// HostProc, HostSys, HostEtc, HostVar, HostRun and HostDev replace
	// /proc, /sys, /etc, /var, /run and /dev ("" = the real ones): fixture
	// trees in tests, a host's root mounted in a container in production.
	HostProc, HostSys, HostEtc, HostVar, HostRun, HostDev string
}

// Context returns ctx carrying e's root overrides, which gopsutil reads.
func (e Env) Context(ctx context.Context) context.Context {
	m := common.EnvMap{}
	set := func(k common.EnvKeyType, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set(common.HostProcEnvKey, e.HostProc)
	set(common.HostSysEnvKey, e.HostSys)
	set(common.HostEtcEnvKey, e.HostEtc)
	set(common.HostVarEnvKey, e.HostVar)
	set(common.HostRunEnvKey, e.HostRun)
	set(common.HostDevEnvKey, e.HostDev)
	if len(m) == 0 {
		return ctx
	}
	return context.WithValue(ctx, common.EnvKey, m)
}

// NewStep returns a STEP of type typ at now, with e's hostname and IP.
func (e Env) NewStep(typ, description string, now time.Time) *step.Step {
	s := step.New(typ, description, e.Hostname, now)
	s.Space.IP = e.IP
	return s
}

// NewMetric returns a periodic metric STEP: NewStep with "kind": "metric".
func (e Env) NewMetric(typ, description string, now time.Time) *step.Step {
	s := e.NewStep(typ, description, now)
	s.Set("kind", "metric")
	return s
}

// IsMetric reports whether s is a periodic metric STEP (see NewMetric).
func IsMetric(s *step.Step) bool {
	k, _ := s.String("kind")
	return k == "metric"
}

// ServiceRef names a smartbeat-monitored service and where it reports
// from, so the services collector can find its process.
type ServiceRef struct {
	Name     string
	Protocol string         // "tcp", "udp", "multicast"
	Peer     netip.AddrPort // the service's end of its monitor connection
}

// Config configures collectors. Each reads the parts it needs.
type Config struct {
	Env
	// Interval is the collection period (rates are computed over the
	// actual time between calls).
	Interval time.Duration
	// Paths are the files and directories the "files" watcher watches.
	Paths []string
	// Services lists the monitored services whose processes the
	// "services" collector describes (nil: the collector is unavailable).
	Services func(ctx context.Context) ([]ServiceRef, error)
	// Processes says which processes the "processes" collector reports.
	Processes ProcessOptions
	Logger    *slog.Logger
}

// Factory builds a Collector or a Watcher from cfg. It returns an error
// wrapping ErrUnavailable when the host lacks what it needs.
type Factory func(cfg Config) (any, error)

var (
	registryMu sync.Mutex
	registry   = map[string]Factory{}
	defaults   = map[string]bool{}
)

// Register adds a collector under name; onByDefault says whether a monitor
// runs it when the user names none. Collector files call it from init.
func Register(name string, onByDefault bool, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("hostmon: collector registered twice: " + name)
	}
	registry[name] = f
	defaults[name] = onByDefault
}

// Registered returns the names of every collector, sorted.
func Registered() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Defaults returns the names of the collectors run by default, sorted.
func Defaults() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	var names []string
	for n, on := range defaults {
		if on {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Build returns the collector or watcher registered under name.
func Build(name string, cfg Config) (any, error) {
	registryMu.Lock()
	f, ok := registry[name]
	registryMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("unknown collector %q (known: %v)", name, Registered())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	return f(cfg)
}
