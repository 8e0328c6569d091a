//go:build cgo

package hostmon

import (
	"errors"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// NewGPUCollector returns the "gpu" collector: one system.gpu metric per
// NVIDIA GPU, read with NVML (the library the driver installs). Without
// the driver it is unavailable, with NVML's reason.
func NewGPUCollector(cfg Config) (Collector, error) {
	return newNVMLCollector(cfg, nvml.New())
}

// newNVMLCollector initialises NVML through lib (the real library or a
// mock), finds the devices and reads what does not change: names, UUIDs,
// the driver version.
func newNVMLCollector(cfg Config, lib nvml.Interface) (Collector, error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		msg := ret.Error()
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			msg += " (no libnvidia-ml.so.1: no NVIDIA driver on this host)"
		}
		return nil, fmt.Errorf("gpu: NVML init: %s: %w", msg, ErrUnavailable)
	}
	n, ret := lib.DeviceGetCount()
	switch {
	case ret != nvml.SUCCESS:
		lib.Shutdown()
		return nil, fmt.Errorf("gpu: NVML device count: %s: %w", ret.Error(), ErrUnavailable)
	case n == 0:
		lib.Shutdown()
		return nil, fmt.Errorf("gpu: NVML sees no GPU: %w", ErrUnavailable)
	}
	src := &nvmlSource{lib: lib}
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		src.driver = v
	}
	// The v2 call counts memory the driver reserves as neither used nor
	// free, as nvidia-smi does; drivers older than R510 lack it, and
	// calling a missing symbol would crash, so look first.
	if ext := lib.Extensions(); ext != nil {
		src.memV2 = ext.LookupSymbol("nvmlDeviceGetMemoryInfo_v2") == nil
	}
	for i := range n {
		d := &nvmlDev{index: i}
		d.h, d.err = lib.DeviceGetHandleByIndex(i)
		if d.err == nvml.SUCCESS {
			if v, ret := d.h.GetName(); ret == nvml.SUCCESS {
				d.name = v
			}
			if v, ret := d.h.GetUUID(); ret == nvml.SUCCESS {
				d.uuid = v
			}
		}
		src.devs = append(src.devs, d)
	}
	return &gpuCollector{env: cfg.Env, src: src}, nil
}

// nvmlSource reads GPUs with NVML.
type nvmlSource struct {
	lib    nvml.Interface
	driver string
	memV2  bool
	devs   []*nvmlDev
}

// nvmlDev is one device: its handle, its fixed facts and the calls it
// does not support (not made again).
type nvmlDev struct {
	index      int
	h          nvml.Device
	err        nvml.Return // of DeviceGetHandleByIndex
	name, uuid string
	noV2       bool
	unsup      [5]bool // by nvmlCall
}

// The per-interval calls, for nvmlDev.unsup.
const (
	nvmlMem = iota
	nvmlUtil
	nvmlTemp
	nvmlPower
	nvmlLimit
)

var nvmlCallNames = [...]string{"memory", "utilization", "temperature", "power", "power limit"}

func (s *nvmlSource) devices() int { return len(s.devs) }

func (s *nvmlSource) read(i int, r *gpuReading) error {
	d := s.devs[i]
	r.Index, r.Name, r.UUID, r.Driver = d.index, d.name, d.uuid, s.driver
	if d.err != nvml.SUCCESS {
		return fmt.Errorf("GPU %d: no handle: %s", d.index, d.err.Error())
	}
	var failed []error
	// ok records a call's result: NOT_SUPPORTED is remembered and the
	// call not made again; other failures leave the value out this time.
	ok := func(call int, ret nvml.Return) bool {
		switch ret {
		case nvml.SUCCESS:
			return true
		case nvml.ERROR_NOT_SUPPORTED:
			d.unsup[call] = true
		default:
			failed = append(failed, fmt.Errorf("%s: %s", nvmlCallNames[call], ret.Error()))
		}
		return false
	}
	if !d.unsup[nvmlMem] {
		done := false
		if s.memV2 && !d.noV2 {
			m, ret := d.h.GetMemoryInfo_v2()
			switch ret {
			case nvml.SUCCESS:
				r.MemTotal, r.MemUsed, r.MemFree, r.HasMem = m.Total, m.Used, m.Free, true
				done = true
			case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND, nvml.ERROR_ARGUMENT_VERSION_MISMATCH:
				d.noV2 = true
			}
		}
		if !done {
			m, ret := d.h.GetMemoryInfo()
			if ok(nvmlMem, ret) {
				r.MemTotal, r.MemUsed, r.MemFree, r.HasMem = m.Total, m.Used, m.Free, true
			}
		}
	}
	if !d.unsup[nvmlUtil] {
		u, ret := d.h.GetUtilizationRates()
		if ok(nvmlUtil, ret) {
			r.Util, r.HasUtil = u.Gpu, true
		}
	}
	if !d.unsup[nvmlTemp] {
		t, ret := d.h.GetTemperature(nvml.TEMPERATURE_GPU)
		if ok(nvmlTemp, ret) {
			r.TempC, r.HasTemp = t, true
		}
	}
	if !d.unsup[nvmlPower] {
		p, ret := d.h.GetPowerUsage()
		if ok(nvmlPower, ret) {
			r.PowerMW, r.HasPower = p, true
		}
	}
	if !d.unsup[nvmlLimit] {
		p, ret := d.h.GetEnforcedPowerLimit()
		if ok(nvmlLimit, ret) {
			r.LimitMW, r.HasLimit = p, true
		}
	}
	if !r.hasValues() && len(failed) > 0 {
		return fmt.Errorf("GPU %d: %w", d.index, errors.Join(failed...))
	}
	return nil
}

func (s *nvmlSource) close() error {
	if ret := s.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("gpu: NVML shutdown: %s", ret.Error())
	}
	return nil
}
