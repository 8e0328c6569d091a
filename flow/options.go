package flow

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/stk-go/stk/seq"
)

// Handler receives every sequence a flow reads, on the flow's read loop. s
// and its element data are valid only until Handler returns; from identifies
// the sender and can carry a reply. A slow Handler slows that connection (or
// socket) only.
type Handler func(from Peer, s *seq.Sequence)

// SlowConsumerPolicy says what a flow does when a peer's outbound queue is
// full.
type SlowConsumerPolicy uint8

const (
	// Disconnect closes the connection of a peer whose queue is full, so it
	// can reconnect and resume at the current data. The default.
	Disconnect SlowConsumerPolicy = iota
	// Drop discards the sequences that do not fit and keeps the connection.
	Drop
)

func (p SlowConsumerPolicy) String() string {
	if p == Drop {
		return "drop"
	}
	return "disconnect"
}

// Defaults for Options. Each is chosen for a loopback or LAN peer of a
// busy publisher; see the field comments.
const (
	DefaultQueueBytes       = 4 << 20 // per connection: ~4 ms of a 1 GB/s stream, 60 k small sequences
	DefaultCloseTimeout     = 5 * time.Second
	DefaultSlowConsumerWait = time.Second
	DefaultReconnectMin     = 50 * time.Millisecond
	DefaultReconnectMax     = 5 * time.Second
	DefaultDialTimeout      = 5 * time.Second
	DefaultReadBufferSize   = 64 << 10
	DefaultMaxConns         = 16384 // each costs two descriptors, a writer goroutine and its queue's bound
)

