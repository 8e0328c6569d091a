package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/stk-go/stk/internal/stkdproc"
)

// daemon is a running stkd, with its TCP addresses as "ip:port".
type daemon struct {
	*stkdproc.Daemon
	names string // the name server, "127.0.0.1:port" (TCP)
	mon   string // the monitor, "127.0.0.1:port" (TCP)
	url   string // "http://127.0.0.1:port"
}

// startDaemon runs bin with names and HTTP on free loopback ports, the
// monitor on TCP only, and waits for its "stkd running" line. nofile > 0
// runs it with that open-file limit (through util-linux's prlimit).
func startDaemon(bin string, nofile int) (*daemon, error) {
	opts := stkdproc.Options{Args: []string{"--log-level", "info"}}
	if nofile > 0 {
		opts.Wrap = []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", nofile, nofile), "--"}
	}
	sd, err := stkdproc.Start(context.Background(), bin, opts)
	if err != nil {
		return nil, err
	}
	return &daemon{Daemon: sd, names: strings.TrimPrefix(sd.Names, "tcp:"), mon: strings.TrimPrefix(sd.Monitor, "tcp:"),
		url: "http://" + sd.HTTP}, nil
}

func (d *daemon) stop() { d.Stop(10 * time.Second) }

// rss reads VmRSS of the daemon, in bytes (0 when it is gone).
func (d *daemon) rss() int64 {
	r, _ := stkdproc.ProcStatus(d.Pid(), "VmRSS")
	return r
}

// cpuTicks reads the daemon's user+system CPU time in clock ticks (1/100 s).
func (d *daemon) cpuTicks() int64 {
	c, _ := stkdproc.ProcCPU(d.Pid())
	return int64(c / (10 * time.Millisecond))
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
