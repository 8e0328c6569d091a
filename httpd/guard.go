package httpd

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The guard decides, before any handler runs, whether a request may go on:
// its Host must name this server (DNS rebinding), its Origin, on requests
// that change state or open a stream, must be this server's or one the
// operator listed (other sites' pages), and, once Config.Token is set, it
// must carry the token. It is the one place deciding: the WebSocket
// endpoint skips coder/websocket's own origin check.

// TokenCookie is the cookie /login sets: it carries a digest of the token
// (never the token), HttpOnly and SameSite=Strict, so the pages' own
// requests, event streams and WebSocket carry it and other sites' cannot.
const TokenCookie = "stkd_token"

// tokenCookieMaxAge is how long the login cookie lasts; changing the
// token ends every session sooner.
const tokenCookieMaxAge = 30 * 24 * time.Hour

// access is what a request does, for the guard.
type access int

const (
	accessOpen   access = iota // assets, /healthz, /login, 404 pages: never need the token
	accessPage                 // the app's pages: need the token once set (their streams do)
	accessRead                 // JSON API reads and /metrics
	accessStream               // event streams and the WebSocket
	accessWrite                // everything but GET, HEAD and OPTIONS
)

// streamPaths are the long-lived endpoints: Origin-checked like writes.
var streamPaths = map[string]bool{
	"/api/v1/events":       true,
	"/api/v1/steps/stream": true,
	"/api/v1/steps/ws":     true,
}

// pagePaths are the app's pages (also /services/{uid}).
var pagePaths = map[string]bool{
	"/": true, "/services": true, "/history": true, "/groups": true, "/names": true, "/hosts": true, "/daemon": true,
}

func classify(r *http.Request) access {
	p := r.URL.Path
	switch {
	case p == "/login" || p == "/logout":
		return accessOpen // unsafe methods on them are still Origin-checked
	case r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions:
		return accessWrite
	case streamPaths[p]:
		return accessStream
	case strings.HasPrefix(p, "/api/") || p == "/metrics":
		return accessRead
	case pagePaths[p] || strings.HasPrefix(p, "/services/"):
		return accessPage
	}
	return accessOpen
}

// guard holds the parsed security settings of a Server.
type guard struct {
	anyHost       bool
	hosts         map[string]bool // lower case, no trailing dot
	origins       map[string]bool // normalized "scheme://host:port"
	tokenSum      []byte          // sha256 of Config.Token; nil: no token
	cookieValue   string          // what TokenCookie holds once logged in
	tokenForReads bool

	ifMu      sync.Mutex
	ifAddrs   map[netip.Addr]bool // this host's interface addresses
	ifChecked time.Time

	// Requests refused, by reason, for /metrics.
	refusedHost, refusedOrigin, refusedToken atomic.Uint64
}

func newGuard(c Config) (*guard, error) {
	g := &guard{hosts: map[string]bool{}, origins: map[string]bool{}, tokenForReads: c.TokenForReads}
	for _, h := range c.AllowedHosts {
		if h == "*" {
			g.anyHost = true
			continue
		}
		name := normalizeHost(h)
		if name == "" || strings.ContainsAny(name, "/: ") && !isIP(name) {
			return nil, fmt.Errorf("allowed host %q: want a host name or IP address, without scheme or port", h)
		}
		g.hosts[name] = true
	}
	for _, o := range c.AllowedOrigins {
		n, err := ParseOrigin(o)
		if err != nil {
			return nil, err
		}
		g.origins[n] = true
	}
	if c.Token != "" {
		sum := sha256.Sum256([]byte(c.Token))
		g.tokenSum = sum[:]
		cs := sha256.Sum256([]byte("stkd-login-cookie\x00" + c.Token))
		g.cookieValue = hex.EncodeToString(cs[:])
	}
	return g, nil
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// normalizeHost turns a host name, IP address or [IPv6] into the form the
// guard compares: lower case, no brackets, no trailing dot.
func normalizeHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(h, ".")
}

// splitHost splits a Host header ("name", "name:port", "[::1]:8080",
// "[::1]") into its normalized name and its port ("" when absent).
func splitHost(hostport string) (name, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return normalizeHost(h), p
	}
	return normalizeHost(hostport), ""
}

