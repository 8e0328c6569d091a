package httpd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
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
	timeout := time.After(10 * time.Second)
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
			c.t.Fatalf("no event within 10 s")
		}
	}
}

// waitFor returns the first event named name (or comment, for "").
func (c *sseClient) waitFor(name string) sseEvent {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
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
			c.t.Fatalf("no %q within 10 s", name)
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

// streamEvent is the data of a monitor event on the stream: the event,
// with what serveEvents puts in front of it.
type streamEvent struct {
	EventJSON
	Prev      uint64    `json:"prev"`
	Merged    int       `json:"merged"` // absent: 1
	Intervals []float64 `json:"intervals_ms"`
}

// update returns the next monitor event, checking that its id is its seq.
func (c *sseClient) update() streamEvent {
	c.t.Helper()
	ev := c.next()
	var e streamEvent
	if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
		c.t.Fatalf("%+v: %v", ev, err)
	}
	if !ev.hasID || ev.id != strconv.FormatUint(e.Seq, 10) || ev.event != e.Kind || e.Seq == 0 {
		c.t.Fatalf("event %q id %q: data %s", ev.event, ev.id, ev.data)
	}
	if e.Merged == 0 {
		e.Merged = 1
	}
	return e
}

// monitorEvent checks the next event is the monitor event seq of kind and
// returns it.
func (c *sseClient) monitorEvent(seq uint64, kind string) streamEvent {
	c.t.Helper()
	e := c.update()
	if e.Seq != seq || e.Kind != kind {
		c.t.Fatalf("got event %d %s, want %d %s", e.Seq, e.Kind, seq, kind)
	}
	return e
}

// manualFlush makes the event streams opened afterwards write their
// queues only on flushStreams (or when too much waits), so tests know
// which events merge.
func manualFlush(s *Server) { s.hub.flushEvery.Store(int64(time.Hour)) }

// flushStreams makes every event stream write its queue now.
func (h *hub) flushStreams() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		c.signal()
	}
}

// model applies the events of one stream as the page does, and checks
// that the stream lacks nothing: every event follows the one before it.
type model struct {
	t        *testing.T
	applied  uint64
	services map[uint64]ServiceJSON
	sparks   map[uint64][]float64
	events   map[uint64]int // uid -> events received
	merged   map[uint64]int // uid -> monitor events they stood for
}

func newModel(t *testing.T, from uint64) *model {
	return &model{t: t, applied: from, services: map[uint64]ServiceJSON{}, sparks: map[uint64][]float64{}, events: map[uint64]int{}, merged: map[uint64]int{}}
}

func (m *model) apply(e streamEvent) {
	m.t.Helper()
	if e.Prev != m.applied || e.Seq <= m.applied {
		m.t.Fatalf("event %d %s with prev %d after %d", e.Seq, e.Kind, e.Prev, m.applied)
	}
	m.applied = e.Seq
	uid := e.Service.UID
	m.services[uid] = e.Service
	m.sparks[uid] = append(m.sparks[uid], e.Intervals...)
	m.events[uid]++
	m.merged[uid] += e.Merged
}

// check compares the model with the monitor's records.
func (m *model) check(views []smartbeat.ServiceView) {
	m.t.Helper()
	for _, v := range views {
		got, ok := m.services[v.UID]
		switch {
		case !ok:
			m.t.Errorf("record %d (%s) never came", v.UID, v.Name)
		case got.Checkpoint != v.Checkpoint || got.Beats != v.Beats || got.State != uint8(v.State) || got.Current != v.Current ||
			got.LastReceived == nil || !got.LastReceived.Equal(v.LastReceived):
			m.t.Errorf("record %d: checkpoint %d beats %d state %d current %v last_received %v, want %d %d %d %v %v",
				v.UID, got.Checkpoint, got.Beats, got.State, got.Current, got.LastReceived, v.Checkpoint, v.Beats, v.State, v.Current, v.LastReceived)
		}
	}
}

// waitClients waits until the hub has n clients.
func waitClients(t *testing.T, s *Server, n int) {
	t.Helper()
	testutil.WaitForf(t, 10*time.Second, func() bool { return s.hub.numClients() == n },
		func() string { return fmt.Sprintf("%d event-stream clients, want %d", s.hub.numClients(), n) })
}

