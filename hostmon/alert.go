package hostmon

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stk-go/stk/step"
)

// Unit says how a rule's values are written in descriptions.
type Unit string

// Units of the default rules.
const (
	UnitPercent     Unit = "%"
	UnitBytesPerSec Unit = "B/s" // written in MB/s (1 MB = 1e6 bytes)
	UnitCelsius     Unit = "°C"
)

// Format writes v in the unit: "91%", "62.5 MB/s", "85 °C".
func (u Unit) Format(v float64) string {
	switch u {
	case UnitPercent:
		if math.Abs(v) < 10 {
			return trimZero(strconv.FormatFloat(v, 'f', 1, 64)) + "%"
		}
		return strconv.FormatFloat(v, 'f', 0, 64) + "%"
	case UnitBytesPerSec:
		return trimZero(strconv.FormatFloat(v/1e6, 'f', 1, 64)) + " MB/s"
	case UnitCelsius:
		return strconv.FormatFloat(v, 'f', 0, 64) + " °C"
	}
	return trimZero(strconv.FormatFloat(v, 'f', 2, 64)) + string(u)
}

func trimZero(s string) string {
	if strings.ContainsRune(s, '.') {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	return s
}

// A Rule raises alerts from one numeric field of one metric type.
type Rule struct {
	// Name is the rule's short name ("cpu"); flags and config files name
	// rules by it.
	Name string
	// Metric is the metric STEP type the rule reads ("system.cpu").
	Metric string
	// Field is the numeric field compared with the thresholds.
	Field string
	// Key is the field that tells instances apart ("mountpoint" for one
	// alert per mount); "" means one instance per host.
	Key string
	// Warning and Critical are the thresholds: a value at or above one is
	// at that level. 0 < Warning <= Critical.
	Warning, Critical float64
	// Alert is the type of the alert STEPs ("system.cpu.high").
	Alert string
	// Label names the value in descriptions ("memory use"); "{key}" is
	// replaced by the instance's key ("disk use on {key}").
	Label string
	// Unit writes values in descriptions.
	Unit Unit
	// Copy lists metric fields copied into the alert's space besides the
	// key and Field (the device of a mount, say).
	Copy []string
}

// DefaultRules returns the built-in rules, a fresh copy each call. The
// critical thresholds of disk I/O and network traffic, for which the
// design fixes only the warning level, are twice the warning.
func DefaultRules() []Rule {
	return []Rule{
		{Name: "cpu", Metric: "system.cpu", Field: "cpu_percent", Warning: 80, Critical: 95,
			Alert: "system.cpu.high", Label: "CPU use", Unit: UnitPercent,
			Copy: []string{"load1", "cores_logical"}},
		{Name: "memory", Metric: "system.memory", Field: "memory_percent", Warning: 80, Critical: 90,
			Alert: "system.memory.high", Label: "memory use", Unit: UnitPercent,
			Copy: []string{"memory_total_bytes", "memory_used_bytes", "memory_available_bytes"}},
		{Name: "disk", Metric: "system.disk", Field: "disk_percent", Key: "mountpoint", Warning: 85, Critical: 95,
			Alert: "system.disk.high", Label: "disk use on {key}", Unit: UnitPercent,
			Copy: []string{"device", "fstype", "disk_total_bytes", "disk_free_bytes"}},
		{Name: "diskio", Metric: "system.diskio", Field: "io_bytes_per_sec", Key: "device", Warning: 50e6, Critical: 100e6,
			Alert: "system.diskio.high", Label: "disk I/O on {key}", Unit: UnitBytesPerSec,
			Copy: []string{"read_bytes_per_sec", "write_bytes_per_sec"}},
		{Name: "network", Metric: "system.network", Field: "bytes_per_sec", Key: "interface", Warning: 10e6, Critical: 20e6,
			Alert: "system.network.high", Label: "network traffic on {key}", Unit: UnitBytesPerSec,
			Copy: []string{"rx_bytes_per_sec", "tx_bytes_per_sec"}},
		{Name: "gpu", Metric: "system.gpu", Field: "temperature_c", Key: "gpu_index", Warning: 80, Critical: 90,
			Alert: "system.gpu.high", Label: "GPU {key} temperature", Unit: UnitCelsius,
			Copy: []string{"gpu_name", "gpu_uuid", "gpu_percent", "power_watts"}},
	}
}

// Validate reports what is wrong with r.
func (r *Rule) Validate() error {
	switch {
	case r.Name == "":
		return errors.New("alert rule without a name")
	case r.Field == "":
		return fmt.Errorf("alert rule %s: no field", r.Name)
	case math.IsNaN(r.Warning) || math.IsInf(r.Warning, 0) || math.IsNaN(r.Critical) || math.IsInf(r.Critical, 0):
		return fmt.Errorf("alert rule %s: thresholds must be finite numbers", r.Name)
	case r.Warning <= 0:
		return fmt.Errorf("alert rule %s: warning threshold %v must be above 0", r.Name, r.Warning)
	case r.Critical < r.Warning:
		return fmt.Errorf("alert rule %s: critical threshold %v is below the warning threshold %v", r.Name, r.Critical, r.Warning)
	}
	if err := step.ValidType(r.Metric); err != nil {
		return fmt.Errorf("alert rule %s: metric: %w", r.Name, err)
	}
	if err := step.ValidType(r.Alert); err != nil {
		return fmt.Errorf("alert rule %s: alert: %w", r.Name, err)
	}
	return nil
}

// Alert defaults.
const (
	DefaultCooldown   = 300 * time.Second
	DefaultHysteresis = 0.05
	// DefaultForget is how long an alert instance may go unreported (an
	// unmounted disk, a removed interface) before the alerter forgets it,
	// announcing its recovery if it was alerting.
	DefaultForget = 10 * time.Minute
	// MaxAlertInstances bounds the instances an Alerter tracks, so that a
	// host that creates interfaces by the thousand cannot grow it without
	// end. Instances beyond it get no alerts (logged once).
	MaxAlertInstances = 4096
)

// Psychology of alert STEPs (see the package documentation).
var (
	PsychWarning   = step.Psychology{Valence: -0.4, Intensity: 0.6}
	PsychCritical  = step.Psychology{Valence: -0.8, Intensity: 0.9}
	PsychRecovered = step.Psychology{Valence: 0.4, Intensity: 0.3}
)

// AlertConfig configures an Alerter.
type AlertConfig struct {
	// Rules to apply; nil means DefaultRules(). Names must be unique.
	Rules []Rule
	// Cooldown is how long an alert instance does not send the same level
	// again; 0 means DefaultCooldown.
	Cooldown time.Duration
	// Hysteresis is the fraction of a threshold a value must fall below it
	// to leave its level (0.05: a warning at 80% recovers below 76%); 0
	// means DefaultHysteresis, a negative value none.
	Hysteresis float64
	// Forget is DefaultForget when 0; it is never shorter than Cooldown.
	Forget time.Duration
	// Now is the clock (tests inject one); nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// level of an alert instance, ordered by severity.
type level uint8

const (
	levelNone level = iota
	levelWarning
	levelCritical
)

func (l level) String() string {
	switch l {
	case levelWarning:
		return step.LevelWarning
	case levelCritical:
		return step.LevelCritical
	}
	return "none"
}

type instanceKey struct {
	rule int
	key  string
}

// instance is the state of one alert instance (rule + key).
type instance struct {
	level     level     // current level, with hysteresis
	announced level     // the level last sent; levelNone after a recovery
	since     time.Time // when the current episode (level > none) began
	sent      [3]time.Time
	seen      time.Time
	keyValue  any // the key field as the metric carried it
}

// Alerter turns metric STEPs into alert STEPs. It is safe for concurrent
// use.
type Alerter struct {
	rules      []Rule
	byMetric   map[string][]int
	cooldown   time.Duration
	hysteresis float64
	forget     time.Duration
	now        func() time.Time
	log        *slog.Logger

	mu        sync.Mutex
	insts     map[instanceKey]*instance
	lastSweep time.Time
	full      bool // MaxAlertInstances was reached and logged
}

// NewAlerter checks cfg's rules and returns an Alerter.
func NewAlerter(cfg AlertConfig) (*Alerter, error) {
	rules := cfg.Rules
	if rules == nil {
		rules = DefaultRules()
	}
	a := &Alerter{
		byMetric:   map[string][]int{},
		cooldown:   cfg.Cooldown,
		hysteresis: cfg.Hysteresis,
		forget:     cfg.Forget,
		now:        cfg.Now,
		log:        cfg.Logger,
		insts:      map[instanceKey]*instance{},
	}
	switch {
	case a.cooldown < 0:
		return nil, fmt.Errorf("alert cooldown %v is negative", a.cooldown)
	case a.cooldown == 0:
		a.cooldown = DefaultCooldown
	}
	switch {
	case a.hysteresis == 0:
		a.hysteresis = DefaultHysteresis
	case a.hysteresis < 0:
		a.hysteresis = 0
	case a.hysteresis >= 1 || math.IsNaN(a.hysteresis):
		return nil, fmt.Errorf("alert hysteresis %v must be a fraction below 1", cfg.Hysteresis)
	}
	if a.forget <= 0 {
		a.forget = DefaultForget
	}
	a.forget = max(a.forget, a.cooldown)
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	for i := range rules {
		r := rules[i]
		if err := r.Validate(); err != nil {
			return nil, err
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("alert rule %s appears twice", r.Name)
		}
		seen[r.Name] = true
		r.Copy = append([]string(nil), r.Copy...)
		a.rules = append(a.rules, r)
		a.byMetric[r.Metric] = append(a.byMetric[r.Metric], i)
	}
	return a, nil
}

// Rules returns the rules a applies.
func (a *Alerter) Rules() []Rule { return append([]Rule(nil), a.rules...) }

// Observe reads one STEP. For a metric STEP some rule reads, it sets the
// metric's psychology when the collector left it neutral (zero), and
// returns the alert STEPs the value causes: entering a level, escalating,
// a reminder after the cooldown, a recovery. Other STEPs are ignored.
// Observe also returns the recoveries of alerting instances that have not
// been reported for the Forget period.
func (a *Alerter) Observe(m *step.Step) []*step.Step {
	idx := a.byMetric[m.Event.Type]
	if len(idx) == 0 && !a.sweepDue() {
		return nil
	}
	now := a.now()
	var out []*step.Step
	psych, scored := step.Psychology{}, false
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, i := range idx {
		r := &a.rules[i]
		v, ok := m.Float(r.Field)
		if !ok || math.IsNaN(v) {
			continue
		}
		if p := a.metricPsych(r, v); !scored || p.Valence < psych.Valence {
			psych, scored = p, true
		}
		k := instanceKey{rule: i}
		var kv any
		if r.Key != "" {
			if kv = m.Space.Fields[r.Key]; kv == nil {
				continue // no instance to tell it by
			}
			k.key = fmt.Sprint(kv)
		}
		in := a.insts[k]
		if in == nil {
			if len(a.insts) >= MaxAlertInstances {
				if !a.full {
					a.full = true
					a.log.Warn("alert instances at their limit; new instances get no alerts",
						"limit", MaxAlertInstances, "rule", r.Name, "key", k.key)
				}
				continue
			}
			in = &instance{keyValue: kv}
			a.insts[k] = in
		}
		in.seen = now
		if s := a.evaluate(r, in, v, m, now); s != nil {
			out = append(out, s)
		}
	}
	if scored && m.Psychology == (step.Psychology{}) {
		m.Psychology = psych
	}
	if now.Sub(a.lastSweep) >= time.Minute {
		a.lastSweep = now
		out = a.sweep(now, m, out)
	}
	return out
}

func (a *Alerter) sweepDue() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.insts) > 0 && a.now().Sub(a.lastSweep) >= time.Minute
}

