// Package stkdproc starts the stkd binary as a child process and waits
// for its "stkd running" log line, which names every address it bound
// (ports the system picked included): the one launcher of the tests
// (internal/testprog.StartStkd) and the benchmarks (bench/stkbench-*).
// It needs no testing.TB. It also reads the memory and CPU time of a
// process from /proc, which the benchmarks report for stkd and etcd.
package stkdproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Addrs are the addresses a running stkd logged as bound; an address is
// "" when its listener is off.
type Addrs struct {
	Names    string // name server, "tcp:ip:port"
	NamesUDP string // name server over STK-UDP, "udp:ip:port"
	Monitor  string // monitor, "tcp:ip:port"
	HTTP     string // status UI and API, "ip:port"
	Steps    string // STEP feed, "ip:port"
	// NamesTLS and MonitorTLS are the name server and the monitor inside
	// TLS (--names-tls, --monitor-tls), "tls:ip:port".
	NamesTLS, MonitorTLS string
}

// URL returns the HTTP address as a URL with path p appended.
func (a Addrs) URL(p string) string { return "http://" + a.HTTP + p }

// RunningMsg is what stkd's start-up line holds once every listener is
// bound (log format text).
const RunningMsg = `msg="stkd running"`

// ParseRunning returns the addresses of stkd's "stkd running" line, and
// false for any other line.
func ParseRunning(line string) (Addrs, bool) {
	if !strings.Contains(line, RunningMsg) {
		return Addrs{}, false
	}
	prefix := func(proto, addr string) string {
		if addr == "" {
			return ""
		}
		return proto + ":" + addr
	}
	return Addrs{
		Names:      prefix("tcp", LogValue(line, "names_tcp")),
		NamesUDP:   prefix("udp", LogValue(line, "names_udp")),
		Monitor:    prefix("tcp", LogValue(line, "monitor_tcp")),
		HTTP:       LogValue(line, "http"),
		Steps:      LogValue(line, "steps_feed"),
		NamesTLS:   prefix("tls", LogValue(line, "names_tls")),
		MonitorTLS: prefix("tls", LogValue(line, "monitor_tls")),
	}, true
}

// LogValue returns the value of key in a log/slog text line ("" when
// absent or empty).
func LogValue(line, key string) string {
	m := regexp.MustCompile(`(?:^| )` + regexp.QuoteMeta(key) + `=("(?:[^"\\]|\\.)*"|\S*)`).FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	v := m[1]
	if strings.HasPrefix(v, `"`) {
		if u, err := strconv.Unquote(v); err == nil {
			return u
		}
	}
	return v
}

// DefaultArgs run stkd on free loopback ports: the name server and the
// monitor on TCP, the HTTP UI, the UDP listeners off. Options.Args and
// the tests' arguments follow them, so they may change any (the last
// occurrence of a flag wins).
var DefaultArgs = []string{"--names-tcp", "127.0.0.1:0", "--names-udp", "", "--monitor-tcp", "127.0.0.1:0",
	"--monitor-udp", "", "--http", "127.0.0.1:0"}

// Options configure Start.
type Options struct {
	// Args are stkd's flags, after DefaultArgs.
	Args []string
	// Wrap runs stkd under another program: Wrap, then the stkd binary
	// and its flags (such as prlimit --nofile=256:256 --).
	Wrap []string
	// Log, if set, receives every line stkd prints (standard output and
	// error), such as a log file.
	Log io.Writer
	// OnLine, if set, is called with every line stkd prints, in order, on
	// the goroutine that reads them (it must not block for long).
	OnLine func(line string)
	// Timeout bounds the wait for the "stkd running" line; default 10 s.
	Timeout time.Duration
}

// Daemon is a running stkd.
type Daemon struct {
	Addrs
	Cmd  *exec.Cmd
	done chan struct{}

	mu   sync.Mutex
	tail []string
}

// tailLines is how many of its last lines a Daemon keeps for errors.
const tailLines = 20