func TestEventsLive(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(100)
	s, ts := newTest(t, Config{Monitor: mon})
	manualFlush(s)
	var snap SnapshotJSON
	getJSON(t, ts.URL+"/api/v1/snapshot", &snap)
	since := strconv.FormatUint(snap.Seq, 10)
	raw := openSSE(t, ts.URL+"/api/v1/events?beats=all&since="+since)
	c := openSSE(t, ts.URL+"/api/v1/events?since="+since)
	for _, c := range []*sseClient{raw, c} {
		if h := c.hello(); h.Instance != snap.Instance || !h.Resumed {
			t.Errorf("hello %+v", h)
		}
	}
	uid := mon.create(evilName, "", smartbeat.Starting, "127.0.0.1:4000")
	mon.beat(uid, 42, time.Now())
	mon.setState(uid, smartbeat.Running, "")
	mon.timeOut(uid)
	s.hub.flushStreams()

	// beats=all: every event as it happened, without waiting for a flush.
	e := raw.monitorEvent(1, "created")
	if e.Service.Name != evilName || e.Service.UID != uid || !e.Service.Current || e.Service.BeatIntervals != nil || e.Prev != 0 {
		t.Errorf("created: %+v", e)
	}
	if e := raw.monitorEvent(2, "beat"); e.Service.Checkpoint != 42 || e.Prev != 1 || e.Merged != 1 {
		t.Errorf("beat: %+v", e)
	}
	if e := raw.monitorEvent(3, "state"); e.Service.StateName != "running" {
		t.Errorf("state: %+v", e.Service)
	}
	if e := raw.monitorEvent(4, "timed_out"); e.Service.Current || e.Service.Verdict == nil || e.Prev != 3 {
		t.Errorf("timed out: %+v", e)
	}

	// Merged: the state change holds the beat's checkpoint and stands for
	// both events.
	c.monitorEvent(1, "created")
	if e := c.monitorEvent(3, "state"); e.Service.StateName != "running" || e.Service.Checkpoint != 42 || e.Merged != 2 || e.Prev != 1 {
		t.Errorf("state: %+v", e)
	}
	if e := c.monitorEvent(4, "timed_out"); e.Service.Current || e.Service.Verdict == nil || e.Prev != 3 {
		t.Errorf("timed out: %+v", e)
	}
}

// TestEventsFlushInterval: without flushStreams, queued events go out
// every flush interval.
func TestEventsFlushInterval(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(100)
	s, ts := newTest(t, Config{Monitor: mon})
	s.hub.flushEvery.Store(int64(100 * time.Millisecond))
	c := openSSE(t, ts.URL+"/api/v1/events")
	c.hello()
	start := time.Now()
	uid := mon.create("a", "", smartbeat.Running, "127.0.0.1:4000")
	c.monitorEvent(1, "created")
	if d := time.Since(start); d > time.Second {
		t.Errorf("the event came after %v", d)
	}
	if r := get(t, ts.URL+"/api/v1/events?beats=some"); r.status != 400 || !strings.Contains(r.body, "beats") {
		t.Errorf("beats=some: %d %s", r.status, r.body)
	}
	mon.beat(uid, 7, time.Now())
	c.monitorEvent(2, "beat")
}

