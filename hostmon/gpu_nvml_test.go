//go:build cgo

package hostmon

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/stk-go/stk/step"
)

const (
	gib          = 1 << 30
	mockMemTotal = 80 * gib
	mockReserved = 512 << 20
)

// mockGPU returns an NVML device mock for GPU i whose every value depends
// on i, so that a value read from the wrong device or call shows.
func mockGPU(i int) *mock.Device {
	used := uint64(i+1) * gib
	return &mock.Device{
		GetNameFunc: func() (string, nvml.Return) { return "NVIDIA A100-SXM4-80GB", nvml.SUCCESS },
		GetUUIDFunc: func() (string, nvml.Return) {
			return fmt.Sprintf("GPU-%08d-1111-2222-3333-444444444444", i), nvml.SUCCESS
		},
		GetMemoryInfo_v2Func: func() (nvml.Memory_v2, nvml.Return) {
			return nvml.Memory_v2{Total: mockMemTotal, Reserved: mockReserved, Used: used, Free: mockMemTotal - mockReserved - used}, nvml.SUCCESS
		},
		// v1 counts the reserved memory as used.
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			return nvml.Memory{Total: mockMemTotal, Used: used + mockReserved, Free: mockMemTotal - mockReserved - used}, nvml.SUCCESS
		},
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: uint32(10*i + 5), Memory: 3}, nvml.SUCCESS
		},
		GetTemperatureFunc: func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
			if s != nvml.TEMPERATURE_GPU {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			return uint32(40 + 3*i), nvml.SUCCESS
		},
		GetPowerUsageFunc:         func() (uint32, nvml.Return) { return uint32(100000 + 12345*i), nvml.SUCCESS },
		GetEnforcedPowerLimitFunc: func() (uint32, nvml.Return) { return 400000, nvml.SUCCESS },
	}
}

// mockNVML returns an NVML mock with the given devices.
func mockNVML(devs []*mock.Device) *mock.Interface {
	return &mock.Interface{
		InitFunc:     func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc: func() nvml.Return { return nvml.SUCCESS },
		DeviceGetCountFunc: func() (int, nvml.Return) {
			return len(devs), nvml.SUCCESS
		},
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i < 0 || i >= len(devs) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return devs[i], nvml.SUCCESS
		},
		SystemGetDriverVersionFunc: func() (string, nvml.Return) { return "550.54.15", nvml.SUCCESS },
		ExtensionsFunc: func() nvml.ExtendedInterface {
			return &mock.ExtendedInterface{LookupSymbolFunc: func(string) error { return nil }}
		},
	}
}

func mockGPUs(n int) []*mock.Device {
	devs := make([]*mock.Device, n)
	for i := range devs {
		devs[i] = mockGPU(i)
	}
	return devs
}