// Start runs the stkd binary at bin as opts says and waits, until ctx
// ends or opts.Timeout passes, for its "stkd running" line. The process
// is killed if this program dies. On error stkd is not left running, and
// the error holds its last lines.
func Start(ctx context.Context, bin string, opts Options) (*Daemon, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	args := append(append(append([]string{}, opts.Wrap...), bin), append(append([]string{}, DefaultArgs...), opts.Args...)...)
	d := &Daemon{Cmd: exec.Command(args[0], args[1:]...), done: make(chan struct{})}
	d.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("stkdproc: %w", err)
	}
	d.Cmd.Stdout, d.Cmd.Stderr = pw, pw
	if err := d.Cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("stkdproc: start %s: %w", bin, err)
	}
	pw.Close() // the child holds its copy: EOF when it exits
	running := make(chan Addrs, 1)
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			d.note(sc.Text(), opts, running)
		}
		pr.Close()
		d.Cmd.Wait()
	}()
	timer := time.NewTimer(opts.Timeout)
	defer timer.Stop()
	select {
	case a := <-running:
		d.Addrs = a
		return d, nil
	case <-d.done:
		return nil, fmt.Errorf("stkd exited at start (%v); its last lines:\n%s", d.Cmd.ProcessState, d.Tail())
	case <-timer.C:
		err = fmt.Errorf("stkd did not log %q within %v", RunningMsg, opts.Timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	d.Kill()
	return nil, fmt.Errorf("%w; its last lines:\n%s", err, d.Tail())
}

// note handles one line of stkd's output.
func (d *Daemon) note(line string, opts Options, running chan<- Addrs) {
	d.mu.Lock()
	if d.tail = append(d.tail, line); len(d.tail) > tailLines {
		d.tail = d.tail[1:]
	}
	d.mu.Unlock()
	if opts.Log != nil {
		fmt.Fprintln(opts.Log, line)
	}
	if opts.OnLine != nil {
		opts.OnLine(line)
	}
	if a, ok := ParseRunning(line); ok {
		select {
		case running <- a:
		default: // one start-up line per process
		}
	}
}

// Tail returns the last lines stkd printed.
func (d *Daemon) Tail() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.tail, "\n")
}

// Pid is stkd's process id (of Options.Wrap's program, which execs it,
// for prlimit).
func (d *Daemon) Pid() int { return d.Cmd.Process.Pid }

// Done is closed once stkd has exited and its output is read.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Kill ends stkd at once (SIGKILL) and waits for it.
func (d *Daemon) Kill() {
	d.Cmd.Process.Kill()
	<-d.done
}

// Stop ends stkd as an operator would: SIGCONT (should it be paused),
// SIGTERM, then SIGKILL if it has not exited within grace. It returns an
// error when stkd had to be killed or exited with a failure.
func (d *Daemon) Stop(grace time.Duration) error {
	select {
	case <-d.done:
	default:
		d.Cmd.Process.Signal(syscall.SIGCONT)
		d.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(grace):
			d.Kill()
			return fmt.Errorf("stkd did not exit within %v of SIGTERM: killed", grace)
		}
	}
	if st := d.Cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("stkd exited: %v", st)
	}
	return nil
}

// ErrNoProc is returned by the /proc readers for a process that is gone
// or a field that is not there.
var ErrNoProc = errors.New("stkdproc: no such process or field in /proc")

// ProcStatus returns a memory field of /proc/PID/status ("VmRSS",
// "VmHWM"...) in bytes.
func ProcStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoProc, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("%w: no %s in /proc/%d/status", ErrNoProc, field, pid)
}

// ProcCPU returns the user and system CPU time process pid used so far.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoProc, err)
	}
	// Fields after the command (in parentheses, which may hold spaces):
	// utime and stime are the 14th and 15th fields of the line.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: /proc/%d/stat unreadable", ErrNoProc, pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: /proc/%d/stat unreadable", ErrNoProc, pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * time.Second / 100, nil // USER_HZ: 100 on Linux
}
