// Command stkbench-attack-monitor is the monitor and STEP part of the attack harness: it
// starts an stkd binary on loopback ports, attacks its monitor, its
// history endpoint, its STEP streams and its STEP history as a hostile or
// careless client would, and prints what it cost stkd (memory, log, time)
// and what the daemon counted. Run it against an old and a new stkd to
// compare:
//
//	go build -o /tmp/stkd ./stkd
//	go run ./bench/stkbench-attack-monitor --stkd /tmp/stkd
//
// Cases (--cases, all by default):
//
//	creates   300 monitor CREATEs with 1 MB service names (one connection
//	          each, as a flood), then 300 with 40 KB names; the services
//	          then time out (activity timeout 500 ms)
//	history   GET /api/v1/history (the default page, and ?limit=1000)
//	streams   SSE and WebSocket STEP clients that never read, while big
//	          STEPs are posted: are they cut, and counted?
//	flood     one host posts 120 000 STEPs; do another host's 100 survive
//	          in the STEP history?
//
// Only loopback is used.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/spf13/pflag"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/stkdproc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/step"
)

func main() {
	stkd := pflag.String("stkd", "", "stkd binary to attack (required)")
	cases := pflag.String("cases", "creates,history,streams,flood", "cases to run, comma-separated")
	creates := pflag.Int("creates", 300, "CREATEs of each name size in the creates case")
	clients := pflag.Int("clients", 50, "SSE clients, and as many WebSocket clients, in the streams case")
	streamFor := pflag.Duration("stream-for", 15*time.Second, "how long STEPs are posted to the stuck stream clients (stkd's write timeout is 10 s)")
	keep := pflag.Bool("keep-log", false, "keep stkd's log file and print its path")
	pflag.Parse()
	if *stkd == "" {
		fmt.Fprintln(os.Stderr, "monitor: --stkd is required: the stkd binary to attack (go build -o /tmp/stkd ./stkd)")
		os.Exit(2)
	}
	d, err := startStkd(*stkd)
	if err != nil {
		fmt.Fprintln(os.Stderr, "monitor:", err)
		os.Exit(1)
	}
	defer d.stop(*keep)
	fmt.Printf("stkd %s (pid %d): monitor %s, http %s; rss %s\n", *stkd, d.Pid(), d.monitor, d.http, mb(d.rss()))
	for _, c := range strings.Split(*cases, ",") {
		var err error
		switch strings.TrimSpace(c) {
		case "creates":
			err = d.creates(*creates)
		case "history":
			err = d.history()
		case "streams":
			err = d.streams(*clients, *streamFor)
		case "flood":
			err = d.flood()
		case "":
		default:
			err = fmt.Errorf("unknown case %q (creates, history, streams, flood)", c)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "monitor: case %s: %v\n", c, err)
			d.stop(*keep)
			os.Exit(1)
		}
	}
}

// daemon is the stkd under attack.
type daemon struct {
	*stkdproc.Daemon
	logPath       string
	monitor, http string // "ip:port"
	once          sync.Once
}

// startStkd runs bin on free loopback ports (names and monitor on TCP, the
// HTTP UI, the STEP feed), its log in a file of a new directory.
func startStkd(bin string) (*daemon, error) {
	dir, err := os.MkdirTemp("", "stk-attack-")
	if err != nil {
		return nil, err
	}
	d := &daemon{logPath: filepath.Join(dir, "stkd.log")}
	logf, err := os.Create(d.logPath)
	if err != nil {
		return nil, err
	}
	d.Daemon, err = stkdproc.Start(context.Background(), bin, stkdproc.Options{Args: []string{"--steps-feed", "127.0.0.1:0"}, Log: logf})
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("%w (its log: %s)", err, d.logPath)
	}
	go func() { <-d.Done(); logf.Close() }() // every line is written, the attack measures the log's growth
	d.monitor, d.http = strings.TrimPrefix(d.Monitor, "tcp:"), d.HTTP
	return d, nil
}

func (d *daemon) stop(keep bool) {
	d.once.Do(func() {
		d.Stop(10 * time.Second)
		if keep {
			fmt.Println("stkd's log:", d.logPath)
		} else {
			os.RemoveAll(filepath.Dir(d.logPath))
		}
	})
}

// rss is stkd's resident memory now, in bytes (-1 when it is gone).
func (d *daemon) rss() int64 { return d.status("VmRSS") }

