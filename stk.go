// Package stk is the Sequence Toolkit for Go applications in one import:
// publish sequences under a name, subscribe to a name, register and look up
// names, and report a service to the monitor, through a name server (stkd,
// or the C stknamed).
//
//	env, err := stk.Connect("", stk.Options{}) // stkd's name server, tcp:127.0.0.1:20002
//	pub, err := env.Publish("prices", stk.PublishOptions{})
//	pub.Send(seq.New(1, "tick", seq.TypeData))
//
//	sub, err := env.Subscribe("prices", func(s *seq.Sequence) { ... }, stk.SubscribeOptions{})
//
// # Where to start
//
//   - Publish under a name: Env.Publish returns a Publisher (Send,
//     SendBatch, WaitSubscribers, Subscribers, Stats, Close); PublishOptions
//     choose TCP, UDP or multicast, the linger, meta-data, FT state and the
//     slow-consumer policy.
//   - Subscribe to a name: Env.Subscribe calls a handler for each sequence;
//     Env.SubscribeChan hands clones out on a channel; Env.SubscribeFrom
//     also tells which publisher each came from. Each follows the name's
//     publishers as they come, move and go.
//   - Names alone: Env.Register, Env.Lookup and Env.WatchName; Env.Names
//     gives the namesvc.Client for what they do not cover.
//   - A monitored service: Env.Service (package smartbeat).
//   - Without a name server, or with several: Listen starts a publisher
//     that no name server knows, Env.Announce registers it with one (or
//     several), and SubscribeAddress receives from an address.
//   - Underneath: package seq is the Sequence and its wire formats, flow the
//     connections and sockets that carry them, namesvc the name server and
//     its client. Their examples show each on its own.
//
// Each example of this package runs against a name server it starts on a
// free port; a program with stkd running calls Connect("").
//
// # What a brokerless design gives
//
// STK has no broker: the name server only tells subscribers where the
// publishers are, and data flows straight from each publisher to each
// subscriber. Publish listens on a TCP port (127.0.0.1 and a free port by
// default) and registers that address under the name; Subscribe asks the
// name server for every registration of the name, now and later, and opens
// one connection per publisher address. So:
//
//   - data goes only to the subscribers connected when it is sent: a
//     subscriber that connects later does not get what was sent before,
//     and sending with no subscriber sends nothing (Send returns nil).
//     Publisher.WaitSubscribers waits for the subscribers you expect.
//   - a slow subscriber cannot slow the others: each has a bounded queue at
//     the publisher (flow.Options.QueueBytes, 4 MiB). When it stays full for
//     SlowConsumerWait (1 s) the subscriber is disconnected (the default,
//     flow.Disconnect: it reconnects and resumes at current data) or the
//     sequences that do not fit are dropped for it (flow.Drop); see
//     PublishOptions. Send still returns nil: the publisher's Stats count
//     the subscribers cut off (SlowConsumers) and the sequences they missed
//     (Dropped), and the other subscribers got every sequence.
//   - a subscriber follows publishers: a second publisher of the name, or one
//     restarted on a new port, is pushed by the name server and connected to
//     at once; connections to addresses no longer registered are closed.
//   - the name server is out of the data path: when it restarts, publishers
//     register again and subscribers subscribe again by themselves, and data
//     keeps flowing meanwhile.
//   - within one publisher's connection sequences arrive in order and none is
//     lost; across a reconnect, what was in flight on the broken connection is
//     lost (flow.Stats.Dropped counts it).
//
// Publishing over UDP (PublishOptions.Listen "udp:ip:port") or multicast
// ("multicast:group:port") follows STK: the publisher sends to that address and
// registers it, and subscribers listen there. Datagrams have no
// back-pressure and no connection: what a subscriber is not listening for
// yet, or cannot keep up with, is lost, and Subscribers counts nothing. Over
// unicast UDP only one subscriber per host and port can listen.
//
// Callbacks (a Subscribe handler, WatchName) run on the flows' own
// goroutines: they must return quickly, and a sequence is only valid during
// the call (Clone what you keep). SubscribeChan hands out clones on a
// channel instead.
//
// # Replies
//
// Data flows one way here: a Subscription receives and cannot send (its
// handler gets the sequence, and with SubscribeFrom the publisher's
// registered address, never the connection), and what subscribers send
// to a publisher made by Env.Publish is discarded. A TCP connection does
// carry sequences both ways, though: for request and reply, start the
// server with Listen and a ListenOptions.Flow.Handler, which answers a
// client over its flow.Peer, announce it with Env.Announce, and have the
// client look the name up and connect with flow.DialTCP (see the Listen
// example).
//
// Every object is an io.Closer; Env.Close closes whatever the Env made.
// This package imports seq, flow, namesvc and smartbeat only; the C binding
// (bindings/c), stepbus, stepmon and the example programs are built on it.
package stk

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
)

// DefaultNameServer is the name server Connect dials when given "": stkd's.
const DefaultNameServer = "tcp:127.0.0.1:20002"

// DefaultMonitor is where Env.Service reports by default: the monitor
// registered under the name "monitor" with the Env's name server (stkd's).
const DefaultMonitor = "lookup:monitor"

