package httpd

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed ui
var uiFS embed.FS

// asset is one embedded file, with its ETag.
type asset struct {
	body  []byte
	etag  string
	ctype string
}

// assets are the files under ui/, by name ("app.js"); loaded once.
var assets = func() map[string]asset {
	m := map[string]asset{}
	err := fs.WalkDir(uiFS, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) { // do not depend on the system's mime tables
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		m[strings.TrimPrefix(p, "ui/")] = asset{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: ct}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return m
}()

// contentSecurityPolicy allows nothing but this server: no inline script
// or style, no framing, no other origin.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// routes builds the handler of every endpoint.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()

	// The app: one page, which routes on the path itself.
	for _, p := range []string{"/{$}", "/services", "/history", "/groups", "/names", "/hosts", "/daemon"} {
		mux.HandleFunc("GET "+p, s.serveApp)
	}
	mux.HandleFunc("GET /services/{uid}", s.serveServicePage)
	mux.HandleFunc("GET /assets/{file}", s.serveAsset)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		serveAssetNamed(w, r, "favicon.svg")
	})

	mux.HandleFunc("GET /api/v1/snapshot", s.apiSnapshot)
	mux.HandleFunc("GET /api/v1/services", s.apiServices)
	mux.HandleFunc("GET /api/v1/services/{uid}", s.apiService)
	mux.HandleFunc("GET /api/v1/history", s.apiHistory)
	mux.HandleFunc("GET /api/v1/groups", s.apiGroups)
	mux.HandleFunc("GET /api/v1/names", s.apiNames)
	mux.HandleFunc("GET /api/v1/flows", s.apiFlows)
	mux.HandleFunc("GET /api/v1/stats", s.apiStats)
	mux.HandleFunc("GET /api/v1/events", s.serveEvents)
	mux.HandleFunc("GET /api/v1/cluster", s.apiCluster)
	mux.HandleFunc("GET /api/v1/cluster/services", s.apiClusterServices)

	mux.HandleFunc("POST /api/v1/step", s.apiPostStep)
	mux.HandleFunc("GET /api/v1/step", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "POST a STEP (or an array of them) here; GET /api/v1/steps queries them")
	})
	mux.HandleFunc("GET /api/v1/steps", s.apiSteps)
	mux.HandleFunc("GET /api/v1/steps/stats", s.apiStepStats)
	mux.HandleFunc("GET /api/v1/steps/hosts", s.apiStepHosts)
	mux.HandleFunc("GET /api/v1/steps/stream", s.serveStepStream)
	mux.HandleFunc("GET /api/v1/steps/ws", s.serveStepWS)

	mux.HandleFunc("GET /login", s.serveLogin)
	mux.HandleFunc("POST /login", s.serveLogin)
	mux.HandleFunc("POST /logout", s.serveLogout)

	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.HandleFunc("GET /healthz", s.serveHealth)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if !s.check(w, r) { // Host, Origin and token: see guard.go
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" && !methodNotAllowed(mux, r) {
			s.notFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// methodNotAllowed reports whether r's path has a handler for GET, so that
// the mux answers 405 (with Allow) rather than the 404 page.
func methodNotAllowed(mux *http.ServeMux, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return false
	}
	g := r.Clone(r.Context())
	g.Method = http.MethodGet
	_, pattern := mux.Handler(g)
	return pattern != ""
}

var notFoundPage = template.Must(template.New("404").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Not found · STK</title><link rel="stylesheet" href="/assets/style.css"><link rel="icon" href="/assets/favicon.svg"></head>
<body><header class="top"><a class="brand" href="/"><span class="logo" aria-hidden="true"></span>STK</a></header>
<main class="notfound"><h1>404</h1><p>There is no page at <code>{{.}}</code>.</p><p><a href="/">Back to the services</a></p></main></body></html>
`))

// notFound answers 404: JSON under /api/, a small page elsewhere.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
		return
	}
	var b bytes.Buffer
	notFoundPage.Execute(&b, r.URL.Path)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNotFound)
	w.Write(b.Bytes())
}

func (s *Server) serveApp(w http.ResponseWriter, r *http.Request) {
	serveAssetNamed(w, r, "index.html")
}

// serveServicePage serves the app for one service record; the status is
// 404 when the monitor has no such record (the app says so too).
func (s *Server) serveServicePage(w http.ResponseWriter, r *http.Request) {
	uid, err := strconv.ParseUint(r.PathValue("uid"), 10, 64)
	found := false
	if err == nil && s.cfg.Monitor != nil {
		_, found = s.findService(uid)
	}
	if found {
		serveAssetNamed(w, r, "index.html")
		return
	}
	a := assets["index.html"]
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNotFound)
	w.Write(a.body)
}

func (s *Server) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "index.html" {
		s.notFound(w, r)
		return
	}
	if _, ok := assets[name]; !ok {
		s.notFound(w, r)
		return
	}
	serveAssetNamed(w, r, name)
}

// serveAssetNamed serves an embedded file with its ETag; browsers
// revalidate (no-cache) and get 304 while the binary is the same.
func serveAssetNamed(w http.ResponseWriter, r *http.Request, name string) {
	a := assets[name]
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("ETag", a.etag)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