// TestGPUMock8 reads eight mocked GPUs twice and checks every value: one
// without power readings (NOT_SUPPORTED: the field is left out and the
// call not made again), one without the v2 memory call (v1 is used), one
// whose temperature fails once (left out that time only).
func TestGPUMock8(t *testing.T) {
	devs := mockGPUs(8)
	devs[3].GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	devs[5].GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, nvml.ERROR_NOT_SUPPORTED }
	tempFails := true
	devs[6].GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) {
		if tempFails {
			tempFails = false
			return 0, nvml.ERROR_TIMEOUT
		}
		return 58, nvml.SUCCESS
	}
	lib := mockNVML(devs)
	c, err := newNVMLCollector(Config{Env: evEnv("")}, lib)
	if err != nil {
		t.Fatal(err)
	}

	want := func(i int, round int) map[string]any {
		used := float64(i+1) * gib
		free := float64(mockMemTotal - mockReserved - uint64(i+1)*gib)
		if i == 5 {
			used += mockReserved
		}
		m := map[string]any{
			"kind":                   "metric",
			"gpu_index":              float64(i),
			"gpu_name":               "NVIDIA A100-SXM4-80GB",
			"gpu_uuid":               fmt.Sprintf("GPU-%08d-1111-2222-3333-444444444444", i),
			"driver_version":         "550.54.15",
			"gpu_percent":            float64(10*i + 5),
			"gpu_memory_total_bytes": float64(mockMemTotal),
			"gpu_memory_used_bytes":  used,
			"gpu_memory_free_bytes":  free,
			"gpu_memory_percent":     roundTo2(used / mockMemTotal * 100),
			"temperature_c":          float64(40 + 3*i),
			"power_watts":            float64(100000+12345*i) / 1000,
			"power_limit_watts":      400.0,
		}
		if i == 3 {
			delete(m, "power_watts")
		}
		if i == 6 {
			m["temperature_c"] = 58.0
			if round == 0 {
				delete(m, "temperature_c")
			}
		}
		return m
	}
	for round := range 2 {
		now := evT0.Add(time.Duration(round) * time.Second)
		steps := fxCollect(t, c, now)
		if len(steps) != 8 {
			t.Fatalf("round %d: %d STEPs, want 8", round, len(steps))
		}
		for i, s := range steps {
			if s.Event.Type != "system.gpu" || s.Time.Start != now.UnixMilli() || s.Space.Hostname != "fixture-host" {
				t.Errorf("GPU %d: %s at %d on %s", i, s.Event.Type, s.Time.Start, s.Space.Hostname)
			}
			got := gpuFields(t, s)
			w := want(i, round)
			if fmt.Sprint(got) != fmt.Sprint(w) {
				t.Errorf("round %d GPU %d:\n got %v\nwant %v", round, i, got, w)
			}
		}
		if round == 1 {
			d := steps[0].Event.Description
			if d != "GPU 0 (NVIDIA A100-SXM4-80GB): 5% busy, memory 1.2% (1.0 GiB of 80.0 GiB), 40 °C, 100.0 W of 400 W" {
				t.Errorf("description %q", d)
			}
		}
	}
	for i, d := range devs {
		wantPower, wantV2, wantV1 := 2, 2, 0
		if i == 3 {
			wantPower = 1
		}
		if i == 5 {
			wantV2, wantV1 = 1, 2
		}
		if n := len(d.GetPowerUsageCalls()); n != wantPower {
			t.Errorf("GPU %d: power read %d times, want %d", i, n, wantPower)
		}
		if n, n1 := len(d.GetMemoryInfo_v2Calls()), len(d.GetMemoryInfoCalls()); n != wantV2 || n1 != wantV1 {
			t.Errorf("GPU %d: memory v2 read %d times, v1 %d, want %d and %d", i, n, n1, wantV2, wantV1)
		}
		if n := len(d.GetNameCalls()) + len(d.GetUUIDCalls()); n != 2 {
			t.Errorf("GPU %d: name and UUID read %d times, want once each", i, n)
		}
	}
	if n := len(lib.SystemGetDriverVersionCalls()); n != 1 {
		t.Errorf("driver version read %d times", n)
	}
	closer := c.(interface{ Close() error })
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	closer.Close()
	if n, m := len(lib.InitCalls()), len(lib.ShutdownCalls()); n != 1 || m != 1 {
		t.Errorf("Init %d times, Shutdown %d times, want 1 and 1", n, m)
	}
}

// gpuFields returns s's fields as they read after JSON.
func gpuFields(t *testing.T, s *step.Step) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, v := range s.Space.Fields {
		if f, ok := s.Float(k); ok {
			out[k] = f
		} else {
			out[k] = v
		}
	}
	return out
}

func roundTo2(v float64) float64 {
	r := float64(int64(v*100+0.5)) / 100
	return r
}

