package hostmon

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/step"
)

func TestCPUGolden(t *testing.T) {
	leakcheck.Check(t)
	root := fxRoot(t)
	c := fxCollector(t, "cpu", fxEnv(root))

	first := fxCollect(t, c, fxT0)
	fxGolden(t, "cpu_t0", first)
	if len(first) != 1 {
		t.Fatalf("first call: %d STEPs, want 1", len(first))
	}
	if _, ok := first[0].Float("cpu_percent"); ok {
		t.Error("first call has cpu_percent; it needs two samples")
	}
	if !IsMetric(first[0]) {
		t.Error("system.cpu is not marked as a metric")
	}

	fxCopy(t, filepath.Join("testdata", "linux-t2"), root)
	second := fxCollect(t, c, fxT2)
	fxGolden(t, "cpu_t2", second)
	s := second[0]
	// Per core, over 200 ticks each: cpu0 120 busy (guest is inside
	// user, not counted twice), cpu1 10, cpu2 200, cpu3 0: 330 of 800.
	if got := fxFloat(t, s, "cpu_percent"); got != 41.25 {
		t.Errorf("cpu_percent = %v, want 41.25", got)
	}
	if got, want := s.Space.Fields["per_core_percent"], []float64{60, 5, 100, 0}; !slices.Equal(got.([]float64), want) {
		t.Errorf("per_core_percent = %v, want %v", got, want)
	}
	for key, want := range map[string]float64{
		"frequency_mhz": 2550, "frequency_max_mhz": 3600, "cores_logical": 4, "cores_physical": 2,
		"load1": 2, "load5": 1, "load15": 0.5,
	} {
		if got := fxFloat(t, s, key); got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
}

func TestCPUWithoutCpufreq(t *testing.T) {
	root := fxRoot(t)
	for i := range 4 {
		if err := os.RemoveAll(filepath.Join(root, "sys/devices/system/cpu", "cpu"+string(rune('0'+i)), "cpufreq")); err != nil {
			t.Fatal(err)
		}
	}
	c := fxCollector(t, "cpu", fxEnv(root))
	s := fxCollect(t, c, fxT0)[0]
	// The mean "cpu MHz" of the fixture's cpuinfo: 2000, 2100, 2200, 2300.
	if got := fxFloat(t, s, "frequency_mhz"); got != 2150 {
		t.Errorf("frequency_mhz = %v, want 2150 from cpuinfo", got)
	}
	if _, ok := s.Float("frequency_max_mhz"); ok {
		t.Error("frequency_max_mhz reported without cpufreq")
	}
}

func TestCPUUnreadable(t *testing.T) {
	env := fxEnv(t.TempDir()) // an empty tree: no /proc/stat
	c := fxCollector(t, "cpu", env)
	if steps, err := c.Collect(t.Context(), fxT0); err == nil {
		t.Fatalf("Collect on an empty tree: %d STEPs and no error", len(steps))
	}
}

func cpuTimes(name string, user, system, idle, iowait float64) cpu.TimesStat {
	return cpu.TimesStat{CPU: name, User: user, System: system, Idle: idle, Iowait: iowait}
}

func TestCPUPercents(t *testing.T) {
	a := []cpu.TimesStat{cpuTimes("cpu0", 10, 10, 80, 0), cpuTimes("cpu1", 50, 0, 50, 0)}
	for _, tc := range []struct {
		name      string
		prev, cur []cpu.TimesStat
		ok        bool
		total     float64
		perCore   []float64
	}{
		{"no previous sample", nil, a, false, 0, nil},
		{"same sample: no time passed", a, a, false, 0, nil},
		{"normal", a, []cpu.TimesStat{cpuTimes("cpu0", 60, 10, 130, 0), cpuTimes("cpu1", 50, 0, 150, 0)},
			true, 25, []float64{50, 0}},
		{"a core went offline", a, a[:1], false, 0, nil},
		{"other cores", a, []cpu.TimesStat{cpuTimes("cpu0", 60, 10, 130, 0), cpuTimes("cpu2", 60, 0, 140, 0)},
			false, 0, nil},
		// iowait is known to run backwards on tickless kernels: busy time
		// then exceeds the elapsed total, which must not read above 100.
		{"iowait ran backwards", []cpu.TimesStat{cpuTimes("cpu0", 0, 0, 0, 50)},
			[]cpu.TimesStat{cpuTimes("cpu0", 100, 0, 0, 10)}, true, 100, []float64{100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total, per, ok := cpuPercents(tc.prev, tc.cur)
			if ok != tc.ok || total != tc.total || !slices.Equal(per, tc.perCore) {
				t.Errorf("cpuPercents = %v, %v, %v; want %v, %v, %v", total, per, ok, tc.total, tc.perCore, tc.ok)
			}
		})
	}
}

func TestCPURealHost(t *testing.T) {
	leakcheck.Check(t)
	c := fxCollector(t, "cpu", Env{Hostname: "real"})
	start := time.Now()
	fxCollect(t, c, start)
	time.Sleep(100 * time.Millisecond)
	steps := fxCollect(t, c, time.Now())
	if len(steps) != 1 {
		t.Fatalf("%d STEPs, want 1", len(steps))
	}
	s := steps[0]
	t.Log(s.Event.Description)
	p := fxFloat(t, s, "cpu_percent")
	if p < 0 || p > 100 {
		t.Errorf("cpu_percent = %v", p)
	}
	n := int(fxFloat(t, s, "cores_logical"))
	if n < 1 {
		t.Errorf("cores_logical = %d", n)
	}
	if per, _ := s.Space.Fields["per_core_percent"].([]float64); len(per) == 0 || len(per) > n {
		t.Errorf("per_core_percent = %v with %d logical cores", per, n)
	}
	if l := fxFloat(t, s, "load1"); l < 0 || l > 10000 {
		t.Errorf("load1 = %v", l)
	}
	if f, ok := s.Float("frequency_mhz"); ok && (f < 10 || f > 20000) {
		t.Errorf("frequency_mhz = %v", f)
	}
}

// cpuStepFields is what a consumer sees after a JSON round trip.
func TestCPUStepJSONShape(t *testing.T) {
	s := cpuStep(Env{Hostname: "h"}, fxT0, cpuFacts{Logical: 2, Physical: 1}, nil,
		[]cpu.TimesStat{cpuTimes("cpu0", 1, 1, 1, 0), cpuTimes("cpu1", 1, 1, 1, 0)}, 0, nil)
	fxCheck(t, []*step.Step{s})
	for _, k := range []string{"cpu_percent", "per_core_percent", "frequency_mhz", "frequency_max_mhz", "load1"} {
		if _, ok := s.Space.Fields[k]; ok {
			t.Errorf("field %s present without data", k)
		}
	}
	if got := fxFloat(t, s, "cores_logical"); got != 2 {
		t.Errorf("cores_logical = %v", got)
	}
}