// ParseOrigin checks a web origin, "scheme://host[:port]" (http or https,
// no path), and returns it normalized: lower case, with the scheme's
// default port spelled out ("http://Example.com" is
// "http://example.com:80").
func ParseOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("origin %q: want scheme://host[:port], as a browser sends it (http://ui.example:8080)", s)
	}
	name, port := splitHost(u.Host)
	if port == "" {
		port = defaultPort(u.Scheme)
	} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("origin %q: bad port %q", s, port)
	}
	if name == "" {
		return "", fmt.Errorf("origin %q: no host", s)
	}
	return u.Scheme + "://" + net.JoinHostPort(name, port), nil
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// isLoopbackPeer reports whether the request came over loopback.
func isLoopbackPeer(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// hostOK reports whether r's Host header names this server: localhost or a
// loopback address, the address the connection reached, one of this
// host's interface addresses, or a name the operator allowed. The port is
// not compared: an ssh tunnel or a port forward may change it, and DNS
// rebinding is about the name.
//
// A request without http.LocalAddrContextKey in its context came over no
// connection (a program, or a test, calling Handler().ServeHTTP itself):
// no browser could have sent it, and it is not checked. net/http's Server
// sets the key on every request it reads.
func (g *guard) hostOK(r *http.Request) bool {
	if _, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); !ok {
		return true
	}
	if r.Host == "" { // HTTP/1.0 without Host: no browser sends that
		return isLoopbackPeer(r)
	}
	if g.anyHost {
		return true
	}
	name, _ := splitHost(r.Host)
	if name == "localhost" || g.hosts[name] {
		return true
	}
	a, err := netip.ParseAddr(name)
	if err != nil {
		return false // a name nobody allowed: what DNS rebinding sends
	}
	a = a.Unmap().WithZone("")
	if a.IsLoopback() {
		return true
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil && ap.Addr().Unmap().WithZone("") == a {
			return true
		}
	}
	return g.isInterfaceAddr(a)
}

// isInterfaceAddr reports whether a is an address of this host. The list
// is read again at most every 10 s, and only when an address is missing
// from it (interfaces come and go, DHCP renews).
func (g *guard) isInterfaceAddr(a netip.Addr) bool {
	g.ifMu.Lock()
	defer g.ifMu.Unlock()
	if g.ifAddrs[a] {
		return true
	}
	if time.Since(g.ifChecked) < 10*time.Second {
		return false
	}
	g.ifChecked = time.Now()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	g.ifAddrs = map[netip.Addr]bool{}
	for _, ad := range addrs {
		if n, ok := ad.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				g.ifAddrs[ip.Unmap()] = true
			}
		}
	}
	return g.ifAddrs[a]
}

// originOK reports whether a request carrying Origin o may change state
// or open a stream: o is this server's own origin (its host and port are
// those of the Host header; a Host without port has the origin scheme's
// default, as behind a TLS proxy) or one the operator listed. "null"
// (sandboxed frames, file: pages) never is.
func (g *guard) originOK(o, host string) bool {
	n, err := ParseOrigin(o)
	if err != nil {
		return false
	}
	if g.origins[n] {
		return true
	}
	scheme, _, _ := strings.Cut(n, "://")
	name, port := splitHost(host)
	if port == "" {
		port = defaultPort(scheme)
	}
	return n == scheme+"://"+net.JoinHostPort(name, port)
}

// sameOriginNull reports whether an "Origin: null" comes from this
// server's own page: a browser sends null for its own page's form posts
// and fetches when the page's Referrer-Policy is no-referrer (as here),
// and says where the request comes from in Sec-Fetch-Site, which no page
// can set. A sandboxed frame's null is "cross-site" there.
func sameOriginNull(o string, r *http.Request) bool {
	return o == "null" && r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

// authorized reports whether r carries the token: "Authorization: Bearer
// TOKEN", or the cookie /login set.
func (g *guard) authorized(r *http.Request) bool {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok))) // equal lengths: the compare leaks nothing
		return subtle.ConstantTimeCompare(sum[:], g.tokenSum) == 1
	}
	if c, err := r.Cookie(TokenCookie); err == nil {
		return subtle.ConstantTimeCompare([]byte(c.Value), []byte(g.cookieValue)) == 1
	}
	return false
}

