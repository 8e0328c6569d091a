package hostmon

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/stk-go/stk/step"
)

func init() {
	Register("cpu", true, func(cfg Config) (any, error) { return NewCPUCollector(cfg) })
}

// cpuFacts are the CPU facts read once: they do not change while the host
// runs (CPU hot-plug aside, which per_core_percent still shows).
type cpuFacts struct {
	Logical, Physical int
	MaxMHz            float64 // 0: unknown (no cpufreq)
}

// cpuStep turns two successive per-core samples of /proc/stat into a
// system.cpu STEP. Without a previous sample (the first call) or when the
// set of cores changed, the STEP carries no percentages: they need two
// samples. curMHz 0 (unknown) and a nil avg leave their fields out.
func cpuStep(env Env, now time.Time, facts cpuFacts, prev, cur []cpu.TimesStat, curMHz float64, avg *load.AvgStat) *step.Step {
	cores := facts.Logical
	if cores == 0 {
		cores = len(cur)
	}
	total, perCore, ok := cpuPercents(prev, cur)
	var desc strings.Builder
	if ok {
		fmt.Fprintf(&desc, "cpu %.1f%% over %d cores", total, cores)
	} else {
		fmt.Fprintf(&desc, "cpu: %d cores (first sample, no usage yet)", cores)
	}
	if avg != nil {
		fmt.Fprintf(&desc, ", load %.2f %.2f %.2f", avg.Load1, avg.Load5, avg.Load15)
	}
	s := env.NewMetric("system.cpu", desc.String(), now)
	if ok {
		s.Set("cpu_percent", total)
		s.Set("per_core_percent", perCore)
	}
	if curMHz > 0 {
		s.Set("frequency_mhz", roundHundredths(curMHz))
	}
	if facts.MaxMHz > 0 {
		s.Set("frequency_max_mhz", roundHundredths(facts.MaxMHz))
	}
	s.Set("cores_logical", cores)
	if facts.Physical > 0 {
		s.Set("cores_physical", facts.Physical)
	}
	if avg != nil {
		s.Set("load1", avg.Load1)
		s.Set("load5", avg.Load5)
		s.Set("load15", avg.Load15)
	}
	return s
}

// cpuPercents returns the busy percentage of all cores together and of
// each core between two samples. ok is false when there is no usable
// previous sample: none, a different set of cores, or no time passed.
func cpuPercents(prev, cur []cpu.TimesStat) (total float64, perCore []float64, ok bool) {
	if len(prev) == 0 || len(prev) != len(cur) {
		return 0, nil, false
	}
	var sumPrev, sumCur cpu.TimesStat
	perCore = make([]float64, len(cur))
	for i := range cur {
		if prev[i].CPU != cur[i].CPU {
			return 0, nil, false
		}
		perCore[i], _ = busyPercent(prev[i], cur[i])
		addTimes(&sumPrev, prev[i])
		addTimes(&sumCur, cur[i])
	}
	// The sum of the per-core lines is the "cpu" line over the online
	// cores: gopsutil would read /proc/stat a second time for that line.
	if total, ok = busyPercent(sumPrev, sumCur); !ok {
		return 0, nil, false
	}
	return total, perCore, true
}

// busyPercent is the share of time a CPU was not idle between two samples,
// rounded to hundredths and kept within 0-100 (iowait may run backwards).
// Guest time is already inside user and nice, so it is not added again.
func busyPercent(a, b cpu.TimesStat) (float64, bool) {
	busyA, allA := busyAll(a)
	busyB, allB := busyAll(b)
	dt := allB - allA
	if dt <= 0 {
		return 0, false
	}
	p := (busyB - busyA) / dt * 100
	return roundHundredths(min(max(p, 0), 100)), true
}

func busyAll(t cpu.TimesStat) (busy, all float64) {
	all = t.User + t.Nice + t.System + t.Idle + t.Iowait + t.Irq + t.Softirq + t.Steal
	return all - t.Idle - t.Iowait, all
}

func addTimes(sum *cpu.TimesStat, t cpu.TimesStat) {
	sum.User += t.User
	sum.Nice += t.Nice
	sum.System += t.System
	sum.Idle += t.Idle
	sum.Iowait += t.Iowait
	sum.Irq += t.Irq
	sum.Softirq += t.Softirq
	sum.Steal += t.Steal
}

// roundHundredths rounds to two decimals: metric STEPs travel every
// second, and 12.3456789 says no more than 12.35.
func roundHundredths(v float64) float64 { return math.Round(v*100) / 100 }