// Options configure a flow. The zero value works: every zero field takes the
// default its comment gives.
type Options struct {
	// Handler receives incoming sequences; nil discards them.
	Handler Handler
	// OnConnect is called when a connection opens (TCP only): accepted on a
	// server, (re)established on a client.
	OnConnect func(p Peer)
	// OnDisconnect is called when a connection closes, with the reason
	// (nil for a local Close).
	OnDisconnect func(p Peer, err error)

	// MaxSequenceSize bounds one received sequence; a peer that sends a
	// larger one is disconnected (TCP) or its datagrams dropped (UDP).
	// Default seq.DefaultMaxSize (64 MiB).
	MaxSequenceSize int
	// QueueBytes bounds the encoded bytes waiting to be written to one peer.
	// Default DefaultQueueBytes. A single sequence larger than QueueBytes is
	// still accepted when the queue is empty, so any sequence up to
	// MaxSequenceSize can be sent.
	QueueBytes int
	// SlowConsumer is what happens when a peer's queue stays full for
	// SlowConsumerWait. UDP flows have no connection to drop: they always
	// drop (Send returns ErrQueueFull).
	SlowConsumer SlowConsumerPolicy
	// SlowConsumerWait is how long Send waits for room in a full queue
	// before the peer is declared slow. A peer that is only a little behind
	// slows the sender down instead of losing data; a stuck one delays the
	// sender once, by this much, and is then disconnected or dropped from
	// without waiting (until it has drained half its queue). Replies sent
	// with Peer.Send from a Handler never wait: they would stall the read
	// loop. Default DefaultSlowConsumerWait.
	SlowConsumerWait time.Duration
	// CloseTimeout bounds how long Close waits to deliver what was accepted.
	// Default DefaultCloseTimeout.
	CloseTimeout time.Duration

	// MaxConns bounds a TCP server's open connections; one more is
	// accepted and closed at once, counted in Stats.Refused. Default
	// DefaultMaxConns. Negative: no bound.
	MaxConns int
	// MaxConnsPerIP bounds a TCP server's open connections from one source
	// IP address, so that one host cannot take every slot. Default 0: no
	// bound (every local client shares 127.0.0.1); the name server and the
	// monitor set one.
	MaxConnsPerIP int
	// IdleTimeout closes a TCP server's connection that has completed no
	// frame for this long. Default 0: never, as a publisher's subscribers
	// send nothing; servers whose clients send keep-alives (the name
	// server, the monitor) set one.
	IdleTimeout time.Duration
	// FrameTimeout closes a TCP server's connection that started a frame
	// and did not complete it within this long: a peer that sends a few
	// bytes of a header and stops, or dribbles a byte at a time, cannot
	// hold a connection and its buffer for ever. Default 0: never (a large
	// sequence over a slow link may take long); the name server and the
	// monitor set one.
	FrameTimeout time.Duration

	// EventLoops is the number of gnet event loops of a TCP server; 0 means
	// one per CPU.
	EventLoops int
	// Nagle turns Nagle's algorithm on (TCP_NODELAY off). Default off: the
	// flow batches its own writes, so Nagle's delay would only add latency.
	Nagle bool
	// SendBuffer and ReceiveBuffer set the socket buffer sizes in bytes; 0
	// keeps the system's. Over loopback, whose segments are up to 64 KiB,
	// keep a TCP flow's at 64 KiB or more: Linux sends from a smaller buffer
	// at a crawl (8 MiB through a 16 KiB send buffer took 4 s, through a
	// 64 KiB one 8 ms).
	SendBuffer, ReceiveBuffer int

	// ReconnectMin and ReconnectMax bound a TCP client's exponential
	// back-off between connection attempts (with jitter). Defaults
	// DefaultReconnectMin and DefaultReconnectMax.
	ReconnectMin, ReconnectMax time.Duration
	// DialTimeout bounds one connection attempt, TLS handshake included.
	// Default DefaultDialTimeout.
	DialTimeout time.Duration

	// TLS, when set, makes DialTCP's connections TLS ones with this
	// configuration (an empty ServerName is taken from the address), and is
	// the configuration ListenTLS serves with (required there). ListenTCP
	// refuses it: its gnet event loops cannot run TLS. See NewServerTLS and
	// NewClientTLS for configurations built from certificate files.
	TLS *tls.Config

	// ReassemblyTimeout drops a half-received STK-UDP sequence this long
	// after its first fragment. Default seq.DefaultReassemblyTimeout (1 s).
	ReassemblyTimeout time.Duration
	// RawUDP labels the sequences a raw UDP flow receives. Default
	// seq.DefaultRawUDPConfig (type data, name "UDP", user type 0).
	RawUDP *seq.RawUDPConfig
	// MulticastInterface is the IPv4 address of the interface to join groups
	// and send multicast on; the zero value lets the system choose.
	MulticastInterface netip.Addr
	// MulticastTTL is the TTL of sent multicast datagrams. Default 1 (the
	// local network).
	MulticastTTL int
	// MulticastNoLoopback stops this host from receiving its own multicast
	// datagrams (STK enables loopback, and so does the default).
	MulticastNoLoopback bool

	// Logger receives the flow's log lines. Default slog.Default().
	Logger *slog.Logger
	// Name labels the flow in logs and statistics.
	Name string
}

// tuneTCP applies Nagle, SendBuffer and ReceiveBuffer to a connection
// made by a TCP client or accepted by the TLS server (the gnet TCP server
// passes them to gnet instead). Errors are ignored: the connection works
// with the system's settings.
func (o *Options) tuneTCP(tc *net.TCPConn) {
	if o.Nagle {
		tc.SetNoDelay(false)
	}
	if o.SendBuffer > 0 {
		tc.SetWriteBuffer(o.SendBuffer)
	}
	if o.ReceiveBuffer > 0 {
		tc.SetReadBuffer(o.ReceiveBuffer)
	}
}

func (o Options) withDefaults() Options {
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxSequenceSize <= 0 {
		o.MaxSequenceSize = seq.DefaultMaxSize
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = DefaultQueueBytes
	}
	if o.SlowConsumerWait <= 0 {
		o.SlowConsumerWait = DefaultSlowConsumerWait
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = DefaultCloseTimeout
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = DefaultReconnectMin
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = DefaultReconnectMax
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = o.ReconnectMin
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ReassemblyTimeout <= 0 {
		o.ReassemblyTimeout = seq.DefaultReassemblyTimeout
	}
	if o.RawUDP == nil {
		c := seq.DefaultRawUDPConfig
		o.RawUDP = &c
	}
	if o.MulticastTTL <= 0 {
		o.MulticastTTL = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Handler == nil {
		o.Handler = func(Peer, *seq.Sequence) {}
	}
	return o
}
