package hostmon

import (
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"
)

// clock is the hand-moved clock the alerter is given, which also makes
// metrics stamped with its time.
type clock struct{ *testutil.Clock }

func newClock() *clock                        { return &clock{testutil.NewClock(time.Unix(1763776800, 0))} }
func testEnv() Env                            { return Env{Hostname: "db-2", IP: "10.1.4.22"} }
func (c *clock) metric(typ string) *step.Step { return testEnv().NewMetric(typ, "", c.Now()) }

func newTestAlerter(t *testing.T, c *clock, cfg AlertConfig) *Alerter {
	t.Helper()
	cfg.Now = c.Now
	a, err := NewAlerter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// memory feeds one memory metric at percent and returns the alerts.
func memory(a *Alerter, c *clock, percent float64) []*step.Step {
	m := c.metric("system.memory")
	m.Set("memory_percent", percent)
	m.Set("memory_total_bytes", uint64(16e9))
	return a.Observe(m)
}

// one checks that alerts holds exactly one alert of the level and returns it.
func one(t *testing.T, alerts []*step.Step, level string) *step.Step {
	t.Helper()
	if len(alerts) != 1 {
		t.Fatalf("got %d alerts %v, want one %s", len(alerts), describe(alerts), level)
	}
	s := alerts[0]
	if err := s.Validate(); err != nil {
		t.Fatalf("alert is not a valid STEP: %v", err)
	}
	if s.Level() != level {
		t.Fatalf("alert level %q (%s), want %q", s.Level(), s.Event.Description, level)
	}
	return s
}

func none(t *testing.T, alerts []*step.Step, why string) {
	t.Helper()
	if len(alerts) != 0 {
		t.Fatalf("%s: got alerts %v, want none", why, describe(alerts))
	}
}

func describe(ss []*step.Step) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Level()+": "+s.Event.Description)
	}
	return out
}

func TestAlertEnterWarning(t *testing.T) {
	c := newClock()
	a := newTestAlerter(t, c, AlertConfig{})
	none(t, memory(a, c, 50), "at 50%")
	none(t, memory(a, c, 79.9), "just under the warning threshold")
	c.Advance(time.Second)
	s := one(t, memory(a, c, 85), step.LevelWarning)
	if s.Event.Type != "system.memory.high" || s.Space.Hostname != "db-2" || s.Space.IP != "10.1.4.22" {
		t.Errorf("alert type/host %q %q %q", s.Event.Type, s.Space.Hostname, s.Space.IP)
	}
	if s.Time.Start != c.Now().UnixMilli() {
		t.Errorf("alert time %d, want the clock's %d", s.Time.Start, c.Now().UnixMilli())
	}
	if want := "memory use at 85% (warning threshold 80%)"; s.Event.Description != want {
		t.Errorf("description %q, want %q", s.Event.Description, want)
	}
	for k, want := range map[string]float64{"value": 85, "threshold": 80, "memory_percent": 85,
		"warning_threshold": 80, "critical_threshold": 90, "memory_total_bytes": 16e9} {
		if v, ok := s.Float(k); !ok || v != want {
			t.Errorf("space %s = %v (%v), want %v", k, v, ok, want)
		}
	}
	if r, _ := s.String("rule"); r != "memory" {
		t.Errorf("rule %q", r)
	}
	if s.Psychology != PsychWarning {
		t.Errorf("psychology %+v, want %+v", s.Psychology, PsychWarning)
	}
	// Still in warning: nothing new within the cooldown.
	c.Advance(time.Second)
	none(t, memory(a, c, 86), "still at warning")
}

