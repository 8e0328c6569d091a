package hostmon

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/stk-go/stk/step"
)

func init() {
	Register("gpu", true, func(cfg Config) (any, error) { return NewGPUCollector(cfg) })
}

// gpuReading is one GPU's values in one interval. The Has flags say which
// values the device reported: one that fails a call (power readings are
// NOT_SUPPORTED on many boards) leaves that value out, not the device.
type gpuReading struct {
	Index              int
	Name, UUID, Driver string

	MemTotal, MemUsed, MemFree uint64
	HasMem                     bool
	Util                       uint32 // percent of time a kernel ran
	HasUtil                    bool
	TempC                      uint32
	HasTemp                    bool
	PowerMW, LimitMW           uint32 // milliwatts, as NVML counts
	HasPower, HasLimit         bool
}

// hasValues reports whether the device reported anything this interval.
func (r *gpuReading) hasValues() bool {
	return r.HasMem || r.HasUtil || r.HasTemp || r.HasPower || r.HasLimit
}

// gpuStep turns a reading into a system.gpu STEP (fields in the package
// documentation).
func gpuStep(env Env, now time.Time, r *gpuReading) *step.Step {
	var desc strings.Builder
	fmt.Fprintf(&desc, "GPU %d", r.Index)
	if r.Name != "" {
		fmt.Fprintf(&desc, " (%s)", r.Name)
	}
	var parts []string
	if r.HasUtil {
		parts = append(parts, fmt.Sprintf("%d%% busy", r.Util))
	}
	var memPct float64
	if r.HasMem && r.MemTotal > 0 {
		memPct = math.Round(float64(r.MemUsed)/float64(r.MemTotal)*100*100) / 100
		parts = append(parts, fmt.Sprintf("memory %.1f%% (%s of %s)", memPct, svcSize(r.MemUsed), svcSize(r.MemTotal)))
	}
	if r.HasTemp {
		parts = append(parts, fmt.Sprintf("%d °C", r.TempC))
	}
	switch {
	case r.HasPower && r.HasLimit:
		parts = append(parts, fmt.Sprintf("%.1f W of %.0f W", gpuWatts(r.PowerMW), gpuWatts(r.LimitMW)))
	case r.HasPower:
		parts = append(parts, fmt.Sprintf("%.1f W", gpuWatts(r.PowerMW)))
	}
	if len(parts) > 0 {
		desc.WriteString(": " + strings.Join(parts, ", "))
	}
	s := env.NewMetric("system.gpu", desc.String(), now)
	s.Set("gpu_index", int64(r.Index))
	if r.Name != "" {
		s.Set("gpu_name", r.Name)
	}
	if r.UUID != "" {
		s.Set("gpu_uuid", r.UUID)
	}
	if r.Driver != "" {
		s.Set("driver_version", r.Driver)
	}
	if r.HasUtil {
		s.Set("gpu_percent", int64(r.Util))
	}
	if r.HasMem {
		s.Set("gpu_memory_total_bytes", r.MemTotal)
		s.Set("gpu_memory_used_bytes", r.MemUsed)
		s.Set("gpu_memory_free_bytes", r.MemFree)
		if r.MemTotal > 0 {
			s.Set("gpu_memory_percent", memPct)
		}
	}
	if r.HasTemp {
		s.Set("temperature_c", int64(r.TempC))
	}
	if r.HasPower {
		s.Set("power_watts", gpuWatts(r.PowerMW))
	}
	if r.HasLimit {
		s.Set("power_limit_watts", gpuWatts(r.LimitMW))
	}
	return s
}

// gpuWatts converts NVML's milliwatts.
func gpuWatts(mW uint32) float64 { return float64(mW) / 1000 }

// gpuSource reads the GPUs a collector found when it was built.
type gpuSource interface {
	devices() int
	// read fills r with device i's values; it fails only when the device
	// reported nothing at all.
	read(i int, r *gpuReading) error
	close() error
}

// gpuCollector makes one system.gpu STEP per device every interval.
type gpuCollector struct {
	env  Env
	src  gpuSource
	once sync.Once
	err  error
}

func (c *gpuCollector) Name() string { return "gpu" }

// Collect reads every device; one that reports nothing is left out and
// named in the error, the others are still returned.
func (c *gpuCollector) Collect(ctx context.Context, now time.Time) ([]*step.Step, error) {
	n := c.src.devices()
	steps := make([]*step.Step, 0, n)
	var errs []error
	for i := range n {
		var r gpuReading
		if err := c.src.read(i, &r); err != nil {
			errs = append(errs, err)
		}
		if r.hasValues() {
			steps = append(steps, gpuStep(c.env, now, &r))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return steps, fmt.Errorf("gpu: %w", err)
	}
	return steps, nil
}

// Close releases the GPU library (NVML's Shutdown); it runs once.
func (c *gpuCollector) Close() error {
	c.once.Do(func() { c.err = c.src.close() })
	return c.err
}
