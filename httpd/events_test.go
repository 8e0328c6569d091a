package httpd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
)

// sseEvent is one dispatched event, or a comment line.
type sseEvent struct {
	id, event, data string
	hasID           bool
	comment         string
}

// sseClient reads an event stream on a goroutine of its own.
type sseClient struct {
	t      *testing.T
	res    *http.Response
	cancel context.CancelFunc
	ch     chan sseEvent
	done   chan struct{}
}

func openSSE(t *testing.T, url string, hdr ...string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, res.Header.Get("Content-Type"))
	}
	c := &sseClient{t: t, res: res, cancel: cancel, ch: make(chan sseEvent, 10000), done: make(chan struct{})}
	go c.read()
	t.Cleanup(c.close)
	return c
}

func (c *sseClient) read() {
	defer close(c.done)
	defer close(c.ch)
	br := bufio.NewReader(c.res.Body)
	var ev sseEvent
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.event != "" || len(data) > 0 {
				ev.data = strings.Join(data, "\n")
				c.ch <- ev
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
			c.ch <- sseEvent{comment: strings.TrimSpace(line[1:])}
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "id":
				ev.id, ev.hasID = v, true
			case "event":
				ev.event = v
			case "data":
				data = append(data, v)
			}
		}
	}
}

func (c *sseClient) close() {
	c.cancel()
	c.res.Body.Close()
	<-c.done
}

// next returns the next event that is not a comment, stats or names.
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-c.ch:
			if !ok {
				c.t.Fatalf("the stream ended")
			}
			if ev.comment != "" || ev.event == "stats" || ev.event == "names" {
				continue
			}
			return ev
		case <-timeout:
			c.t.Fatalf("no event within 5 s")
		}
	}
}

// waitFor returns the first event named name (or comment, for "").
func (c *sseClient) waitFor(name string) sseEvent {
	c.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-c.ch:
			if !ok {
				c.t.Fatalf("the stream ended waiting for %q", name)
			}
			if name == "" && ev.comment != "" || name != "" && ev.event == name {
				return ev
			}
		case <-timeout:
			c.t.Fatalf("no %q within 5 s", name)
		}
	}
}

func (c *sseClient) hello() HelloJSON {
	c.t.Helper()
	ev := c.next()
	if ev.event != "hello" || ev.hasID {
		c.t.Fatalf("first event %+v, want hello without id", ev)
	}
	var h HelloJSON
	if err := json.Unmarshal([]byte(ev.data), &h); err != nil {
		c.t.Fatal(err)
	}
	return h
}

// monitorEvent checks ev is the monitor event seq of kind and returns it.
func (c *sseClient) monitorEvent(seq uint64, kind string) EventJSON {
	c.t.Helper()
	ev := c.next()
	if !ev.hasID || ev.id != strconv.FormatUint(seq, 10) || ev.event != kind {
		c.t.Fatalf("got id %q event %q, want id %d event %q (%s)", ev.id, ev.event, seq, kind, ev.data)
	}
	var e EventJSON
	if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
		c.t.Fatal(err)
	}
	if e.Seq != seq || e.Kind != kind {
		c.t.Fatalf("data %+v, want seq %d kind %s", e, seq, kind)
	}
	return e
}

// waitClients waits until the hub has n clients.
func waitClients(t *testing.T, s *Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); s.hub.numClients() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d event-stream clients, want %d", s.hub.numClients(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestEventsLive(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(100)
	_, ts := newTest(t, Config{Monitor: mon})
	var snap SnapshotJSON
	getJSON(t, ts.URL+"/api/v1/snapshot", &snap)
	c := openSSE(t, ts.URL+"/api/v1/events?since="+strconv.FormatUint(snap.Seq, 10))
	if h := c.hello(); h.Instance != snap.Instance || !h.Resumed {
		t.Errorf("hello %+v", h)
	}
	uid := mon.create(evilName, "", smartbeat.Starting, "127.0.0.1:4000")
	mon.beat(uid, 42, time.Now())
	mon.setState(uid, smartbeat.Running, "")
	mon.timeOut(uid)
	e := c.monitorEvent(1, "created")
	if e.Service.Name != evilName || e.Service.UID != uid || !e.Service.Current || e.Service.BeatIntervals != nil {
		t.Errorf("created: %+v", e.Service)
	}
	if e := c.monitorEvent(2, "beat"); e.Service.Checkpoint != 42 {
		t.Errorf("beat: %+v", e.Service)
	}
	if e := c.monitorEvent(3, "state"); e.Service.StateName != "running" {
		t.Errorf("state: %+v", e.Service)
	}
	if e := c.monitorEvent(4, "timed_out"); e.Service.Current || e.Service.Verdict == nil {
		t.Errorf("timed out: %+v", e.Service)
	}
}

