package hostmon

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/stk-go/stk/step"
)

// HostEvery is how often the "host" collector reports: host facts hardly
// change, so it reports on its first call and then once a minute, not
// every interval.
const HostEvery = 60 * time.Second

func init() {
	Register("host", true, func(cfg Config) (any, error) { return NewHostCollector(cfg) })
}

// hostFacts is what a system.host STEP says.
type hostFacts struct {
	OS, Platform, PlatformVersion, Kernel, Arch string
	BootTime                                    int64 // Unix seconds
}

// hostStep turns host facts into a system.host STEP at now. Uptime is
// counted from the boot time to now, so it agrees with boot_time.
func hostStep(env Env, now time.Time, f hostFacts) *step.Step {
	up := max(now.Unix()-f.BootTime, 0)
	name := f.Platform
	if f.PlatformVersion != "" {
		name += " " + f.PlatformVersion
	}
	if name == "" {
		name = f.OS
	}
	desc := fmt.Sprintf("%s, kernel %s (%s), up %s", name, f.Kernel, f.Arch, uptimeText(up))
	s := env.NewMetric("system.host", desc, now)
	s.Set("os", f.OS)
	s.Set("platform", f.Platform)
	s.Set("platform_version", f.PlatformVersion)
	s.Set("kernel", f.Kernel)
	s.Set("arch", f.Arch)
	s.Set("boot_time", f.BootTime*1000)
	s.Set("uptime_seconds", up)
	return s
}

// uptimeText says a duration in seconds the way uptime(1) does.
func uptimeText(sec int64) string {
	d, h, m := sec/86400, sec%86400/3600, sec%3600/60
	switch {
	case d > 0:
		return fmt.Sprintf("%dd %dh %dm", d, h, m)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	}
	return fmt.Sprintf("%dm", m)
}

// hostCollector reports system.host on its first call and then every
// HostEvery. The platform, kernel and architecture are read once; the
// boot time is read each report, since a wall-clock step moves it.
type hostCollector struct {
	env   Env
	every time.Duration

	mu     sync.Mutex
	static *hostFacts
	last   time.Time
}

// NewHostCollector returns the "host" collector: OS, platform, kernel,
// architecture, boot time and uptime, on the first call and then once a
// minute.
func NewHostCollector(cfg Config) (Collector, error) {
	return &hostCollector{env: cfg.Env, every: HostEvery - cfg.Interval/2}, nil
}

func (c *hostCollector) Name() string { return "host" }

func (c *hostCollector) Collect(ctx context.Context, now time.Time) ([]*step.Step, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.last.IsZero() && now.Sub(c.last) < c.every && !now.Before(c.last) {
		return nil, nil // reported recently (a clock set back reports at once)
	}
	ctx = c.env.Context(ctx)
	if c.static == nil {
		f, err := readHostStatic(ctx)
		if err != nil {
			return nil, err
		}
		c.static = &f
	}
	f := *c.static
	bt, err := readBootTime(ctx)
	if err != nil {
		return nil, err
	}
	f.BootTime = bt
	c.last = now
	return []*step.Step{hostStep(c.env, now, f)}, nil
}

// readHostStatic reads the facts that do not change while the host runs.
// The platform comes from <etc>/os-release, which every current
// distribution has; gopsutil's PlatformInformation is the fallback only,
// because without an /etc/lsb-release (Debian, Fedora) it runs the
// lsb_release script, a Python process, to learn what os-release says.
func readHostStatic(ctx context.Context) (hostFacts, error) {
	f := hostFacts{OS: runtime.GOOS}
	var err error
	if b, rerr := os.ReadFile(rootedPath(ctx, common.HostEtcEnvKey, "/etc", "os-release")); rerr == nil {
		f.Platform, f.PlatformVersion = parseOSRelease(b)
	}
	if f.Platform == "" {
		if f.Platform, _, f.PlatformVersion, err = host.PlatformInformationWithContext(ctx); err != nil {
			return f, fmt.Errorf("host platform: %w", err)
		}
	}
	if f.Kernel, err = host.KernelVersionWithContext(ctx); err != nil {
		return f, fmt.Errorf("kernel version: %w", err)
	}
	if f.Arch, err = host.KernelArch(); err != nil {
		return f, fmt.Errorf("kernel architecture: %w", err)
	}
	return f, nil
}

// parseOSRelease returns ID and VERSION_ID of an os-release file
// (os-release(5): KEY=value lines, values maybe quoted).
func parseOSRelease(b []byte) (id, version string) {
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		switch k {
		case "ID":
			id = v
		case "VERSION_ID":
			version = v
		}
	}
	return id, version
}

// readBootTime reads btime from <proc>/stat. gopsutil's host.BootTime is
// not used because inside a container it derives the boot time from
// /proc/uptime and the wall clock, and it caches its container detection
// process-wide from the first caller's roots; btime is the kernel's own
// figure, right in containers too.
func readBootTime(ctx context.Context) (int64, error) {
	name := rootedPath(ctx, common.HostProcEnvKey, "/proc", "stat")
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20) // the intr line is long
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("btime ")); ok {
			bt, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil || bt <= 0 {
				return 0, fmt.Errorf("%s: bad btime %q", name, v)
			}
			return bt, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return 0, fmt.Errorf("%s: no btime line", name)
}

// rootedPath finds a host file the way gopsutil does: under the root that
// ctx carries for key (Env.Context), else under the environment variable
// of that name (HOST_PROC, ...), else under def. Collectors use it for the
// files gopsutil has no function for, so fixture roots apply to them too.
func rootedPath(ctx context.Context, key common.EnvKeyType, def string, elem ...string) string {
	root := ""
	if m, ok := ctx.Value(common.EnvKey).(common.EnvMap); ok {
		root = m[key]
	}
	if root == "" {
		root = os.Getenv(string(key))
	}
	if root == "" {
		root = def
	}
	return filepath.Join(append([]string{root}, elem...)...)
}