func TestAlertEscalateAndCooldown(t *testing.T) {
	c := newClock()
	a := newTestAlerter(t, c, AlertConfig{Cooldown: time.Minute})
	one(t, memory(a, c, 82), step.LevelWarning)
	c.Advance(time.Second)
	s := one(t, memory(a, c, 93), step.LevelCritical) // escalation goes out at once
	if v, _ := s.Float("threshold"); v != 90 || s.Psychology != PsychCritical {
		t.Errorf("critical alert threshold %v psychology %+v", v, s.Psychology)
	}
	for range 20 { // the critical level holds: suppressed by the cooldown
		c.Advance(2 * time.Second)
		none(t, memory(a, c, 95), "critical within the cooldown")
	}
	// Back to warning, whose last alert is 42 s old: suppressed too.
	c.Advance(time.Second)
	none(t, memory(a, c, 84), "warning again within its cooldown")
	// The cooldown of the warning level ends: a reminder goes out.
	c.Advance(18 * time.Second)
	one(t, memory(a, c, 84), step.LevelWarning)
	// Critical again after its cooldown ended: sent.
	c.Advance(time.Second)
	one(t, memory(a, c, 99), step.LevelCritical)
	// A value that stays critical is reminded of every cooldown.
	c.Advance(59 * time.Second)
	none(t, memory(a, c, 99), "59 s after the critical alert")
	c.Advance(time.Second)
	one(t, memory(a, c, 99), step.LevelCritical)
}

func TestAlertRecoveryHysteresis(t *testing.T) {
	c := newClock()
	a := newTestAlerter(t, c, AlertConfig{}) // 5 %: warning 80 recovers below 76, critical 90 drops below 85.5
	one(t, memory(a, c, 91), step.LevelCritical)
	c.Advance(time.Second)
	none(t, memory(a, c, 86), "86 is within critical's hysteresis")
	c.Advance(time.Second)
	one(t, memory(a, c, 79), step.LevelWarning) // below 85.5: down to warning, never sent before
	for _, v := range []float64{77, 76, 78, 76.5} {
		c.Advance(time.Second)
		none(t, memory(a, c, v), "within the warning's hysteresis")
	}
	c.Advance(10 * time.Second)
	s := one(t, memory(a, c, 75.9), step.LevelRecovered)
	if s.Event.Type != "system.memory.high" {
		t.Errorf("recovery type %q, want the alert's type", s.Event.Type)
	}
	if want := "memory use back to 76% (recovered from warning)"; s.Event.Description != want {
		t.Errorf("description %q, want %q", s.Event.Description, want)
	}
	if p, _ := s.String("previous_level"); p != "warning" {
		t.Errorf("previous_level %q", p)
	}
	if v, _ := s.Float("alert_seconds"); v != 16 {
		t.Errorf("alert_seconds %v, want 16 (since the critical alert)", v)
	}
	if v, _ := s.Float("recover_below"); v != 76 {
		t.Errorf("recover_below %v, want 76", v)
	}
	if s.Psychology != PsychRecovered || s.Psychology.Valence <= 0 {
		t.Errorf("recovery psychology %+v", s.Psychology)
	}
	c.Advance(time.Second)
	none(t, memory(a, c, 50), "already recovered")
	// Back up within the cooldown of the critical alert: nothing, and so no
	// recovery either when it falls again.
	c.Advance(time.Second)
	none(t, memory(a, c, 92), "critical again within the cooldown")
	c.Advance(time.Second)
	none(t, memory(a, c, 40), "recovery of an alert that was not announced")
}

func TestAlertDeescalation(t *testing.T) {
	c := newClock()
	a := newTestAlerter(t, c, AlertConfig{Cooldown: time.Minute})
	one(t, memory(a, c, 95), step.LevelCritical) // straight to critical
	c.Advance(time.Second)
	s := one(t, memory(a, c, 82), step.LevelWarning) // warning was never sent: news
	if !strings.Contains(s.Event.Description, "82%") {
		t.Errorf("description %q", s.Event.Description)
	}
	c.Advance(time.Second)
	one(t, memory(a, c, 10), step.LevelRecovered)
}

func TestAlertNoHysteresis(t *testing.T) {
	c := newClock()
	a := newTestAlerter(t, c, AlertConfig{Hysteresis: -1, Cooldown: time.Second})
	one(t, memory(a, c, 80), step.LevelWarning) // at the threshold counts
	c.Advance(time.Second)
	one(t, memory(a, c, 79.99), step.LevelRecovered)
}

