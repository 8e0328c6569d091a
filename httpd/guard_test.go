package httpd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/stepbus"
)

// testToken is the token of the token tests; long enough for stkd too.
const testToken = "s3cret-token-of-the-guard-tests"

const oneStep = `{"event":{"type":"test.guard"},"space":{"hostname":"h"}}`

// do sends method url with the headers hdr (pairs; "Host" sets the Host
// header) and body, over a fresh connection of client c (nil: default).
func do(t *testing.T, c *http.Client, method, u, body string, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return send(t, c, req, hdr...)
}

// send sends req with the headers hdr added (pairs; "Host" sets the Host
// header) over client c (nil: one that follows no redirect) and returns
// the response read whole.
func send(t *testing.T, c *http.Client, req *http.Request, hdr ...string) response {
	t.Helper()
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	if c == nil {
		c = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, string(b)}
}

// TestGuardOrigin: POSTs and WebSocket upgrades from other sites' pages
// are refused; the server's own pages, listed origins and clients sending
// no Origin (curl, scripts) are not.
func TestGuardOrigin(t *testing.T) {
	leakcheck.Check(t)
	_, base, bus := newStepTest(t, Config{AllowedOrigins: []string{"https://UI.example"}}, stepbus.Config{History: 10})
	port := strings.TrimPrefix(base, "http://127.0.0.1:")
	for _, tc := range []struct {
		origin, host string
		want         int
	}{
		{"", "", http.StatusAccepted},
		{base, "", http.StatusAccepted},
		{"http://localhost:" + port, "localhost:" + port, http.StatusAccepted},
		{"https://ui.example", "", http.StatusAccepted},     // listed
		{"https://ui.example:443", "", http.StatusAccepted}, // the same, port spelled out
		{"http://evil.example", "", http.StatusForbidden},
		{"http://evil.example:" + port, "evil.example:" + port, http.StatusMisdirectedRequest}, // DNS rebinding: the Host is refused first
		{"http://127.0.0.1:1", "", http.StatusForbidden},                                       // another port is another origin
		{"https://127.0.0.1:" + port, "", http.StatusAccepted},                                 // the scheme is not compared (a TLS proxy may front the server); nobody else serves this host:port
		{"http://ui.example", "", http.StatusForbidden},                                        // listed with https only
		{"null", "", http.StatusForbidden},
		{"http://localhost:" + port, "", http.StatusForbidden}, // not the Host it was sent to
	} {
		var hdr []string
		if tc.origin != "" {
			hdr = append(hdr, "Origin", tc.origin)
		}
		if tc.host != "" {
			hdr = append(hdr, "Host", tc.host)
		}
		r := do(t, nil, "POST", base+"/api/v1/step", oneStep, hdr...)
		if r.status != tc.want {
			t.Errorf("POST with Origin %q Host %q: %d %s, want %d", tc.origin, tc.host, r.status, r.body, tc.want)
		}
		if r.status == http.StatusForbidden && !strings.Contains(r.body, "--http-origin") {
			t.Errorf("403 body does not say what to configure: %s", r.body)
		}
	}
	// Origin null: a browser sends it for this server's own page's posts
	// under Referrer-Policy no-referrer, saying same-origin in
	// Sec-Fetch-Site; a sandboxed frame's null is cross-site.
	for site, want := range map[string]int{"same-origin": http.StatusAccepted, "cross-site": http.StatusForbidden, "same-site": http.StatusForbidden} {
		if r := do(t, nil, "POST", base+"/api/v1/step", oneStep, "Origin", "null", "Sec-Fetch-Site", site); r.status != want {
			t.Errorf("POST with Origin null, Sec-Fetch-Site %s: %d %s, want %d", site, r.status, r.body, want)
		}
	}
	if n := bus.Stats().Published; n != 7 {
		t.Errorf("%d STEPs published, want the 7 accepted", n)
	}

	// The WebSocket: the same rule, the listed origin included (which
	// coder/websocket's own check would refuse).
	for o, ok := range map[string]bool{"": true, base: true, "https://ui.example": true, "http://evil.example": false, "null": false} {
		hdr := http.Header{}
		if o != "" {
			hdr.Set("Origin", o)
		}
		w, res, err := dialWS(t, base, "", hdr)
		if ok && err != nil {
			t.Errorf("WebSocket with Origin %q: %v", o, err)
		}
		if !ok && (err == nil || res == nil || res.StatusCode != http.StatusForbidden) {
			t.Errorf("WebSocket with Origin %q: %v, want 403", o, err)
		}
		if w != nil {
			w.c.Close(websocket.StatusNormalClosure, "")
		}
	}
	// The event stream too: an other site's page cannot open it.
	if r := do(t, nil, "GET", base+"/api/v1/steps/stream", "", "Origin", "http://evil.example"); r.status != http.StatusForbidden {
		t.Errorf("STEP stream from another origin: %d %s", r.status, r.body)
	}
	// Plain reads are not Origin-checked (CORS keeps their answers from
	// other sites' pages).
	if r := do(t, nil, "GET", base+"/api/v1/steps/stats", "", "Origin", "http://evil.example"); r.status != http.StatusOK {
		t.Errorf("read with an Origin: %d %s", r.status, r.body)
	}
}

