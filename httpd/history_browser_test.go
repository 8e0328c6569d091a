package httpd

import (
	"fmt"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/smartbeat"
)

// TestBrowserHistoryPage: the History page shows the newest page of the
// history from /api/v1/history, pages back with Older and filters on the
// server, in headless Chromium, against a real monitor fed by real
// services.
func TestBrowserHistoryPage(t *testing.T) {
	needBrowser(t)
	mon, svcOpts := realMonitor(t)
	const n = 60
	for i := range n {
		name := fmt.Sprintf("worker %02d", i)
		if i%6 == 0 {
			name = fmt.Sprintf("Billing %02d", i)
		}
		svc, err := smartbeat.NewService(name, svcOpts)
		if err != nil {
			t.Fatal(err)
		}
		svc.Close()
	}
	testutil.WaitFor(t, 10*time.Second, "the history", func() bool { return mon.Stats().History == n })
	srv, err := New(Config{Monitor: mon, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	base := serveLoopback(t, srv)

	b := startBrowser(t, chromiumPath, func(cdpMessage) {})
	page := b.page()
	b.must(page, "Page.navigate", map[string]any{"url": base + "/history"})
	rows := `document.querySelectorAll('#history-page tr.svc')`
	first := `document.querySelector('#history-page tr.svc .name').textContent`
	b.waitUntil(page, "the newest page", rows+`.length === 50 && `+first+` === 'worker 59'`, 15*time.Second)
	b.eval(page, `[...document.querySelectorAll('.toolbar button')].find(e => e.textContent === 'Older').click()`, nil)
	b.waitUntil(page, "the older page", rows+`.length === 10 && `+first+` === 'worker 09'`, 10*time.Second)
	b.eval(page, `[...document.querySelectorAll('.toolbar button')].find(e => e.textContent === 'Newer').click()`, nil)
	b.waitUntil(page, "the newest page again", rows+`.length === 50 && `+first+` === 'worker 59'`, 10*time.Second)
	b.eval(page, `(() => { const e = document.querySelector('input[aria-label="Service name contains"]'); e.value = 'BILLING'; e.dispatchEvent(new Event('input')); })()`, nil)
	b.waitUntil(page, "the filtered page", rows+`.length === 10 && `+first+` === 'Billing 54'`, 10*time.Second)
	var nav string
	b.eval(page, `document.querySelector('#nav a.active').dataset.nav + ' ' + document.title`, &nav)
	if nav != "history History · STK status" {
		t.Errorf("nav and title: %q", nav)
	}
}