func TestAlertPerKeyIndependence(t *testing.T) {
	c := newClock()
	a := newTestAlerter(t, c, AlertConfig{})
	disk := func(mount string, percent float64) []*step.Step {
		m := c.metric("system.disk")
		m.Set("mountpoint", mount)
		m.Set("device", "/dev/sd"+mount[len(mount)-1:])
		m.Set("disk_percent", percent)
		return a.Observe(m)
	}
	s := one(t, disk("/a", 90), step.LevelWarning)
	if mp, _ := s.String("mountpoint"); mp != "/a" {
		t.Errorf("mountpoint %q", mp)
	}
	if d, _ := s.String("device"); d != "/dev/sda" {
		t.Errorf("device %q (copied from the metric)", d)
	}
	if want := "disk use on /a at 90% (warning threshold 85%)"; s.Event.Description != want {
		t.Errorf("description %q, want %q", s.Event.Description, want)
	}
	// /b has its own state and cooldown.
	one(t, disk("/b", 96), step.LevelCritical)
	none(t, disk("/a", 91), "/a stays at warning")
	c.Advance(time.Second)
	one(t, disk("/b", 10), step.LevelRecovered)
	none(t, disk("/a", 91), "/a still at warning after /b recovered")
	one(t, disk("/a", 97), step.LevelCritical)

	// GPUs are told apart by a numeric index.
	gpu := func(i int, temp float64) []*step.Step {
		m := c.metric("system.gpu")
		m.Set("gpu_index", i)
		m.Set("temperature_c", temp)
		return a.Observe(m)
	}
	none(t, gpu(0, 60), "cool GPU")
	s = one(t, gpu(1, 85), step.LevelWarning)
	if want := "GPU 1 temperature at 85 °C (warning threshold 80 °C)"; s.Event.Description != want {
		t.Errorf("description %q, want %q", s.Event.Description, want)
	}
	if v, _ := s.Float("gpu_index"); v != 1 {
		t.Errorf("gpu_index %v", v)
	}
	// A metric without its key field is not an instance.
	m := c.metric("system.gpu")
	m.Set("temperature_c", 99.0)
	none(t, a.Observe(m), "GPU metric without gpu_index")
}

func TestAlertRatesAndDefaults(t *testing.T) {
	c := newClock()
	a := newTestAlerter(t, c, AlertConfig{})
	net := func(iface string, bps float64) []*step.Step {
		m := c.metric("system.network")
		m.Set("interface", iface)
		m.Set("bytes_per_sec", bps)
		return a.Observe(m)
	}
	none(t, net("eth0", 9.9e6), "9.9 MB/s")
	s := one(t, net("eth0", 12.5e6), step.LevelWarning)
	if want := "network traffic on eth0 at 12.5 MB/s (warning threshold 10 MB/s)"; s.Event.Description != want {
		t.Errorf("description %q, want %q", s.Event.Description, want)
	}
	one(t, net("eth0", 20e6), step.LevelCritical) // critical is twice the warning
	io := c.metric("system.diskio")
	io.Set("device", "nvme0n1")
	io.Set("io_bytes_per_sec", uint64(60e6)) // integer fields count too
	s = one(t, a.Observe(io), step.LevelWarning)
	if v, _ := s.Float("threshold"); v != 50e6 {
		t.Errorf("disk I/O threshold %v, want 50e6", v)
	}
	cpu := c.metric("system.cpu")
	cpu.Set("cpu_percent", 95)
	one(t, a.Observe(cpu), step.LevelCritical)
	// Events and metrics without rules pass untouched.
	ev := testEnv().NewStep("process.start", "started", c.Now())
	none(t, a.Observe(ev), "an event")
	if ev.Psychology != (step.Psychology{}) {
		t.Errorf("event psychology changed to %+v", ev.Psychology)
	}
}

