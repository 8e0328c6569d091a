package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// daemon is a running stkd.
type daemon struct {
	cmd    *exec.Cmd
	names  string // "127.0.0.1:port" (TCP)
	mon    string // the monitor, "127.0.0.1:port" (TCP)
	url    string // "http://127.0.0.1:port"
	exited chan struct{}

	mu   sync.Mutex
	tail []string
}

var logAttr = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)

// startDaemon runs bin with names and HTTP on free loopback ports, the
// monitor on TCP only, and waits for its "stkd running" line. nofile > 0
// runs it with that open-file limit (through util-linux's prlimit).
func startDaemon(bin string, nofile int) (*daemon, error) {
	args := []string{bin, "--names-tcp", "127.0.0.1:0", "--names-udp", "",
		"--monitor-tcp", "127.0.0.1:0", "--monitor-udp", "", "--http", "127.0.0.1:0", "--log-level", "info"}
	if nofile > 0 {
		args = append([]string{"prlimit", fmt.Sprintf("--nofile=%d:%d", nofile, nofile), "--"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	d := &daemon{cmd: cmd, exited: make(chan struct{})}
	running := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			if d.tail = append(d.tail, line); len(d.tail) > 10 {
				d.tail = d.tail[1:]
			}
			d.mu.Unlock()
			if strings.Contains(line, `msg="stkd running"`) {
				attrs := map[string]string{}
				for _, m := range logAttr.FindAllStringSubmatch(line, -1) {
					attrs[m[1]] = strings.Trim(m[2], `"`)
				}
				running <- attrs
			}
		}
		cmd.Wait()
		close(d.exited)
	}()
	select {
	case a := <-running:
		d.names, d.mon, d.url = a["names_tcp"], a["monitor_tcp"], "http://"+a["http"]
		return d, nil
	case <-d.exited:
		return nil, fmt.Errorf("stkd exited at start: %s", d.logTail())
	case <-time.After(10 * time.Second):
		d.stop()
		return nil, fmt.Errorf("stkd did not log \"stkd running\" within 10 s: %s", d.logTail())
	}
}

func (d *daemon) logTail() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.tail, "\n")
}

func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

// rss reads VmRSS of the daemon, in bytes.
func (d *daemon) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTicks reads the daemon's user+system CPU time in clock ticks (1/100 s).
func (d *daemon) cpuTicks() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

type rssWatch struct {
	stopc      chan struct{}
	done       chan struct{}
	peak, last int64
}

// watchRSS samples the RSS every period until stop.
func (d *daemon) watchRSS(period time.Duration) *rssWatch {
	w := &rssWatch{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			r := d.rss()
			w.last, w.peak = r, max(w.peak, r)
			select {
			case <-w.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *rssWatch) stop() (peak, last int64) {
	close(w.stopc)
	<-w.done
	return w.peak, w.last
}

var httpClient = &http.Client{Timeout: 60 * time.Second}

// getJSON decodes GET path.
func (d *daemon) getJSON(path string, v any) error {
	resp, err := httpClient.Get(d.url + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// nameStats are the fields of /api/v1/stats "names" used here.
type nameStats struct {
	Registrations int `json:"registrations"`
	Subscriptions int `json:"subscriptions"`
}

func (d *daemon) nameStats() nameStats {
	var st struct {
		Names nameStats `json:"names"`
	}
	d.getJSON("/api/v1/stats", &st)
	return st.Names
}

// refusals returns the non-zero stk_names_refused_total samples and the
// refusal disconnects of /metrics ("refused=none" when there are none,
// "refused=n/a" for a stkd without them).
func (d *daemon) refusals() []figure {
	resp, err := httpClient.Get(d.url + "/metrics")
	if err != nil {
		return []figure{{"refused", "?"}}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	if !strings.Contains(text, "stk_names_refused_total") {
		return []figure{{"refused", "n/a"}}
	}
	var out []figure
	re := regexp.MustCompile(`(?m)^stk_names_refused_total\{reason="(\w+)"\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		if m[2] != "0" {
			out = append(out, figure{"refused_" + m[1], m[2]})
		}
	}
	if m := regexp.MustCompile(`(?m)^stk_names_refusal_disconnects_total (\S+)$`).FindStringSubmatch(text); m != nil && m[1] != "0" {
		out = append(out, figure{"disconnects", m[1]})
	}
	if len(out) == 0 {
		out = append(out, figure{"refused", "none"})
	}
	return out
}
