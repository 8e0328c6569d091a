package httpd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
	"github.com/stk-go/stk/stepbus"
)

// Monitor is what the UI reads from the service monitor;
// *smartbeat.Monitor implements it.
type Monitor interface {
	// Snapshot returns the lists and counters at one event sequence number.
	Snapshot() smartbeat.Snapshot
	// Services returns the current records (for /metrics).
	Services() []smartbeat.ServiceView
	// Groups returns the service groups, sorted by name.
	Groups() []smartbeat.GroupView
	// Stats returns the monitor's counters.
	Stats() smartbeat.MonitorStats
	// EventsSince returns the events after seq; ok is false when some are
	// gone from the ring.
	EventsSince(seq uint64) (events []smartbeat.Event, ok bool)
	// Subscribe calls fn for every later event, in order, on a goroutine
	// of its own, and never blocks the monitor.
	Subscribe(fn func(smartbeat.Event)) (cancel func())
}

// Names is what the UI reads from the name server; *namesvc.Server
// implements it.
type Names interface {
	Names() []namesvc.Entry
	Stats() namesvc.ServerStats
}

// FlowInfo describes one of the daemon's data flows for the Daemon page,
// the flows API and /metrics.
type FlowInfo struct {
	// Name identifies the flow in the UI and in the flow label of the
	// metrics, e.g. "names-tcp" or "monitor-udp". Keep it unique.
	Name     string
	Protocol string // "tcp", "udp", "rawudp" or "multicast"
	Addr     netip.AddrPort
	Stats    flow.Stats
	// Error says why the flow cannot serve now, for example a listener
	// that cannot accept connections (out of descriptors); "" when it
	// can. /healthz answers 503 while any flow has one.
	Error string
}

// Config configures a Server. Every component may be nil: its page then
// says it is not running and its API endpoints answer 503.
type Config struct {
	// Monitor is the service monitor. A nil pointer in a non-nil
	// interface counts as nil.
	Monitor Monitor
	// Names is the name server.
	Names Names
	// Flows lists the daemon's data flows; it is called on every request
	// that shows them, and must be cheap and safe for concurrent use.
	Flows func() []FlowInfo
	// Steps is the STEP bus behind /api/v1/step, /api/v1/steps... and the
	// Hosts page. The server does not close it.
	Steps *stepbus.Bus
	// Cluster is set on a node of a cluster (stkd --cluster): the Services
	// page and /api/v1/services then show every node's services, the
	// Daemon page the cluster, /metrics its counters. Nil: none of that.
	Cluster Cluster

	// Version is the daemon's version, shown on the Daemon page and in
	// stk_build_info; default: the main module's version from the build
	// information, with the VCS revision when there is one.
	Version string
	// Started is when the daemon started; default: when New was called.
	Started time.Time

	// Heartbeat is how often an idle event stream gets a comment line.
	// Default 15 s.
	Heartbeat time.Duration
	// ClientBuffer is how many messages wait for one event-stream client
	// before it is dropped, and how many STEPs for one STEP stream or
	// WebSocket. Default 1024.
	ClientBuffer int
	// WriteTimeout bounds each write to an event-stream client. Default
	// 10 s.
	WriteTimeout time.Duration
	// Retry is how long a browser waits before it reconnects a stream that
	// was cut (the "retry:" field). Default 2 s.
	Retry time.Duration
	// NamesInterval is how often the names are compared with the last
	// list while event streams are open. Default 1 s.
	NamesInterval time.Duration
	// StatsInterval is how often the statistics are pushed to open event
	// streams. Default 2 s.
	StatsInterval time.Duration
	// SparkPoints is how many smartbeat intervals are kept per service
	// for the sparkline. Default 60.
	SparkPoints int
	// NamesLimit caps the names one /api/v1/names answer lists (the count
	// of matches is still given). Default 2000.
	NamesLimit int

	// AllowedHosts are further names the Host header may carry, besides
	// localhost, loopback addresses and this host's own addresses (the
	// port is not compared): the names users reach the server by, such as
	// a DNS name or a reverse proxy's. "*" allows any Host, which gives up
	// the protection against DNS rebinding. Any other Host is answered 421.
	AllowedHosts []string
	// AllowedOrigins are further web origins ("https://ui.example",
	// scheme://host[:port]) whose pages may POST and open streams here;
	// this server's own origin always may. See ParseOrigin.
	AllowedOrigins []string
	// Token, when set, is required (Authorization: Bearer, or the cookie
	// /login sets) by every request that changes state, by the event
	// streams and the WebSocket, by the app's pages (which redirect to
	// /login), and by reads from peers other than loopback.
	Token string
	// TokenForReads makes the API reads and /metrics need the Token from
	// loopback peers too (behind a reverse proxy on this host every
	// request comes from loopback).
	TokenForReads bool

	// Logger receives the server's log lines; default slog.Default().
	Logger *slog.Logger
	// Now is the clock of the "now" fields; default time.Now.
	Now func() time.Time
}

