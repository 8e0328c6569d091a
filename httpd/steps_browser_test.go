package httpd

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"
	"github.com/stk-go/stk/stepbus"
)

// evilHost is a hostname the Hosts page must show as text.
const evilHost = `db<img src=x onerror=alert(1)>`

// hostMetrics returns the metric STEPs a host monitor reports at t, with
// the types and fields of hostmon's documentation; v moves the values.
func hostMetrics(host string, t time.Time, v float64, gpus int) []*step.Step {
	m := func(typ string, fields map[string]any) *step.Step {
		st := step.New(typ, typ, host, t)
		st.Space.IP = "10.0.0.7"
		st.Set("kind", "metric")
		for k, x := range fields {
			st.Set(k, x)
		}
		return st
	}
	out := []*step.Step{
		m("system.cpu", map[string]any{"cpu_percent": 20 + v, "load1": 0.5 + v/100, "cores_logical": 8.0}),
		m("system.memory", map[string]any{"memory_percent": 40 + v/2, "memory_total_bytes": 16e9, "swap_percent": 5.0, "swap_total_bytes": 2e9}),
		m("system.disk", map[string]any{"mountpoint": "/", "disk_percent": 61.0}),
		m("system.disk", map[string]any{"mountpoint": "/data", "disk_percent": 87.5}),
		m("system.network", map[string]any{"interface": "eth0", "rx_bytes_per_sec": 1.5e6 + v*1e4, "tx_bytes_per_sec": 2e5}),
		m("system.network", map[string]any{"interface": "lo", "rx_bytes_per_sec": 9e9, "tx_bytes_per_sec": 9e9}),
		m("system.diskio", map[string]any{"device": "sda", "read_bytes_per_sec": 3e6, "write_bytes_per_sec": 1e6 + v*1e4}),
		m("system.host", map[string]any{"os": "linux", "platform": "debian", "platform_version": "13", "kernel": "6.12.0", "uptime_seconds": 86400.0}),
		m("service.process", map[string]any{"service": "billing", "pid": 4242.0, "cpu_percent": 3.5, "rss_bytes": 52e6, "threads": 9.0}),
	}
	for g := range gpus {
		out = append(out, m("system.gpu", map[string]any{"gpu_index": float64(g), "gpu_name": "Test GPU", "gpu_percent": 30 + v + float64(g*10), "gpu_memory_percent": 50.0 + float64(g)}))
	}
	return out
}