// check runs the guard on r; when it refuses, it has answered and returns
// false.
func (s *Server) check(w http.ResponseWriter, r *http.Request) bool {
	g := s.guard
	if !g.hostOK(r) {
		g.refusedHost.Add(1)
		s.log.Debug("http: refused Host", "remote", r.RemoteAddr, "host", r.Host, "path", r.URL.Path)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusMisdirectedRequest)
		if r.Host == "" {
			fmt.Fprintln(w, "stkd: a request without a Host header is accepted from loopback only")
		} else {
			name, _ := splitHost(r.Host)
			fmt.Fprintf(w, "stkd: %q is not a name of this server; if it is, start stkd with --http-host %s (httpd.Config.AllowedHosts)\n", r.Host, name)
		}
		return false
	}
	a := classify(r)
	safe := r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions
	if !safe || a == accessStream || strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		if o := r.Header.Get("Origin"); o != "" && !g.originOK(o, r.Host) && !sameOriginNull(o, r) {
			g.refusedOrigin.Add(1)
			s.log.Debug("http: refused Origin", "remote", r.RemoteAddr, "origin", o, "host", r.Host, "path", r.URL.Path)
			s.refuse(w, r, http.StatusForbidden, fmt.Sprintf("Origin %s may not use this endpoint: pages of another site may not change state or open streams here (allow it with stkd --http-origin %s)", o, o))
			return false
		}
	}
	if g.tokenSum == nil {
		return true
	}
	switch a {
	case accessOpen:
		return true
	case accessRead:
		if !g.tokenForReads && isLoopbackPeer(r) {
			return true
		}
	case accessPage:
		if !g.authorized(r) {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return false
		}
		return true
	}
	if g.authorized(r) {
		return true
	}
	g.refusedToken.Add(1)
	w.Header().Set("WWW-Authenticate", `Bearer realm="stkd"`)
	msg := "this endpoint needs the token: send Authorization: Bearer TOKEN (the token stkd reads from --http-token-file or $STKD_HTTP_TOKEN), or sign in at /login"
	if r.Header.Get("Authorization") != "" {
		msg = "wrong token: send Authorization: Bearer TOKEN with the token stkd reads from --http-token-file or $STKD_HTTP_TOKEN"
	}
	s.refuse(w, r, http.StatusUnauthorized, msg)
	return false
}

// refuse answers status with msg: JSON under /api/, a text line elsewhere.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeError(w, status, msg)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Sign in · STK</title><link rel="stylesheet" href="/assets/style.css"><link rel="icon" href="/assets/favicon.svg"></head>
<body><header class="top"><a class="brand" href="/"><span class="logo" aria-hidden="true"></span>STK</a></header>
<main class="notfound login"><h1>Sign in</h1>
{{if .Wrong}}<p class="bad" role="alert">That is not the token of this stkd.</p>{{end}}
<form method="post" action="/login"><p><label for="token">The token stkd reads from --http-token-file or $STKD_HTTP_TOKEN</label></p>
<p><input type="password" id="token" name="token" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{{.Next}}"> <button type="submit">Sign in</button></p></form></main></body></html>
`))

// localNext returns next when it is a path of this server, else "/": the
// login never redirects to another site.
func localNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

// serveLogin is GET and POST /login: with the right token (form field or
// query parameter "token") it sets TokenCookie and sends the browser on to
// "next"; without one it shows the form.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	// So that browsers send the form's post with this page's Origin, not
	// null (no-referrer's rule); the referrer still never leaves the site.
	w.Header().Set("Referrer-Policy", "same-origin")
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "bad form: "+err.Error())
		return
	}
	next := localNext(r.Form.Get("next"))
	if s.guard.tokenSum == nil { // nothing to sign in to
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	tok, given := r.Form["token"]
	if given && len(tok) == 1 {
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok[0])))
		if subtle.ConstantTimeCompare(sum[:], s.guard.tokenSum) == 1 {
			http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: s.guard.cookieValue, Path: "/",
				MaxAge: int(tokenCookieMaxAge / time.Second), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
		s.log.Info("http: sign-in with a wrong token", "remote", r.RemoteAddr)
	}
	var b bytes.Buffer
	loginPage.Execute(&b, struct {
		Wrong bool
		Next  string
	}{given, next})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if given {
		w.WriteHeader(http.StatusUnauthorized)
	}
	w.Write(b.Bytes())
}

// serveLogout is POST /logout: it clears the cookie.
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
