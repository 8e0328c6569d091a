package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process this program started.
type child struct {
	cmd    *exec.Cmd
	ready  chan string // the first line of its stdout
	exited chan struct{}
	mu     sync.Mutex
	out    strings.Builder // its stderr
}

func (c *child) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out.Len() < 64<<10 {
		c.out.Write(b)
	}
	return len(b), nil
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// startChild runs path with args; it dies with this program.
func startChild(path string, args ...string) (*child, error) {
	c := &child{cmd: exec.Command(path, args...), ready: make(chan string, 1), exited: make(chan struct{})}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.cmd.Stderr = c
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case c.ready <- sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, stdout)
		c.cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// startSelf runs this program in another mode.
func startSelf(args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startChild(self, args...)
}

// waitReady waits for the child's first output line.
func (c *child) waitReady(timeout time.Duration) (string, error) {
	select {
	case line := <-c.ready:
		return line, nil
	case <-c.exited:
		return "", fmt.Errorf("%s exited: %s", c.cmd.Path, c.output())
	case <-time.After(timeout):
		return "", fmt.Errorf("%s not ready within %v: %s", c.cmd.Path, timeout, c.output())
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// kill ends the child with SIGKILL and reaps it.
func (c *child) kill() {
	c.cmd.Process.Kill()
	<-c.exited
}

func killAll(cs []*child) {
	for _, c := range cs {
		c.kill()
	}
}

// ---- /proc ----

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procSample is a process's CPU time so far and its memory now.
type procSample struct {
	at    time.Time
	cpu   time.Duration // utime + stime
	rssKB uint64        // VmRSS
	hwmKB uint64        // VmHWM, the peak RSS
}

func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after "(comm)": state is the first; utime and stime are the
	// 14th and 15th fields of the line.
	rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(status)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rssKB = n
		case "VmHWM":
			s.hwmKB = n
		}
	}
	return s, nil
}

// cpuPercent is the CPU used between two samples, in percent of one core.
func cpuPercent(a, b procSample) float64 {
	wall := b.at.Sub(a.at)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(b.cpu-a.cpu) / float64(wall)
}

// procSampler samples processes every second.
type procSampler struct {
	pids  []int
	first []procSample
	mu    sync.Mutex
	last  []procSample
	rss   [][]uint64 // KB, per pid, one per second
	stop  chan struct{}
	done  chan struct{}
}

func sampleProcs(pids ...int) *procSampler {
	p := &procSampler{pids: pids, first: make([]procSample, len(pids)), last: make([]procSample, len(pids)),
		rss: make([][]uint64, len(pids)), stop: make(chan struct{}), done: make(chan struct{})}
	for i, pid := range pids {
		p.first[i], _ = readProc(pid)
		p.last[i] = p.first[i]
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.sample()
			}
		}
	}()
	return p
}

func (p *procSampler) sample() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, pid := range p.pids {
		if s, err := readProc(pid); err == nil {
			p.last[i] = s
			p.rss[i] = append(p.rss[i], s.rssKB)
		}
	}
}

// procUsage is what a procSampler measured for one process.
type procUsage struct {
	cpuPct              float64 // percent of one core over the window
	cpu                 time.Duration
	rssMeanMB, rssMaxMB float64
	hwmMB               float64
}

// finish takes a last sample, stops sampling and returns the usage of
// every process over the window.
func (p *procSampler) finish() []procUsage {
	p.sample()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]procUsage, len(p.pids))
	for i := range p.pids {
		u := procUsage{cpuPct: cpuPercent(p.first[i], p.last[i]), cpu: p.last[i].cpu - p.first[i].cpu, hwmMB: float64(p.last[i].hwmKB) / 1024}
		if r := p.rss[i]; len(r) > 0 {
			var sum uint64
			for _, v := range r {
				sum += v
			}
			u.rssMeanMB = float64(sum) / float64(len(r)) / 1024
			u.rssMaxMB = float64(slices.Max(r)) / 1024
		}
		out[i] = u
	}
	return out
}

func sumUsage(us []procUsage) procUsage {
	var t procUsage
	for _, u := range us {
		t.cpuPct += u.cpuPct
		t.cpu += u.cpu
		t.rssMeanMB += u.rssMeanMB
		t.rssMaxMB += u.rssMaxMB
		t.hwmMB += u.hwmMB
	}
	return t
}

func numCPU() int { return runtime.NumCPU() }

// ---- statistics ----

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// summary formats min, p50, p99, max and the count of ms values.
func summary(ms []float64) string {
	s := slices.Sorted(slices.Values(ms))
	if len(s) == 0 {
		return "no samples"
	}
	return fmt.Sprintf("min %4.0f  p50 %4.0f  p99 %4.0f  max %4.0f ms (n=%d)",
		s[0], percentile(s, 50), percentile(s, 99), s[len(s)-1], len(s))
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
