package httpd

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"
	"github.com/stk-go/stk/stepbus"
)

// TestBrowserToken: with a token set, headless Chromium is sent to
// /login, signs in with the form once, and the app then works: the
// service list and its live event stream, and the Hosts page's STEP
// stream showing a STEP posted (with the token) after the page loaded.
// The page's script never sees the token (the cookie is HttpOnly).
func TestBrowserToken(t *testing.T) {
	needBrowser(t)
	_, _, cfg := world(t)
	bus, err := stepbus.New(stepbus.Config{History: 1000, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	cfg.Steps, cfg.Token, cfg.Logger = bus, testToken, testutil.Discard()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := serveLoopback(t, srv)
	mustPublish(t, bus, hostMetrics("web-1", time.Now().Add(-2*time.Second), 10, 0)...)

	b, page, plog := watchedPage(t)
	b.must(page, "Page.navigate", map[string]any{"url": base + "/services"})
	b.waitUntil(page, "the sign-in page", `location.pathname === '/login' && !!document.querySelector('form input#token')`, 15*time.Second)
	// A wrong token first: the form again, saying so.
	b.eval(page, `document.querySelector('#token').value = 'not-it'; document.querySelector('form').submit()`, nil)
	b.waitUntil(page, "the wrong-token message", `!!document.querySelector('.login .bad')`, 10*time.Second)
	b.eval(page, `document.querySelector('#token').value = '`+testToken+`'; document.querySelector('form').submit()`, nil)
	b.waitUntil(page, "the services page, live", `location.pathname === '/services' && !!document.querySelector('#live.on') && document.querySelectorAll('tbody#current tr').length > 0`, 15*time.Second)
	var cookie string
	b.eval(page, `document.cookie`, &cookie)
	if cookie != "" {
		t.Errorf("the page's script sees cookies: %q", cookie)
	}

	// The Hosts page: its STEP stream carries a STEP posted later.
	b.eval(page, `document.querySelector('#nav a[data-nav=hosts]').click()`, nil)
	b.waitUntil(page, "the web-1 card", `!!document.querySelector('.host-card[data-host="web-1"]')`, 15*time.Second)
	// The page loaded its STEPs; give the stream a moment to be opened by
	// waiting for the bus to count a subscriber.
	testutil.WaitFor(t, 10*time.Second, "the page's STEP stream", func() bool { return bus.Stats().Subscribers >= 1 })
	st := step.New("process.start", "guard test started", "web-1", time.Now())
	js, _ := json.Marshal(st)
	if r := do(t, nil, "POST", base+"/api/v1/step", string(js), "Authorization", "Bearer "+testToken); r.status != http.StatusAccepted {
		t.Fatalf("POST with the token: %d %s", r.status, r.body)
	}
	b.waitUntil(page, "the posted STEP in the feed", `document.querySelector('#feed').textContent.includes('guard test started')`, 10*time.Second)

	plog.mu.Lock()
	defer plog.mu.Unlock()
	for _, p := range plog.problems {
		// The wrong token's 401 is expected.
		if strings.Contains(p, "/login") && strings.Contains(p, "401") {
			continue
		}
		t.Errorf("page problem: %s", p)
	}
}
