package namesvc

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/listeners"
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

	// Defaults of the TCP listeners unless ServerConfig.Flow says
	// otherwise. Every client sends a keep-alive each 500 ms (C and Go
	// alike), so a minute without a frame is a client gone or never there;
	// a frame started and not finished within 10 s (a few bytes of a
	// header, a slowloris) only holds a slot; one host holds at most 4096
	// connections, far more than STK programs on one host open.
	DefaultIdleTimeout   = time.Minute
	DefaultFrameTimeout  = 10 * time.Second
	DefaultMaxConnsPerIP = 4096
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
	// dispatcher. Negative: never expire, as the C server (docs/differences.md B9), which
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
	// Limits bound what clients can make the server store and do, so that
	// one client (buggy or hostile) cannot take the memory or the lock
	// from every other; the zero value applies the defaults below.
	Limits Limits
	// Policy is the access policy: who may register, look up and
	// subscribe to which names (see the package documentation, "Access
	// policy"). nil: everyone may do everything, as the C server.
	// Server.SetPolicy replaces it while the server runs.
	Policy *Policy
	// Flow is the base of the options of the flows the Serve methods open.
	// Handler, OnConnect and OnDisconnect are the server's own; the rest
	// (queue sizes, event loops, logger...) is used as given, except that
	// MaxSequenceSize defaults to DefaultMaxRequestSize: name requests are
	// small, and a peer sending garbage claims a larger frame and is
	// disconnected at once instead of being waited for. IdleTimeout,
	// FrameTimeout and MaxConnsPerIP default to DefaultIdleTimeout,
	// DefaultFrameTimeout and DefaultMaxConnsPerIP (negative: off).
	Flow flow.Options
}

// Limits bound the name server's stored state and the work one client can
// cause. Each refusal is counted by kind (ServerStats.Refused, and
// stk_names_refused_total{reason} in stkd's /metrics) and logged at Warn,
// at most once a second per kind. A refused registration or subscription
// gets no reply, as STK has none for a failure (docs/protocol.md §7.3): the
// client's request times out. Nothing else of the client changes; only
// DisconnectAfter refusals on one TCP connection close it.
//
// For every count field, 0 means its default and a negative value means
// no limit. A client is a TCP connection or a datagram source address;
// registrations count against their IP while they linger too, so a client
// cannot escape its IP's limit by reconnecting.
type Limits struct {
	// RegistrationsPerClient bounds the names one client has registered
	// (re-registering one of them replaces it and is always allowed).
	// Default 1000: an STK program registers one name per published flow
	// or service, a handful; 1000 is plenty and costs at most a few MB.
	RegistrationsPerClient int
	// RegistrationsPerIP bounds the registrations from one IP address,
	// lingering ones included. Default 10,000: every program of a host
	// registers from 127.0.0.1 or the host's address, so this is the
	// budget of a whole host.
	RegistrationsPerIP int
	// Registrations bounds the registrations stored. Default 100,000:
	// ten hosts' worth, and about 70 MB of heap (a typical registration
	// costs ~700 bytes with its index entries; BenchmarkMemoryPerName).
	Registrations int
	// MaxStoredBytes bounds the element bytes (names, addresses, meta-data)
	// of all stored registrations together. Default 32 MiB: with
	// Registrations at its default, the registrations then hold at most
	// ~100 MB of heap whatever the clients send (one host, bound by
	// RegistrationsPerIP, ~40 MB).
	MaxStoredBytes int64

	// SubscriptionsPerClient, SubscriptionsPerIP and Subscriptions bound
	// the active subscriptions of one client, one IP and in total (a
	// repeat with the same name, group and request id replaces its
	// subscription and is always allowed). Defaults 1000, 10,000 and
	// 100,000, for the same reasons as the registrations: a subscriber
	// follows the few names it connects to, and each subscription costs a
	// few hundred bytes and one answer per matching registration.
	SubscriptionsPerClient int
	SubscriptionsPerIP     int
	Subscriptions          int

	// Groups bounds the groups (name spaces). A group lives for the
	// server's life once a registration or subscription names it (§7.8),
	// so without a bound a client could create them forever. Default
	// 10,000.
	Groups int

	// MetaBytes bounds the meta-data of one registration: the bytes of
	// its elements that are not name-service fields (user types 1..7).
	// Default 4096: STK's own meta-data are address strings of tens of
	// bytes (the monitor's 0x1000.., service groups' 0x8003); 4 KiB leaves
	// applications room for a description, not for a database.
	MetaBytes int
	// Addresses bounds the NS_CONNECT_IPV4 elements of one registration.
	// Default, and maximum, MaxAddresses (5): C clients keep 5 addresses
	// when parsing answers and overflow their array on a sixth (§7.3), so
	// a registration with more would corrupt every C subscriber.
	Addresses int
	// MaxLinger caps a registration's linger: a longer one is stored and
	// answered as MaxLinger (logged at Debug, counted in
	// ServerStats.LingerClamped), not refused. Default 1 h: a service
	// restarting within the hour finds its name kept, and nothing a dead
	// client registered outlives it by years (the wire allows 2^31-1 s).
	MaxLinger time.Duration
	// DisconnectAfter closes a TCP connection once it has had this many
	// requests refused: a client that keeps exceeding its limits costs a
	// reconnect, not a stream of refusals forever. Default 1000.
	DisconnectAfter int
}