// TestEventsSinceSnapshot: events between the snapshot and the stream
// are replayed from ?since=, merged.
func TestEventsSinceSnapshot(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(100)
	s, ts := newTest(t, Config{Monitor: mon})
	manualFlush(s)
	uid := mon.create("a", "", smartbeat.Running, "127.0.0.1:4000")
	var snap SnapshotJSON
	getJSON(t, ts.URL+"/api/v1/snapshot", &snap)
	t0 := time.Now()
	mon.beat(uid, 1, t0) // after the snapshot, before the stream
	mon.beat(uid, 2, t0.Add(400*time.Millisecond))
	since := strconv.FormatUint(snap.Seq, 10)
	raw := openSSE(t, ts.URL+"/api/v1/events?beats=all&since="+since)
	raw.hello()
	raw.monitorEvent(2, "beat")
	raw.monitorEvent(3, "beat")
	c := openSSE(t, ts.URL+"/api/v1/events?since="+since)
	c.hello()
	if e := c.monitorEvent(3, "beat"); e.Prev != snap.Seq || e.Merged != 2 || e.Service.Checkpoint != 2 || !equalFloats(e.Intervals, []float64{400}) {
		t.Errorf("replayed: prev %d merged %d checkpoint %d intervals %v", e.Prev, e.Merged, e.Service.Checkpoint, e.Intervals)
	}
	mon.beat(uid, 3, t0.Add(900*time.Millisecond))
	raw.monitorEvent(4, "beat")
	s.hub.flushStreams()
	if e := c.monitorEvent(4, "beat"); e.Prev != 3 || e.Merged != 1 || !equalFloats(e.Intervals, []float64{500}) {
		t.Errorf("live: %+v", e)
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 0.001 {
			return false
		}
	}
	return true
}

// TestEventsResume: beats=all replays every event missed.
func TestEventsResume(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(100)
	_, ts := newTest(t, Config{Monitor: mon})
	c := openSSE(t, ts.URL+"/api/v1/events?beats=all")
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
	c2 := openSSE(t, ts.URL+"/api/v1/events?since=0&beats=all", "Last-Event-ID", "2")
	if h := c2.hello(); !h.Resumed || h.Seq != 5 {
		t.Errorf("hello %+v", h)
	}
	if e := c2.monitorEvent(3, "beat"); e.Service.Checkpoint != 2 || e.Prev != 2 {
		t.Errorf("replayed beat %+v", e)
	}
	c2.monitorEvent(4, "state")
	c2.monitorEvent(5, "beat")
	mon.beat(uid, 4, time.Now()) // and then live, without duplicates
	c2.monitorEvent(6, "beat")
}

// TestEventsResumeMerged: a client cut in the middle of a flush resumes
// with Last-Event-ID and ends up with every record's latest values, though
// the events before its id were merged into ones after it.
func TestEventsResumeMerged(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(4096)
	s, ts := newTest(t, Config{Monitor: mon})
	manualFlush(s)
	const n = 50
	uids := make([]uint64, n)
	for i := range uids {
		uids[i] = mon.create(fmt.Sprintf("svc-%d", i), "", smartbeat.Running, fmt.Sprintf("127.0.0.1:%d", 4000+i))
	}
	var snap SnapshotJSON
	getJSON(t, ts.URL+"/api/v1/snapshot", &snap)
	m := newModel(t, snap.Seq)
	for _, v := range snap.Services {
		m.services[v.UID] = v
	}
	c := openSSE(t, ts.URL+"/api/v1/events?since="+strconv.FormatUint(snap.Seq, 10))
	c.hello()
	t0 := time.Now()
	round := func(r int) {
		for b := range 5 { // all records beat, interleaved
			for i, uid := range uids {
				mon.beat(uid, uint64(r*100+b), t0.Add(time.Duration(r*5+b)*500*time.Millisecond+time.Duration(i)*time.Millisecond))
			}
		}
	}
	round(0)
	s.hub.flushStreams()
	for range n / 2 { // cut after half the flush
		m.apply(c.update())
	}
	c.close()
	cut := m.applied
	if cut >= mon.Stats().LastEvent {
		t.Fatalf("cut at %d, the last event", cut)
	}

	round(1)
	mon.setState(uids[3], smartbeat.Stopping, "")
	mon.beat(uids[3], 999, t0.Add(time.Hour))

	c2 := openSSE(t, ts.URL+"/api/v1/events", "Last-Event-ID", strconv.FormatUint(cut, 10))
	if h := c2.hello(); !h.Resumed {
		t.Fatalf("hello %+v", h)
	}
	// The replay comes without a flush: one event per record, two for the
	// one whose state changed before its latest beat.
	before := maps.Clone(m.events)
	for range n + 1 {
		m.apply(c2.update())
	}
	for i, uid := range uids {
		want := 1
		if i == 3 {
			want = 2
		}
		if got := m.events[uid] - before[uid]; got != want {
			t.Errorf("record %d: %d events in the replay, want %d", uid, got, want)
		}
	}
	if got, want := m.applied, mon.Stats().LastEvent; got != want {
		t.Errorf("applied up to %d, the monitor is at %d", got, want)
	}
	m.check(mon.Services())
	if st := m.services[uids[3]]; st.StateName != "stopping" || st.Checkpoint != 999 {
		t.Errorf("record 3: %+v", st)
	}

	// Live again, merged, the chain unbroken.
	round(2)
	s.hub.flushStreams()
	for range n {
		m.apply(c2.update())
	}
	m.check(mon.Services())
}

