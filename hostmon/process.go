package hostmon

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/stk-go/stk/step"
)

func init() {
	Register("processes", true, func(cfg Config) (any, error) { return NewProcessCollector(cfg) })
}

// Limits and constants of the processes collector.
const (
	// ProcessCmdlineMax is how many bytes of a command line a
	// process.start STEP carries.
	ProcessCmdlineMax = 256
	// ProcessMaxEvents bounds the process.start and process.exit STEPs of
	// one interval, so that a fork storm cannot flood the bus; the
	// processes beyond it are counted (system.processes forks_per_sec
	// still shows the storm) and logged.
	ProcessMaxEvents = 500

	// DefaultProcessMinLifetime is ProcessOptions.MinLifetime's default:
	// shell loops, cron jobs' helpers and health checks start and end
	// processes by the hundred a minute, and none of them is news.
	DefaultProcessMinLifetime = 5 * time.Second
	// DefaultProcessSummaryInterval is ProcessOptions.SummaryInterval's
	// default.
	DefaultProcessSummaryInterval = time.Minute
	// ProcessSummaryTop is how many command names a
	// system.processes.short_lived STEP lists.
	ProcessSummaryTop = 5

	// procClockTicks is USER_HZ, /proc's unit of CPU and start times: 100
	// on every architecture Go runs Linux on.
	procClockTicks = 100
	// procKernelThread is PF_KTHREAD in /proc/PID/stat's flags.
	procKernelThread = 0x00200000
)

// ProcessOptions say which processes the "processes" collector reports.
// The zero value reports every process that lives at least
// DefaultProcessMinLifetime, with a summary of the others every
// DefaultProcessSummaryInterval.
type ProcessOptions struct {
	// MinLifetime is how long a process must have run before its
	// process.start is reported (at the first scan that finds it that
	// old, with its real start_time); only a process whose start was
	// reported has its process.exit reported. A process that ends younger
	// yields no STEP of its own, only a count in the short-lived summary.
	// 0: DefaultProcessMinLifetime (5 s); negative: report every process
	// a scan sees.
	MinLifetime time.Duration
	// SummaryInterval is how often a system.processes.short_lived event
	// sums up the processes that ended younger than MinLifetime (none is
	// sent for a period without any). 0: DefaultProcessSummaryInterval
	// (1 min); negative: never.
	SummaryInterval time.Duration
	// Include, when not empty, limits the processes reported to those
	// whose command name (the kernel's comm, at most 15 bytes, the "name"
	// field of process.start) matches one of these path.Match patterns
	// ("nginx", "python*"). Exclude drops those matching any of its
	// patterns, and wins over Include. A process left out is neither
	// reported nor counted as short-lived.
	Include, Exclude []string
}

func (o ProcessOptions) withDefaults() ProcessOptions {
	if o.MinLifetime == 0 {
		o.MinLifetime = DefaultProcessMinLifetime
	}
	if o.MinLifetime < 0 {
		o.MinLifetime = 0
	}
	if o.SummaryInterval == 0 {
		o.SummaryInterval = DefaultProcessSummaryInterval
	}
	return o
}

// Validate reports a malformed pattern.
func (o ProcessOptions) Validate() error {
	for _, p := range slices.Concat(o.Include, o.Exclude) {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("process name pattern %q: %w (patterns are path.Match globs: *, ?, [a-z])", p, err)
		}
	}
	return nil
}