// levelOf is v's level for an instance now at cur: a value must fall a
// hysteresis fraction below a threshold to leave its level.
func (a *Alerter) levelOf(r *Rule, cur level, v float64) level {
	switch {
	case v >= r.Critical:
		return levelCritical
	case cur == levelCritical && v >= r.Critical*(1-a.hysteresis):
		return levelCritical
	case v >= r.Warning:
		return levelWarning
	case cur >= levelWarning && v >= r.Warning*(1-a.hysteresis):
		return levelWarning
	}
	return levelNone
}

// evaluate moves in to v's level and returns the alert to send, if any.
func (a *Alerter) evaluate(r *Rule, in *instance, v float64, m *step.Step, now time.Time) *step.Step {
	prev := in.level
	in.level = a.levelOf(r, prev, v)
	if in.level == levelNone {
		if prev == levelNone || in.announced == levelNone {
			return nil // nothing was announced, so nothing to recover from
		}
		s := a.recovery(r, in, m, now, fmt.Sprintf("%s back to %s (recovered from %s)",
			label(r, in), r.Unit.Format(v), in.announced))
		s.Set("value", round2(v))
		s.Set(r.Field, m.Space.Fields[r.Field])
		copyFields(s, m, r.Copy)
		return s
	}
	if prev == levelNone {
		in.since = now
	}
	last := in.sent[in.level]
	if !last.IsZero() && now.Sub(last) < a.cooldown {
		return nil // this level went out recently: the cooldown holds it
	}
	in.sent[in.level] = now
	in.announced = in.level
	threshold, psych := r.Warning, PsychWarning
	if in.level == levelCritical {
		threshold, psych = r.Critical, PsychCritical
	}
	s := a.newAlert(r, in, m, now)
	s.Event.Description = fmt.Sprintf("%s at %s (%s threshold %s)", label(r, in), r.Unit.Format(v), in.level, r.Unit.Format(threshold))
	s.Psychology = psych
	s.Set("level", in.level.String())
	s.Set("value", round2(v))
	s.Set("threshold", threshold)
	s.Set(r.Field, m.Space.Fields[r.Field])
	copyFields(s, m, r.Copy)
	return s
}

