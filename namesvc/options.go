package namesvc

import (
	"log/slog"
	"time"

	"github.com/stk-go/stk/flow"
)

// Well-known values of the name service.
const (
	// DefaultPort is the name server's TCP and UDP port (STK_NAMED_RCV_DF_PORT).
	DefaultPort = 20002
	// DefaultHost is where clients look for the name server by default.
	DefaultHost = "127.0.0.1"
)

// Server defaults; see the ServerConfig fields.
const (
	DefaultUDPTTL     = 2 * time.Minute
	DefaultGCInterval = time.Second
)

// Client defaults; see the ClientOptions fields.
const (
	DefaultKeepalive        = 500 * time.Millisecond
	DefaultLookupExpiration = time.Second
	DefaultRetryInterval    = time.Second
)

// ServerConfig configures a Server. The zero value works.
type ServerConfig struct {
	// ID is the server id echoed in keep-alives (NS_ID). Clients re-register
	// and re-subscribe when it changes, so it must stay the same for the
	// server's life and differ between runs. 0 picks a random one.
	ID uint64
	// UDPTTL is how long a UDP or multicast source may stay silent before
	// the server treats it as disconnected: its subscriptions end and its
	// registrations linger (each its own linger, as after a TCP client's
	// disconnect), then go. Any registration or keep-alive smartbeat from
	// the same source address refreshes all of that source's
	// registrations and subscriptions; C clients send a keep-alive every
	// 500 ms, so a live client never expires. Default
	// DefaultUDPTTL (2 min), long enough for a client that pauses its
	// dispatcher. Negative: never expire, as the C server (bug B9), which
	// keeps registrations of dead UDP clients forever.
	UDPTTL time.Duration
	// GCInterval is how often lingering and timed-out registrations are
	// removed from the store. Expired registrations are never answered
	// even before the collector runs; it only frees memory. Default
	// DefaultGCInterval (1 s, as C).
	GCInterval time.Duration
	// Store holds the registrations; nil means a new MemStore.
	Store Store
	// Logger receives the server's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for linger and TTL; nil means time.Now. Tests inject
	// a fake one.
	Now func() time.Time
	// Flow is the base of the options of the flows the Serve methods open.
	// Handler, OnConnect and OnDisconnect are the server's own; the rest
	// (queue sizes, event loops, logger...) is used as given, except that
	// MaxSequenceSize defaults to DefaultMaxRequestSize: name requests are
	// small, and a peer sending garbage claims a larger frame and is
	// disconnected at once instead of being waited for.
	Flow flow.Options
}

// DefaultMaxRequestSize bounds a sequence received by the server (64 KiB:
// a registration with 250 meta-data elements of 250 bytes still fits).
const DefaultMaxRequestSize = 64 << 10

func (c ServerConfig) withDefaults() ServerConfig {
	if c.UDPTTL == 0 {
		c.UDPTTL = DefaultUDPTTL
	}
	if c.GCInterval <= 0 {
		c.GCInterval = DefaultGCInterval
	}
	if c.Store == nil {
		c.Store = NewMemStore()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Flow.MaxSequenceSize <= 0 {
		c.Flow.MaxSequenceSize = DefaultMaxRequestSize
	}
	return c
}

// ClientOptions configure a Client. The zero value works.
type ClientOptions struct {
	// Group is the group of requests that name none (in C, the env-wide
	// group_name option). Default "": the default group.
	Group string
	// Keepalive is the period of the keep-alive smartbeat (§7.9); the first
	// one goes out on every (re)connect. Default DefaultKeepalive (500 ms,
	// as C). Its echo carries the server id; a new id makes the client
	// register and subscribe again.
	Keepalive time.Duration
	// LookupExpiration is how long a lookup waits for answers when its
	// LookupOptions give no expiration. Against our server the end-of-
	// answers marker ends a lookup early; against a C server the expiration
	// is the only end. Default DefaultLookupExpiration (1 s, as the C
	// examples).
	LookupExpiration time.Duration
	// RetryInterval is how often Register re-sends an unanswered request
	// over UDP, where datagrams can be lost. Default DefaultRetryInterval.
	RetryInterval time.Duration
	// NoEndOfAnswers leaves the end-of-answers element out of lookups and
	// subscriptions, so requests are byte for byte those of the C client.
	NoEndOfAnswers bool
	// OnServerChange, if set, is called (on the flow's read loop) when the
	// keep-alive echo shows a new server id; old is 0 for the first one.
	OnServerChange func(old, new uint64)
	// Logger receives the client's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Flow are the options of the client's flow to the server. Handler,
	// OnConnect and OnDisconnect are the client's own; reconnect back-off,
	// queue sizes and the rest are used as given.
	Flow flow.Options
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.Keepalive <= 0 {
		o.Keepalive = DefaultKeepalive
	}
	if o.LookupExpiration <= 0 {
		o.LookupExpiration = DefaultLookupExpiration
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