// cpuCollector samples /proc/stat (through gopsutil), the load average and
// the current frequency each call; the core counts and the maximum
// frequency are read on the first call only.
type cpuCollector struct {
	env Env

	mu      sync.Mutex
	facts   *cpuFacts
	freq    cpuFreq
	prev    []cpu.TimesStat
	infoMHz float64   // frequency from /proc/cpuinfo when there is no cpufreq
	infoAt  time.Time // when infoMHz was read
}

// NewCPUCollector returns the "cpu" collector: total and per-core usage
// (from the second call on), current and maximum frequency, physical and
// logical cores, and the load averages.
func NewCPUCollector(cfg Config) (Collector, error) {
	return &cpuCollector{env: cfg.Env}, nil
}

func (c *cpuCollector) Name() string { return "cpu" }

func (c *cpuCollector) Collect(ctx context.Context, now time.Time) ([]*step.Step, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx = c.env.Context(ctx)
	times, err := cpu.TimesWithContext(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("cpu times: %w", err)
	}
	if len(times) == 0 {
		// gopsutil reports an unreadable /proc/stat as no CPUs.
		return nil, fmt.Errorf("cpu times: no cpuN lines in %s", rootedPath(ctx, common.HostProcEnvKey, "/proc", "stat"))
	}
	if c.facts == nil {
		c.facts = readCPUFacts(ctx, &c.freq)
	}
	avg, err := load.AvgWithContext(ctx)
	if err != nil {
		avg = nil // a host without a load average still has CPU usage
	}
	mhz := c.freq.current()
	if mhz == 0 && (c.infoAt.IsZero() || now.Sub(c.infoAt) >= HostEvery || now.Before(c.infoAt)) {
		// No cpufreq (most VMs): /proc/cpuinfo's "cpu MHz" is the best
		// figure, but that file is large, so it is read once a minute.
		c.infoMHz, c.infoAt = cpuinfoMHz(ctx), now
	}
	if mhz == 0 {
		mhz = c.infoMHz
	}
	s := cpuStep(c.env, now, *c.facts, c.prev, times, mhz, avg)
	c.prev = times
	return []*step.Step{s}, nil
}

// readCPUFacts counts the cores and finds the cpufreq files.
func readCPUFacts(ctx context.Context, freq *cpuFreq) *cpuFacts {
	f := &cpuFacts{}
	f.Logical, _ = cpu.CountsWithContext(ctx, true)
	f.Physical, _ = cpu.CountsWithContext(ctx, false)
	f.MaxMHz = freq.discover(rootedPath(ctx, common.HostSysEnvKey, "/sys", "devices/system/cpu"))
	return f
}

// cpuinfoMHz is the mean "cpu MHz" of /proc/cpuinfo, 0 when unknown.
func cpuinfoMHz(ctx context.Context) float64 {
	infos, err := cpu.InfoWithContext(ctx)
	if err != nil || len(infos) == 0 {
		return 0
	}
	var sum float64
	for _, in := range infos {
		sum += in.Mhz
	}
	return sum / float64(len(infos))
}

// cpuFreq reads the current frequency of every core from cpufreq's
// scaling_cur_freq files, small sysfs files that are cheap to read each
// interval (unlike /proc/cpuinfo).
type cpuFreq struct {
	files []string
	buf   []byte
}

// discover finds the cpufreq files under dir (/sys/devices/system/cpu) and
// returns the highest cpuinfo_max_freq in MHz, 0 without cpufreq.
func (f *cpuFreq) discover(dir string) float64 {
	dirs, _ := filepath.Glob(filepath.Join(dir, "cpu[0-9]*", "cpufreq"))
	var maxMHz float64
	for _, d := range dirs {
		if khz, err := readKHz(filepath.Join(d, "cpuinfo_max_freq"), &f.buf); err == nil {
			maxMHz = max(maxMHz, khz/1000)
		}
		name := filepath.Join(d, "scaling_cur_freq")
		if _, err := readKHz(name, &f.buf); err == nil {
			f.files = append(f.files, name)
		}
	}
	return maxMHz
}

// current returns the mean current frequency of the cores in MHz, 0 when
// unknown.
func (f *cpuFreq) current() float64 {
	var sum float64
	n := 0
	for _, name := range f.files {
		if khz, err := readKHz(name, &f.buf); err == nil {
			sum += khz
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n) / 1000
}

// readKHz reads a sysfs file holding one number, reusing *buf.
func readKHz(name string, buf *[]byte) (float64, error) {
	fd, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer fd.Close()
	if cap(*buf) < 64 {
		*buf = make([]byte, 64)
	}
	n, err := fd.Read((*buf)[:64])
	if n == 0 {
		if err == nil {
			err = errors.New("empty file")
		}
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string((*buf)[:n])), 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}