func TestEventsReset(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(4)
	s, ts := newTest(t, Config{Monitor: mon})
	manualFlush(s)
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
		s.hub.flushStreams()
		if e := c.monitorEvent(seq, "beat"); e.Prev != seq-1 {
			t.Errorf("prev %d", e.Prev)
		}
		c.close()
	}
	// The oldest id the ring still covers resumes: 10 to 13, merged.
	c := openSSE(t, ts.URL+"/api/v1/events", "Last-Event-ID", "9")
	if h := c.hello(); !h.Resumed {
		t.Errorf("hello %+v", h)
	}
	if e := c.monitorEvent(13, "beat"); e.Prev != 9 || e.Merged != 4 {
		t.Errorf("resumed: %+v", e)
	}
}

// TestEventsMergeBounded: many records beating fast; each flush carries
// one event per record with its latest values, whatever number of beats
// it stands for, and the intervals of all of them.
func TestEventsMergeBounded(t *testing.T) {
	leakcheck.Check(t)
	const records, flushes, beats = 100, 5, 10
	mon := newFakeMonitor(100)
	// Room for beats=all, which gets every beat.
	s, ts := newTest(t, Config{Monitor: mon, ClientBuffer: records * flushes * beats})
	manualFlush(s)
	uids := make([]uint64, records)
	for i := range uids {
		uids[i] = mon.create(fmt.Sprintf("svc-%d", i), "", smartbeat.Running, fmt.Sprintf("10.0.%d.%d:4000", i/200, i%200))
	}
	c := openSSE(t, ts.URL+"/api/v1/events")
	h := c.hello()
	raw := openSSE(t, ts.URL+"/api/v1/events?beats=all")
	raw.hello()
	m := newModel(t, h.Seq)
	t0 := time.Now()
	// Record i beats every 100+i ms on the monitor's receive clock.
	at := func(i, k int) time.Time { return t0.Add(time.Duration(k*(100+i)) * time.Millisecond) }
	for f := range flushes {
		for b := range beats {
			for i, uid := range uids {
				k := f*beats + b
				mon.beat(uid, uint64(k), at(i, k))
			}
		}
		s.hub.flushStreams()
		for range records {
			e := c.update()
			if e.Kind != "beat" || e.Merged != beats {
				t.Fatalf("flush %d: %s standing for %d events, want a beat for %d", f, e.Kind, e.Merged, beats)
			}
			m.apply(e)
		}
	}
	for i, uid := range uids {
		if m.events[uid] != flushes || m.merged[uid] != flushes*beats {
			t.Errorf("record %d: %d events standing for %d, want %d for %d", uid, m.events[uid], m.merged[uid], flushes, flushes*beats)
		}
		// The intervals of every beat but the first (the hub saw no beat
		// before it), in order.
		want := make([]float64, flushes*beats-1)
		for k := range want {
			want[k] = float64(100 + i)
		}
		if !equalFloats(m.sparks[uid], want) {
			t.Errorf("record %d: intervals %v, want %v", uid, m.sparks[uid], want)
		}
	}
	m.check(mon.Services())
	if m.applied != mon.Stats().LastEvent {
		t.Errorf("applied up to %d, the monitor is at %d", m.applied, mon.Stats().LastEvent)
	}
	// beats=all got every one.
	for range records * flushes * beats {
		if e := raw.update(); e.Merged != 1 {
			t.Fatalf("beats=all: %+v", e)
		}
	}
	var st StatsJSON
	getJSON(t, ts.URL+"/api/v1/stats", &st)
	if want := uint64(records*flushes + records*flushes*beats); st.HTTP.EventsSent != want {
		t.Errorf("events sent %d, want %d", st.HTTP.EventsSent, want)
	}
}

