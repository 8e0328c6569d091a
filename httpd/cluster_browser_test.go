package httpd

import (
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
)

// TestBrowserCluster: on a node of a cluster the Services page shows the
// other nodes' services with a Node column and filters by node, and the
// Daemon page shows the cluster (partitioned since when, the endpoints,
// the nodes), in headless Chromium.
func TestBrowserCluster(t *testing.T) {
	needBrowser(t)
	_, _, cfg := world(t)
	cfg.Cluster = newFakeCluster()
	cfg.Logger = testutil.Discard()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := serveLoopback(t, srv)
	b := startBrowser(t, chromiumPath, func(cdpMessage) {})
	page := b.page()
	b.must(page, "Page.navigate", map[string]any{"url": base + "/services"})
	rows := `[...document.querySelectorAll('#current tr.svc')]`
	b.waitUntil(page, "local and remote rows with their node",
		rows+`.length === 3 && `+rows+`.some(r => r.querySelector('.name').textContent === 'billing' && r.lastChild.textContent === 'b')`+
			` && `+rows+`.filter(r => r.lastChild.textContent === 'a (this node)').length === 2`, 15*time.Second)
	b.waitUntil(page, "the remote ended record in the history",
		`[...document.querySelectorAll('#history tr.svc')].some(r => r.querySelector('.name').textContent === 'crashed' && r.lastChild.textContent === 'b')`, 10*time.Second)
	b.eval(page, `(() => { const s = document.getElementById('node-filter'); s.value = 'b'; s.dispatchEvent(new Event('change')); })()`, nil)
	b.waitUntil(page, "node b only", rows+`.length === 1 && `+rows+`[0].querySelector('.name').textContent === 'billing'`, 10*time.Second)
	var href any
	b.eval(page, rows+`[0].querySelector('.name').getAttribute('href')`, &href)
	if href != nil {
		t.Errorf("a remote service links to %v; its page is on its own node", href)
	}

	b.must(page, "Page.navigate", map[string]any{"url": base + "/daemon"})
	b.waitUntil(page, "the cluster card and tables",
		`document.body.textContent.includes('partitioned since') && document.querySelectorAll('#cluster-nodes tr').length === 2`+
			` && document.querySelectorAll('#cluster-endpoints tr').length === 2 && document.body.textContent.includes('http://127.0.0.1:2379 (leader)')`, 10*time.Second)
}