// TestGPUMockFailures: NVML init failing, no devices, a device without a
// handle, a device that reports nothing, and a library without the v2
// memory call.
func TestGPUMockFailures(t *testing.T) {
	lib := mockNVML(mockGPUs(1))
	lib.InitFunc = func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }
	_, err := newNVMLCollector(Config{}, lib)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "ERROR_DRIVER_NOT_LOADED") {
		t.Errorf("init failing: %v", err)
	}
	if n := len(lib.ShutdownCalls()); n != 0 {
		t.Errorf("Shutdown after a failed Init")
	}

	lib = mockNVML(nil)
	if _, err := newNVMLCollector(Config{}, lib); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no GPU") {
		t.Errorf("no devices: %v", err)
	}
	if n := len(lib.ShutdownCalls()); n != 1 {
		t.Errorf("Shutdown %d times after finding no device", n)
	}

	devs := mockGPUs(3)
	lost := func() nvml.Return { return nvml.ERROR_GPU_IS_LOST }
	devs[1] = &mock.Device{
		GetNameFunc:               func() (string, nvml.Return) { return "", lost() },
		GetUUIDFunc:               func() (string, nvml.Return) { return "", lost() },
		GetMemoryInfo_v2Func:      func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, lost() },
		GetMemoryInfoFunc:         func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, lost() },
		GetUtilizationRatesFunc:   func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, lost() },
		GetTemperatureFunc:        func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, lost() },
		GetPowerUsageFunc:         func() (uint32, nvml.Return) { return 0, lost() },
		GetEnforcedPowerLimitFunc: func() (uint32, nvml.Return) { return 0, lost() },
	}
	lib = mockNVML(devs)
	lib.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i == 2 {
			return nil, nvml.ERROR_NO_PERMISSION
		}
		return devs[i], nvml.SUCCESS
	}
	// No v2 symbol in this library: v2 must not be called (it would crash
	// a real old driver).
	lib.ExtensionsFunc = func() nvml.ExtendedInterface {
		return &mock.ExtendedInterface{LookupSymbolFunc: func(s string) error { return errors.New(s + " not found") }}
	}
	c, err := newNVMLCollector(Config{}, lib)
	if err != nil {
		t.Fatal(err)
	}
	defer c.(interface{ Close() error }).Close()
	steps, err := c.Collect(t.Context(), evT0)
	if len(steps) != 1 || err == nil || !strings.Contains(err.Error(), "GPU 1: memory: ERROR_GPU_IS_LOST") ||
		!strings.Contains(err.Error(), "GPU 2: no handle: ERROR_NO_PERMISSION") {
		t.Fatalf("%d steps, err %v", len(steps), err)
	}
	if used, _ := steps[0].Float("gpu_memory_used_bytes"); used != gib+mockReserved {
		t.Errorf("v1 memory used %v", used)
	}
	if n := len(devs[0].GetMemoryInfo_v2Calls()); n != 0 {
		t.Errorf("v2 called %d times though the library lacks it", n)
	}
}

// TestGPURealHost: on a host without an NVIDIA driver the collector is
// unavailable with NVML's reason, and a monitor runs without it.
func TestGPURealHost(t *testing.T) {
	c, err := NewGPUCollector(Config{Env: Env{Hostname: "h"}})
	if err == nil {
		defer c.(interface{ Close() error }).Close()
		steps, err := c.Collect(t.Context(), time.Now())
		if err != nil || len(steps) == 0 {
			t.Fatalf("a host with GPUs: %d steps, %v", len(steps), err)
		}
		fxCheck(t, steps)
		t.Skipf("this host has %d GPUs: nothing unavailable to test", len(steps))
	}
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "NVML") {
		t.Fatalf("no driver: %v", err)
	}
	t.Log(err)
	m, err := NewMonitor(MonitorConfig{Collectors: []string{"gpu", "processes"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if fmt.Sprint(m.Skipped(), m.Names()) != "[gpu] [processes]" {
		t.Errorf("skipped %v, running %v", m.Skipped(), m.Names())
	}
}

// BenchmarkGPUCollect is one interval of eight mocked GPUs: the cost of
// the collector itself, NVML's calls aside.
func BenchmarkGPUCollect(b *testing.B) {
	c, err := newNVMLCollector(Config{Env: Env{Hostname: "h"}}, mockNVML(mockGPUs(8)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c.Collect(b.Context(), evT0)
	}
}
