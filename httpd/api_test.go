package httpd

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/smartbeat"
)

const evilName = `<script>alert(1)</script> "quoted" & 'single'`

// newTest starts a Server for cfg behind an httptest server; both close
// when the test ends.
func newTest(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	t.Cleanup(func() { s.Close() }) // runs first: ends the event streams
	return s, ts
}

type response struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, url string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, string(b)}
}

func getJSON(t *testing.T, url string, v any) response {
	t.Helper()
	r := get(t, url)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: Content-Type %q, want JSON", url, ct)
	}
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, r.body)
	}
	return r
}

// world is a fake monitor and name server with a few records.
func world(t *testing.T) (*fakeMonitor, *fakeNames, Config) {
	mon := newFakeMonitor(4096)
	mon.create("demo monitored service", "", smartbeat.Running, "127.0.0.1:59356")
	b := mon.create(evilName, "grp <b>", smartbeat.Starting, "10.0.0.2:40000")
	mon.setState(b, 129, "custom \"state\"")
	c := mon.create("gone", "grp <b>", smartbeat.Running, "10.0.0.3:40001")
	mon.timeOut(c)
	names := &fakeNames{stats: namesvc.ServerStats{ID: 0xabc, Registers: 7, Lookups: 3}}
	names.add(namesvc.Entry{
		Info: namesvc.Info{Name: "monitor", Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:20001")}},
			Linger: 300 * time.Second, FT: namesvc.FTActive,
			Meta: []seq.Element{{UserType: 0x1000, Data: []byte("tcp:127.0.0.1:20001\x00")}}},
		Registrant: netip.MustParseAddrPort("127.0.0.1:51000"), Transport: flow.TCP, Registered: time.Now(),
	})
	names.add(namesvc.Entry{
		Info:       namesvc.Info{Name: evilName, Group: "g\"1", Linger: 5 * time.Second},
		Registrant: netip.MustParseAddrPort("127.0.0.1:51001"), Transport: flow.UDP, Registered: time.Now(),
		Lingering: true, Expires: time.Now().Add(5 * time.Second),
	})
	flows := func() []FlowInfo {
		return []FlowInfo{
			{Name: "names-tcp", Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:20002"), Stats: flow.Stats{SequencesIn: 10, SequencesOut: 12, BytesIn: 1000, Connections: 2}},
			{Name: `we"ird\name` + "\n", Protocol: "udp", Stats: flow.Stats{Dropped: 1, LostSequences: 4, LostFragments: 9, ReceiveDrops: 2}},
		}
	}
	return mon, names, Config{Monitor: mon, Names: names, Flows: flows, Version: "v0.test"}
}

func TestSnapshotAndServices(t *testing.T) {
	leakcheck.Check(t)
	mon, _, cfg := world(t)
	_, ts := newTest(t, cfg)
	t0 := time.Now()
	for i := range 5 { // after New: the server keeps the intervals it sees
		mon.beat(1, uint64(i+1), t0.Add(time.Duration(i)*500*time.Millisecond))
	}

	var snap SnapshotJSON
	r := getJSON(t, ts.URL+"/api/v1/snapshot", &snap)
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if snap.Seq != mon.Stats().LastEvent || snap.Instance == "" || snap.Now.IsZero() {
		t.Errorf("snapshot header: seq %d instance %q now %v", snap.Seq, snap.Instance, snap.Now)
	}
	if len(snap.Services) != 2 || len(snap.History) != 1 {
		t.Fatalf("%d services, %d in history; want 2 and 1", len(snap.Services), len(snap.History))
	}
	a := snap.Services[0]
	if a.Name != "demo monitored service" || a.HexID != "0x3c90549" || a.TypeName != "Data" || a.State != 2 ||
		a.StateName != "running" || a.StateDefault != "running" || a.Checkpoint != 5 || a.Peer != "127.0.0.1:59356" ||
		a.Host != "127.0.0.1" || a.Port != 59356 || a.Protocol != "tcp" || !a.Current || a.Beats != 5 ||
		a.ActivityTimeoutMS != 1200 || a.IntervalMS != 500 || a.LastReceived == nil || a.Ended != nil {
		t.Errorf("service a: %+v", a)
	}
	// The hub saw the beats: four intervals of 500 ms.
	if len(a.BeatIntervals) != 4 || a.BeatIntervals[0] != 500 {
		t.Errorf("beat intervals %v, want four of 500 ms", a.BeatIntervals)
	}
	b := snap.Services[1]
	if b.Name != evilName || b.Group != "grp <b>" || b.State != 129 || b.StateName != `custom "state"` || b.StateDefault != "" {
		t.Errorf("service b: %+v", b)
	}
	h := snap.History[0]
	if h.Current || h.EndReason != "timed out" || h.Verdict == nil || h.Verdict.Detector != "activity-timeout" || !strings.Contains(h.Verdict.Reason, "no smartbeat") {
		t.Errorf("history record: %+v verdict %+v", h, h.Verdict)
	}

	// Strings are data in JSON: no raw markup in the body.
	if strings.Contains(r.body, "<script>") || !strings.Contains(r.body, `\u003cscript\u003e`) {
		t.Errorf("the name is not escaped as JSON data:\n%s", r.body)
	}

	var cur ServicesJSON
	getJSON(t, ts.URL+"/api/v1/services", &cur)
	if len(cur.Services) != 2 || cur.Seq != snap.Seq {
		t.Errorf("/services: %d services seq %d", len(cur.Services), cur.Seq)
	}
	var hist ServicesJSON
	getJSON(t, ts.URL+"/api/v1/history", &hist)
	if len(hist.Services) != 1 || hist.Services[0].Name != "gone" {
		t.Errorf("/history: %+v", hist.Services)
	}
	var one ServiceJSON
	if r := getJSON(t, ts.URL+"/api/v1/services/2", &one); r.status != 200 || one.Name != evilName {
		t.Errorf("/services/2: %d %+v", r.status, one)
	}
	if r := getJSON(t, ts.URL+"/api/v1/services/3", &one); r.status != 200 || one.Name != "gone" {
		t.Errorf("/services/3 (history): %d %+v", r.status, one)
	}
	for _, p := range []string{"/api/v1/services/99", "/api/v1/services/x"} {
		var e ErrorJSON
		if r := getJSON(t, ts.URL+p, &e); r.status != 404 || e.Error == "" {
			t.Errorf("%s: %d %+v", p, r.status, e)
		}
	}

	var groups GroupsJSON
	getJSON(t, ts.URL+"/api/v1/groups", &groups)
	if len(groups.Groups) != 1 || groups.Groups[0].Name != "grp <b>" || len(groups.Groups[0].Current) != 1 || groups.Groups[0].History != 1 {
		t.Errorf("/groups: %+v", groups)
	}
}

func TestNamesAPI(t *testing.T) {
	leakcheck.Check(t)
	_, _, cfg := world(t)
	cfg.NamesLimit = 1
	_, ts := newTest(t, cfg)

	var all NamesJSON
	r := getJSON(t, ts.URL+"/api/v1/names", &all)
	if all.Total != 2 || all.Matches != 2 || len(all.Names) != 1 || !all.Truncated {
		t.Errorf("all names (limit 1): %+v", all)
	}
	m := all.Names[0]
	if m.Name != "monitor" || m.FT != "active" || m.LingerMS != 300000 || len(m.Addresses) != 1 ||
		m.Addresses[0].Text != "tcp:127.0.0.1:20001" || m.Registrant != "127.0.0.1:51000" || m.Transport != "tcp" ||
		len(m.Meta) != 1 || m.Meta[0].Type != "0x1000" || m.Meta[0].Text != "tcp:127.0.0.1:20001" || m.Lingering {
		t.Errorf("monitor entry: %+v", m)
	}
	if strings.Contains(r.body, "<") {
		t.Errorf("raw < in JSON")
	}

	var q NamesJSON
	getJSON(t, ts.URL+"/api/v1/names?q=SCRIPT", &q)
	if q.Matches != 1 || q.Names[0].Name != evilName || q.Names[0].Group != `g"1` || !q.Names[0].Lingering || q.Names[0].Expires == nil || q.Names[0].FT != "unset" {
		t.Errorf("q=SCRIPT: %+v", q)
	}
	getJSON(t, ts.URL+"/api/v1/names?q=20001", &q)
	if q.Matches != 1 || q.Names[0].Name != "monitor" {
		t.Errorf("search by address: %+v", q)
	}
	getJSON(t, ts.URL+"/api/v1/names?group=", &q)
	if q.Matches != 1 || q.Names[0].Name != "monitor" {
		t.Errorf("default group only: %+v", q)
	}
	getJSON(t, ts.URL+"/api/v1/names?q=nothing-like-this", &q)
	if q.Matches != 0 || q.Names == nil {
		t.Errorf("no match must be an empty list: %+v", q)
	}
}

func TestFlowsAndStats(t *testing.T) {
	leakcheck.Check(t)
	_, _, cfg := world(t)
	started := time.Now().Add(-time.Hour)
	cfg.Started = started
	_, ts := newTest(t, cfg)

	var fl FlowsJSON
	getJSON(t, ts.URL+"/api/v1/flows", &fl)
	if len(fl.Flows) != 2 || fl.Flows[0].Name != "names-tcp" || fl.Flows[0].Addr != "127.0.0.1:20002" ||
		fl.Flows[0].SequencesIn != 10 || fl.Flows[0].Connections != 2 || fl.Flows[1].Addr != "" || fl.Flows[1].Dropped != 1 {
		t.Errorf("flows: %+v", fl)
	}
	var st StatsJSON
	getJSON(t, ts.URL+"/api/v1/stats", &st)
	if !st.Components.Monitor || !st.Components.Names || !st.Components.Flows || st.Monitor == nil || st.Names == nil || len(st.Flows) != 2 {
		t.Fatalf("stats components: %+v", st)
	}
	if st.Daemon.Version != "v0.test" || !st.Daemon.Started.Equal(started) || st.Daemon.UptimeMS < 3.5e6 ||
		st.Daemon.Goroutines == 0 || st.Daemon.HeapBytes == 0 || !strings.HasPrefix(st.Daemon.GoVersion, "go") {
		t.Errorf("daemon: %+v", st.Daemon)
	}
	if st.Monitor.Current != 2 || st.Monitor.History != 1 || st.Monitor.TimedOut != 1 || st.Monitor.Listeners[0] != "tcp:127.0.0.1:20001" {
		t.Errorf("monitor stats: %+v", st.Monitor)
	}
	if st.Names.ID != "0xabc" || st.Names.Registrations != 2 || st.Names.Registers != 7 {
		t.Errorf("names stats: %+v", st.Names)
	}
}

// TestComponentsMissing: nil components (and a nil pointer in the
// interface) make their endpoints 503 and the stats say so.
func TestComponentsMissing(t *testing.T) {
	leakcheck.Check(t)
	var nilMon *smartbeat.Monitor
	var nilNames *namesvc.Server
	_, ts := newTest(t, Config{Monitor: nilMon, Names: nilNames})
	for _, p := range []string{"/api/v1/snapshot", "/api/v1/services", "/api/v1/services/1", "/api/v1/history", "/api/v1/groups", "/api/v1/names", "/api/v1/flows"} {
		var e ErrorJSON
		if r := getJSON(t, ts.URL+p, &e); r.status != 503 || !strings.Contains(e.Error, "not") {
			t.Errorf("%s: %d %+v", p, r.status, e)
		}
	}
	var st StatsJSON
	if r := getJSON(t, ts.URL+"/api/v1/stats", &st); r.status != 200 {
		t.Fatalf("stats: %d", r.status)
	}
	if st.Components.Monitor || st.Components.Names || st.Components.Flows || st.Monitor != nil || st.Names != nil || st.Flows != nil {
		t.Errorf("stats of nothing: %+v", st)
	}
	if st.Daemon.Version == "" {
		t.Errorf("no version from the build information")
	}
	if r := get(t, ts.URL+"/metrics"); r.status != 200 || strings.Contains(r.body, "stk_services") {
		t.Errorf("metrics without a monitor: %d\n%s", r.status, r.body)
	}
	if r := get(t, ts.URL+"/"); r.status != 200 {
		t.Errorf("the app without components: %d", r.status)
	}
}

func TestPagesAssetsAndNotFound(t *testing.T) {
	leakcheck.Check(t)
	_, _, cfg := world(t)
	_, ts := newTest(t, cfg)

	for _, p := range []string{"/", "/services", "/groups", "/names", "/daemon", "/services/1", "/services/3"} {
		r := get(t, ts.URL+p)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(r.body, `<script src="/assets/app.js"`) {
			t.Errorf("GET %s: %d %s", p, r.status, r.header.Get("Content-Type"))
		}
	}
	for p, ct := range map[string]string{"/assets/app.js": "text/javascript", "/assets/style.css": "text/css", "/assets/favicon.svg": "image/svg+xml", "/favicon.ico": "image/svg+xml"} {
		r := get(t, ts.URL+p)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), ct) || r.header.Get("ETag") == "" {
			t.Errorf("GET %s: %d %q etag %q", p, r.status, r.header.Get("Content-Type"), r.header.Get("ETag"))
		}
		if r2 := get(t, ts.URL+p, "If-None-Match", r.header.Get("ETag")); r2.status != 304 {
			t.Errorf("GET %s with its ETag: %d, want 304", p, r2.status)
		}
	}

	// Unknown paths are 404: a page, JSON under /api/, and the app for
	// a record the monitor does not have.
	for _, p := range []string{"/nope", "/services/99", "/services/x", "/assets/nope.js", "/assets/index.html", "/index.html", "/js/d3.v3.min.js", "/services_data", "/service_groups/", "/services/1/x"} {
		r := get(t, ts.URL+p)
		if r.status != 404 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: %d %q, want a 404 page", p, r.status, r.header.Get("Content-Type"))
		}
	}
	for _, p := range []string{"/api/v1/nope", "/api/v2/services", "/api/"} {
		var e ErrorJSON
		if r := getJSON(t, ts.URL+p, &e); r.status != 404 || e.Error == "" {
			t.Errorf("GET %s: %d %+v", p, r.status, e)
		}
	}
	// A method the path does not take is 405, not 404.
	res, err := http.Post(ts.URL+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 405 {
		t.Errorf("POST /metrics: %d, want 405", res.StatusCode)
	}

	// The 404 page escapes the path.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/x", nil)
	req.URL.Path = `/<script>alert("x")</script>`
	New404(t, cfg).ServeHTTP(rec, req)
	if rec.Code != 404 || strings.Contains(rec.Body.String(), "<script>") || !strings.Contains(rec.Body.String(), "&lt;script&gt;") {
		t.Errorf("404 page: %d\n%s", rec.Code, rec.Body.String())
	}

	if r := get(t, ts.URL+"/healthz"); r.status != 200 || r.body != "ok\n" {
		t.Errorf("/healthz: %d %q", r.status, r.body)
	}
}