func TestAlertMetricPsychology(t *testing.T) {
	c := newClock()
	a := newTestAlerter(t, c, AlertConfig{})
	for _, tc := range []struct {
		percent            float64
		valence, intensity float64
	}{
		{0, 0.3, 0.1},
		{40, 0, 0.3},
		{80, -0.4, 0.6},
		{85, -0.6, 0.75},
		{90, -0.8, 0.9},
		{100, -0.8, 0.9},
	} {
		m := c.metric("system.memory")
		m.Set("memory_percent", tc.percent)
		a.Observe(m)
		if m.Psychology.Valence != tc.valence || m.Psychology.Intensity != tc.intensity {
			t.Errorf("memory at %v%%: psychology %+v, want valence %v intensity %v",
				tc.percent, m.Psychology, tc.valence, tc.intensity)
		}
	}
	// A collector's own score is kept.
	m := c.metric("system.memory")
	m.Set("memory_percent", 99.0)
	m.Psychology = step.Psychology{Valence: 0.1, Intensity: 0.2}
	a.Observe(m)
	if m.Psychology != (step.Psychology{Valence: 0.1, Intensity: 0.2}) {
		t.Errorf("collector psychology overwritten: %+v", m.Psychology)
	}
}

func TestAlertForgetsVanishedInstances(t *testing.T) {
	c := newClock()
	a := newTestAlerter(t, c, AlertConfig{Cooldown: time.Minute, Forget: 5 * time.Minute})
	net := func(iface string, bps float64) []*step.Step {
		m := c.metric("system.network")
		m.Set("interface", iface)
		m.Set("bytes_per_sec", bps)
		return a.Observe(m)
	}
	one(t, net("veth1", 15e6), step.LevelWarning)
	none(t, net("lo", 1), "lo")
	for range 5 {
		c.Advance(time.Minute)
		none(t, net("lo", 1), "veth1 gone for less than Forget")
	}
	c.Advance(time.Minute)
	s := one(t, net("lo", 1), step.LevelRecovered)
	if i, _ := s.String("interface"); i != "veth1" {
		t.Errorf("stale recovery for %q", i)
	}
	if st, _ := s.Space.Fields["stale"].(bool); !st || !strings.Contains(s.Event.Description, "no longer reported") {
		t.Errorf("stale recovery %q %v", s.Event.Description, s.Space.Fields)
	}
	a.mu.Lock()
	n := len(a.insts)
	a.mu.Unlock()
	if n != 1 {
		t.Errorf("%d instances tracked, want 1 (lo)", n)
	}
}

func TestAlertConfigErrors(t *testing.T) {
	bad := func(mod func(r *Rule)) []Rule {
		rs := DefaultRules()
		mod(&rs[0])
		return rs
	}
	for name, cfg := range map[string]AlertConfig{
		"critical below warning": {Rules: bad(func(r *Rule) { r.Critical = 70 })},
		"zero warning":           {Rules: bad(func(r *Rule) { r.Warning = 0 })},
		"bad alert type":         {Rules: bad(func(r *Rule) { r.Alert = "system..high" })},
		"no field":               {Rules: bad(func(r *Rule) { r.Field = "" })},
		"duplicate":              {Rules: append(DefaultRules(), DefaultRules()[0])},
		"negative cooldown":      {Cooldown: -time.Second},
		"hysteresis 1":           {Hysteresis: 1},
	} {
		if _, err := NewAlerter(cfg); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestUnitFormat(t *testing.T) {
	for _, tc := range []struct {
		u    Unit
		v    float64
		want string
	}{
		{UnitPercent, 91.4, "91%"}, {UnitPercent, 5.25, "5.2%"}, {UnitPercent, 5, "5%"},
		{UnitBytesPerSec, 50e6, "50 MB/s"}, {UnitBytesPerSec, 12.345e6, "12.3 MB/s"},
		{UnitCelsius, 84.6, "85 °C"}, {Unit(" x"), 1.5, "1.5 x"},
	} {
		if got := tc.u.Format(tc.v); got != tc.want {
			t.Errorf("%q.Format(%v) = %q, want %q", tc.u, tc.v, got, tc.want)
		}
	}
}

func BenchmarkAlerterObserve(b *testing.B) {
	c := newClock()
	a, _ := NewAlerter(AlertConfig{Now: c.Now})
	m := c.metric("system.disk")
	m.Set("mountpoint", "/")
	m.Set("disk_percent", 40.0)
	b.ReportAllocs()
	for b.Loop() {
		m.Psychology = step.Psychology{}
		a.Observe(m)
	}
}