// wanted reports whether the filters let a process named name through.
func (o ProcessOptions) wanted(name string) bool {
	for _, p := range o.Exclude {
		if ok, _ := path.Match(p, name); ok {
			return false
		}
	}
	if len(o.Include) == 0 {
		return true
	}
	for _, p := range o.Include {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// procEntry is what the processes collector remembers of a live process:
// enough to report its exit without reading anything when it is gone.
type procEntry struct {
	ino   uint64 // inode of /proc/PID: a new one means the pid may be reused
	start uint64 // start time in clock ticks since boot: the process's identity with its pid
	ppid  int32
	seen  uint32 // the scan generation that last saw it
	quiet bool   // a kernel thread, filtered out, or a start that was not reported: its exit is not either
	young bool   // its start waits until it has lived MinLifetime; gone before that, it is short-lived
	name  string
}

// processCollector reports process.start and process.exit events and the
// system.processes metric.
//
// Each interval it lists the pids in /proc with getdents, which also gives
// each /proc/PID directory's inode number. procfs gives a process's
// directory a fresh inode when it is created, so a known pid whose inode
// is unchanged is the same process and costs nothing; only a new pid, or a
// known pid with a new inode, has its stat file read (the start time then
// tells a reused pid from the same process). Exits need only the pid set.
type processCollector struct {
	env    Env
	log    *slog.Logger
	proc   string // the /proc root
	bootMs int64  // boot time, Unix ms (/proc/stat btime)

	procs  map[int32]*procEntry
	gen    uint32
	primed bool

	prevForks uint64
	prevAt    time.Time
	lastScan  time.Time // the last Collect: every process then listed was alive

	dirBuf  []byte
	statBuf []byte
	cmdBuf  []byte
	sysBuf  []byte
	check   []procDirent // pids to read this interval (reused)

	dropped     int // events over ProcessMaxEvents since the last log line
	lastDropLog time.Time

	opts       ProcessOptions // with defaults
	shortSince time.Time      // start of the short-lived summary's period
	short      map[string]int // short-lived processes of the period, by name
}

// procDirent is one /proc/PID entry of a scan.
type procDirent struct {
	pid int32
	ino uint64
}

// NewProcessCollector returns the "processes" collector: process.start
// and process.exit events, found by comparing the pids in /proc between
// intervals, and a system.processes metric. Its first Collect learns the
// running processes and reports none of them (those younger than the
// minimum lifetime are reported when they reach it, as new ones). A process that starts and
// ends within one interval is not seen (forks_per_sec counts it); an
// exit's runtime_seconds is right to half an interval. cfg.Processes
// says which processes are reported: those that lived long enough and
// pass the name filters; the short-lived ones are summed up in a
// system.processes.short_lived event.
func NewProcessCollector(cfg Config) (Collector, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("processes: reads Linux's /proc: %w", ErrUnavailable)
	}
	if err := cfg.Processes.Validate(); err != nil {
		return nil, fmt.Errorf("processes: %w", err)
	}
	c := &processCollector{
		opts:    cfg.Processes.withDefaults(),
		short:   map[string]int{},
		env:     cfg.Env,
		log:     cfg.Logger,
		proc:    procRoot(cfg.Env),
		procs:   make(map[int32]*procEntry),
		dirBuf:  make([]byte, 32<<10),
		statBuf: make([]byte, 2048),
		cmdBuf:  make([]byte, ProcessCmdlineMax+1),
		sysBuf:  make([]byte, 8<<10),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	b, err := procReadAll(filepath.Join(c.proc, "stat"), &c.sysBuf)
	if err != nil {
		return nil, fmt.Errorf("processes: %w: %w", ErrUnavailable, err)
	}
	st, err := parseSysStat(b)
	if err != nil {
		return nil, fmt.Errorf("processes: %s: %w", filepath.Join(c.proc, "stat"), err)
	}
	if st.btime == 0 {
		return nil, fmt.Errorf("processes: %s has no btime line", filepath.Join(c.proc, "stat"))
	}
	c.bootMs = int64(st.btime) * 1000
	// btime is whole seconds; now minus /proc/uptime is within 10 ms, and
	// it is what start times count from. A tree that is not this host's
	// live /proc (a fixture) keeps btime.
	if boot, ok := c.bootFromUptime(); ok {
		if d := boot - c.bootMs; d > -1500 && d < 1500 {
			c.bootMs = boot
		}
	}
	return c, nil
}

// bootFromUptime returns the boot time, Unix ms, as now minus
// /proc/uptime. The clock is read on both sides of the read and a try
// that took more than 5 ms (this goroutine preempted in between, as on a
// loaded host) is made again, so that the estimate keeps the 10 ms of
// /proc/uptime rather than a scheduling delay.
func (c *processCollector) bootFromUptime() (int64, bool) {
	best, bestSpan := int64(0), time.Duration(-1)
	for range 5 {
		before := time.Now()
		b, err := procReadFile(filepath.Join(c.proc, "uptime"), c.statBuf)
		after := time.Now()
		if err != nil {
			return 0, false
		}
		f := bytes.Fields(b)
		if len(f) == 0 {
			return 0, false
		}
		up, err := strconv.ParseFloat(string(f[0]), 64)
		if err != nil {
			return 0, false
		}
		span := after.Sub(before)
		if bestSpan < 0 || span < bestSpan {
			mid := before.Add(span / 2)
			best, bestSpan = mid.UnixMilli()-int64(up*1000), span
		}
		if span <= 5*time.Millisecond {
			break
		}
	}
	return best, true
}

func (c *processCollector) Name() string { return "processes" }

// Collect reports the processes that started and exited since the last
// call (exits first, each list by pid), then the system.processes metric.
func (c *processCollector) Collect(ctx context.Context, now time.Time) ([]*step.Step, error) {
	c.gen++
	gen := c.gen
	check := c.check[:0]
	count := 0
	err := procReadDir(c.proc, c.dirBuf, func(name []byte, ino uint64) {
		pid, ok := procPid(name)
		if !ok {
			return
		}
		count++
		if e := c.procs[pid]; e != nil && e.ino == ino {
			e.seen = gen
			return
		}
		check = append(check, procDirent{pid, ino})
	})
	c.check = check
	if err != nil {
		return nil, fmt.Errorf("processes: %w", err)
	}
	report := c.primed
	c.primed = true

	var starts, exits []*step.Step
	for _, d := range check {
		e := c.procs[d.pid]
		st, comm, err := c.readStat(d.pid)
		if err != nil {
			// Gone already (or unreadable): a known one is reported as
			// exited below; a new one lived too briefly to describe.
			count--
			continue
		}
		if e != nil {
			if e.start == st.start {
				e.ino, e.seen = d.ino, gen // same process, new dentry
				continue
			}
			// The pid was reused: the old process exited.
			if e.young {
				c.short[e.name]++
			} else if report && !e.quiet {
				exits = append(exits, c.exitStep(d.pid, e, now))
			}
			delete(c.procs, d.pid)
		}
		e = &procEntry{ino: d.ino, start: st.start, ppid: int32(st.ppid), seen: gen, name: procText(comm)}
		c.procs[d.pid] = e
		switch {
		case st.flags&procKernelThread != 0, !c.opts.wanted(e.name):
			e.quiet = true
		case c.opts.MinLifetime > 0 && c.age(e, now) < c.opts.MinLifetime:
			// Reported below, at a scan that finds it old enough (even if
			// the first scan found it: it started just before).
			e.young = true
		case !report:
		case len(exits)+len(starts) >= ProcessMaxEvents:
			e.quiet = true
			c.dropped++
		default:
			starts = append(starts, c.startStep(d.pid, e, now))
		}
	}
	for pid, e := range c.procs {
		if e.seen == gen {
			if e.young && report && c.age(e, now) >= c.opts.MinLifetime {
				e.young = false
				if len(exits)+len(starts) < ProcessMaxEvents {
					starts = append(starts, c.startStep(pid, e, now))
				} else {
					e.quiet = true
					c.dropped++
				}
			}
			continue
		}
		if e.young {
			c.short[e.name]++
		}
		if report && !e.quiet && !e.young {
			if len(exits)+len(starts) < ProcessMaxEvents {
				exits = append(exits, c.exitStep(pid, e, now))
			} else {
				c.dropped++
			}
		}
		delete(c.procs, pid)
	}
	byPid := func(a, b *step.Step) int {
		x, _ := a.Float("pid")
		y, _ := b.Float("pid")
		return int(x - y)
	}
	slices.SortFunc(exits, byPid)
	slices.SortFunc(starts, byPid)
	steps := append(exits, starts...)
	c.lastScan = now
	if sum := c.summary(now); sum != nil {
		steps = append(steps, sum)
	}
	if c.dropped > 0 && now.Sub(c.lastDropLog) >= time.Minute {
		c.log.Warn("processes: too many process events in one interval, some not reported",
			"limit", ProcessMaxEvents, "not_reported", c.dropped)
		c.dropped, c.lastDropLog = 0, now
	}
	m, err := c.metric(now, count)
	if m != nil {
		steps = append(steps, m)
	}
	return steps, err
}

// readStat reads and parses /proc/PID/stat.
func (c *processCollector) readStat(pid int32) (procStat, []byte, error) {
	b, err := procReadFile(procPidPath(c.proc, pid, "stat"), c.statBuf)
	if err != nil {
		return procStat{}, nil, err
	}
	return parseProcStat(b)
}

// startStep describes a new process; it reads its command line.
func (c *processCollector) startStep(pid int32, e *procEntry, now time.Time) *step.Step {
	cmdline, truncated := "", false
	if b, err := procReadFile(procPidPath(c.proc, pid, "cmdline"), c.cmdBuf); err == nil {
		cmdline, truncated = procCmdline(b)
	}
	desc := fmt.Sprintf("process %s started (pid %d, parent %d)", e.name, pid, e.ppid)
	if cmdline != "" {
		desc += ": " + cmdline
	}
	s := c.env.NewStep("process.start", desc, now)
	s.Set("pid", int64(pid))
	s.Set("ppid", int64(e.ppid))
	s.Set("name", e.name)
	s.Set("cmdline", cmdline)
	if truncated {
		s.Set("cmdline_truncated", true)
	}
	s.Set("start_time", c.startMs(e))
	return s
}

// exitStep describes a process that is gone, from what its start left.
// It ended between the last interval, which saw it, and now: its run time
// is the middle of that span, right to half an interval.
func (c *processCollector) exitStep(pid int32, e *procEntry, now time.Time) *step.Step {
	started := c.startMs(e)
	upper := max(now.UnixMilli()-started, 0)
	lower := upper // no earlier scan: all that is known is that it is gone now
	if !c.lastScan.IsZero() {
		lower = min(max(c.lastScan.UnixMilli()-started, 0), upper)
	}
	run := float64(lower+upper) / 2000
	s := c.env.NewStep("process.exit",
		fmt.Sprintf("process %s exited (pid %d) after about %s", e.name, pid, procDuration(run)), now)
	s.Set("pid", int64(pid))
	s.Set("ppid", int64(e.ppid))
	s.Set("name", e.name)
	s.Set("start_time", started)
	s.Set("runtime_seconds", math.Round(run*100)/100)
	return s
}

// age is how long e has run at now.
func (c *processCollector) age(e *procEntry, now time.Time) time.Duration {
	return time.Duration(now.UnixMilli()-c.startMs(e)) * time.Millisecond
}

// summary returns the system.processes.short_lived event at the end of
// each summary period that saw short-lived processes, else nil.
func (c *processCollector) summary(now time.Time) *step.Step {
	if c.opts.SummaryInterval < 0 {
		clear(c.short)
		return nil
	}
	if c.shortSince.IsZero() {
		c.shortSince = now
	}
	period := now.Sub(c.shortSince)
	if period < c.opts.SummaryInterval {
		return nil
	}
	c.shortSince = now
	if len(c.short) == 0 {
		return nil
	}
	type named struct {
		name  string
		count int
	}
	var all []named
	total := 0
	for name, n := range c.short {
		all = append(all, named{name, n})
		total += n
	}
	clear(c.short)
	slices.SortFunc(all, func(a, b named) int {
		if a.count != b.count {
			return b.count - a.count
		}
		return strings.Compare(a.name, b.name)
	})
	top := map[string]any{}
	var desc strings.Builder
	fmt.Fprintf(&desc, "%d short-lived processes (ended within %v) in the last %v:", total, c.opts.MinLifetime, period.Round(time.Second))
	for i, n := range all[:min(len(all), ProcessSummaryTop)] {
		top[n.name] = int64(n.count)
		if i > 0 {
			desc.WriteByte(',')
		}
		fmt.Fprintf(&desc, " %s %d", n.name, n.count)
	}
	others := total
	for _, n := range all[:min(len(all), ProcessSummaryTop)] {
		others -= n.count
	}
	if others > 0 {
		fmt.Fprintf(&desc, ", others %d", others)
	}
	s := c.env.NewStep("system.processes.short_lived", desc.String(), now)
	s.Set("count", int64(total))
	s.Set("period_seconds", math.Round(period.Seconds()*100)/100)
	s.Set("per_minute", math.Round(float64(total)/period.Minutes()*100)/100)
	s.Set("min_lifetime_seconds", c.opts.MinLifetime.Seconds())
	s.Set("top", top)
	s.Set("others", int64(others))
	s.Set("distinct_names", int64(len(all)))
	return s
}

// startMs is a process's start time in Unix ms.
func (c *processCollector) startMs(e *procEntry) int64 {
	return c.bootMs + int64(e.start)*1000/procClockTicks
}

// metric makes the system.processes STEP: the pid count of this scan, and
// from /proc/stat and /proc/loadavg (two small reads) the running and
// blocked tasks, the threads and the fork rate.
func (c *processCollector) metric(now time.Time, count int) (*step.Step, error) {
	b, err := procReadAll(filepath.Join(c.proc, "stat"), &c.sysBuf)
	if err != nil {
		return nil, fmt.Errorf("processes: %w", err)
	}
	st, err := parseSysStat(b)
	if err != nil {
		return nil, fmt.Errorf("processes: %s: %w", filepath.Join(c.proc, "stat"), err)
	}
	threads := int64(-1)
	if b, err := procReadFile(filepath.Join(c.proc, "loadavg"), c.statBuf); err == nil {
		threads = parseLoadavgThreads(b)
	}
	forkRate := -1.0
	if !c.prevAt.IsZero() && now.After(c.prevAt) && st.forks >= c.prevForks {
		forkRate = math.Round(float64(st.forks-c.prevForks)/now.Sub(c.prevAt).Seconds()*100) / 100
	}
	c.prevForks, c.prevAt = st.forks, now

	var desc strings.Builder
	fmt.Fprintf(&desc, "%d processes (%d running, %d blocked)", count, st.running, st.blocked)
	if threads >= 0 {
		fmt.Fprintf(&desc, ", %d threads", threads)
	}
	if forkRate >= 0 {
		fmt.Fprintf(&desc, ", %.1f forks/s", forkRate)
	}
	s := c.env.NewMetric("system.processes", desc.String(), now)
	s.Set("processes", int64(count))
	s.Set("processes_running", int64(st.running))
	s.Set("processes_blocked", int64(st.blocked))
	if threads >= 0 {
		s.Set("threads", threads)
	}
	if forkRate >= 0 {
		s.Set("forks_per_sec", forkRate)
	}
	return s, nil
}

// sysStat holds the /proc/stat lines the processes collector reads.
type sysStat struct {
	btime, forks, running, blocked uint64
}

// parseSysStat reads btime, processes (forks since boot), procs_running
// and procs_blocked from /proc/stat.
func parseSysStat(b []byte) (sysStat, error) {
	var st sysStat
	found := 0
	for line := range bytes.Lines(b) {
		line = bytes.TrimSuffix(line, []byte{'\n'})
		key, val, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			continue
		}
		var dst *uint64
		switch string(key) {
		case "btime":
			dst = &st.btime
		case "processes":
			dst = &st.forks
		case "procs_running":
			dst = &st.running
		case "procs_blocked":
			dst = &st.blocked
		default:
			continue
		}
		v, ok := procUint(bytes.TrimSpace(val))
		if !ok {
			return st, fmt.Errorf("bad %s line %q", key, line)
		}
		*dst = v
		found++
	}
	if found == 0 {
		return st, errors.New("no btime, processes, procs_running or procs_blocked line")
	}
	return st, nil
}

// parseLoadavgThreads returns the thread count of /proc/loadavg ("0.52
// 0.58 0.59 2/845 12345": 845), or -1.
func parseLoadavgThreads(b []byte) int64 {
	f := bytes.Fields(b)
	if len(f) < 4 {
		return -1
	}
	_, total, ok := bytes.Cut(f[3], []byte{'/'})
	if !ok {
		return -1
	}
	v, ok := procUint(total)
	if !ok {
		return -1
	}
	return int64(v)
}

// procStat holds the fields of /proc/PID/stat the collectors use.
type procStat struct {
	state   byte
	ppid    int64
	flags   uint64
	utime   uint64 // clock ticks
	stime   uint64
	threads int64
	start   uint64 // clock ticks since boot
	rss     int64  // pages
}

// parseProcStat parses /proc/PID/stat and returns the command name (comm,
// a slice of b) apart. comm is in parentheses and may hold spaces and
// parentheses itself, so the fields start after the last ')'.
func parseProcStat(b []byte) (procStat, []byte, error) {
	var st procStat
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 > len(b) {
		return st, nil, fmt.Errorf("malformed stat %q", procClip(b))
	}
	comm := b[open+1 : end]
	rest := b[end+2:]
	for field := 3; field <= 24 && len(rest) > 0; field++ {
		var f []byte
		if i := bytes.IndexByte(rest, ' '); i >= 0 {
			f, rest = rest[:i], rest[i+1:]
		} else {
			f, rest = bytes.TrimRight(rest, "\n"), nil
		}
		var ok bool
		var v uint64
		switch field {
		case 3:
			if len(f) != 1 {
				return st, nil, fmt.Errorf("malformed stat state %q", f)
			}
			st.state = f[0]
			continue
		case 4, 9, 14, 15, 20, 22, 24:
			v, ok = procUint(f)
		default:
			continue
		}
		if !ok {
			return st, nil, fmt.Errorf("malformed stat field %d %q", field, f)
		}
		switch field {
		case 4:
			st.ppid = int64(v)
		case 9:
			st.flags = v
		case 14:
			st.utime = v
		case 15:
			st.stime = v
		case 20:
			st.threads = int64(v)
		case 22:
			st.start = v
		case 24:
			st.rss = int64(v)
			return st, comm, nil
		}
	}
	return st, nil, fmt.Errorf("short stat %q", procClip(b))
}

// procCmdline turns /proc/PID/cmdline (NUL-separated arguments, read into
// a buffer one byte longer than ProcessCmdlineMax) into one line, cut at
// ProcessCmdlineMax bytes.
func procCmdline(b []byte) (string, bool) {
	truncated := len(b) > ProcessCmdlineMax
	if truncated {
		b = b[:ProcessCmdlineMax]
		// Do not cut a character in two: drop a last one left incomplete.
		start := len(b) - 1
		for start > 0 && start > len(b)-utf8.UTFMax && !utf8.RuneStart(b[start]) {
			start--
		}
		if start >= 0 && !utf8.FullRune(b[start:]) {
			b = b[:start]
		}
	}
	b = bytes.TrimRight(b, "\x00")
	s := strings.ReplaceAll(string(b), "\x00", " ")
	return strings.ToValidUTF8(s, "\uFFFD"), truncated
}

// procText makes a name read from /proc safe to put in a STEP.
func procText(b []byte) string {
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// procDuration writes seconds as "4.2 s", "3 min 5 s" or "2 h 7 min".
func procDuration(sec float64) string {
	switch {
	case sec < 60:
		return fmt.Sprintf("%.1f s", sec)
	case sec < 3600:
		return fmt.Sprintf("%d min %d s", int(sec)/60, int(sec)%60)
	default:
		return fmt.Sprintf("%d h %d min", int(sec)/3600, int(sec)%3600/60)
	}
}

// procClip shortens file contents quoted in an error.
func procClip(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// procRoot returns the /proc the collectors read.
func procRoot(env Env) string {
	if env.HostProc != "" {
		return env.HostProc
	}
	return "/proc"
}

// procPidPath returns root/PID/file.
func procPidPath(root string, pid int32, file string) string {
	return root + "/" + strconv.Itoa(int(pid)) + "/" + file
}

// procPid parses a /proc entry name that is a pid.
func procPid(name []byte) (int32, bool) {
	if len(name) == 0 || len(name) > 10 || name[0] == '0' {
		return 0, false
	}
	var v int64
	for _, ch := range name {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		v = v*10 + int64(ch-'0')
	}
	if v > math.MaxInt32 {
		return 0, false
	}
	return int32(v), true
}

// procUint parses a decimal /proc number without allocating.
func procUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		d := uint64(ch - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// procReadFile reads the file at path into buf (at most len(buf) bytes)
// with plain system calls: no os.File, no allocation, nothing registered
// with the poller, which matters for files read every second.
func procReadFile(path string, buf []byte) ([]byte, error) {
	fd, err := procOpen(path, syscall.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

// procReadAll reads the whole file at path into *buf, growing it (up to
// 16 MiB) when the file does not fit.
func procReadAll(path string, buf *[]byte) ([]byte, error) {
	for {
		b, err := procReadFile(path, *buf)
		if err != nil || len(b) < len(*buf) {
			return b, err
		}
		if len(*buf) >= 16<<20 {
			return nil, fmt.Errorf("%s: larger than 16 MiB", path)
		}
		*buf = make([]byte, 2*len(*buf))
	}
}

// procOpen opens path, retrying on EINTR, and returns errors that
// errors.Is matches with fs.ErrNotExist and friends.
func procOpen(path string, mode int) (int, error) {
	for {
		fd, err := syscall.Open(path, mode|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// procReadDir calls fn with the name and inode number of every entry of
// the directory at path, reading it with getdents into buf: no allocation
// per entry. The name is only valid during the call. Linux only (the
// struct linux_dirent64 layout).
func procReadDir(path string, buf []byte, fn func(name []byte, ino uint64)) error {
	fd, err := procOpen(path, syscall.O_RDONLY|syscall.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	const nameOff = 19 // d_ino u64, d_off s64, d_reclen u16, d_type u8
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "getdents", Path: path, Err: err}
		}
		if n <= 0 {
			return nil
		}
		b := buf[:n]
		for len(b) >= nameOff {
			ino := binary.NativeEndian.Uint64(b[0:8])
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < nameOff || reclen > len(b) {
				return fmt.Errorf("%s: malformed directory entry", path)
			}
			name := b[nameOff:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if ino != 0 {
				fn(name, ino)
			}
			b = b[reclen:]
		}
	}
}
