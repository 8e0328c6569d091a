package stepbus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/ratelog"
	"github.com/stk-go/stk/step"
)

// Defaults of Config.
const (
	DefaultHistory          = 100000
	DefaultArchiveMaxBytes  = 64 << 20
	DefaultArchiveMaxAge    = time.Hour
	DefaultArchiveKeep      = 168 // a week of hourly segments
	DefaultFlushInterval    = time.Second
	DefaultArchiveQueue     = 65536
	DefaultFeedQueue        = 8192
	DefaultFeedName         = "steps"
	DefaultDirectory        = "step"
	DefaultFeedLinger       = 5 * time.Second
	DefaultPublisherGrace   = 60 * time.Second
	DefaultSubscriberBuffer = 1024
)

// MaxStatKeys bounds each per-type, per-host and per-source map of the
// statistics and the number of hosts Hosts remembers, so that a client
// inventing types or hosts cannot grow the bus without bound. Counts of
// keys beyond it go to OtherKey; hosts beyond it replace the one seen
// longest ago.
const MaxStatKeys = 4096

// OtherKey collects the counts of keys beyond MaxStatKeys.
const OtherKey = "(other)"

// ErrClosed is returned by the methods of a closed Bus.
var ErrClosed = errors.New("stepbus: closed")

// Config configures a Bus. The zero value works: every zero field takes the
// default its comment gives.
type Config struct {
	// History is how many STEPs are kept in memory for Query. Default
	// DefaultHistory.
	History int

	// ArchiveDir is where segments are written; "" keeps no archive. It is
	// created if missing.
	ArchiveDir string
	// ArchiveMaxBytes starts a new segment once the current one holds this
	// many uncompressed bytes. Default DefaultArchiveMaxBytes (64 MiB).
	ArchiveMaxBytes int64
	// ArchiveMaxAge starts a new segment once the current one is this old.
	// Default DefaultArchiveMaxAge (1 h).
	ArchiveMaxAge time.Duration
	// ArchiveKeep is how many rotated segments are kept besides the
	// current one; older ones are deleted. Default DefaultArchiveKeep.
	ArchiveKeep int
	// ArchiveQueue bounds the STEPs waiting for the archive writer; when
	// the disk stalls, more are dropped and counted. Default
	// DefaultArchiveQueue.
	ArchiveQueue int
	// FlushInterval is how often the archive writer appends a frame to the
	// segment and syncs it: what a kill -9 may lose. Default
	// DefaultFlushInterval (1 s).
	FlushInterval time.Duration

	// NameServer is the name server the feed registers with and the
	// follower subscribes to, "[tcp|udp|tls:]ip[:port]" as namesvc.Dial takes
	// it. "" leaves the feed unregistered and makes Follow fail.
	NameServer string
	// NameServerTLS configures the connection to a "tls:ip:port"
	// NameServer (stk.Options.TLS): the CAs to trust and, for mutual TLS,
	// the client certificate. Other addresses ignore it.
	NameServerTLS *tls.Config
	// FeedName is the name the feed registers. Default DefaultFeedName.
	FeedName string
	// FeedLinger is the linger of the feed's registration. Default
	// DefaultFeedLinger.
	FeedLinger time.Duration
	// FeedQueue bounds the STEPs waiting to be encoded for the feed.
	// Default DefaultFeedQueue.
	FeedQueue int
	// AdvertiseHost is the IP the feed registers when it listens on the
	// unspecified address (0.0.0.0); default: the address of this host's
	// interface toward the name server, or its primary address when the
	// name server is on loopback (flow.AdvertiseIP).
	AdvertiseHost string
	// Directory is the name every publisher registers its feed under, the
	// one Follow subscribes to. Default DefaultDirectory.
	Directory string
	// AcceptNetworks, if not empty, are the networks Follow follows
	// publishers in: a registration under Directory whose address is in
	// none of them is not connected to, and is logged (once per address)
	// and counted in Stats.PublishersIgnored. Empty: any address; then
	// whoever the name server lets register Directory is followed (its
	// access policy, stkd --policy, is the other guard).
	AcceptNetworks []netip.Prefix
	// PublisherGrace is how long a followed publisher's connection may
	// stay down before the bus checks its registration and, if it is gone,
	// drops it. Default DefaultPublisherGrace.
	PublisherGrace time.Duration

	// Logger receives the bus's log lines. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock (tests inject one). Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.History <= 0 {
		c.History = DefaultHistory
	}
	if c.ArchiveMaxBytes <= 0 {
		c.ArchiveMaxBytes = DefaultArchiveMaxBytes
	}
	if c.ArchiveMaxAge <= 0 {
		c.ArchiveMaxAge = DefaultArchiveMaxAge
	}
	if c.ArchiveKeep <= 0 {
		c.ArchiveKeep = DefaultArchiveKeep
	}
	if c.ArchiveQueue <= 0 {
		c.ArchiveQueue = DefaultArchiveQueue
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.FeedName == "" {
		c.FeedName = DefaultFeedName
	}
	if c.FeedLinger <= 0 {
		c.FeedLinger = DefaultFeedLinger
	}
	if c.FeedQueue <= 0 {
		c.FeedQueue = DefaultFeedQueue
	}
	if c.Directory == "" {
		c.Directory = DefaultDirectory
	}
	if c.PublisherGrace <= 0 {
		c.PublisherGrace = DefaultPublisherGrace
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Bus is the STEP bus. Its methods are safe for concurrent use.
type Bus struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	started time.Time

	mu       sync.RWMutex
	closed   bool
	hist     ring
	byType   map[string]uint64
	bySource map[string]uint64
	hosts    map[string]*hostState
	subs     []*Subscription

	received, published, dropped, invalid atomic.Uint64

	archive *archive // nil without ArchiveDir
	feed    *feed    // nil until ServeFeed
	// feedMu serializes ServeFeed, which checks that no feed is served
	// before it registers one.
	feedMu sync.Mutex

	nsOnce sync.Once
	ns     *stk.Env // the name server's, for the feed and the follower
	nsErr  error

	follow *follower // nil until Follow

	invalidLog ratelog.Limiter // "invalid STEP": one line a second
}

// attach sets *slot (the bus's feed or follower) to v under b.mu, unless
// the bus is closed (ErrClosed) or *slot is already set (an error saying
// busy): a bus has one of each.
func attach[T any](b *Bus, slot **T, v *T, busy string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := taken(b, *slot, busy); err != nil {
		return err
	}
	*slot = v
	return nil
}

// vacant is attach's check alone, for a caller that must know before it
// starts (ServeFeed, before it registers anything).
func vacant[T any](b *Bus, slot **T, busy string) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return taken(b, *slot, busy)
}

