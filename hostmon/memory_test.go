package hostmon

import (
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/mem"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/step"
)

func TestMemoryGolden(t *testing.T) {
	leakcheck.Check(t)
	c := fxCollector(t, "memory", fxEnv(fxRoot(t)))
	steps := fxCollect(t, c, fxT0)
	fxGolden(t, "memory", steps)
	if len(steps) != 1 {
		t.Fatalf("%d STEPs, want 1", len(steps))
	}
	s := steps[0]
	// MemTotal 16384000 kB, MemAvailable 4915200 kB: 70 % used;
	// SwapTotal 2097152 kB, SwapFree 1572864 kB: 25 % used.
	for key, want := range map[string]float64{
		"memory_percent": 70, "memory_total_bytes": 16384000 * 1024, "memory_used_bytes": 11468800 * 1024,
		"memory_available_bytes": 4915200 * 1024, "swap_percent": 25, "swap_total_bytes": 2097152 * 1024,
		"swap_used_bytes": 524288 * 1024,
	} {
		if got := fxFloat(t, s, key); got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
}

func TestMemoryNoSwap(t *testing.T) {
	s := memoryStep(Env{Hostname: "h"}, fxT0, &mem.VirtualMemoryStat{Total: 1 << 30, Available: 1 << 29, Used: 1 << 29})
	fxCheck(t, []*step.Step{s})
	if got := fxFloat(t, s, "swap_percent"); got != 0 {
		t.Errorf("swap_percent = %v without swap", got)
	}
	if want := "memory 50.0% used (512.0 MiB of 1.0 GiB), no swap"; s.Event.Description != want {
		t.Errorf("description %q, want %q", s.Event.Description, want)
	}
}

func TestMemoryUnreadable(t *testing.T) {
	c := fxCollector(t, "memory", fxEnv(t.TempDir()))
	if _, err := c.Collect(t.Context(), fxT0); err == nil {
		t.Fatal("no error without meminfo")
	}
}

func TestSizeText(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 16384000 * 1024: "15.6 GiB", 1 << 62: "4.0 EiB",
	} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestMemoryRealHost(t *testing.T) {
	c := fxCollector(t, "memory", Env{Hostname: "real"})
	s := fxCollect(t, c, time.Now())[0]
	t.Log(s.Event.Description)
	if p := fxFloat(t, s, "memory_percent"); p <= 0 || p > 100 {
		t.Errorf("memory_percent = %v", p)
	}
	total, used := fxFloat(t, s, "memory_total_bytes"), fxFloat(t, s, "memory_used_bytes")
	if total < 64<<20 || used <= 0 || used > total {
		t.Errorf("memory total %v used %v", total, used)
	}
	if p := fxFloat(t, s, "swap_percent"); p < 0 || p > 100 {
		t.Errorf("swap_percent = %v", p)
	}
}