// hwm is stkd's peak resident memory.
func (d *daemon) hwm() int64 { return d.status("VmHWM") }

func (d *daemon) status(field string) int64 {
	v, err := stkdproc.ProcStatus(d.Pid(), field)
	if err != nil {
		return -1
	}
	return v
}

func (d *daemon) logSize() int64 {
	fi, err := os.Stat(d.logPath)
	if err != nil {
		return -1
	}
	return fi.Size()
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// metric sums the samples of a family whose labels contain all of match
// ("name" alone sums them all); -1 when the family is absent.
func (d *daemon) metric(name string, match ...string) float64 {
	r, err := http.Get("http://" + d.http + "/metrics")
	if err != nil {
		return -1
	}
	defer r.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name+" ") && !strings.HasPrefix(l, name+"{") {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(l, m)
		}
		if !ok {
			continue
		}
		f := strings.Fields(l)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum, found = sum+v, true
	}
	if !found {
		return -1
	}
	return sum
}

// createSeq is a monitor CREATE (docs/protocol.md §8.3) for service id with
// name, activity timeout activity.
func createSeq(id uint64, name string, activity time.Duration) *seq.Sequence {
	s := seq.New(seq.IDCreateNotification, seq.NameCreateNotification, seq.TypeMgmt)
	s.Add(seq.UTServiceIP, make([]byte, 16))
	in := make([]byte, 56)
	binary.LittleEndian.PutUint32(in[0:], 56)
	binary.LittleEndian.PutUint32(in[4:], 1) // CREATE
	binary.LittleEndian.PutUint64(in[8:], id)
	binary.LittleEndian.PutUint16(in[16:], 2) // DATA
	in[18] = 1                                // starting
	now := time.Now()
	binary.LittleEndian.PutUint64(in[24:], uint64(now.Unix()))
	binary.LittleEndian.PutUint64(in[32:], uint64(now.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(in[48:], uint32(activity/time.Millisecond))
	s.Add(seq.UTServiceInst, in)
	s.Add(seq.UTServiceName, append([]byte(name), 0))
	return s
}

// sendCreates sends n CREATEs with names of size bytes, each on a
// connection of its own, n/10 connections at a time.
func (d *daemon) sendCreates(n, size int, base uint64) error {
	name := strings.Repeat("A", size)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 10)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := flow.DialTCP(d.monitor, flow.Options{MaxSequenceSize: 2 << 20, Logger: quietLogger})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.WaitConnected(ctx); err != nil {
				errs <- err
				return
			}
			if err := c.Send(createSeq(base+uint64(i), name, 500*time.Millisecond)); err != nil {
				errs <- err
				return
			}
			time.Sleep(200 * time.Millisecond) // let the queue drain before closing
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return fmt.Errorf("sending CREATEs: %w", err)
	}
	return nil
}

func (d *daemon) creates(n int) error {
	for _, size := range []int{1_000_000, 40_000} {
		rss0, log0 := d.rss(), d.logSize()
		created0 := d.metric("stk_service_creates_total")
		start := time.Now()
		if err := d.sendCreates(n, size, uint64(size)*10); err != nil {
			return err
		}
		time.Sleep(2 * time.Second) // the services time out (500 ms) and are logged
		fmt.Printf("creates: %d CREATEs with %d-byte names in %v: records created %.0f, refused by the monitor %s, frames refused by the flows (total) %s; rss %s -> %s (peak %s), log +%s, history %.0f\n",
			n, size, time.Since(start).Round(time.Millisecond), d.metric("stk_service_creates_total")-created0,
			fmtMetric(d.metric("stk_monitor_refused_total", `reason="service_name"`)), fmtMetric(d.metric("stk_flow_malformed_total")),
			mb(rss0), mb(d.rss()), mb(d.hwm()), mb(d.logSize()-log0), d.metric("stk_services_history"))
	}
	return nil
}

