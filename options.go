package stk

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// Defaults of PublishOptions and SubscribeOptions.
const (
	// DefaultListen is where a publisher listens: loopback, a free port.
	// Subscribers on other hosts need "0.0.0.0:port" (or an interface's IP).
	DefaultListen = "tcp:127.0.0.1:0"
	// DefaultLinger is how long the name server keeps a publisher's
	// registration after its connection breaks (a crash): long enough for
	// a restart to find the name still there.
	DefaultLinger = 5 * time.Second
	// DefaultRegisterWait bounds the wait for the name server to confirm
	// a registration.
	DefaultRegisterWait = 5 * time.Second
	// DefaultMaxEndpoints bounds the publisher addresses one subscription
	// receives from: a name registered a thousand times would otherwise make
	// every subscriber open a thousand connections.
	DefaultMaxEndpoints = 64
	// DefaultPruneInterval is how long a subscription's connection to a
	// publisher stays down (a UDP address: open), the address not
	// registered again meanwhile, before the name is looked up to close it
	// if it is no longer registered.
	DefaultPruneInterval = 2 * time.Second
)

// lookupWait bounds a subscription's lookup before pruning: past it the
// name server is taken as away and every address kept.
const lookupWait = 5 * time.Second

// PublishOptions configure Env.Publish. The zero value works: TCP on
// 127.0.0.1, a free port, registered in the Env's group.
type PublishOptions struct {
	// Listen is where the publisher listens (TCP) or sends (UDP,
	// multicast): "[tcp:]ip:port" (port 0: a free one), "udp:ip:port",
	// "multicast:group:port" (group default 224.10.10.20). Default
	// DefaultListen. A TCP listener on 0.0.0.0 is registered at this host's
	// address toward the name server (flow.AdvertiseIP), so that
	// subscribers on other hosts can connect.
	Listen string
	// Group is the name group to register in; "" means Options.Group.
	Group string
	// Linger is how long the name server keeps the registration after this
	// program's connection to it breaks without Close (a crash). Default
	// DefaultLinger; negative: 0. Close removes the registration at once.
	Linger time.Duration
	// Standby registers the fault-tolerance state "standby" instead of
	// "active" (NS_FT_STATE, stored and answered by the name server, for
	// applications that elect an active publisher).
	Standby bool
	// Meta are meta-data elements registered with the address, returned
	// unchanged to lookups and subscribers (user types above 8; at most
	// 4 KiB on stkd).
	Meta []seq.Element
	// RegisterWait bounds the wait for the name server to confirm the
	// registration. Default DefaultRegisterWait; negative: do not wait (the
	// registration goes out once the name server is reached, so a publisher
	// may start before stkd).
	RegisterWait time.Duration

	// SlowConsumer is what happens to a subscriber whose queue stays full:
	// flow.Disconnect (the default: it reconnects and resumes at current
	// data) or flow.Drop (it stays connected and misses what did not fit).
	// Default Options.Flow.SlowConsumer.
	SlowConsumer flow.SlowConsumerPolicy
	// SlowConsumerWait is how long Send waits for room in a full queue
	// before the subscriber is declared slow; 0 means Options.Flow's, else
	// flow.DefaultSlowConsumerWait.
	SlowConsumerWait time.Duration
	// QueueBytes bounds the bytes queued for one subscriber; 0 means
	// Options.Flow's, else flow.DefaultQueueBytes.
	QueueBytes int

	// AdvertiseIP is the IP to register instead of the one listened on:
	// the address other hosts reach this one at, when it listens on
	// 0.0.0.0 behind an address the name server's direction does not
	// show (flow.AdvertiseIP picks one by default). TCP only.
	AdvertiseIP netip.Addr
	// KeepOnClose makes Close leave the registration on the name server
	// for Linger, as a crash does, instead of removing it: what STK's C
	// programs do, so that a publisher restarted within its linger is
	// found at once. Subscribers keep retrying the old address meanwhile.
	KeepOnClose bool
}

// SubscribeOptions configure Env.Subscribe and Env.SubscribeChan. The zero
// value works.
type SubscribeOptions struct {
	// Group is the name group to watch; "" means Options.Group.
	Group string
	// MaxEndpoints bounds the publisher addresses received from at once;
	// more are ignored, with a warning, until some go away. Default
	// DefaultMaxEndpoints.
	MaxEndpoints int
	// MaxSequenceSize bounds one received sequence: a publisher sending a
	// larger one is disconnected (TCP) or its datagrams dropped (UDP).
	// Default Options.Flow's, else seq.DefaultMaxSize (64 MiB).
	MaxSequenceSize int
	// PruneInterval is how long a connection stays down (a UDP or
	// multicast address: open), its address not registered again
	// meanwhile, before the name is looked up to close it if the address
	// is no longer registered (a publisher gone, or restarted elsewhere);
	// one still registered is kept and looked up again after another
	// interval. Checked every quarter interval (10 ms to 15 s). Default
	// DefaultPruneInterval. stkd also tells a subscription when a
	// registration goes (a C name server does not): its addresses are
	// looked up as soon as their connection is down, without waiting for
	// the interval (EndpointUnregistered).
	PruneInterval time.Duration

	// Accept, when not nil, lists the networks trusted as publishers: a
	// registered address outside them is not connected to (nor listened
	// on), and a UDP or multicast datagram whose source is outside them is
	// dropped. A name server anyone can register with can otherwise point
	// subscribers anywhere.
	Accept []netip.Prefix
	// AcceptEndpoint, when set, is asked about each registered address
	// before Accept, every time the address is registered while not
	// received from: false leaves it alone (EndpointFiltered, logged at
	// Debug only). For a rule networks cannot say, such as "not my own
	// address". It runs on the name-service client's goroutine with the
	// subscription's lock held: it must not block nor call the
	// Subscription.
	AcceptEndpoint func(namesvc.Endpoint) bool
	// Protocols, when not nil, are the protocols received over ("tcp",
	// "udp", "rawudp", "multicast"); addresses of others are skipped.
	Protocols []string
	// MulticastBind is the IP a multicast subscription binds its group's
	// port on; default 0.0.0.0.
	MulticastBind netip.Addr
	// OnEndpoint, when set, is told what happens to each publisher address
	// (EndpointEvent): opened, skipped, refused, failed, closed, connected,
	// disconnected, registered again. It runs on the name-service client's
	// goroutine (connections and datagram refusals: on the flow's) and
	// must not block. An address's EndpointOpened comes before its
	// EndpointConnected, which comes before any of its sequences reach the
	// handler (over TCP); connection events stop once Close has begun.
	// Those events are then logged at Debug only: the program reports them
	// its own way.
	OnEndpoint func(EndpointEvent)
	// Logger receives the subscription's log lines; nil means the Env's
	// (slog.Default() for SubscribeAddress).
	Logger *slog.Logger
}