// TestEventsSinceSnapshot: events between the snapshot and the stream
// are replayed from ?since=.
func TestEventsSinceSnapshot(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(100)
	_, ts := newTest(t, Config{Monitor: mon})
	uid := mon.create("a", "", smartbeat.Running, "127.0.0.1:4000")
	var snap SnapshotJSON
	getJSON(t, ts.URL+"/api/v1/snapshot", &snap)
	mon.beat(uid, 1, time.Now()) // after the snapshot, before the stream
	mon.beat(uid, 2, time.Now())
	c := openSSE(t, ts.URL+"/api/v1/events?since="+strconv.FormatUint(snap.Seq, 10))
	c.hello()
	c.monitorEvent(2, "beat")
	c.monitorEvent(3, "beat")
	mon.beat(uid, 3, time.Now())
	c.monitorEvent(4, "beat")
}

func TestEventsResume(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(100)
	_, ts := newTest(t, Config{Monitor: mon})
	c := openSSE(t, ts.URL+"/api/v1/events")
	c.hello()
	uid := mon.create("a", "", smartbeat.Running, "127.0.0.1:4000")
	mon.beat(uid, 1, time.Now())
	c.monitorEvent(1, "created")
	c.monitorEvent(2, "beat")
	c.close()

	// Missed while disconnected.
	mon.beat(uid, 2, time.Now())
	mon.setState(uid, smartbeat.Stopping, "")
	mon.beat(uid, 3, time.Now())

	// Last-Event-ID wins over a stale ?since=.
	c2 := openSSE(t, ts.URL+"/api/v1/events?since=0", "Last-Event-ID", "2")
	if h := c2.hello(); !h.Resumed || h.Seq != 5 {
		t.Errorf("hello %+v", h)
	}
	if e := c2.monitorEvent(3, "beat"); e.Service.Checkpoint != 2 {
		t.Errorf("replayed beat %+v", e.Service)
	}
	c2.monitorEvent(4, "state")
	c2.monitorEvent(5, "beat")
	mon.beat(uid, 4, time.Now()) // and then live, without duplicates
	c2.monitorEvent(6, "beat")
}

func TestEventsReset(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(4)
	_, ts := newTest(t, Config{Monitor: mon})
	uid := mon.create("a", "", smartbeat.Running, "127.0.0.1:4000")
	for i := range 9 {
		mon.beat(uid, uint64(i), time.Now())
	}
	for _, tc := range []struct{ id, why string }{
		{"2", "gone"},         // the ring holds 7..10 only
		{"1000", "restarted"}, // ahead of the monitor: another daemon's id
		{"x", "unreadable"},
	} {
		c := openSSE(t, ts.URL+"/api/v1/events", "Last-Event-ID", tc.id)
		c.hello()
		ev := c.next()
		if ev.event != "reset" || ev.hasID || !strings.Contains(ev.data, tc.why) {
			t.Errorf("Last-Event-ID %s: %+v, want a reset", tc.id, ev)
		}
		// Live events follow the reset.
		seq := mon.beat(uid, 100, time.Now()).Seq
		c.monitorEvent(seq, "beat")
		c.close()
	}
	// The oldest id the ring still covers resumes.
	c := openSSE(t, ts.URL+"/api/v1/events", "Last-Event-ID", "9")
	if h := c.hello(); !h.Resumed {
		t.Errorf("hello %+v", h)
	}
	c.monitorEvent(10, "beat")
}

// blockingWriter is a ResponseWriter whose Write blocks until release: a
// client that does not read.
type blockingWriter struct {
	h       http.Header
	release chan struct{}
	mu      sync.Mutex
	writes  int
}

func (w *blockingWriter) Header() http.Header { return w.h }
func (w *blockingWriter) WriteHeader(int)     {}
func (w *blockingWriter) Flush()              {}
func (w *blockingWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.writes++
	w.mu.Unlock()
	<-w.release
	return 0, errors.New("closed")
}