func fmtMetric(v float64) string {
	if v < 0 {
		return "(no such metric)"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func (d *daemon) history() error {
	for _, q := range []string{"", "?limit=1000"} {
		rss0 := d.rss()
		start := time.Now()
		r, err := http.Get("http://" + d.http + "/api/v1/history" + q)
		if err != nil {
			return err
		}
		var body struct {
			Services []json.RawMessage `json:"services"`
			Next     string            `json:"next"`
		}
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return err
		}
		json.Unmarshal(b, &body)
		fmt.Printf("history: GET /api/v1/history%s: %d, %s, %d records, next %q in %v; rss %s -> %s (peak %s)\n",
			q, r.StatusCode, mb(int64(len(b))), len(body.Services), body.Next, time.Since(start).Round(time.Millisecond), mb(rss0), mb(d.rss()), mb(d.hwm()))
	}
	return nil
}

// bigSteps is a POST body of n STEPs of about 60 KB each.
func bigSteps(host string, n int) []byte {
	var ss []*step.Step
	for i := range n {
		st := step.New("attack.big", "a big STEP", host, time.Now())
		st.Set("n", float64(i))
		st.Set("pad", strings.Repeat("x", 60000))
		ss = append(ss, st)
	}
	b, _ := json.Marshal(ss)
	return b
}

func (d *daemon) post(body []byte) error {
	r, err := http.Post("http://"+d.http+"/api/v1/step", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer r.Body.Close()
	if r.StatusCode != 200 && r.StatusCode != 201 && r.StatusCode != 202 {
		b, _ := io.ReadAll(r.Body)
		return fmt.Errorf("POST /api/v1/step: %d %s", r.StatusCode, b)
	}
	return nil
}

func (d *daemon) streams(n int, dur time.Duration) error {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", d.http)
		if err != nil {
			return err
		}
		c.(*net.TCPConn).SetReadBuffer(4096)
		fmt.Fprintf(c, "GET /api/v1/steps/stream HTTP/1.1\r\nHost: %s\r\n\r\n", d.http)
		conns = append(conns, c)
	}
	var wss []*websocket.Conn
	defer func() {
		for _, c := range wss {
			c.CloseNow()
		}
	}()
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, _, err := websocket.Dial(ctx, "ws://"+d.http+"/api/v1/steps/ws", nil)
		cancel()
		if err != nil {
			return fmt.Errorf("WebSocket: %w", err)
		}
		wss = append(wss, c) // never read
	}
	time.Sleep(500 * time.Millisecond)
	open := d.metric("stk_http_step_streams")
	body := bigSteps("streams", 20)
	start := time.Now()
	posted := 0
	for time.Since(start) < dur {
		if err := d.post(body); err != nil {
			return err
		}
		posted += 20
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	fmt.Printf("streams: %d SSE and %d WebSocket clients that never read, %d STEPs of 60 KB posted in %v: open %.0f -> %.0f; cut counted sse %s, websocket %s; bus dropped %s; rss %s (peak %s)\n",
		n, n, posted, dur, open, d.metric("stk_http_step_streams"),
		fmtMetric(d.metric("stk_http_step_streams_cut_total", `transport="sse"`)),
		fmtMetric(d.metric("stk_http_step_streams_cut_total", `transport="websocket"`)),
		fmtMetric(d.metric("stk_steps_dropped_total")), mb(d.rss()), mb(d.hwm()))
	return nil
}

func smallSteps(host string, from, n int) []byte {
	var ss []*step.Step
	for i := range n {
		st := step.New("attack.flood", "a small STEP", host, time.Now())
		st.Set("n", float64(from+i))
		ss = append(ss, st)
	}
	b, _ := json.Marshal(ss)
	return b
}

func (d *daemon) flood() error {
	if err := d.post(smallSteps("quiet-host", 0, 100)); err != nil {
		return err
	}
	start := time.Now()
	const batches = 120
	for i := range batches {
		if err := d.post(smallSteps("flooder", i*1000, 1000)); err != nil {
			return err
		}
	}
	took := time.Since(start)
	var res struct {
		Steps []json.RawMessage `json:"steps"`
	}
	r, err := http.Get("http://" + d.http + "/api/v1/steps?host=quiet-host&limit=1000")
	if err != nil {
		return err
	}
	json.NewDecoder(r.Body).Decode(&res)
	r.Body.Close()
	fmt.Printf("flood: one host posted %d STEPs in %v; the quiet host's 100 STEPs left in the history: %d; history %.0f; rss %s\n",
		batches*1000, took.Round(time.Millisecond), len(res.Steps), d.metric("stk_steps_history"), mb(d.rss()))
	return nil
}

// quietLogger keeps the attacker's own flows silent.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))