// recovery returns a recovery STEP for in, which leaves it announced as
// recovered.
func (a *Alerter) recovery(r *Rule, in *instance, m *step.Step, now time.Time, desc string) *step.Step {
	s := a.newAlert(r, in, m, now)
	s.Event.Description = desc
	s.Psychology = PsychRecovered
	s.Set("level", step.LevelRecovered)
	s.Set("previous_level", in.announced.String())
	s.Set("threshold", r.Warning)
	s.Set("recover_below", r.Warning*(1-a.hysteresis))
	if !in.since.IsZero() {
		s.Set("alert_seconds", math.Round(now.Sub(in.since).Seconds()))
	}
	in.announced = levelNone
	return s
}

// newAlert starts an alert STEP of r for in at now, on m's host.
func (a *Alerter) newAlert(r *Rule, in *instance, m *step.Step, now time.Time) *step.Step {
	s := step.New(r.Alert, "", m.Space.Hostname, now)
	s.Space.IP = m.Space.IP
	s.Space.Fields = make(map[string]any, 12+len(r.Copy))
	s.Set("rule", r.Name)
	s.Set("metric", r.Metric)
	s.Set("field", r.Field)
	s.Set("warning_threshold", r.Warning)
	s.Set("critical_threshold", r.Critical)
	if r.Key != "" {
		s.Set(r.Key, in.keyValue)
	}
	return s
}