// TestGuardHost: the Host header must name this server: localhost and
// loopback addresses with or without the port, and the names configured;
// anything else is 421 with a line saying what to configure.
func TestGuardHost(t *testing.T) {
	leakcheck.Check(t)
	_, base, _ := newStepTest(t, Config{AllowedHosts: []string{"stk.example.ORG."}}, stepbus.Config{History: 10})
	port := strings.TrimPrefix(base, "http://127.0.0.1:")
	for host, want := range map[string]int{
		"127.0.0.1:" + port:        http.StatusOK,
		"127.0.0.1":                http.StatusOK,
		"localhost:" + port:        http.StatusOK,
		"LOCALHOST":                http.StatusOK,
		"[::1]:" + port:            http.StatusOK,
		"stk.example.org":          http.StatusOK,
		"stk.example.org.:" + port: http.StatusOK,
		"evil.example:" + port:     http.StatusMisdirectedRequest,
		"evil.example":             http.StatusMisdirectedRequest,
		"localhost.evil.example":   http.StatusMisdirectedRequest,
		"192.0.2.1:" + port:        http.StatusMisdirectedRequest, // not an address of this host
	} {
		r := do(t, nil, "GET", base+"/healthz", "", "Host", host)
		if r.status != want {
			t.Errorf("Host %q: %d %q, want %d", host, r.status, r.body, want)
		}
		if want == http.StatusMisdirectedRequest && (!strings.Contains(r.body, "--http-host") || strings.Count(r.body, "\n") != 1) {
			t.Errorf("Host %q: body %q, want one line naming --http-host", host, r.body)
		}
	}
	// Pages and the API are guarded too, not only /healthz.
	if r := do(t, nil, "GET", base+"/api/v1/steps/stats", "", "Host", "evil.example:"+port); r.status != http.StatusMisdirectedRequest {
		t.Errorf("API with a foreign Host: %d", r.status)
	}

	// HTTP/1.0 without Host, from loopback: accepted.
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "GET /healthz HTTP/1.0\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("HTTP/1.0 without Host from loopback: %s", res.Status)
	}
}

// TestGuardPeers checks what depends on the peer's address, which a test
// cannot choose over loopback: the handler is called directly.
func TestGuardPeers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		remote string
		path   string
		hdr    []string
		want   int
	}{
		{"no Host, remote peer", Config{}, "192.0.2.7:4000", "/healthz", nil, http.StatusMisdirectedRequest},
		{"no Host, loopback peer", Config{}, "127.0.0.1:4000", "/healthz", nil, http.StatusOK},
		{"no token: remote read", Config{}, "192.0.2.7:4000", "/api/v1/steps/stats", []string{"Host", "localhost"}, http.StatusOK},
		{"token: remote read without it", Config{Token: testToken}, "192.0.2.7:4000", "/api/v1/steps/stats", []string{"Host", "localhost"}, http.StatusUnauthorized},
		{"token: remote read with it", Config{Token: testToken}, "192.0.2.7:4000", "/api/v1/steps/stats", []string{"Host", "localhost", "Authorization", "Bearer " + testToken}, http.StatusOK},
		{"token: loopback read", Config{Token: testToken}, "[::1]:4000", "/api/v1/steps/stats", []string{"Host", "localhost"}, http.StatusOK},
		{"token for reads: loopback read", Config{Token: testToken, TokenForReads: true}, "127.0.0.1:4000", "/metrics", []string{"Host", "localhost"}, http.StatusUnauthorized},
		{"token: remote health", Config{Token: testToken, TokenForReads: true}, "192.0.2.7:4000", "/healthz", []string{"Host", "localhost"}, http.StatusOK},
		{"token: asset", Config{Token: testToken, TokenForReads: true}, "192.0.2.7:4000", "/assets/app.js", []string{"Host", "localhost"}, http.StatusOK},
	} {
		bus, err := stepbus.New(stepbus.Config{History: 10, Logger: testutil.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		tc.cfg.Steps, tc.cfg.Logger = bus, testutil.Discard()
		s, err := New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		// As net/http's server does: the Host check applies to requests
		// that came over a connection.
		ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080})
		req := httptest.NewRequestWithContext(ctx, "GET", "http://x"+tc.path, nil)
		req.Host, req.RemoteAddr = "", tc.remote
		for i := 0; i+1 < len(tc.hdr); i += 2 {
			if tc.hdr[i] == "Host" {
				req.Host = tc.hdr[i+1]
			} else {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.want)
		}
		s.Close()
		bus.Close()
	}
}