// Defaults of Config.
const (
	DefaultHeartbeat     = 15 * time.Second
	DefaultClientBuffer  = 1024
	DefaultWriteTimeout  = 10 * time.Second
	DefaultRetry         = 2 * time.Second
	DefaultNamesInterval = time.Second
	DefaultStatsInterval = 2 * time.Second
	DefaultSparkPoints   = 60
	DefaultNamesLimit    = 2000
)

func (c Config) withDefaults() Config {
	if isNil(c.Monitor) {
		c.Monitor = nil
	}
	if isNil(c.Names) {
		c.Names = nil
	}
	if isNil(c.Cluster) {
		c.Cluster = nil
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Version == "" {
		c.Version = buildVersion()
	}
	if c.Started.IsZero() {
		c.Started = c.Now()
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.ClientBuffer <= 0 {
		c.ClientBuffer = DefaultClientBuffer
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Retry <= 0 {
		c.Retry = DefaultRetry
	}
	if c.NamesInterval <= 0 {
		c.NamesInterval = DefaultNamesInterval
	}
	if c.StatsInterval <= 0 {
		c.StatsInterval = DefaultStatsInterval
	}
	if c.SparkPoints <= 0 {
		c.SparkPoints = DefaultSparkPoints
	}
	if c.NamesLimit <= 0 {
		c.NamesLimit = DefaultNamesLimit
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// isNil reports whether v is nil or holds a nil pointer.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Interface, reflect.Slice, reflect.Chan:
		return r.IsNil()
	}
	return false
}

// Server serves the UI. Create it with New; serve it with Serve,
// ListenAndServe or by mounting Handler; stop it with Shutdown or Close.
type Server struct {
	cfg      Config
	log      *slog.Logger
	instance string
	hub      *hub
	guard    *guard
	handler  http.Handler

	stepStats stepStats // counters of the STEP endpoints

	mu      sync.Mutex
	servers map[*http.Server]struct{}
	closed  bool
}

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close.
var ErrServerClosed = http.ErrServerClosed

// New returns a server for cfg. It subscribes to the monitor's events at
// once (to keep the smartbeat intervals of the sparklines), so call
// Shutdown or Close when done with it.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	g, err := newGuard(cfg)
	if err != nil {
		return nil, err
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		instance: hex.EncodeToString(id[:]),
		guard:    g,
		servers:  map[*http.Server]struct{}{},
	}
	s.hub = newHub(s)
	s.handler = s.routes()
	return s, nil
}

// Handler returns the handler of every endpoint, with the security
// headers. Serve uses it; a program can mount it elsewhere instead.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves HTTP on ln until Shutdown or Close, and returns
// ErrServerClosed then.
func (s *Server) Serve(ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.servers[hs] = struct{}{}
	s.mu.Unlock()
	s.log.Info("http status UI listening", "addr", "http://"+ln.Addr().String()+"/")
	err := hs.Serve(ln)
	s.mu.Lock()
	delete(s.servers, hs)
	s.mu.Unlock()
	return err
}

// ListenAndServe listens on the TCP address addr ("127.0.0.1:8080") and
// serves until Shutdown or Close.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Shutdown ends the event streams, stops the listeners, waits for the
// other requests to finish (or ctx to end) and cancels the monitor
// subscription.
func (s *Server) Shutdown(ctx context.Context) error {
	servers := s.markClosed()
	s.hub.close()
	var errs []error
	for _, hs := range servers {
		if err := hs.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	servers := s.markClosed()
	s.hub.close()
	var errs []error
	for _, hs := range servers {
		errs = append(errs, hs.Close())
	}
	return errors.Join(errs...)
}

func (s *Server) markClosed() []*http.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	out := make([]*http.Server, 0, len(s.servers))
	for hs := range s.servers {
		out = append(out, hs)
	}
	return out
}

// buildVersion describes the binary from its build information:
// "v1.2.3", "(devel) 1a2b3c4d5e6f" or "(devel) 1a2b3c4d5e6f+dirty".
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	v := bi.Main.Version
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" && (v == "" || v == "(devel)") {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "+dirty"
		}
		v = strings.TrimSpace(v + " " + rev)
	}
	return v
}