// sweep forgets instances not reported for the Forget period, announcing
// the recovery of those that were alerting. host gives the hostname.
func (a *Alerter) sweep(now time.Time, host *step.Step, out []*step.Step) []*step.Step {
	for k, in := range a.insts {
		if now.Sub(in.seen) <= a.forget {
			continue
		}
		if in.announced != levelNone {
			r := &a.rules[k.rule]
			s := a.recovery(r, in, host, now, fmt.Sprintf("%s no longer reported (recovered from %s)", label(r, in), in.announced))
			s.Set("stale", true)
			out = append(out, s)
		}
		delete(a.insts, k)
	}
	if len(a.insts) < MaxAlertInstances {
		a.full = false
	}
	return out
}

// metricPsych scores a metric value by how close it is to r's thresholds
// (formula in the package documentation).
func (a *Alerter) metricPsych(r *Rule, v float64) step.Psychology {
	switch {
	case v >= r.Critical:
		return PsychCritical
	case v >= r.Warning:
		f := 0.0
		if r.Critical > r.Warning {
			f = (v - r.Warning) / (r.Critical - r.Warning)
		}
		return step.Psychology{Valence: round2(-0.4 - 0.4*f), Intensity: round2(0.6 + 0.3*f)}
	}
	p := min(max(v/r.Warning, 0), 1)
	return step.Psychology{Valence: round2(0.3 - 0.6*p), Intensity: round2(0.1 + 0.4*p)}
}

func label(r *Rule, in *instance) string {
	if r.Key == "" {
		return r.Label
	}
	return strings.ReplaceAll(r.Label, "{key}", fmt.Sprint(in.keyValue))
}

func copyFields(dst, src *step.Step, keys []string) {
	for _, k := range keys {
		if v, ok := src.Space.Fields[k]; ok {
			dst.Set(k, v)
		}
	}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