// TestEventsStatesKept: state changes, timeouts and destroys are never
// merged away; each absorbs the beats before it, and a record's events
// keep their order among the other records' merged beats.
func TestEventsStatesKept(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(1000)
	s, ts := newTest(t, Config{Monitor: mon})
	manualFlush(s)
	a := mon.create("a", "", smartbeat.Starting, "127.0.0.1:4000")
	b := mon.create("b", "", smartbeat.Running, "127.0.0.1:4001")
	d := mon.create("d", "", smartbeat.Running, "127.0.0.1:4002")
	c := openSSE(t, ts.URL+"/api/v1/events")
	m := newModel(t, c.hello().Seq)
	t0 := time.Now()
	k := 0
	beat := func(uid uint64) smartbeat.Event {
		k++
		return mon.beat(uid, uint64(k), t0.Add(time.Duration(k)*time.Millisecond))
	}
	// Kinds, states and seqs of a's events as they must come.
	type want struct {
		kind   string
		state  string
		seq    uint64
		merged int
	}
	var wants []want
	beat(a)
	beat(b)
	beat(a)
	wants = append(wants, want{"state", "running", mon.setState(a, smartbeat.Running, "").Seq, 3})
	beat(b)
	beat(a)
	wants = append(wants, want{"state", "custom", mon.setState(a, 130, "custom").Seq, 2})
	wants = append(wants, want{"state", "stopping", mon.setState(a, smartbeat.Stopping, "").Seq, 1})
	beat(d)
	beat(a)
	beat(b)
	wants = append(wants, want{"beat", "stopping", beat(a).Seq, 2})
	beat(d)
	timedOut := mon.timeOut(d)
	destroyed := mon.destroy(b)
	s.hub.flushStreams()
	var got []want
	var kinds []string
	for range len(wants) + 2 {
		e := c.update()
		m.apply(e)
		kinds = append(kinds, e.Kind)
		if e.Service.UID == a {
			got = append(got, want{e.Kind, e.Service.StateName, e.Seq, e.Merged})
		}
	}
	if !slices.Equal(got, wants) {
		t.Errorf("record a's events:\n got %v\nwant %v", got, wants)
	}
	if e := m.services[d]; e.Current || e.Verdict == nil || m.applied < timedOut.Seq {
		t.Errorf("d: %+v", e)
	}
	if e := m.services[b]; e.Current || !e.Destroyed || m.applied != destroyed.Seq {
		t.Errorf("b: %+v", e)
	}
	if m.merged[b] != 4 || m.events[b] != 1 || m.merged[d] != 3 || m.events[d] != 1 {
		t.Errorf("b: %d events for %d, d: %d for %d; want 1 for 4, 1 for 3 (%v)", m.events[b], m.merged[b], m.events[d], m.merged[d], kinds)
	}
	m.check(append(mon.Services(), mon.Snapshot().History...))
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

// stuckClient serves an event stream to a client that never reads, and
// returns a function that releases it and waits for its handler.
func stuckClient(t *testing.T, s *Server, query string) (release func()) {
	bw := &blockingWriter{h: http.Header{}, release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Handler().ServeHTTP(bw, httptest.NewRequest("GET", "/api/v1/events"+query, nil))
	}()
	return func() {
		close(bw.release)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the dropped client's handler did not return")
		}
	}
}

