package hostmon

import (
	"errors"
	"strings"
	"testing"

	"github.com/stk-go/stk/step"
)

// TestGPUStep: the values a device did not report are left out of the
// STEP and its description.
func TestGPUStep(t *testing.T) {
	s := gpuStep(evEnv(""), evT0, &gpuReading{Index: 2, TempC: 71, HasTemp: true, PowerMW: 87500, HasPower: true})
	fxCheck(t, []*step.Step{s})
	if s.Event.Description != "GPU 2: 71 °C, 87.5 W" {
		t.Errorf("description %q", s.Event.Description)
	}
	for k := range s.Space.Fields {
		switch k {
		case "kind", "gpu_index", "temperature_c", "power_watts":
		default:
			t.Errorf("unexpected field %s", k)
		}
	}
	if w, _ := s.Float("power_watts"); w != 87.5 {
		t.Errorf("power %v", w)
	}
	s = gpuStep(evEnv(""), evT0, &gpuReading{Index: 0, HasMem: true})
	if _, ok := s.Space.Fields["gpu_memory_percent"]; ok {
		t.Error("memory percent of a zero total")
	}
}

// TestGPUUnavailableHere: whatever the build (cgo or not), a host without
// an NVIDIA driver reports the collector unavailable, not broken.
func TestGPUUnavailableHere(t *testing.T) {
	c, err := Build("gpu", Config{})
	if err == nil {
		c.(interface{ Close() error }).Close()
		t.Skip("this host has GPUs")
	}
	if !errors.Is(err, ErrUnavailable) || !(strings.Contains(err.Error(), "NVML") || strings.Contains(err.Error(), "cgo")) {
		t.Fatalf("%v", err)
	}
}
