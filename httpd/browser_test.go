package httpd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/servetest"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// The service the browser test starts, stops and kills: its name must
// show as text.
const browserServiceName = `demo <script>alert(1)</script> "svc"`

func TestMain(m *testing.M) {
	if os.Getenv("STK_HTTPD_HELPER_SERVICE") != "" {
		os.Exit(helperService())
	}
	os.Exit(m.Run())
}

// helperService is a monitored process of TestBrowser: real smartbeat
// services reporting to $STK_MONITOR. The "main" one obeys commands on
// stdin ("checkpoint N", "state N", answered "ok") until the test kills
// it; the "neighbours" make the page look like a real one.
func helperService() int {
	quiet := testutil.Discard()
	monitor := os.Getenv("STK_MONITOR")
	open := func(name string, st smartbeat.State, opts smartbeat.Options) *smartbeat.Service {
		opts.Monitor, opts.Logger = monitor, quiet
		svc, err := smartbeat.NewService(name, opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(2)
		}
		if st != smartbeat.Starting {
			svc.SetState(st)
		}
		return svc
	}
	var svc *smartbeat.Service
	if os.Getenv("STK_HTTPD_HELPER_SERVICE") == "neighbours" {
		billing := open("billing", 129, smartbeat.Options{StateNames: map[smartbeat.State]string{129: "reconciling"}})
		open("ingest-eu-1", smartbeat.Running, smartbeat.Options{Type: smartbeat.TypeIO}).SetCheckpoint(1204)
		open("archiver", smartbeat.Stopping, smartbeat.Options{Type: smartbeat.TypeMgmt}).SetCheckpoint(77)
		go func() {
			for range time.Tick(100 * time.Millisecond) {
				billing.AddCheckpoint(3)
			}
		}()
	} else {
		svc = open(browserServiceName, smartbeat.Starting, smartbeat.Options{})
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || svc == nil {
			continue
		}
		n, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "checkpoint":
			svc.SetCheckpoint(n)
		case "state":
			svc.SetState(smartbeat.State(n))
		}
		fmt.Println("ok")
	}
	return 0 // stdin closed: exit without DESTROY, as a crash would
}

// helper is a running helperService process.
type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

func startHelper(t *testing.T, role, monitor string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STK_HTTPD_HELPER_SERVICE="+role, "STK_MONITOR="+monitor)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	t.Cleanup(h.kill)
	h.expect("ready")
	return h
}

func (h *helper) expect(line string) {
	h.t.Helper()
	if !h.out.Scan() || h.out.Text() != line {
		h.t.Fatalf("helper said %q (%v), want %q", h.out.Text(), h.out.Err(), line)
	}
}

func (h *helper) command(c string) {
	h.t.Helper()
	fmt.Fprintln(h.stdin, c)
	h.expect("ok")
}

// kill ends the process with SIGKILL: no DESTROY is sent.
func (h *helper) kill() {
	if h.cmd.ProcessState == nil {
		h.cmd.Process.Kill()
		h.cmd.Wait()
	}
}

// pageLog collects what the page reports through the DevTools protocol.
type pageLog struct {
	mu          sync.Mutex
	navigations int
	problems    []string // exceptions, console errors, CSP violations, dialogs
	requests    []string
}

func (l *pageLog) event(m cdpMessage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch m.Method {
	case "Page.frameNavigated":
		var p struct {
			Frame struct {
				ParentID string `json:"parentId"`
				URL      string `json:"url"`
			} `json:"frame"`
		}
		json.Unmarshal(m.Params, &p)
		if p.Frame.ParentID == "" && strings.HasPrefix(p.Frame.URL, "http") {
			l.navigations++
		}
	case "Runtime.exceptionThrown":
		l.problems = append(l.problems, "exception: "+string(m.Params))
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
		}
		json.Unmarshal(m.Params, &p)
		if p.Type == "error" || p.Type == "warning" || p.Type == "assert" {
			l.problems = append(l.problems, "console: "+string(m.Params))
		}
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Level, Text, URL string
			} `json:"entry"`
		}
		json.Unmarshal(m.Params, &p)
		// The event stream's reconnects are not problems; anything else
		// at error level (a CSP violation, a failed asset) is.
		if p.Entry.Level == "error" && !strings.Contains(p.Entry.URL, "/api/v1/events") {
			l.problems = append(l.problems, "log: "+p.Entry.Text+" "+p.Entry.URL)
		}
	case "Page.javascriptDialogOpening":
		l.problems = append(l.problems, "dialog: "+string(m.Params))
	case "Network.requestWillBeSent":
		var p struct {
			Request struct {
				URL string `json:"url"`
			} `json:"request"`
		}
		json.Unmarshal(m.Params, &p)
		l.requests = append(l.requests, p.Request.URL)
	}
}