// taken says why a slot holding cur cannot be set (b.mu held): ErrClosed,
// busy, or nil when it can.
func taken[T any](b *Bus, cur *T, busy string) error {
	switch {
	case b.closed:
		return ErrClosed
	case cur != nil:
		return errors.New(busy)
	}
	return nil
}

// New starts a bus. With cfg.ArchiveDir it opens the archive, repairing a
// segment a crash left torn, and starts its writer.
func New(cfg Config) (*Bus, error) {
	cfg = cfg.withDefaults()
	if cfg.FeedName == cfg.Directory {
		return nil, fmt.Errorf("stepbus: the feed name and the directory are both %q: the bus would follow its own feed", cfg.FeedName)
	}
	b := &Bus{
		cfg:      cfg,
		log:      cfg.Logger,
		now:      cfg.Now,
		hist:     newRing(cfg.History),
		byType:   map[string]uint64{},
		bySource: map[string]uint64{},
		hosts:    map[string]*hostState{},
	}
	b.started = b.now()
	if cfg.ArchiveDir != "" {
		a, err := openArchive(cfg, b.log.With("archive", cfg.ArchiveDir))
		if err != nil {
			return nil, err
		}
		b.archive = a
	}
	return b, nil
}

// Publish validates s and, if it is valid, adds it to the history, hands
// it to the archive and the feed and delivers it to every matching
// subscriber. The bus keeps s: the caller must not change it afterwards.
// source says where s came from ("http", "tcp:10.1.4.22:40123", ...): it
// is counted in Stats.BySource and kept with s in the history
// (QueryWithSources). The error is s's validation error (its text fits an HTTP
// 400 reply) or ErrClosed. Publish never waits for a consumer.
func (b *Bus) Publish(s *step.Step, source string) error {
	b.received.Add(1)
	if s == nil {
		b.invalid.Add(1)
		return errors.New("no STEP")
	}
	if err := s.Validate(); err != nil {
		b.invalid.Add(1)
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	b.hist.add(s, source)
	bump(b.byType, s.Event.Type)
	bump(b.bySource, source)
	b.hostSeen(s)
	for _, sub := range b.subs {
		sub.offer(s)
	}
	if b.archive != nil {
		b.archive.enqueue(s)
	}
	if b.feed != nil {
		b.feed.enqueue(s)
	}
	b.published.Add(1)
	return nil
}

// countInvalid counts a STEP that could not be decoded from a publisher and
// logs it at most once a second.
func (b *Bus) countInvalid(source string, err error) {
	b.received.Add(1)
	b.invalid.Add(1)
	b.invalidLog.Warn(b.log, "invalid STEP ignored", "source", source, "err", err, "invalid_total", b.invalid.Load())
}

// bump counts key in m, under OtherKey once m holds MaxStatKeys keys.
func bump(m map[string]uint64, key string) {
	if _, ok := m[key]; !ok && len(m) >= MaxStatKeys {
		key = OtherKey
	}
	m[key]++
}

// Stats are the bus's counters and sizes. Times are RFC 3339 in JSON.
type Stats struct {
	// Received counts the STEPs offered: to Publish, or as sequences from
	// followed publishers.
	Received uint64 `json:"received"`
	// Published counts the STEPs accepted.
	Published uint64 `json:"published"`
	// Dropped counts deliveries lost because a subscriber's buffer was full.
	Dropped uint64 `json:"dropped"`
	// Invalid counts the STEPs refused: failed validation, or sequences
	// that do not decode as a STEP.
	Invalid uint64 `json:"invalid"`
	// History is the number of STEPs in memory; HistoryCap its bound.
	History    int `json:"history"`
	HistoryCap int `json:"history_cap"`
	// Oldest and Newest are the time.start (Unix ms) of the STEPs first
	// and last added to the history; 0 when it is empty.
	Oldest int64 `json:"oldest"`
	Newest int64 `json:"newest"`
	// ByType, ByHost and BySource count accepted STEPs (at most
	// MaxStatKeys keys each; see OtherKey).
	ByType   map[string]uint64 `json:"by_type"`
	ByHost   map[string]uint64 `json:"by_host"`
	BySource map[string]uint64 `json:"by_source"`
	// Hosts is the number of hosts seen (Hosts lists them).
	Hosts int `json:"hosts"`
	// Subscribers is the number of open subscriptions.
	Subscribers int `json:"subscribers"`
	// Publishers is the number of followed publishers; PublishersConnected
	// how many of them have a connection now.
	Publishers          int `json:"publishers"`
	PublishersConnected int `json:"publishers_connected"`
	// PublishersIgnored is the number of publisher addresses registered
	// under the directory outside Config.AcceptNetworks (at most
	// MaxStatKeys are remembered).
	PublishersIgnored int `json:"publishers_ignored"`
	// Feed describes the feed flow.
	Feed FeedStats `json:"feed"`
	// Archive describes the archive.
	Archive ArchiveStats `json:"archive"`
	// Started is when the bus was made.
	Started time.Time `json:"started"`
}

// FeedStats describe the feed flow.
type FeedStats struct {
	// Addr is where the feed listens ("" when not serving); Registered
	// whether the name server confirmed its name.
	Addr       string `json:"addr"`
	Name       string `json:"name"`
	Registered bool   `json:"registered"`
	// Conns is the number of connected feed subscribers.
	Conns int `json:"conns"`
	// Sent counts the STEP sequences sent; Dropped the STEPs lost because
	// the feed's queue was full or could not be encoded.
	Sent    uint64 `json:"sent"`
	Dropped uint64 `json:"dropped"`
}

// ArchiveStats describe the archive.
type ArchiveStats struct {
	// Enabled is false without Config.ArchiveDir; the rest is then zero.
	Enabled bool   `json:"enabled"`
	Dir     string `json:"dir"`
	// Segment is the file being written ("" before the first flush).
	Segment string `json:"segment"`
	// Segments and Bytes are the number and compressed size of the segment
	// files in Dir, as of the last flush.
	Segments int   `json:"segments"`
	Bytes    int64 `json:"bytes"`
	// Written counts STEPs written to disk; Pending those queued or
	// gathered but not yet written.
	Written uint64 `json:"written"`
	Pending int    `json:"pending"`
	// Dropped counts STEPs lost because the writer's queue was full (a
	// stalled disk) or a write failed.
	Dropped uint64 `json:"dropped"`
	// Errors counts failed writes; LastError is the latest.
	Errors    uint64 `json:"errors"`
	LastError string `json:"last_error,omitempty"`
	// Failing is true while the archive cannot write: a write failed and
	// none has succeeded since.
	Failing bool `json:"failing"`
	// LastFlush is when a frame was last written.
	LastFlush time.Time `json:"last_flush,omitzero"`
	// Repaired counts bytes of torn frames cut off at start.
	Repaired int64 `json:"repaired"`
}

// Health returns nil while the bus does all it was asked to, else what it
// cannot do: the archive failing to write (STEPs are then lost from it),
// or the bus closed. A health check (stkd's /healthz) reports it.
func (b *Bus) Health() error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if b.archive != nil {
		if st := b.archive.stats(); st.Failing {
			return fmt.Errorf("stepbus: the archive in %s cannot write (%d STEPs lost so far): %s", st.Dir, st.Dropped, st.LastError)
		}
	}
	return nil
}

