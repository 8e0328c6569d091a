package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stk-go/stk/internal/stkdproc"
)

// daemon is a running stkd.
type daemon struct {
	proc    *stkdproc.Daemon
	Monitor string // "tcp:127.0.0.1:port", for the services' -m
	URL     string // "http://127.0.0.1:port"; "" when started without the UI

	mu       sync.Mutex
	timeouts int             // "service timed out" log lines
	stalls   []time.Duration // the stall of every "monitor was stalled" log line
}

var stallAttr = regexp.MustCompile(`\bstall=(\S+)`)

// startDaemon runs stkd with names and monitor on free loopback TCP ports,
// the HTTP UI too unless noHTTP, and its log (level info) in logDir.
func startDaemon(bin, logDir string, noHTTP bool) (*daemon, error) {
	args := []string{"--log-level", "info"}
	if noHTTP {
		args = append(args, "--http", "")
	}
	logf, err := os.Create(filepath.Join(logDir, "stkd.log"))
	if err != nil {
		return nil, err
	}
	d := &daemon{}
	d.proc, err = stkdproc.Start(context.Background(), filepath.Join(bin, "stkd"), stkdproc.Options{Args: args, Log: logf, OnLine: d.noteLog})
	if err != nil {
		logf.Close()
		return nil, err
	}
	go func() { <-d.proc.Done(); logf.Close() }()
	d.Monitor = d.proc.Monitor
	if d.proc.HTTP != "" {
		d.URL = "http://" + d.proc.HTTP
	}
	return d, nil
}

// noteLog counts the log lines that matter.
func (d *daemon) noteLog(line string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case strings.Contains(line, `msg="service timed out"`):
		d.timeouts++
	case strings.Contains(line, `msg="monitor was stalled`):
		if m := stallAttr.FindStringSubmatch(line); m != nil {
			st, _ := time.ParseDuration(m[1])
			d.stalls = append(d.stalls, st)
		}
	}
}

// logCounts returns the timed-out services and the stalls the log reported.
func (d *daemon) logCounts() (timeouts int, stalls []time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.timeouts, append([]time.Duration(nil), d.stalls...)
}

func (d *daemon) pid() int { return d.proc.Pid() }

func (d *daemon) signal(sig syscall.Signal) error { return d.proc.Cmd.Process.Signal(sig) }

// stop ends stkd (SIGCONT first, in case it is paused).
func (d *daemon) stop() { d.proc.Stop(5 * time.Second) }

// ---- the JSON API (the fields of httpd's documents that are used here) ----

type verdictJSON struct {
	Detector      string    `json:"detector"`
	At            time.Time `json:"at"`
	SilenceMS     float64   `json:"silence_ms"`
	StallCreditMS float64   `json:"stall_credit_ms"`
	Reason        string    `json:"reason"`
}

type serviceJSON struct {
	UID          uint64       `json:"uid"`
	Name         string       `json:"name"`
	State        uint8        `json:"state"`
	Current      bool         `json:"current"`
	LastReceived *time.Time   `json:"last_received"`
	Beats        uint64       `json:"beats"`
	EndReason    string       `json:"end_reason"`
	Verdict      *verdictJSON `json:"verdict"`
}

type monitorStats struct {
	Current       int     `json:"current"`
	Smartbeats    uint64  `json:"smartbeats"`
	Beats         uint64  `json:"beats"`
	UnknownBeats  uint64  `json:"unknown_beats"`
	Malformed     uint64  `json:"malformed"`
	Created       uint64  `json:"created"`
	TimedOut      uint64  `json:"timed_out"`
	TimedOutByPhi uint64  `json:"timed_out_by_phi"`
	Resurrected   uint64  `json:"resurrected"`
	Stalls        uint64  `json:"stalls"`
	StallTimeMS   float64 `json:"stall_time_ms"`
	EventsDropped uint64  `json:"events_dropped"`
}

type statsJSON struct {
	Monitor monitorStats `json:"monitor"`
	Daemon  struct {
		Goroutines uint64 `json:"goroutines"`
		HeapBytes  uint64 `json:"heap_bytes"`
		TotalBytes uint64 `json:"total_bytes"`
	} `json:"daemon"`
	HTTP struct {
		StreamResets uint64 `json:"stream_resets"`
	} `json:"http"`
}

var apiClient = &http.Client{Timeout: 30 * time.Second}

func (d *daemon) get(path string, v any) error {
	if d.URL == "" {
		return fmt.Errorf("stkd runs without its HTTP UI")
	}
	resp, err := apiClient.Get(d.URL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (d *daemon) stats() (statsJSON, error) {
	var st statsJSON
	err := d.get("/api/v1/stats", &st)
	return st, err
}

func (d *daemon) services() ([]serviceJSON, error) {
	var l struct {
		Services []serviceJSON `json:"services"`
	}
	err := d.get("/api/v1/services", &l)
	return l.Services, err
}

// waitCurrent polls the monitor until it holds n current records, all
// running when running is set (that reads /api/v1/services: keep it for
// small n). It gives up after timeout, or when the count has not changed
// for stuck.
func (d *daemon) waitCurrent(n int, running bool, timeout, stuck time.Duration) error {
	start := time.Now()
	last, lastChange := -1, start
	for {
		st, err := d.stats()
		m := st.Monitor
		if err == nil && m.Current == n {
			if !running {
				return nil
			}
			svcs, err := d.services()
			if err == nil && countRunning(svcs) == n {
				return nil
			}
		}
		if m.Current != last {
			last, lastChange = m.Current, time.Now()
		}
		if time.Since(start) > timeout || time.Since(lastChange) > stuck {
			return fmt.Errorf("the monitor holds %d current services of %d after %.0f s (%d created, %d timed out; %d smartbeat elements for unknown services, %d malformed; err %v)",
				m.Current, n, time.Since(start).Seconds(), m.Created, m.TimedOut, m.UnknownBeats, m.Malformed, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func countRunning(svcs []serviceJSON) int {
	n := 0
	for _, s := range svcs {
		if s.State == 2 {
			n++
		}
	}
	return n
}

// ---- the event stream ----

// event is one monitor event of /api/v1/events.
type event struct {
	Seq     uint64      `json:"seq"`
	Kind    string      `json:"kind"` // created, state, beat, timed_out, destroyed, displaced, resurrected
	At      time.Time   `json:"at"`   // the monitor's clock
	Service serviceJSON `json:"service"`
	Recv    time.Time   `json:"-"` // when this program read it
}

// reason is why the monitor timed the record of ev out.
func (ev *event) reason() string {
	if v := ev.Service.Verdict; v != nil {
		return v.Reason
	}
	return "no verdict"
}

// events follows /api/v1/events until ctx ends. Monitor events come on the
// returned channel, in order; "reset" (the stream lost events) is reported
// on stderr. The channel closes when the stream ends.
func (d *daemon) events(ctx context.Context) (<-chan event, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL+"/api/v1/events?beats=all", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req) // no timeout: the stream lasts
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET /api/v1/events: %s", resp.Status)
	}
	ch := make(chan event, 1<<16)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		var kind, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				kind = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				data = line[len("data: "):]
			case line == "":
				switch kind {
				case "hello", "stats", "names", "":
				case "reset":
					fmt.Fprintf(os.Stderr, "%s: the event stream lost events: %s\n", prog, data)
				default:
					var ev event
					if err := json.Unmarshal([]byte(data), &ev); err == nil {
						ev.Recv = time.Now()
						select {
						case ch <- ev:
						case <-ctx.Done():
							return
						}
					}
				}
				kind, data = "", ""
			}
		}
	}()
	return ch, nil
}