// New404 returns the handler of a fresh server (closed with the test).
func New404(t *testing.T, cfg Config) http.Handler {
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Handler()
}

func TestSecurityHeaders(t *testing.T) {
	leakcheck.Check(t)
	_, _, cfg := world(t)
	_, ts := newTest(t, cfg)
	for _, p := range []string{"/", "/assets/app.js", "/api/v1/stats", "/metrics", "/healthz", "/nope", "/api/nope"} {
		r := get(t, ts.URL+p)
		csp := r.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", p, r.header)
		}
	}
}

// TestAssetsSelfContained: the UI loads nothing from elsewhere and puts
// no data into the DOM as markup.
func TestAssetsSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//|fetch\(\s*["']https?:`)
	for name, a := range assets {
		body := string(a.body)
		if m := external.FindString(body); m != "" {
			t.Errorf("%s refers to another origin: %q", name, m)
		}
	}
	js := string(assets["app.js"].body)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	html := string(assets["index.html"].body)
	if strings.Contains(html, "<style") || regexp.MustCompile(`<script>`).MatchString(html) || strings.Contains(html, " style=") || strings.Contains(html, " on") && regexp.MustCompile(`\son[a-z]+=`).MatchString(html) {
		t.Errorf("index.html has inline script or style (the CSP forbids them)")
	}
}