// Stats returns the bus's counters. The maps are copies.
func (b *Bus) Stats() Stats {
	st := Stats{
		Received:  b.received.Load(),
		Published: b.published.Load(),
		Dropped:   b.dropped.Load(),
		Invalid:   b.invalid.Load(),
		Started:   b.started,
	}
	b.mu.RLock()
	st.History, st.HistoryCap = b.hist.len(), b.hist.cap()
	if st.History > 0 {
		st.Oldest, st.Newest = b.hist.at(0).start, b.hist.at(st.History-1).start
	}
	st.ByType = clone(b.byType)
	st.BySource = clone(b.bySource)
	st.ByHost = make(map[string]uint64, len(b.hosts))
	for k, h := range b.hosts {
		st.ByHost[k] = h.events
	}
	st.Hosts = len(b.hosts)
	st.Subscribers = len(b.subs)
	fd, fl := b.feed, b.follow
	b.mu.RUnlock()
	if fd != nil {
		st.Feed = fd.stats()
	}
	if fl != nil {
		st.Publishers, st.PublishersConnected, st.PublishersIgnored = fl.counts()
	}
	if b.archive != nil {
		st.Archive = b.archive.stats()
	}
	return st
}

func clone(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// names returns the bus's name-server environment, connecting it on first
// use.
func (b *Bus) names() (*stk.Env, error) {
	b.nsOnce.Do(func() {
		b.mu.RLock()
		closed := b.closed
		b.mu.RUnlock()
		if closed {
			b.nsErr = ErrClosed
			return
		}
		if b.cfg.NameServer == "" {
			b.nsErr = errors.New("stepbus: no name server configured")
			return
		}
		b.ns, b.nsErr = stk.Connect(b.cfg.NameServer, stk.Options{Logger: b.log.With("component", "steps names"), TLS: b.cfg.NameServerTLS})
		if b.nsErr != nil {
			b.nsErr = fmt.Errorf("stepbus: %w", b.nsErr)
		}
	})
	return b.ns, b.nsErr
}

// Flows returns the bus's data flows: the feed server and the client flow
// to each followed publisher.
func (b *Bus) Flows() []flow.Flow {
	b.mu.RLock()
	fd, fl := b.feed, b.follow
	b.mu.RUnlock()
	var out []flow.Flow
	if fd != nil {
		out = append(out, fd.pub.Flow())
	}
	if fl != nil {
		out = append(out, fl.flows()...)
	}
	return out
}

// Close stops the bus: the follower's flows, the feed, the name-service
// client, then the archive (writing what it holds) and every subscription
// (their channels close). Later Publish calls return ErrClosed.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := b.subs
	b.subs = nil
	for _, s := range subs {
		s.closeLocked()
	}
	fd, fl := b.feed, b.follow
	b.mu.Unlock()

	var errs []error
	if fl != nil {
		fl.close()
	}
	if fd != nil {
		errs = append(errs, fd.close())
	}
	b.nsOnce.Do(func() {}) // no client after this
	if b.ns != nil {
		errs = append(errs, b.ns.Close())
	}
	if b.archive != nil {
		errs = append(errs, b.archive.close())
	}
	return errors.Join(errs...)
}
