package httpd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"
	"github.com/stk-go/stk/stepbus"
)

// newStepTest serves a real STEP bus (no archive, no network) behind a
// test server.
func newStepTest(t *testing.T, cfg Config, bcfg stepbus.Config) (*Server, string, *stepbus.Bus) {
	t.Helper()
	if bcfg.Logger == nil {
		bcfg.Logger = testutil.Discard()
	}
	bus, err := stepbus.New(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	cfg.Steps = bus
	if cfg.Logger == nil {
		cfg.Logger = testutil.Discard()
	}
	s, ts := newTest(t, cfg)
	return s, ts.URL, bus
}

func post(t *testing.T, url, ctype, body string) response {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, string(b)}
}

func errorOf(t *testing.T, r response) string {
	t.Helper()
	var e ErrorJSON
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" {
		t.Fatalf("not an error document: %q (%v)", r.body, err)
	}
	return e.Error
}

// mkStep makes a valid STEP.
func mkStep(typ, host string, start int64, fields map[string]any) *step.Step {
	st := step.New(typ, typ+" on "+host, host, time.UnixMilli(start))
	for k, v := range fields {
		st.Set(k, v)
	}
	return st
}

func mustPublish(t *testing.T, bus *stepbus.Bus, st ...*step.Step) {
	t.Helper()
	for _, s := range st {
		if err := bus.Publish(s, "test"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStepPost(t *testing.T) {
	leakcheck.Check(t)
	before := time.Now().UnixMilli()
	_, base, bus := newStepTest(t, Config{}, stepbus.Config{History: 100})
	u := base + "/api/v1/step"

	// No id, no time: both are filled in.
	r := post(t, u, "application/json; charset=utf-8", `{"event":{"type":"app.deploy","description":"v2 <b>out</b>"},"space":{"hostname":"web-1","version":"2.0"}}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	var acc StepAcceptedJSON
	if err := json.Unmarshal([]byte(r.body), &acc); err != nil || acc.ID == "" {
		t.Fatalf("answer %q: %v", r.body, err)
	}
	got := bus.Query(stepbus.Query{})
	if len(got) != 1 || got[0].ID != acc.ID || got[0].Time.Start < before || got[0].Time.Start > time.Now().UnixMilli() {
		t.Fatalf("bus holds %+v, want the STEP %s stamped now", got, acc.ID)
	}
	if v, _ := got[0].String("version"); v != "2.0" || got[0].Event.Description != "v2 <b>out</b>" {
		t.Errorf("stored %+v", got[0])
	}
	// An id and a time are kept.
	r = post(t, u, "application/json", `{"id":"mine-1","time":{"start":1700000000000,"duration":5},"event":{"type":"app.x"},"space":{"hostname":"h"},"psychology":{"valence":-0.5,"intensity":0.25}}`)
	if r.status != http.StatusAccepted || !strings.Contains(r.body, `"id":"mine-1"`) {
		t.Fatalf("POST with id: %d %s", r.status, r.body)
	}
	if got := bus.Query(stepbus.Query{Pattern: step.MustPattern("app.x")}); len(got) != 1 || got[0].Time.Start != 1700000000000 || got[0].Psychology.Valence != -0.5 {
		t.Errorf("stored %+v", got)
	}

	// Refusals name what is wrong; nothing reaches the bus.
	published := bus.Stats().Published
	bad := []struct {
		ctype, body string
		status      int
		want        string
	}{
		{"application/json", `{"event":`, 400, "ends too early"},
		{"application/json", `{"event":{"type":"a"}}}`, 400, "bad JSON"},
		{"application/json", `{"evnt":{"type":"a"}}`, 400, `"evnt"`},
		{"application/json", `{"event":{"type":"a"},"time":{"start":"now"}}`, 400, "time.start must be a number"},
		{"application/json", `{"event":{"type":"a..b"}}`, 400, "event.type"},
		{"application/json", `{"event":{"type":"a"},"psychology":{"valence":3}}`, 400, "psychology.valence"},
		{"application/json", `{"event":{"type":"a"},"time":{"start":-5}}`, 400, "time.start"},
		{"application/json", `{"space":{"hostname":"h"}}`, 400, "event.type is missing"},
		{"application/json", `"a string"`, 400, "want an object"},
		{"application/json", `{"event":{"type":"a"}} {"event":{"type":"b"}}`, 400, "more than one JSON value"},
		{"application/json", ``, 400, "empty"},
		{"application/json", `[]`, 400, "no STEP"},
		{"", `{"event":{"type":"a"}}`, 415, "Content-Type application/json is required"},
		{"text/plain", `{"event":{"type":"a"}}`, 415, `"text/plain" is not accepted`},
		{"application/x-www-form-urlencoded", `a=b`, 415, "not accepted"},
		{"application/json", `{"event":{"type":"a"},"space":{"big":"` + strings.Repeat("x", MaxStepBody) + `"}}`, 413, "at most 65536 bytes"},
		{"application/json", "[" + strings.Repeat(`{"event":{"type":"a"}},`, MaxStepBatch) + `{"event":{"type":"a"}}]`, 413, "at most 1000"},
		{"application/json", `[` + strings.Repeat(" ", MaxStepBatchBody) + `]`, 413, "larger than"},
		{"application/json", `[{"event":{"type":"ok.one"}},{"event":{"type":"bad type"}},{"event":{"type":"ok.three"}}]`, 400, "STEP 1: event.type"},
		{"application/json", `[{"event":{"type":"ok.one"}},7]`, 400, "STEP 1: not a STEP"},
	}
	for _, c := range bad {
		r := post(t, u, c.ctype, c.body)
		body := c.body
		if len(body) > 60 {
			body = body[:60] + "…"
		}
		if r.status != c.status {
			t.Errorf("%q %s: status %d, want %d (%s)", c.ctype, body, r.status, c.status, r.body)
			continue
		}
		if msg := errorOf(t, r); !strings.Contains(msg, c.want) {
			t.Errorf("%q %s: error %q, want it to say %q", c.ctype, body, msg, c.want)
		}
	}
	if n := bus.Stats().Published; n != published {
		t.Errorf("refused requests published %d STEPs", n-published)
	}

	// A batch is taken whole.
	r = post(t, u, "application/json", `[{"event":{"type":"b.one"},"space":{"hostname":"h"}},{"id":"b2","event":{"type":"b.two"}},{"event":{"type":"b.three"}}]`)
	var bacc StepsAcceptedJSON
	if r.status != http.StatusAccepted || json.Unmarshal([]byte(r.body), &bacc) != nil || bacc.Count != 3 || len(bacc.IDs) != 3 || bacc.IDs[1] != "b2" {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	if got := bus.Query(stepbus.Query{Pattern: step.MustPattern("b.*")}); len(got) != 3 {
		t.Errorf("batch stored %d STEPs", len(got))
	}

	// Other methods.
	if r := get(t, u); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Errorf("GET /api/v1/step: %d %v", r.status, r.header)
	}
	if r := post(t, base+"/api/v1/steps", "application/json", `{}`); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/v1/steps: %d", r.status)
	}
}

func TestStepQuery(t *testing.T) {
	leakcheck.Check(t)
	_, base, bus := newStepTest(t, Config{}, stepbus.Config{History: 1000})
	t0 := time.Date(2025, 11, 22, 5, 30, 0, 0, time.UTC).UnixMilli()
	metric := map[string]any{"kind": "metric", "cpu_percent": 10.5}
	for i := range 10 {
		host := []string{"web-1", "db-2"}[i%2]
		mustPublish(t, bus, mkStep("system.cpu", host, t0+int64(i)*1000, metric))
	}
	mustPublish(t, bus,
		mkStep("system.cpu.high", "web-1", t0+3500, map[string]any{"level": "warning", "value": 85.0}),
		mkStep("system.memory", "db-2", t0+4500, map[string]any{"kind": "metric", "memory_percent": 50.0}),
		mkStep("process.start", "db-2", t0+5500, map[string]any{"pid": 42.0}),
	)
	q := func(params string) StepsJSON {
		t.Helper()
		var out StepsJSON
		if r := getJSON(t, base+"/api/v1/steps?"+params, &out); r.status != 200 {
			t.Fatalf("?%s: %d %s", params, r.status, r.body)
		}
		if out.Count != len(out.Steps) {
			t.Errorf("?%s: count %d for %d STEPs", params, out.Count, len(out.Steps))
		}
		// Each STEP's source beside it: mustPublish's.
		if len(out.Sources) != len(out.Steps) || slices.ContainsFunc(out.Sources, func(s string) bool { return s != "test" }) {
			t.Errorf("?%s: sources %q for %d STEPs, want \"test\" for each", params, out.Sources, len(out.Steps))
		}
		for i := 1; i < len(out.Steps); i++ {
			if out.Steps[i].Time.Start < out.Steps[i-1].Time.Start {
				t.Errorf("?%s: not oldest first", params)
			}
		}
		return out
	}
	types := func(r StepsJSON) string {
		var l []string
		for _, s := range r.Steps {
			l = append(l, s.Event.Type+"@"+s.Space.Hostname)
		}
		return strings.Join(l, " ")
	}
	if r := q(""); r.Count != 13 || r.Truncated {
		t.Errorf("all: %d truncated %v", r.Count, r.Truncated)
	}
	if r := q("limit=3"); r.Count != 3 || !r.Truncated || r.Steps[2].Time.Start != t0+9000 {
		t.Errorf("limit=3: the newest three, oldest first, truncated: %s", types(r))
	}
	if r := q("type=system.cpu.*"); types(r) != "system.cpu.high@web-1" {
		t.Errorf("type=system.cpu.*: %s", types(r))
	}
	if r := q("type=system.cpu&host=DB-2"); r.Count != 5 {
		t.Errorf("cpu of db-2: %s", types(r))
	}
	if r := q("type=" + url.QueryEscape("*.high,process.*")); types(r) != "system.cpu.high@web-1 process.start@db-2" {
		t.Errorf("two globs: %s", types(r))
	}
	since := time.UnixMilli(t0 + 4000).UTC().Format(time.RFC3339Nano)
	if r := q(fmt.Sprintf("since=%s&until=%d", url.QueryEscape(since), t0+6000)); types(r) != "system.cpu@web-1 system.memory@db-2 system.cpu@db-2 process.start@db-2" {
		t.Errorf("since..until: %s", types(r))
	}
	if r := q("kind=event"); types(r) != "system.cpu.high@web-1 process.start@db-2" {
		t.Errorf("kind=event: %s", types(r))
	}
	if r := q("kind=metric&host=db-2&limit=2"); types(r) != "system.cpu@db-2 system.cpu@db-2" || !r.Truncated {
		t.Errorf("kind=metric of db-2, limit 2: %s", types(r))
	}
	if r := q("host=nobody"); r.Count != 0 || r.Steps == nil {
		t.Errorf("no match: %+v", r)
	}
	// The fields arrive as JSON numbers in the space, beside hostname.
	r := get(t, base+"/api/v1/steps?type=system.memory")
	if !strings.Contains(r.body, `"space":{"hostname":"db-2","kind":"metric","memory_percent":50}`) {
		t.Errorf("space not flattened: %s", r.body)
	}

	bad := map[string]string{
		"limit=0":                         "limit",
		"limit=10001":                     "from 1 to 10000",
		"limit=ten":                       "limit",
		"since=yesterday":                 "since",
		"until=-1":                        "until is negative",
		"since=2000&until=1000":           "until is before since",
		"type=" + url.QueryEscape("a b"):  "type",
		"type=" + url.QueryEscape("a,,b"): "empty entry",
		"kind=alert":                      "kind",
		"typ=system.cpu":                  `unknown parameter "typ"`,
		"host=a&host=b":                   "given 2 times",
	}
	for params, want := range bad {
		r := get(t, base+"/api/v1/steps?"+params)
		if r.status != 400 {
			t.Errorf("?%s: %d, want 400", params, r.status)
			continue
		}
		if msg := errorOf(t, r); !strings.Contains(msg, want) {
			t.Errorf("?%s: %q, want it to say %q", params, msg, want)
		}
	}

	// Stats and hosts.
	var st stepbus.Stats
	getJSON(t, base+"/api/v1/steps/stats", &st)
	if st.Published != 13 || st.ByType["system.cpu"] != 10 || st.Hosts != 2 || st.HistoryCap != 1000 {
		t.Errorf("stats: %+v", st)
	}
	var hs StepHostsJSON
	getJSON(t, base+"/api/v1/steps/hosts", &hs)
	if len(hs.Hosts) != 2 || hs.Hosts[0].Hostname != "db-2" || len(hs.Hosts[0].Latest) != 2 {
		t.Errorf("hosts: %+v", hs)
	}
}

// TestStepsAbsent: without a bus every STEP endpoint answers 503 and says
// why; the rest of the server works.
func TestStepsAbsent(t *testing.T) {
	leakcheck.Check(t)
	_, ts := newTest(t, Config{Logger: testutil.Discard()})
	for _, p := range []string{"/api/v1/steps", "/api/v1/steps/stats", "/api/v1/steps/hosts", "/api/v1/steps/stream", "/api/v1/steps/ws"} {
		r := get(t, ts.URL+p)
		if r.status != 503 || !strings.Contains(errorOf(t, r), "STEP bus is not running") {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
	}
	if r := post(t, ts.URL+"/api/v1/step", "application/json", `{"event":{"type":"a"}}`); r.status != 503 {
		t.Errorf("POST: %d", r.status)
	}
	var st StatsJSON
	getJSON(t, ts.URL+"/api/v1/stats", &st)
	if st.Components.Steps {
		t.Errorf("components: %+v", st.Components)
	}
	if r := get(t, ts.URL+"/metrics"); strings.Contains(r.body, "stk_steps_") || r.status != 200 {
		t.Errorf("/metrics without a bus: %d, has step families", r.status)
	}
	if r := get(t, ts.URL+"/hosts"); r.status != 200 || !strings.Contains(r.body, `data-nav="hosts"`) {
		t.Errorf("/hosts: %d", r.status)
	}
}

func TestStepMetrics(t *testing.T) {
	leakcheck.Check(t)
	_, base, _ := newStepTest(t, Config{}, stepbus.Config{History: 10})
	for range 3 {
		post(t, base+"/api/v1/step", "application/json", `{"event":{"type":"a.b"},"space":{"hostname":"h"}}`)
	}
	post(t, base+"/api/v1/step", "text/plain", `x`)
	var st StatsJSON
	getJSON(t, base+"/api/v1/stats", &st)
	if !st.Components.Steps {
		t.Errorf("components: %+v", st.Components)
	}
	r := get(t, base+"/metrics")
	val := scrape(t, r.body)
	for _, c := range []struct {
		got, want float64
		what      string
	}{
		{val("stk_steps_published_total"), 3, "published"},
		{val("stk_steps_received_total"), 3, "received"},
		{val("stk_steps_history"), 3, "history"},
		{val("stk_steps_hosts"), 1, "hosts"},
		{val("stk_http_step_posts_total", "result", "accepted"), 3, "accepted posts"},
		{val("stk_http_step_posts_total", "result", "rejected"), 1, "rejected posts"},
		{val("stk_http_step_streams", "transport", "websocket"), 0, "websockets"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestStepStream(t *testing.T) {
	leakcheck.Check(t)
	s, base, bus := newStepTest(t, Config{Heartbeat: 50 * time.Millisecond}, stepbus.Config{History: 100})
	c := openSSE(t, base+"/api/v1/steps/stream?type=system.cpu*&host=web-1")
	ev := c.next()
	var hello struct {
		Instance string         `json:"instance"`
		Filter   StepFilterJSON `json:"filter"`
	}
	if ev.event != "hello" || json.Unmarshal([]byte(ev.data), &hello) != nil || hello.Filter.Pattern != "system.cpu*" || hello.Filter.Host != "web-1" {
		t.Fatalf("first event %+v", ev)
	}
	events := openSSE(t, base+"/api/v1/steps/stream?kind=event")
	events.next()
	testutil.WaitFor(t, 10*time.Second, "two subscribers", func() bool { return bus.Stats().Subscribers == 2 })
	if n := s.stepStats.sseOpen.Load(); n != 2 {
		t.Errorf("%d open streams", n)
	}

	now := time.Now().UnixMilli()
	mustPublish(t, bus,
		mkStep("system.cpu", "web-1", now, map[string]any{"kind": "metric", "cpu_percent": 1.0}),
		mkStep("system.cpu", "db-2", now, map[string]any{"kind": "metric", "cpu_percent": 2.0}),
		mkStep("system.memory", "web-1", now, map[string]any{"kind": "metric"}),
		mkStep("system.cpu.high", "web-1", now+1, map[string]any{"level": "critical"}),
	)
	// Over HTTP as well.
	post(t, base+"/api/v1/step", "application/json", `{"event":{"type":"system.cpu.recovered"},"space":{"hostname":"web-1","level":"recovered"}}`)
	for _, want := range []string{"system.cpu/1", "system.cpu.high/critical", "system.cpu.recovered/recovered"} {
		ev := c.waitFor("step")
		st, err := step.Parse([]byte(ev.data))
		if err != nil {
			t.Fatalf("step event %q: %v", ev.data, err)
		}
		got := st.Event.Type + "/"
		if v, ok := st.Float("cpu_percent"); ok {
			got += fmt.Sprint(v)
		} else {
			got += st.Level()
		}
		if got != want || st.Space.Hostname != "web-1" {
			t.Errorf("got %s on %s, want %s on web-1", got, st.Space.Hostname, want)
		}
	}
	for _, want := range []string{"system.cpu.high", "system.cpu.recovered"} {
		ev := events.waitFor("step")
		if !strings.Contains(ev.data, `"type":"`+want+`"`) {
			t.Errorf("kind=event stream: %s, want %s", ev.data, want)
		}
	}
	if ev := c.waitFor(""); ev.comment != "heartbeat" {
		t.Errorf("comment %q", ev.comment)
	}

	// Bad filters are refused before the stream starts.
	if r := get(t, base+"/api/v1/steps/stream?type=a%20b"); r.status != 400 {
		t.Errorf("bad pattern: %d", r.status)
	}
	// Shutdown ends the streams.
	s.Close()
	for _, cl := range []*sseClient{c, events} {
		select {
		case <-cl.done:
		case <-time.After(10 * time.Second):
			t.Fatal("a stream outlived Close")
		}
	}
	testutil.WaitFor(t, 10*time.Second, "the subscriptions to end", func() bool { return bus.Stats().Subscribers == 0 })
}

// bigStep is a STEP of about 60 KB, to fill socket buffers quickly.
func bigStep(i int) *step.Step {
	return mkStep("load.big", "h", time.Now().UnixMilli(), map[string]any{"n": float64(i), "pad": strings.Repeat("x", 60000)})
}

// fillUntilDropped publishes big STEPs until the bus dropped some for a
// subscriber that does not read, and checks Publish never waited. The
// pace lets the server write what the socket buffers take first.
func fillUntilDropped(t *testing.T, bus *stepbus.Bus) int {
	t.Helper()
	var publishing time.Duration
	n := 0
	for ; bus.Stats().Dropped == 0; n++ {
		if n == 5000 {
			t.Fatalf("%d STEPs (300 MB) published and none dropped", n)
		}
		st := bigStep(n)
		start := time.Now()
		mustPublish(t, bus, st)
		publishing += time.Since(start)
		time.Sleep(time.Millisecond)
	}
	if publishing > time.Second {
		t.Errorf("publishing %d STEPs took %v with a stuck client", n, publishing)
	}
	return n
}

// TestStepStreamSlowClient: a client that stops reading makes the bus drop
// its STEPs (Publish never waits); once the client reads again the stream
// says "dropped" and ends, and the browser reconnects.
func TestStepStreamSlowClient(t *testing.T) {
	leakcheck.Check(t)
	s, base, bus := newStepTest(t, Config{ClientBuffer: 4}, stepbus.Config{History: 16})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/steps/stream", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	testutil.WaitFor(t, 10*time.Second, "the subscription", func() bool { return bus.Stats().Subscribers == 1 })
	n := fillUntilDropped(t, bus)

	// Read on: what was sent, then "dropped", then the end.
	br := bufio.NewReaderSize(res.Body, 1<<20)
	steps, dropped := 0, false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		switch {
		case line == "event: step\n":
			steps++
		case line == "event: dropped\n":
			dropped = true
		}
	}
	if !dropped || steps == 0 || steps >= n {
		t.Errorf("%d of %d STEPs then dropped=%v", steps, n, dropped)
	}
	if got := s.stepStats.sseCut.Load(); got != 1 {
		t.Errorf("%d streams cut", got)
	}
	testutil.WaitFor(t, 10*time.Second, "the subscription to end", func() bool { return bus.Stats().Subscribers == 0 })
	t.Logf("published %d big STEPs; the stuck client got %d before its stream was cut", n, steps)
}
