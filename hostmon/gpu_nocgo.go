//go:build !cgo

package hostmon

import "fmt"

// NewGPUCollector returns the "gpu" collector. This build has no cgo,
// which NVML needs, so it is unavailable.
func NewGPUCollector(cfg Config) (Collector, error) {
	return nil, fmt.Errorf("gpu: built without cgo, which the NVML library needs: %w", ErrUnavailable)
}