// Defaults of Limits.
const (
	DefaultRegistrationsPerClient = 1000
	DefaultRegistrationsPerIP     = 10_000
	DefaultRegistrations          = 100_000
	DefaultMaxStoredBytes         = 32 << 20
	DefaultSubscriptionsPerClient = 1000
	DefaultSubscriptionsPerIP     = 10_000
	DefaultSubscriptions          = 100_000
	DefaultGroups                 = 10_000
	DefaultMetaBytes              = 4096
	DefaultMaxLinger              = time.Hour
	DefaultDisconnectAfter        = 1000
)

// NoLimits returns Limits with every bound off except Addresses (the C
// clients' array) and the name and group lengths (their buffers), which
// always hold: the C name server's behaviour, for tests and benchmarks.
func NoLimits() Limits {
	return Limits{
		RegistrationsPerClient: -1, RegistrationsPerIP: -1, Registrations: -1, MaxStoredBytes: -1,
		SubscriptionsPerClient: -1, SubscriptionsPerIP: -1, Subscriptions: -1, Groups: -1,
		MetaBytes: -1, MaxLinger: -1, DisconnectAfter: -1,
	}
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.RegistrationsPerClient, DefaultRegistrationsPerClient)
	def(&l.RegistrationsPerIP, DefaultRegistrationsPerIP)
	def(&l.Registrations, DefaultRegistrations)
	def(&l.SubscriptionsPerClient, DefaultSubscriptionsPerClient)
	def(&l.SubscriptionsPerIP, DefaultSubscriptionsPerIP)
	def(&l.Subscriptions, DefaultSubscriptions)
	def(&l.Groups, DefaultGroups)
	def(&l.MetaBytes, DefaultMetaBytes)
	def(&l.DisconnectAfter, DefaultDisconnectAfter)
	if l.MaxStoredBytes == 0 {
		l.MaxStoredBytes = DefaultMaxStoredBytes
	}
	if l.Addresses <= 0 || l.Addresses > MaxAddresses {
		l.Addresses = MaxAddresses
	}
	if l.MaxLinger == 0 {
		l.MaxLinger = DefaultMaxLinger
	}
	return l
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
	c.Limits = c.Limits.withDefaults()
	c.Flow = listeners.ServerDefaults(c.Flow, flow.Options{MaxSequenceSize: DefaultMaxRequestSize,
		IdleTimeout: DefaultIdleTimeout, FrameTimeout: DefaultFrameTimeout, MaxConnsPerIP: DefaultMaxConnsPerIP})
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
	// Token, "NAME:SECRET", identifies the client to a server whose access
	// policy defines that token. It goes in every keep-alive smartbeat
	// (element UTToken), the first of which leaves on every (re)connect
	// before any request; it is never part of a registration, so it is
	// not stored nor answered to lookups. Over UDP it identifies the
	// source address, which can be spoofed: policies may refuse UDP.
	// Default: the token given to SetDefaultToken, if any.
	Token string
	// NoEndOfAnswers leaves the end-of-answers element out of lookups and
	// subscriptions, so requests are byte for byte those of the C client.
	NoEndOfAnswers bool
	// OnServerChange, if set, is called (on the flow's read loop) when the
	// keep-alive echo shows a new server id; old is 0 for the first one.
	OnServerChange func(old, new uint64)
	// Logger receives the client's log lines; nil means slog.Default().
	Logger *slog.Logger
	// TLS configures the connection to a "tls:ip:port" server address:
	// the CAs to trust (RootCAs) and, for a server asking for mutual TLS,
	// the client certificate (flow.NewClientTLS builds one from files).
	// nil trusts the system's roots and shows no certificate. It is not
	// used for tcp: and udp: addresses.
	TLS *tls.Config
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
	if o.Token == "" {
		if t := defaultToken.Load(); t != nil {
			o.Token = *t
		}
	}
	return o
}

var defaultToken atomic.Pointer[string]

// SetDefaultToken sets the token of the clients made afterwards whose
// ClientOptions give none: for programs whose libraries dial the name
// server themselves (stkd's monitor and STEP bus). "" removes it.
func SetDefaultToken(token string) {
	if token == "" {
		defaultToken.Store(nil)
		return
	}
	defaultToken.Store(&token)
}

// checkToken reports what is wrong with a token.
func checkToken(t string) error {
	name, secret, ok := strings.Cut(t, ":")
	if !ok || name == "" || secret == "" || strings.ContainsAny(name, " \t") {
		return errors.New("namesvc: token: want NAME:SECRET, as the server's policy file defines it (token NAME ...)")
	}
	return nil
}