// Options configure an Env. The zero value works.
type Options struct {
	// Group is the name group (a separate name space) of the Env's
	// registrations, lookups and subscriptions; "" is the default group.
	// PublishOptions.Group and SubscribeOptions.Group override it.
	Group string
	// Logger receives the log lines of the Env and of everything it makes;
	// nil means slog.Default().
	Logger *slog.Logger
	// Token, "NAME:SECRET", identifies this program to a name server whose
	// access policy defines that token (stkd --policy); see
	// namesvc.ClientOptions.Token.
	Token string
	// TLS configures the connection to a "tls:ip:port" name server: the CAs
	// to trust and, for mutual TLS, the client certificate
	// (flow.NewClientTLS builds one from files). Data flows stay plain TCP.
	TLS *tls.Config
	// LookupExpiration is how long a lookup waits for answers from a name
	// server that does not say when it has sent the last one (the C
	// stknamed); see namesvc.ClientOptions.LookupExpiration.
	LookupExpiration time.Duration
	// Flow are the defaults of the data flows of the Env's publishers and
	// subscriptions (queue sizes, slow-consumer policy, reconnect back-off,
	// socket buffers...). Handler, OnConnect, OnDisconnect, Logger and Name
	// are set by this package; the Publish and Subscribe options override
	// the fields they name.
	Flow flow.Options
}

// Env is a connection to a name server and everything made through it:
// publishers, subscriptions, registrations, watches and services.
// Its methods are safe for concurrent use.
type Env struct {
	nameServer flow.Address
	nsString   string
	opts       Options
	log        *slog.Logger
	client     *namesvc.Client

	mu       sync.Mutex
	closed   bool
	children map[io.Closer]struct{}
	sender   *smartbeat.Sender // made by the first Service
}

// Connect starts an Env whose name server is nameServer, an STK address:
// "tcp:ip:port", "udp:ip:port", "tls:ip:port" (Options.TLS), or "" for
// DefaultNameServer; a missing port is 20002. It returns at once: the
// connection is made, and remade after a failure or a name-server restart,
// in the background (WaitConnected waits for it). It fails only on a bad
// address or option.
func Connect(nameServer string, opts Options) (*Env, error) {
	ns := nameServer
	if ns == "" {
		ns = DefaultNameServer
	}
	a, err := flow.ParseAddress(ns)
	if err == nil && (a.Lookup != "" || (a.Protocol != flow.TCP && a.Protocol != flow.UDP)) {
		err = errors.New("the name server is reached over tcp, udp or tls")
	}
	if err != nil {
		return nil, fmt.Errorf("stk: name server %q: %w (want [tcp|udp|tls:]ip[:port], e.g. %s)", nameServer, err, DefaultNameServer)
	}
	if len(opts.Group) > namesvc.MaxGroupLen {
		return nil, fmt.Errorf("stk: group %q: longer than %d bytes", opts.Group, namesvc.MaxGroupLen)
	}
	e := &Env{
		nameServer: a.WithDefaults(namesvc.DefaultHost, namesvc.DefaultPort),
		nsString:   ns,
		opts:       opts,
		log:        opts.Logger,
		children:   map[io.Closer]struct{}{},
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.client, err = e.dial(); err != nil {
		return nil, err
	}
	return e, nil
}

// dial starts a name-server client with the Env's options. Publishers and
// registrations have one each (see register).
func (e *Env) dial() (*namesvc.Client, error) {
	c, err := namesvc.DialAddress(e.nameServer, namesvc.ClientOptions{
		Group:            e.opts.Group,
		Token:            e.opts.Token,
		TLS:              e.opts.TLS,
		LookupExpiration: e.opts.LookupExpiration,
		Logger:           e.log,
	})
	if err != nil {
		return nil, fmt.Errorf("stk: name server %s: %w", e.nsString, err)
	}
	return c, nil
}

// NameServer returns the name server's address as Connect was given it
// ("" replaced by DefaultNameServer).
func (e *Env) NameServer() string { return e.nsString }

// Names returns the Env's name-server client, for what this package does
// not wrap (LookupOptions, SubscribeOptions.OnSynced, ServerID...). Do not
// close it: Env.Close does.
func (e *Env) Names() *namesvc.Client { return e.client }

// Connected reports whether the Env has a connection to its name server now.
func (e *Env) Connected() bool { return e.client.Connected() }

// adopt records a child, closed by Env.Close; false if the Env is closed
// (the caller then closes the child itself).
func (e *Env) adopt(c io.Closer) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.children[c] = struct{}{}
	return true
}

// forget drops a child that closed itself.
func (e *Env) forget(c io.Closer) {
	e.mu.Lock()
	delete(e.children, c)
	e.mu.Unlock()
}

// Close closes everything the Env made, then the name-server connection:
// publishers deliver what they accepted, publishers, registrations and
// announcements take their names off the name server at once (those made
// with KeepOnClose leave them for their linger), subscriptions and watches
// stop, services send their DESTROY.
func (e *Env) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	children := e.children
	e.children = nil
	sender := e.sender
	e.mu.Unlock()
	var errs []error
	for c := range children {
		errs = append(errs, c.Close())
	}
	errs = append(errs, e.client.Close())
	if sender != nil {
		errs = append(errs, sender.Close())
	}
	return errors.Join(errs...)
}

// flowOptions returns the Env's flow defaults with the logger and name set.
func (e *Env) flowOptions(name string) flow.Options {
	o := e.opts.Flow
	o.Handler, o.OnConnect, o.OnDisconnect = nil, nil, nil
	o.Logger = e.log
	o.Name = name
	return o
}
