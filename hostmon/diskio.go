package hostmon

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/stk-go/stk/step"
)

func init() {
	Register("diskio", true, func(cfg Config) (any, error) { return NewDiskIOCollector(cfg) })
}

// sectorBytes is the unit of /proc/diskstats' sector counters, which
// gopsutil multiplies into bytes; a wrap happens in sectors.
const sectorBytes = 512

// counterDelta returns how much a kernel counter grew from prev to cur,
// both in bytes of unit-sized native steps (sectors, bytes). A counter that
// went down either wrapped at 32 bits (32-bit kernels and some drivers
// keep unsigned longs) or was reset (a device re-created, a driver
// reloaded). It is taken for a wrap only when prev was within 32 bits and
// the growth it implies is under half the range; otherwise ok is false and
// the caller starts over from cur, since what happened between is unknown.
func counterDelta(prev, cur, unit uint64) (delta uint64, ok bool) {
	if cur >= prev {
		return cur - prev, true
	}
	const wrap = 1 << 32
	p, c := prev/unit, cur/unit
	if p < wrap {
		if d := wrap - p + c; d < wrap/2 {
			return d * unit, true
		}
	}
	return 0, false
}

// perSecond is delta over elapsed, rounded to hundredths.
func perSecond(delta uint64, elapsed time.Duration) float64 {
	return roundHundredths(float64(delta) / elapsed.Seconds())
}

// rateText writes a rate in SI units ("1.5 MB/s"), the units the alert
// thresholds use (1 MB = 1e6 bytes).
func rateText(bytesPerSec float64) string {
	const units = "kMGTPE"
	if bytesPerSec < 1000 {
		return fmt.Sprintf("%.0f B/s", bytesPerSec)
	}
	v := bytesPerSec / 1000
	i := 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %cB/s", v, units[i])
}

// diskioSteps turns two samples of the disk counters, taken elapsed apart,
// into system.diskio STEPs, one per device present in both, sorted by
// name. A device whose counters were reset reports again from the next
// sample on.
func diskioSteps(env Env, now time.Time, prev, cur map[string]disk.IOCountersStat, elapsed time.Duration) []*step.Step {
	if elapsed <= 0 || len(prev) == 0 {
		return nil
	}
	names := make([]string, 0, len(cur))
	for name := range cur {
		if _, ok := prev[name]; ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := make([]*step.Step, 0, len(names))
	for _, name := range names {
		p, c := prev[name], cur[name]
		rd, okR := counterDelta(p.ReadBytes, c.ReadBytes, sectorBytes)
		wr, okW := counterDelta(p.WriteBytes, c.WriteBytes, sectorBytes)
		if !okR || !okW {
			continue
		}
		r, w := perSecond(rd, elapsed), perSecond(wr, elapsed)
		io := roundHundredths(r + w)
		s := env.NewMetric("system.diskio", fmt.Sprintf("disk %s read %s, write %s", name, rateText(r), rateText(w)), now)
		s.Set("device", name)
		s.Set("read_bytes_per_sec", r)
		s.Set("write_bytes_per_sec", w)
		s.Set("io_bytes_per_sec", io)
		out = append(out, s)
	}
	return out
}

// wholeDisks returns the block devices worth a system.diskio STEP: the
// entries of <sys>/block (whole disks, device-mapper and md devices; not
// partitions, whose I/O their disk already counts) other than loop and ram
// devices. ok is false when there is no <sys>/block to tell by.
func wholeDisks(sysBlock string) (names []string, ok bool) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, false
	}
	names = make([]string, 0, len(ents))
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") {
			continue
		}
		names = append(names, n)
	}
	return names, true
}

// diskioCollector samples /proc/diskstats through gopsutil each call and
// reports rates over the time between calls. The device list is re-read
// every MountRefresh; naming the devices to gopsutil also spares it the
// udev look-ups it makes for every device it returns.
type diskioCollector struct {
	env Env

	mu       sync.Mutex
	devices  []string // nil: every device; empty: none
	listedAt time.Time
	listed   bool
	prev     map[string]disk.IOCountersStat
	prevAt   time.Time
}

// NewDiskIOCollector returns the "diskio" collector: read and write rates
// of every disk.
func NewDiskIOCollector(cfg Config) (Collector, error) {
	return &diskioCollector{env: cfg.Env}, nil
}

func (c *diskioCollector) Name() string { return "diskio" }

func (c *diskioCollector) Collect(ctx context.Context, now time.Time) ([]*step.Step, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx = c.env.Context(ctx)
	if !c.listed || now.Sub(c.listedAt) >= MountRefresh || now.Before(c.listedAt) {
		names, ok := wholeDisks(rootedPath(ctx, common.HostSysEnvKey, "/sys", "block"))
		if !ok {
			names = nil // no <sys>/block to tell disks by: every device
		}
		c.devices, c.listed, c.listedAt = names, true, now
	}
	cur := map[string]disk.IOCountersStat{}
	if c.devices == nil || len(c.devices) > 0 { // an empty list would mean "all" to gopsutil
		var err error
		// gopsutil rewrites the names in place; give it a copy.
		cur, err = disk.IOCountersWithContext(ctx, slices.Clone(c.devices)...)
		if err != nil {
			return nil, fmt.Errorf("disk counters: %w", err)
		}
	}
	steps := diskioSteps(c.env, now, c.prev, cur, now.Sub(c.prevAt))
	c.prev, c.prevAt = cur, now
	return steps, nil
}