// TestEventsSlowClientDropped: merged beats keep a stuck client's queue
// at one event per record, but more unmergeable events than ClientBuffer
// cut it, and the other clients get everything.
func TestEventsSlowClientDropped(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(1000)
	s, ts := newTest(t, Config{Monitor: mon, ClientBuffer: 32})
	s.hub.flushEvery.Store(int64(5 * time.Millisecond))

	fast := openSSE(t, ts.URL+"/api/v1/events")
	m := newModel(t, fast.hello().Seq)
	release := stuckClient(t, s, "")
	waitClients(t, s, 2)

	// The monitor's deliveries never wait for the stuck client. The fast
	// client reads each round before the next, so its queue never fills.
	uid := mon.create("a", "", smartbeat.Running, "127.0.0.1:4000")
	var emitting time.Duration
	start := time.Now()
	for i := range 200 {
		mon.beat(uid, uint64(i), time.Now())
	}
	emitting += time.Since(start)
	if got := s.hub.dropped.Load(); got != 0 {
		t.Errorf("%d clients dropped for merged beats", got)
	}
	for r := range 4 {
		start := time.Now()
		for i := range 10 {
			mon.setState(uid, smartbeat.State(128+r*10+i), "")
		}
		emitting += time.Since(start)
		for m.applied < mon.Stats().LastEvent {
			m.apply(fast.update())
		}
	}
	if emitting > 2*time.Second {
		t.Errorf("240 events took %v with a stuck client", emitting)
	}
	if got := s.hub.dropped.Load(); got != 1 {
		t.Errorf("%d clients dropped, want 1", got)
	}
	waitClients(t, s, 1)
	release()
	if st := m.services[uid]; st.State != 128+39 || st.Checkpoint != 199 || st.Beats != 200 {
		t.Errorf("the fast client ends with %+v", st)
	}
	var st StatsJSON
	getJSON(t, ts.URL+"/api/v1/stats", &st)
	if st.HTTP.StreamDropped != 1 {
		t.Errorf("stats: %+v", st.HTTP)
	}
}

// TestEventsStuckClientDropped: a client that has not taken its merged
// updates for WriteTimeout is cut, even with only beats waiting (a real
// connection's write deadline would end it too; this writer has none).
func TestEventsStuckClientDropped(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(1000)
	s, _ := newTest(t, Config{Monitor: mon, WriteTimeout: 100 * time.Millisecond})
	s.hub.flushEvery.Store(int64(5 * time.Millisecond))
	uid := mon.create("a", "", smartbeat.Running, "127.0.0.1:4000")
	release := stuckClient(t, s, "")
	waitClients(t, s, 1)
	time.Sleep(300 * time.Millisecond) // idle: nothing waits, it stays
	if n := s.hub.numClients(); n != 1 {
		t.Fatalf("%d clients", n)
	}
	start := time.Now()
	mon.beat(uid, 1, time.Now())
	waitClients(t, s, 0)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("cut after %v, before WriteTimeout", d)
	}
	release()
	if got := s.hub.dropped.Load(); got != 1 {
		t.Errorf("%d clients dropped, want 1", got)
	}
}

// TestHubFillsGaps: when the monitor's subscription loses events, the hub
// fetches them from the ring; when the ring lost them too, clients reset.
func TestHubFillsGaps(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(5)
	s, ts := newTest(t, Config{Monitor: mon})
	manualFlush(s)
	c := openSSE(t, ts.URL+"/api/v1/events?beats=all")
	c.hello()
	merged := openSSE(t, ts.URL+"/api/v1/events")
	merged.hello()
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
	s.hub.flushStreams()
	merged.monitorEvent(1, "created")
	if e := merged.monitorEvent(5, "beat"); e.Merged != 4 || e.Prev != 1 {
		t.Errorf("merged: %+v", e)
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
	// What the ring still held follows, then live events. prev says that
	// the events before the ring's are missing.
	if e := c.monitorEvent(10, "beat"); e.Prev != 9 {
		t.Errorf("after the reset: %+v", e)
	}
	for seq := uint64(11); seq <= 14; seq++ {
		c.monitorEvent(seq, "beat")
	}
	mon.beat(uid, 99, time.Now())
	c.monitorEvent(15, "beat")
	s.hub.flushStreams()
	if ev := merged.next(); ev.event != "reset" {
		t.Fatalf("%+v, want reset", ev)
	}
	if e := merged.monitorEvent(15, "beat"); e.Merged != 6 || e.Prev != 9 || e.Service.Checkpoint != 99 {
		t.Errorf("merged after the reset: %+v", e)
	}
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
	case <-time.After(10 * time.Second):
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