func TestEventsSlowClientDropped(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(1000)
	s, ts := newTest(t, Config{Monitor: mon, ClientBuffer: 32})

	fast := openSSE(t, ts.URL+"/api/v1/events")
	fast.hello()

	bw := &blockingWriter{h: http.Header{}, release: make(chan struct{})}
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		s.Handler().ServeHTTP(bw, httptest.NewRequest("GET", "/api/v1/events", nil))
	}()
	waitClients(t, s, 2)

	// The monitor's deliveries never wait for the stuck client. The fast
	// client reads each batch before the next, so its queue never fills.
	uid := mon.create("a", "", smartbeat.Running, "127.0.0.1:4000")
	fast.monitorEvent(1, "created")
	var emitting time.Duration
	for b := range 10 {
		start := time.Now()
		for i := range 20 {
			mon.beat(uid, uint64(b*20+i), time.Now())
		}
		emitting += time.Since(start)
		for i := range 20 {
			fast.monitorEvent(uint64(b*20+i+2), "beat")
		}
	}
	if emitting > 2*time.Second {
		t.Errorf("200 events took %v with a stuck client", emitting)
	}
	if got := s.hub.dropped.Load(); got != 1 {
		t.Errorf("%d clients dropped, want 1", got)
	}
	waitClients(t, s, 1)
	close(bw.release)
	select {
	case <-slowDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the dropped client's handler did not return")
	}
	var st StatsJSON
	getJSON(t, ts.URL+"/api/v1/stats", &st)
	if st.HTTP.StreamDropped != 1 {
		t.Errorf("stats: %+v", st.HTTP)
	}
}

// TestHubFillsGaps: when the monitor's subscription loses events, the hub
// fetches them from the ring; when the ring lost them too, clients reset.
func TestHubFillsGaps(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(5)
	_, ts := newTest(t, Config{Monitor: mon})
	c := openSSE(t, ts.URL+"/api/v1/events")
	c.hello()
	uid := mon.create("a", "", smartbeat.Running, "127.0.0.1:4000")
	c.monitorEvent(1, "created")

	mon.mu.Lock()
	mon.drop = 3
	mon.mu.Unlock()
	for i := range 4 {
		mon.beat(uid, uint64(i), time.Now()) // 2, 3, 4 lost; 5 delivered
	}
	for seq := uint64(2); seq <= 5; seq++ {
		c.monitorEvent(seq, "beat")
	}

	mon.mu.Lock()
	mon.drop = 8 // more than the ring holds
	mon.mu.Unlock()
	for i := range 9 {
		mon.beat(uid, uint64(i), time.Now()) // 6..13 lost, 14 delivered
	}
	if ev := c.next(); ev.event != "reset" {
		t.Fatalf("%+v, want reset", ev)
	}
	// What the ring still held follows, then live events.
	for seq := uint64(10); seq <= 14; seq++ {
		c.monitorEvent(seq, "beat")
	}
	mon.beat(uid, 99, time.Now())
	c.monitorEvent(15, "beat")
}

func TestEventsHeartbeatNamesStats(t *testing.T) {
	leakcheck.Check(t)
	names := &fakeNames{}
	_, ts := newTest(t, Config{Names: names, Heartbeat: 30 * time.Millisecond, NamesInterval: 10 * time.Millisecond, StatsInterval: 20 * time.Millisecond})
	c := openSSE(t, ts.URL+"/api/v1/events")
	if h := c.hello(); h.Seq != 0 {
		t.Errorf("hello without a monitor: %+v", h)
	}
	if ev := c.waitFor(""); ev.comment != "heartbeat" {
		t.Errorf("comment %q", ev.comment)
	}
	ev := c.waitFor("stats")
	var st StatsJSON
	if err := json.Unmarshal([]byte(ev.data), &st); err != nil || st.Names == nil || st.Monitor != nil {
		t.Errorf("stats event: %v %s", err, ev.data)
	}
	names.add(namesvc.Entry{Info: namesvc.Info{Name: "new"}})
	for { // a hint for the empty list may come first
		ev = c.waitFor("names")
		if ev.hasID {
			t.Errorf("names hint with an id: %+v", ev)
		}
		if strings.Contains(ev.data, `"total":1`) {
			break
		}
	}
}

// TestShutdown: Shutdown ends the event streams (they would keep an
// http.Server waiting) and cancels the monitor subscription.
func TestShutdown(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(10)
	s, err := New(Config{Monitor: mon})
	if err != nil {
		t.Fatal(err)
	}
	if mon.subscribers() != 1 {
		t.Fatalf("%d subscribers", mon.subscribers())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	c := openSSE(t, url+"/api/v1/events")
	c.hello()
	if r := get(t, url+"/healthz"); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end")
	}
	if mon.subscribers() != 0 {
		t.Errorf("still subscribed")
	}
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := s.Serve(ln2); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
}