// TestBrowserHosts drives the Hosts page in headless Chromium against a
// real STEP bus: host cards with live charts from the history and the
// stream, alerts in the feed coloured by level as they are POSTed, no
// reload, no script error or CSP violation, a phone's width in dark mode.
func TestBrowserHosts(t *testing.T) {
	needBrowser(t)
	bus, err := stepbus.New(stepbus.Config{History: 10000, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	srv, err := New(Config{Steps: bus, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	base := serveLoopback(t, srv)

	// A minute of history for two hosts, and an older event.
	now := time.Now()
	for i := 30; i > 0; i-- {
		at := now.Add(-time.Duration(i) * 2 * time.Second)
		mustPublish(t, bus, hostMetrics("web-1", at, float64(i%7)*5, 2)...)
		mustPublish(t, bus, hostMetrics(evilHost, at, float64(i%5)*3, 0)[:3]...)
	}
	old := step.New("process.start", "nginx started", "web-1", now.Add(-40*time.Second))
	old.Set("pid", 77.0)
	mustPublish(t, bus, old)

	shots := t.TempDir()
	b, page, plog := watchedPage(t)
	b.must(page, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false})
	b.must(page, "Page.navigate", map[string]any{"url": base + "/hosts"})
	card := `document.querySelector('.host-card[data-host="web-1"]')`
	points := func(chart string) string {
		return `((` + card + `.querySelector('figure[data-chart=` + chart + `] polyline.s') || {}).getAttribute ? ` + card + `.querySelector('figure[data-chart=` + chart + `] polyline.s').getAttribute('points').split(' ').filter(Boolean).length : 0)`
	}
	b.waitUntil(page, "the web-1 card with a CPU chart", `!!`+card+` && `+points("cpu")+` >= 20`, 15*time.Second)
	b.eval(page, `window.__loadedOnce = 'yes'`, nil)

	var charts []string
	if err := b.eval(page, `[...`+card+`.querySelectorAll('figure.chart')].map(f => f.dataset.chart + ':' + f.querySelectorAll('polyline.s').length)`, &charts); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(charts, " "); got != "cpu:1 mem:2 disk:2 net:2 io:2 gpu:2 gpumem:2" {
		t.Errorf("charts of web-1: %s", got)
	}
	var info struct {
		Line, Net, Proc, Evil, Feed string
		Scripts                     int
	}
	b.eval(page, `({line: `+card+`.querySelector('.hinfo').textContent, net: `+card+`.querySelector('figure[data-chart=net] .cv').textContent + '|' + `+card+`.querySelector('figure[data-chart=net] .legend').textContent,
		proc: `+card+`.querySelector('.procs').textContent, evil: [...document.querySelectorAll('.host-card .hname')].map(e => e.textContent).join('|'),
		feed: document.querySelector('#feed').textContent, scripts: document.scripts.length})`, &info)
	if !strings.Contains(info.Line, "10.0.0.7") || !strings.Contains(info.Line, "debian 13") || !strings.Contains(info.Line, "8 CPUs") {
		t.Errorf("host line %q", info.Line)
	}
	// lo is left out of the network total: eth0 alone.
	if !strings.HasPrefix(info.Net, "1.") || !strings.Contains(info.Net, " MB/s|rx 1.") || !strings.Contains(info.Net, "tx 200 kB/s") {
		t.Errorf("network value %q", info.Net)
	}
	if !strings.Contains(info.Proc, "billing") || !strings.Contains(info.Proc, "pid 4242") {
		t.Errorf("processes %q", info.Proc)
	}
	if info.Evil != evilHost+"|web-1" || info.Scripts != 1 {
		t.Errorf("hostnames %q, %d scripts: not shown as text", info.Evil, info.Scripts)
	}
	if !strings.Contains(info.Feed, "nginx started") {
		t.Errorf("feed %q lacks the event from the history", info.Feed)
	}
	save(t, shots, "hosts.png", b.screenshot(page))

	// Live: new metric points move the chart, without a reload.
	var before int
	b.eval(page, points("cpu"), &before)
	for _, st := range hostMetrics("web-1", time.Now(), 40, 2) {
		postStep(t, base, st)
	}
	b.waitUntil(page, "a new CPU point", points("cpu")+` > `+fmt.Sprint(before), 10*time.Second)

	// Alerts appear in the feed, newest first, coloured by level.
	colours := map[string]string{}
	for i, lvl := range []string{step.LevelWarning, step.LevelCritical, step.LevelRecovered} {
		a := step.New("system.cpu.high", fmt.Sprintf("CPU alert %d <b>%s</b>", i, lvl), "web-1", time.Now())
		a.Set("level", lvl)
		a.Set("value", 96.5)
		postStep(t, base, a)
		sel := `document.querySelector('#feed li')`
		b.waitUntil(page, "the "+lvl+" alert on top of the feed", `!!`+sel+` && `+sel+`.classList.contains('lvl-`+lvl+`') && `+sel+`.querySelector('.ev-desc').textContent === 'CPU alert `+fmt.Sprint(i)+` <b>`+lvl+`</b>'`, 10*time.Second)
		var c string
		b.eval(page, `getComputedStyle(`+sel+`).borderLeftColor`, &c)
		colours[lvl] = c
	}
	// The page's own palette: amber, red, green (style.css, light).
	want := map[string]string{"warning": "rgb(161, 98, 7)", "critical": "rgb(185, 28, 28)", "recovered": "rgb(21, 128, 61)"}
	for lvl, c := range want {
		if colours[lvl] != c {
			t.Errorf("%s alert coloured %q, want %q", lvl, colours[lvl], c)
		}
	}
	// "alerts only" hides the process event.
	b.eval(page, `document.querySelector('#alerts-only').click()`, nil)
	b.waitUntil(page, "alerts only", `document.querySelectorAll('#feed li').length === 3`, 10*time.Second)
	save(t, shots, "hosts-alerts.png", b.screenshot(page))
	b.eval(page, `document.querySelector('#alerts-only').click()`, nil)

	// Away and back through the nav: the stream closes and reopens.
	b.eval(page, `document.querySelector('#nav a[data-nav=daemon]').click()`, nil)
	b.waitUntil(page, "the daemon page", `document.querySelectorAll('.card h3').length >= 4`, 10*time.Second)
	b.eval(page, `document.querySelector('#nav a[data-nav=hosts]').click()`, nil)
	b.waitUntil(page, "the hosts again", `!!`+card+` && `+points("cpu")+` > 20 && document.querySelectorAll('#feed li').length === 4`, 10*time.Second)

	// A phone, dark.
	b.must(page, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": true})
	b.must(page, "Emulation.setEmulatedMedia", map[string]any{"features": []map[string]string{{"name": "prefers-color-scheme", "value": "dark"}}})
	a := step.New("system.memory.high", "memory at 93%", evilHost, time.Now())
	a.Set("level", step.LevelCritical)
	postStep(t, base, a)
	b.waitUntil(page, "the alert on the phone", `document.querySelector('#feed li .ev-type').textContent === 'system.memory.high'`, 10*time.Second)
	var width int
	b.eval(page, `document.documentElement.scrollWidth`, &width)
	if width > 375 {
		t.Errorf("the hosts page is %d px wide on a 375 px screen", width)
	}
	var dark string
	b.eval(page, `getComputedStyle(document.querySelector('#feed li')).borderLeftColor`, &dark)
	if dark != "rgb(252, 165, 165)" {
		t.Errorf("critical alert in dark mode coloured %q", dark)
	}
	save(t, shots, "hosts-phone-dark.png", b.screenshot(page))

	var loaded string
	b.eval(page, `window.__loadedOnce`, &loaded)
	plog.checkOnePage(t, loaded, base)
}

// postStep POSTs st to the server.
func postStep(t *testing.T, base string, st *step.Step) {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if r := post(t, base+"/api/v1/step", "application/json", string(b)); r.status != http.StatusAccepted {
		t.Fatalf("POST %s: %d %s", st.Event.Type, r.status, r.body)
	}
}
