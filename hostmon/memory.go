package hostmon

import (
	"context"
	"fmt"
	"time"

	"github.com/shirou/gopsutil/v4/mem"
	"github.com/stk-go/stk/step"
)

func init() {
	Register("memory", true, func(cfg Config) (any, error) { return NewMemoryCollector(cfg) })
}

// memoryStep turns one reading of /proc/meminfo into a system.memory STEP.
// Used memory is what is not available (total - MemAvailable), as free(1)
// and gopsutil count it; swap comes from the same reading, so that one
// file read serves both (gopsutil's SwapMemory would read the real host's
// sysinfo and /proc/vmstat as well).
func memoryStep(env Env, now time.Time, vm *mem.VirtualMemoryStat) *step.Step {
	var memPct float64
	if vm.Total > 0 {
		memPct = roundHundredths(float64(vm.Used) / float64(vm.Total) * 100)
	}
	swapUsed := vm.SwapTotal - min(vm.SwapFree, vm.SwapTotal)
	var swapPct float64
	if vm.SwapTotal > 0 {
		swapPct = roundHundredths(float64(swapUsed) / float64(vm.SwapTotal) * 100)
	}
	desc := fmt.Sprintf("memory %.1f%% used (%s of %s)", memPct, sizeText(vm.Used), sizeText(vm.Total))
	if vm.SwapTotal > 0 {
		desc += fmt.Sprintf(", swap %.1f%% (%s of %s)", swapPct, sizeText(swapUsed), sizeText(vm.SwapTotal))
	} else {
		desc += ", no swap"
	}
	s := env.NewMetric("system.memory", desc, now)
	s.Set("memory_percent", memPct)
	s.Set("memory_total_bytes", vm.Total)
	s.Set("memory_used_bytes", vm.Used)
	s.Set("memory_available_bytes", vm.Available)
	s.Set("swap_percent", swapPct)
	s.Set("swap_total_bytes", vm.SwapTotal)
	s.Set("swap_used_bytes", swapUsed)
	return s
}

// sizeText writes a byte count in binary units ("7.6 GiB"), as free(1)
// and df(1) do.
func sizeText(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n) / 1024
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}

// memoryCollector reads /proc/meminfo each call; it keeps no state.
type memoryCollector struct {
	env Env
}

// NewMemoryCollector returns the "memory" collector: memory and swap use.
func NewMemoryCollector(cfg Config) (Collector, error) {
	return &memoryCollector{env: cfg.Env}, nil
}

func (c *memoryCollector) Name() string { return "memory" }

func (c *memoryCollector) Collect(ctx context.Context, now time.Time) ([]*step.Step, error) {
	vm, err := mem.VirtualMemoryWithContext(c.env.Context(ctx))
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	if vm.Total == 0 {
		return nil, fmt.Errorf("memory: no MemTotal in meminfo")
	}
	return []*step.Step{memoryStep(c.env, now, vm)}, nil
}