// TestGuardToken: once a token is set, writes and streams need it (a
// wrong one is refused), loopback reads do not, and a browser signs in
// once at /login: the cookie then carries its pages, streams and
// WebSocket.
func TestGuardToken(t *testing.T) {
	leakcheck.Check(t)
	_, base, bus := newStepTest(t, Config{Token: testToken}, stepbus.Config{History: 10})
	bearer := "Bearer " + testToken

	// Writes.
	if r := do(t, nil, "POST", base+"/api/v1/step", oneStep); r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" || !strings.Contains(r.body, "--http-token-file") {
		t.Errorf("POST without the token: %d %v %s", r.status, r.header, r.body)
	}
	if r := do(t, nil, "POST", base+"/api/v1/step", oneStep, "Authorization", "Bearer "+testToken+"x"); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "wrong token") {
		t.Errorf("POST with a wrong token: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "POST", base+"/api/v1/step", oneStep, "Authorization", "Basic "+testToken); r.status != http.StatusUnauthorized {
		t.Errorf("POST with Basic: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "POST", base+"/api/v1/step", oneStep, "Authorization", bearer); r.status != http.StatusAccepted {
		t.Errorf("POST with the token: %d %s", r.status, r.body)
	}
	// The token does not let another site's page in.
	if r := do(t, nil, "POST", base+"/api/v1/step", oneStep, "Authorization", bearer, "Origin", "http://evil.example"); r.status != http.StatusForbidden {
		t.Errorf("POST with the token from another origin: %d %s", r.status, r.body)
	}
	if n := bus.Stats().Published; n != 1 {
		t.Errorf("%d STEPs published, want 1", n)
	}

	// Streams.
	if r := do(t, nil, "GET", base+"/api/v1/events", ""); r.status != http.StatusUnauthorized {
		t.Errorf("event stream without the token: %d", r.status)
	}
	if _, res, err := dialWS(t, base, "", nil); err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("WebSocket without the token: %v", err)
	}
	w, _, err := dialWS(t, base, "", http.Header{"Authorization": {bearer}})
	if err != nil {
		t.Errorf("WebSocket with the token: %v", err)
	} else {
		w.c.Close(websocket.StatusNormalClosure, "")
	}
	// Reads from loopback stay open.
	if r := do(t, nil, "GET", base+"/api/v1/steps?type=test.*", ""); r.status != http.StatusOK || !strings.Contains(r.body, "test.guard") {
		t.Errorf("loopback read without the token: %d %s", r.status, r.body)
	}

	// The browser flow: the page sends it to /login, the form sets the
	// cookie, then the page, the streams and the WebSocket work.
	if r := do(t, nil, "GET", base+"/hosts?x=1", ""); r.status != http.StatusSeeOther || r.header.Get("Location") != "/login?next=%2Fhosts%3Fx%3D1" {
		t.Errorf("page without the token: %d %v", r.status, r.header.Get("Location"))
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 5 * time.Second}
	r := do(t, c, "GET", base+"/login?next=/hosts", "")
	if r.status != http.StatusOK || !strings.Contains(r.body, `<form method="post" action="/login">`) || !strings.Contains(r.body, `value="/hosts"`) {
		t.Fatalf("the login page: %d %s", r.status, r.body)
	}
	form := func(tok, next string, hdr ...string) response {
		req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(url.Values{"token": {tok}, "next": {next}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return send(t, c, req, hdr...)
	}
	if r := form("wrong-token", "/hosts", "Origin", base); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "not the token") {
		t.Errorf("sign-in with a wrong token: %d %s", r.status, r.body)
	}
	if r := form(testToken, "/hosts", "Origin", "http://evil.example"); r.status != http.StatusForbidden {
		t.Errorf("sign-in posted by another site: %d %s", r.status, r.body)
	}
	u, _ := url.Parse(base)
	if len(jar.Cookies(u)) != 0 {
		t.Fatalf("cookies before signing in: %v", jar.Cookies(u))
	}
	// Signing in follows the redirect to next: the page itself.
	if r := form(testToken, "//evil.example/x", "Origin", base); r.status != http.StatusOK || !strings.Contains(r.body, `<main id="view">`) {
		t.Errorf("sign-in with a next of another site: %d, want the app at /", r.status)
	}
	cks := jar.Cookies(u)
	if len(cks) != 1 || cks[0].Name != TokenCookie || strings.Contains(cks[0].Value, testToken) {
		t.Fatalf("cookies after signing in: %v", cks)
	}
	// What the browser received: HttpOnly, SameSite=Strict.
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader("token="+url.QueryEscape(testToken)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if sc := res.Header.Get("Set-Cookie"); res.StatusCode != http.StatusSeeOther || !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Strict") || res.Header.Get("Location") != "/" {
		t.Errorf("sign-in answer: %s, Location %q, Set-Cookie %q", res.Status, res.Header.Get("Location"), sc)
	}
	if r := do(t, c, "GET", base+"/hosts", ""); r.status != http.StatusOK {
		t.Errorf("page after signing in: %d", r.status)
	}
	if r := do(t, c, "POST", base+"/api/v1/step", oneStep, "Origin", base); r.status != http.StatusAccepted {
		t.Errorf("POST with the cookie: %d %s", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sreq, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/steps/stream", nil)
	sres, err := c.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(sres.Body).ReadString('\n')
	sres.Body.Close()
	if sres.StatusCode != http.StatusOK || !strings.HasPrefix(line, "event: hello") && !strings.HasPrefix(line, "retry:") {
		t.Errorf("STEP stream with the cookie: %s, first line %q", sres.Status, line)
	}
	wc, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/api/v1/steps/ws", &websocket.DialOptions{HTTPClient: c})
	if err != nil {
		t.Errorf("WebSocket with the cookie: %v", err)
	} else {
		wc.Close(websocket.StatusNormalClosure, "")
	}
	// Signing out clears the cookie.
	if r := do(t, c, "POST", base+"/logout", "", "Origin", base); r.status != http.StatusOK || len(jar.Cookies(u)) != 0 {
		t.Errorf("sign-out: %d, cookies %v", r.status, jar.Cookies(u))
	}
	// The query form of /login (for a bookmark or a script) works too.
	r = do(t, c, "GET", base+"/login?token="+url.QueryEscape(testToken)+"&next=/daemon", "")
	if r.status != http.StatusOK || len(jar.Cookies(u)) != 1 {
		t.Errorf("GET /login?token=: %d, cookies %v", r.status, jar.Cookies(u))
	}
}

// TestGuardConfig: bad settings are refused by New.
func TestGuardConfig(t *testing.T) {
	for _, cfg := range []Config{
		{AllowedOrigins: []string{"ui.example"}},
		{AllowedOrigins: []string{"http://ui.example/path"}},
		{AllowedOrigins: []string{"ftp://ui.example"}},
		{AllowedHosts: []string{"http://ui.example"}},
		{AllowedHosts: []string{""}},
	} {
		cfg.Logger = testutil.Discard()
		if s, err := New(cfg); err == nil {
			s.Close()
			t.Errorf("New(%+v): no error", cfg)
		}
	}
	for in, want := range map[string]string{
		"http://UI.example":      "http://ui.example:80",
		"https://ui.example/":    "https://ui.example:443",
		"http://[::1]:8080":      "http://[::1]:8080",
		"http://127.0.0.1:20080": "http://127.0.0.1:20080",
	} {
		if got, err := ParseOrigin(in); err != nil || got != want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestGuardRefusalsCounted: each kind of refusal moves its sample of
// stk_http_refused_total.
func TestGuardRefusalsCounted(t *testing.T) {
	_, base, _ := newStepTest(t, Config{Token: testToken}, stepbus.Config{History: 10})
	port := strings.TrimPrefix(base, "http://127.0.0.1:")
	if r := do(t, nil, "GET", base+"/api/v1/stats", "", "Host", "evil.example:"+port); r.status != http.StatusMisdirectedRequest {
		t.Fatalf("foreign Host: %d", r.status)
	}
	if r := do(t, nil, "POST", base+"/api/v1/step", oneStep, "Origin", "http://evil.example", "Authorization", "Bearer "+testToken); r.status != http.StatusForbidden {
		t.Fatalf("foreign Origin: %d", r.status)
	}
	if r := do(t, nil, "POST", base+"/api/v1/step", oneStep); r.status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", r.status)
	}
	m := do(t, nil, "GET", base+"/metrics", "").body
	for _, reason := range []string{"host", "origin", "token"} {
		if want := `stk_http_refused_total{reason="` + reason + `"} 1`; !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
