package hostmon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/disk"
	"github.com/stk-go/stk/step"
)

// MountRefresh is how often the "disk" collector re-reads the mount table;
// in between it only calls statfs on the mounts it knows. A mount that
// fails statfs makes it re-read the table at the next call.
const MountRefresh = 30 * time.Second

func init() {
	Register("disk", true, func(cfg Config) (any, error) { return NewDiskCollector(cfg) })
}

// imageFSTypes are read-only image file systems (snap packages, live
// media): always full by design, so reporting them would only raise
// disk alerts nobody can act on.
var imageFSTypes = map[string]bool{
	"squashfs": true, "iso9660": true, "erofs": true, "udf": true, "cramfs": true, "romfs": true,
}

// selectMounts picks the mounts whose usage is worth reporting from
// gopsutil's partition list, which already holds only file systems that
// live on a device (no proc, sysfs, tmpfs, overlay, cgroup, nfs, ...: those
// /proc/filesystems marks "nodev") and no bind mounts. It then drops
// read-only images, keeps the last of mounts stacked on one mount point
// (the visible one) and the first mount point of a device mounted twice
// (btrfs subvolumes share their space).
func selectMounts(parts []disk.PartitionStat) []disk.PartitionStat {
	top := make(map[string]int, len(parts)) // mount point -> index of its last mount
	for i, p := range parts {
		top[p.Mountpoint] = i
	}
	seenDev := make(map[string]bool, len(parts))
	out := make([]disk.PartitionStat, 0, len(parts))
	for i, p := range parts {
		if imageFSTypes[p.Fstype] || top[p.Mountpoint] != i {
			continue
		}
		if p.Device != "" && p.Device != "none" {
			if seenDev[p.Device] {
				continue
			}
			seenDev[p.Device] = true
		}
		out = append(out, p)
	}
	return out
}

// diskMount is a mount and its statfs figures.
type diskMount struct {
	Part  disk.PartitionStat
	Usage *disk.UsageStat
}

// diskSteps turns mounts and their usage into system.disk STEPs, one per
// mount, in mount-table order. The percentage is used / (used + available
// to users), as df(1) counts it: blocks reserved for root do not count as
// free.
func diskSteps(env Env, now time.Time, mounts []diskMount) []*step.Step {
	out := make([]*step.Step, 0, len(mounts))
	for _, m := range mounts {
		u := m.Usage
		if u == nil || u.Total == 0 {
			continue
		}
		pct := roundHundredths(u.UsedPercent)
		desc := fmt.Sprintf("disk %s %.1f%% used, %s free of %s (%s on %s)",
			m.Part.Mountpoint, pct, sizeText(u.Free), sizeText(u.Total), m.Part.Fstype, m.Part.Device)
		s := env.NewMetric("system.disk", desc, now)
		s.Set("mountpoint", m.Part.Mountpoint)
		s.Set("device", m.Part.Device)
		s.Set("fstype", m.Part.Fstype)
		s.Set("disk_percent", pct)
		s.Set("disk_total_bytes", u.Total)
		s.Set("disk_used_bytes", u.Used)
		s.Set("disk_free_bytes", u.Free)
		out = append(out, s)
	}
	return out
}

// diskCollector reads the mount table (through gopsutil: <proc>/1/mountinfo
// and <proc>/filesystems) every MountRefresh and statfs's each selected
// mount every call. Mount points are statfs'd as they are named, on this
// host's root.
type diskCollector struct {
	env   Env
	log   *slog.Logger
	usage func(ctx context.Context, path string) (*disk.UsageStat, error)

	mu       sync.Mutex
	mounts   []disk.PartitionStat
	readAt   time.Time
	mustRead bool
}

// NewDiskCollector returns the "disk" collector: the usage of every mounted
// file system that lives on a device, one STEP per mount.
func NewDiskCollector(cfg Config) (Collector, error) {
	return &diskCollector{env: cfg.Env, log: loggerOrDiscard(cfg.Logger), usage: disk.UsageWithContext}, nil
}

func (c *diskCollector) Name() string { return "disk" }

func (c *diskCollector) Collect(ctx context.Context, now time.Time) ([]*step.Step, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx = c.env.Context(ctx)
	if c.mounts == nil || c.mustRead || now.Sub(c.readAt) >= MountRefresh || now.Before(c.readAt) {
		parts, err := disk.PartitionsWithContext(ctx, false)
		if err != nil {
			return nil, fmt.Errorf("mount table: %w", err)
		}
		c.mounts, c.readAt, c.mustRead = selectMounts(parts), now, false
	}
	ms := make([]diskMount, 0, len(c.mounts))
	var errs []error
	for _, p := range c.mounts {
		u, err := c.usage(ctx, p.Mountpoint)
		if err != nil {
			// Unmounted since the table was read, or not ours to see.
			err = fmt.Errorf("statfs %s: %w", p.Mountpoint, err)
			c.log.Debug("disk usage", "err", err)
			errs = append(errs, err)
			c.mustRead = true
			continue
		}
		ms = append(ms, diskMount{Part: p, Usage: u})
	}
	steps := diskSteps(c.env, now, ms)
	if len(steps) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return steps, nil
}

// loggerOrDiscard returns l, or a logger that drops everything when l is
// nil (a collector built by its New function rather than by Build).
func loggerOrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