// watchedPage starts the browser and opens a page whose reports
// (navigations, problems and, with the network domain on, requests) a
// pageLog collects.
func watchedPage(t *testing.T) (*browser, string, *pageLog) {
	t.Helper()
	plog := &pageLog{}
	b := startBrowser(t, chromiumPath, plog.event)
	page := b.page()
	b.must(page, "Network.enable", nil)
	return b, page, plog
}

// checkProblems fails t for each problem the page reported.
func (l *pageLog) checkProblems(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.problems {
		t.Errorf("page problem: %s", p)
	}
}

// checkOnePage fails t unless the page loaded once and kept the marker a
// test set in it (loaded, window.__loadedOnce, is "yes"), reported no
// problem and requested nothing outside base (data: URLs aside).
func (l *pageLog) checkOnePage(t *testing.T, loaded, base string) {
	t.Helper()
	l.mu.Lock()
	if loaded != "yes" || l.navigations != 1 {
		t.Errorf("the page loaded %d times (marker %q), want once", l.navigations, loaded)
	}
	for _, u := range l.requests {
		if !strings.HasPrefix(u, base+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("request to another origin: %s", u)
		}
	}
	l.mu.Unlock()
	l.checkProblems(t)
}

// TestBrowser drives the UI in headless Chromium against a real
// smartbeat Monitor and real services in another process: the service
// appears, its checkpoint and state change without a reload, and it
// times out once killed. Screenshots go to the test's temp dir, and to
// $STK_UI_SCREENSHOTS when set.
func TestBrowser(t *testing.T) {
	needBrowser(t)
	quiet := testutil.Discard()

	// A daemon: name server, monitor registered with it, the UI.
	ns, nsAddr := servetest.Names(t, namesvc.ServerConfig{Logger: quiet}, "127.0.0.1:0")
	mon, monAddr := servetest.Monitor(t, smartbeat.MonitorConfig{NameServerAddr: "tcp:" + nsAddr.String(), Logger: quiet}, "127.0.0.1:0")
	flows := func() []FlowInfo {
		var out []FlowInfo
		for comp, fs := range map[string][]flow.Flow{"names": ns.Flows(), "monitor": mon.Flows()} {
			for _, f := range fs {
				out = append(out, FlowInfo{Name: comp + "-" + f.Protocol().String(), Protocol: f.Protocol().String(), Addr: f.LocalAddr(), Stats: f.Stats()})
			}
		}
		return out
	}
	srv, err := New(Config{Monitor: mon, Names: ns, Flows: flows, Version: "v0.0.0-browsertest", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	base := serveLoopback(t, srv)

	shots := t.TempDir()
	b, page, plog := watchedPage(t)
	desktop := map[string]any{"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}
	b.must(page, "Emulation.setDeviceMetricsOverride", desktop)
	b.must(page, "Page.navigate", map[string]any{"url": base + "/services"})
	b.waitUntil(page, "the page loaded and live", `!!document.querySelector('#live.on') && !!document.querySelector('tbody#current')`, 15*time.Second)
	b.eval(page, `window.__loadedOnce = 'yes'`, nil)

	// Start the services.
	startHelper(t, "neighbours", "tcp:"+monAddr.String())
	child := startHelper(t, "main", "tcp:"+monAddr.String())

	nameJS, _ := json.Marshal(browserServiceName)
	row := `[...document.querySelectorAll('#current tr.svc')].find(r => r.querySelector('.name').textContent === ` + string(nameJS) + `)`
	histRow := `[...document.querySelectorAll('#history tr.svc')].find(r => r.querySelector('.name').textContent === ` + string(nameJS) + `)`

	// It appears, starting.
	b.waitUntil(page, "the service to appear", `(() => { const r = `+row+`; return !!r && r.querySelector('.badge.state').textContent === 'starting'; })()`, 10*time.Second)
	// Checkpoint and state change live.
	child.command("checkpoint 42")
	b.waitUntil(page, "checkpoint 42", `(() => { const r = `+row+`; return !!r && r.querySelector('td.checkpoint').textContent === '42'; })()`, 10*time.Second)
	child.command("state 2")
	b.waitUntil(page, "state running", `(() => { const b = (`+row+`).querySelector('.badge.state'); return b.textContent === 'running' && b.classList.contains('s-running'); })()`, 10*time.Second)
	// Enough smartbeats for a sparkline.
	b.waitUntil(page, "a sparkline", `!!(`+row+`).querySelector('svg.spark polyline')`, 10*time.Second)
	b.waitUntil(page, "the neighbours", `document.querySelectorAll('#current tr.svc').length === 4`, 10*time.Second)

	var state struct {
		Loaded   string `json:"loaded"`
		Scripts  int    `json:"scripts"`
		NameText string `json:"name"`
		Title    string `json:"title"`
	}
	if err := b.eval(page, `({loaded: window.__loadedOnce, scripts: document.scripts.length, name: (`+row+`).querySelector('.name').textContent, title: document.title})`, &state); err != nil {
		t.Fatal(err)
	}
	if state.Loaded != "yes" {
		t.Errorf("the page was reloaded")
	}
	if state.Scripts != 1 || state.NameText != browserServiceName {
		t.Errorf("the name is not shown as text: %d scripts, name %q", state.Scripts, state.NameText)
	}
	save(t, shots, "services.png", b.screenshot(page))

	// Kill it: no DESTROY; it must time out.
	child.kill()
	killedAt := time.Now()
	b.waitUntil(page, "the timeout", `(() => { const r = `+histRow+`; return !!r && !(`+row+`) && r.querySelector('.badge.end').textContent === 'timed out' && r.querySelector('td.why').textContent.length > 3; })()`, 10*time.Second)
	t.Logf("timed out in the page %v after the kill", time.Since(killedAt).Round(10*time.Millisecond))
	var why string
	b.eval(page, `(`+histRow+`).querySelector('td.why').textContent`, &why)
	t.Logf("the page says why: %q", why)
	var loaded string
	b.eval(page, `window.__loadedOnce`, &loaded)
	if loaded != "yes" {
		t.Errorf("the page was reloaded")
	}
	save(t, shots, "stk-ui-screenshot.png", b.screenshot(page))

	// The other pages, through the nav (no reload either).
	b.eval(page, `document.querySelector('#nav a[data-nav=names]').click()`, nil)
	b.waitUntil(page, "the monitor's name", `[...document.querySelectorAll('#names tr .name')].some(e => e.textContent === 'monitor')`, 10*time.Second)
	b.eval(page, `document.querySelector('#nav a[data-nav=daemon]').click()`, nil)
	b.waitUntil(page, "the flows", `document.querySelectorAll('#flows tr').length >= 2`, 10*time.Second)
	save(t, shots, "daemon.png", b.screenshot(page))

	// A phone.
	b.must(page, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": true})
	b.eval(page, `document.querySelector('#nav a[data-nav=services]').click()`, nil)
	b.waitUntil(page, "the services on a phone", `!!(`+histRow+`)`, 10*time.Second)
	var width int
	b.eval(page, `document.documentElement.scrollWidth`, &width)
	if width > 375 {
		t.Errorf("the page is %d px wide on a 375 px screen", width)
	}
	save(t, shots, "stk-ui-screenshot-phone.png", b.screenshot(page))
	b.eval(page, `window.__loadedOnce`, &loaded)

	plog.checkOnePage(t, loaded, base)
}

// save writes a screenshot to the test's temp dir, and to
// $STK_UI_SCREENSHOTS when set.
func save(t *testing.T, dir, name string, png []byte) {
	t.Helper()
	dirs := []string{dir}
	if d := os.Getenv("STK_UI_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Error(err)
			continue
		}
		t.Logf("screenshot %s (%d bytes)", p, len(png))
	}
}

// dropStreams ends every open event stream, as a slow client is dropped;
// browsers reconnect with Last-Event-ID.
func (h *hub) dropStreams() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		delete(h.clients, c)
		c.drop()
	}
}

// TestBrowserFake drives the pages the real-service test does not reach
// (groups, one service, names search and live names) and the client's
// resume and reset after its stream is cut, against the fake monitor.
func TestBrowserFake(t *testing.T) {
	needBrowser(t)
	mon, names, cfg := world(t)
	mon.ringSize = 20
	cfg.NamesInterval = 50 * time.Millisecond
	cfg.Logger = testutil.Discard()
	cfg.Retry = 100 * time.Millisecond
	// A group of three, one of which left.
	r1 := mon.create("render-1", "render farm", smartbeat.Running, "10.0.0.5:41000")
	mon.create("render-2", "render farm", 130, "10.0.0.6:41000")
	mon.timeOut(mon.create("render-3", "render farm", smartbeat.Running, "10.0.0.7:41000"))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := serveLoopback(t, s)
	for i := range 8 { // beats for the sparklines
		mon.beat(1, uint64(i), time.Now().Add(time.Duration(i)*500*time.Millisecond+time.Duration(i%3)*40*time.Millisecond))
		mon.beat(r1, uint64(100+i), time.Now().Add(time.Duration(i)*250*time.Millisecond))
	}

	shots := t.TempDir()
	b, page, plog := watchedPage(t)
	b.must(page, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false})
	b.must(page, "Page.navigate", map[string]any{"url": base + "/groups"})
	b.waitUntil(page, "the group", `!!document.querySelector('#live.on') && [...document.querySelectorAll('.group-card .gname')].some(e => e.textContent === 'grp <b>') && document.querySelectorAll('.group-card').length === 2`, 15*time.Second)
	b.eval(page, `window.__loadedOnce = 'yes'`, nil)
	renderRow := `[...document.querySelectorAll('.group-card tr.svc')].find(r => r.querySelector('.name').textContent === 'render-1')`
	mon.beat(r1, 4242, time.Now())
	b.waitUntil(page, "the group member's checkpoint", `(`+renderRow+`).querySelector('td.checkpoint').textContent === '4,242'`, 10*time.Second)
	save(t, shots, "groups.png", b.screenshot(page))

	// Cut the stream; what happens meanwhile arrives after the reconnect
	// (Last-Event-ID), without a reload.
	s.hub.dropStreams()
	mon.setState(r1, smartbeat.Stopping, "")
	mon.beat(r1, 4343, time.Now())
	b.waitUntil(page, "the events missed while cut", `(() => { const r = `+renderRow+`; return r.querySelector('.badge.state').textContent === 'stopping' && r.querySelector('td.checkpoint').textContent === '4,343'; })()`, 10*time.Second)
	// Cut it again and let the ring forget: the server sends reset and the
	// page loads the snapshot again.
	s.hub.dropStreams()
	for i := range 30 {
		mon.beat(r1, uint64(5000+i), time.Now())
	}
	b.waitUntil(page, "the snapshot after a reset", `(`+renderRow+`).querySelector('td.checkpoint').textContent === '5,029'`, 10*time.Second)
	var applied uint64
	b.eval(page, `stk.applied`, &applied)
	if want := mon.Stats().LastEvent; applied != want {
		t.Errorf("the page applied up to event %d, the monitor is at %d", applied, want)
	}

	// One service: the timed-out group member, with its verdict.
	b.eval(page, `document.querySelector('#nav a[data-nav=services]').click()`, nil)
	b.waitUntil(page, "history", `[...document.querySelectorAll('#history .name')].some(e => e.textContent === 'render-3')`, 10*time.Second)
	b.eval(page, `[...document.querySelectorAll('#history .name')].find(e => e.textContent === 'render-3').click()`, nil)
	b.waitUntil(page, "the service page", `location.pathname.startsWith('/services/') && !!document.querySelector('.verdict') && document.querySelector('h1').textContent.startsWith('render-3')`, 10*time.Second)
	save(t, shots, "service.png", b.screenshot(page))

	// Names: search, and a registration shows without a reload.
	b.eval(page, `document.querySelector('#nav a[data-nav=names]').click()`, nil)
	b.waitUntil(page, "the names", `document.querySelectorAll('#names tr').length === 2`, 10*time.Second)
	b.eval(page, `(() => { const i = document.querySelector('input[type=search]'); i.value = 'SCRIPT'; i.dispatchEvent(new Event('input')); })()`, nil)
	nameJS, _ := json.Marshal(evilName)
	b.waitUntil(page, "the search", `document.querySelectorAll('#names tr').length === 1 && document.querySelector('#names .name').textContent === `+string(nameJS), 10*time.Second)
	b.eval(page, `(() => { const i = document.querySelector('input[type=search]'); i.value = ''; i.dispatchEvent(new Event('input')); })()`, nil)
	names.add(namesvc.Entry{Info: namesvc.Info{Name: "late-comer", Addresses: []namesvc.Endpoint{{Protocol: "udp", Addr: netip.MustParseAddrPort("10.1.2.3:5000")}}}, Registered: time.Now()})
	b.waitUntil(page, "the new name", `[...document.querySelectorAll('#names .name')].some(e => e.textContent === 'late-comer')`, 10*time.Second)
	save(t, shots, "names.png", b.screenshot(page))
	// The same on a phone, dark.
	b.must(page, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": true})
	b.must(page, "Emulation.setEmulatedMedia", map[string]any{"features": []map[string]string{{"name": "prefers-color-scheme", "value": "dark"}}})
	var width int
	b.eval(page, `document.documentElement.scrollWidth`, &width)
	if width > 375 {
		t.Errorf("the names page is %d px wide on a 375 px screen", width)
	}
	save(t, shots, "names-phone-dark.png", b.screenshot(page))
	b.eval(page, `document.querySelector('#nav a[data-nav=groups]').click()`, nil)
	b.waitUntil(page, "the groups", `document.querySelectorAll('.group-card').length === 2`, 10*time.Second)
	b.eval(page, `document.documentElement.scrollWidth`, &width)
	if width > 375 {
		t.Errorf("the groups page is %d px wide on a 375 px screen", width)
	}
	save(t, shots, "groups-phone-dark.png", b.screenshot(page))

	var loaded string
	b.eval(page, `window.__loadedOnce`, &loaded)
	var scripts int
	b.eval(page, `document.scripts.length`, &scripts)

	// A daemon without monitor, name server or flows: each page says so.
	empty, err := New(Config{Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	eln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go empty.Serve(eln)
	t.Cleanup(func() { empty.Close() })
	page2 := b.page()
	b.must(page2, "Page.navigate", map[string]any{"url": "http://" + eln.Addr().String() + "/services"})
	b.waitUntil(page2, "the monitor's absence", `!!document.querySelector('#live.on') && document.querySelector('.notice').textContent.includes('service monitor is not running')`, 10*time.Second)
	b.eval(page2, `document.querySelector('#nav a[data-nav=names]').click()`, nil)
	b.waitUntil(page2, "the name server's absence", `document.querySelector('.notice').textContent.includes('name server is not running')`, 10*time.Second)
	b.eval(page2, `document.querySelector('#nav a[data-nav=daemon]').click()`, nil)
	b.waitUntil(page2, "the daemon page", `document.querySelectorAll('.card h3').length === 4 && document.querySelectorAll('.card .empty').length === 2 && document.querySelector('.notice').textContent.includes('does not report')`, 10*time.Second)

	plog.mu.Lock()
	if loaded != "yes" || plog.navigations != 2 {
		t.Errorf("%d page loads for two pages (marker %q), want each loaded once", plog.navigations, loaded)
	}
	plog.mu.Unlock()
	if scripts != 1 {
		t.Errorf("%d script elements, want app.js only", scripts)
	}
	plog.checkProblems(t)
}
