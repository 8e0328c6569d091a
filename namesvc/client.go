package namesvc

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
)

// Errors of the client.
var (
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("namesvc: client closed")
	// ErrNotFound: a lookup ended without an answer.
	ErrNotFound = errors.New("namesvc: name not found")
)

// Client talks to a name server over TCP or STK-UDP: it registers names,
// looks them up and subscribes to them.
//
// It keeps the connection alive with a smartbeat every Keepalive and
// watches the server id in the echoes: after a reconnect, or when the id
// changes (a restarted server), it sends every registration and
// subscription again, as the C client does.
//
// Callbacks (answers, lookup ends, subscription pushes, OnServerChange)
// run on the flow's read loop, without a hand-off to another goroutine,
// except a lookup's expiry, which runs on a timer goroutine. They must not
// block: a slow callback delays every answer behind it. They may call the
// Client's methods except Close.
type Client struct {
	opts     ClientOptions
	log      *slog.Logger
	addr     flow.Address
	server   netip.AddrPort // addr, parsed
	location ServerLocation // where the server is, for checkReachable
	fl       flow.Flow
	tcp      *flow.TCPClient // nil over UDP
	datagram bool

	mu        sync.Mutex
	connected bool   // a TCP connection is up (always true over UDP)
	confirmed bool   // the server id was seen since the last (re)connect
	serverID  uint64 // last server id seen, 0 before the first echo
	local     netip.AddrPort
	nextID    uint64
	regs      map[regKey]*clientReg // remembered registrations
	regSeq    uint64                // orders regs for re-sending
	subs      []*Subscription
	reqs      map[uint64]any  // outstanding requests by id: *clientReg, *Query, *Subscription
	warned    map[string]bool // group and name of the answers checkReachable warned about
	closed    bool

	stop chan struct{}
	wg   sync.WaitGroup
}

type regKey struct{ group, name string }

// clientReg is a remembered registration.
type clientReg struct {
	id    uint64
	order uint64 // first registration of its name: re-sent in this order
	info  Info
	acked chan struct{} // closed by the first reply
	once  sync.Once
}

// Dial starts a client of the name server at addr, an STK address string:
// "tcp:127.0.0.1:20002", "udp:127.0.0.1:20002", "tls:127.0.0.1:20012"
// (TCP inside TLS, configured by ClientOptions.TLS), or "127.0.0.1" (TCP and
// port DefaultPort by default; an empty string means tcp:127.0.0.1:20002).
// It returns at once: a TCP client connects, and reconnects, in the
// background; requests made meanwhile go out on connect.
func Dial(addr string, opts ClientOptions) (*Client, error) {
	a := flow.Address{Protocol: flow.TCP}
	if addr != "" {
		var err error
		if a, err = flow.ParseAddress(addr); err != nil {
			return nil, fmt.Errorf("namesvc: name server address: %w", err)
		}
	}
	return DialAddress(a, opts)
}

// DialAddress is Dial with a parsed address.
func DialAddress(a flow.Address, opts ClientOptions) (*Client, error) {
	if a.Lookup != "" {
		return nil, fmt.Errorf("namesvc: name server address %v: the name server cannot be looked up by name", a)
	}
	a = a.WithDefaults(DefaultHost, DefaultPort)
	opts = opts.withDefaults()
	if err := checkString(opts.Group, MaxGroupLen, "group"); err != nil {
		return nil, err
	}
	if opts.Token != "" {
		if err := checkToken(opts.Token); err != nil {
			return nil, err
		}
	}
	c := &Client{
		opts:   opts,
		log:    opts.Logger.With("name_server", a.String()),
		addr:   a,
		nextID: rand.Uint64() >> 1,
		reqs:   map[uint64]any{},
		regs:   map[regKey]*clientReg{},
		stop:   make(chan struct{}),
	}
	fo := opts.Flow
	fo.Handler = c.handle
	if fo.Logger == nil {
		fo.Logger = opts.Logger
	}
	if fo.Name == "" {
		fo.Name = "namesvc client " + a.String()
	}
	if fo.CloseTimeout == 0 {
		// Requests are small and re-sent after a reconnect anyway: do not
		// hold a closing program for the flow's default 5 s when no name
		// server is there.
		fo.CloseTimeout = 500 * time.Millisecond
	}
	ap, err := a.HostAddrPort() // TLS, when a says so, is set up below
	if err != nil {
		return nil, fmt.Errorf("namesvc: name server address: %w", err)
	}
	c.server, c.location = ap, locate(ap.Addr())
	// OnConnect may run before DialTCP returns; it waits for c.mu, so it
	// sees c.fl set.
	c.mu.Lock()
	defer c.mu.Unlock()
	switch a.Protocol {
	case flow.TCP:
		fo.OnConnect = c.onConnect
		fo.OnDisconnect = c.onDisconnect
		if a.TLS {
			fo.TLS = opts.TLS
			if fo.TLS == nil {
				fo.TLS = &tls.Config{MinVersion: tls.VersionTLS12} // the system's roots
			}
		}
		t, err := flow.DialTCP(ap.String(), fo)
		if err != nil {
			return nil, fmt.Errorf("namesvc: connect to the name server: %w", err)
		}
		c.fl, c.tcp = t, t
	case flow.UDP:
		fo.OnConnect, fo.OnDisconnect = nil, nil
		u, err := flow.NewUDP(flow.UDPConfig{Destination: ap.String()}, fo)
		if err != nil {
			return nil, fmt.Errorf("namesvc: open the UDP flow to the name server: %w", err)
		}
		c.fl, c.datagram = u, true
		c.connected = true
		// The first keep-alive (with the token) before any request, as
		// on a TCP connect: a request sent before it could be refused.
		c.send(c.smartbeat(time.Now(), netip.AddrPort{}))
	default:
		return nil, fmt.Errorf("namesvc: name server address %v: protocol %v not supported; use tcp or udp", a, a.Protocol)
	}
	c.wg.Add(1)
	go c.keepaliveLoop()
	return c, nil
}

// ServerID returns the id of the name server last heard from, 0 before the
// first keep-alive echo.
func (c *Client) ServerID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.serverID
}

// ServerAddr returns the address the client dials the name server at.
// Programs that register a listener bound to 0.0.0.0 pass its IP to
// flow.AdvertiseIP: the address of the interface that faces it is the one
// the name's other clients can reach.
func (c *Client) ServerAddr() netip.AddrPort { return c.server }

// ServerLocation says whether the name server is on this host (a loopback
// address), at one of this host's network addresses, or on another host.
func (c *Client) ServerLocation() ServerLocation { return c.location }

// Connected reports whether the client has a connection to the server
// (always true over UDP, which has none).
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// WaitConnected waits until the client has a connection or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	if c.tcp == nil {
		return nil
	}
	return c.tcp.WaitConnected(ctx)
}

// DialError returns why the last attempt to connect to the server failed
// (refused, timed out, TLS handshake refused), or nil once one succeeded,
// and always over UDP: for a program's "not connected" error.
func (c *Client) DialError() error {
	if c.tcp == nil {
		return nil
	}
	return c.tcp.DialError()
}

// Stats returns the counters of the client's flow.
func (c *Client) Stats() flow.Stats { return c.fl.Stats() }

// Close stops the client: outstanding lookups end with ErrClosed, waiting
// Register calls return ErrClosed, and the connection closes (the server
// then lets this client's registrations linger).
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	err := c.fl.Close()
	c.wg.Wait()
	c.mu.Lock()
	var queries []*Query
	for _, r := range c.reqs {
		if q, ok := r.(*Query); ok {
			queries = append(queries, q)
		}
	}
	c.reqs = map[uint64]any{}
	c.mu.Unlock()
	for _, q := range queries {
		q.finish(false, ErrClosed)
	}
	return err
}

func (c *Client) newIDLocked() uint64 {
	c.nextID++
	return c.nextID
}

// send sends q unless the client is closed.
func (c *Client) send(q *seq.Sequence) error {
	err := c.fl.Send(q)
	if err != nil {
		c.log.Debug("name request not sent", "err", err, "seq", q)
	}
	return err
}

// Register registers info with the server and waits until the server
// confirms it or ctx ends. info.Group "" means ClientOptions.Group.
//
// The client remembers the registration and sends it again after every
// reconnect and whenever the server id changes, for the client's life or
// until Unregister; this holds even when Register returns because ctx
// ended. Registering the same name and group again replaces it, on the
// server too (same connection). Over UDP, Register re-sends every
// RetryInterval until confirmed, and the client's keep-alives keep the
// registration from timing out on our server.
func (c *Client) Register(ctx context.Context, info Info) error {
	if info.Group == "" {
		info.Group = c.opts.Group
	}
	if err := checkInfo(&info); err != nil {
		return err
	}
	info = info.clone()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	reg := &clientReg{id: c.newIDLocked(), info: info, acked: make(chan struct{})}
	k := regKey{info.Group, info.Name}
	if old := c.regs[k]; old != nil {
		delete(c.reqs, old.id)
		reg.order = old.order
	} else {
		c.regSeq++
		reg.order = c.regSeq
	}
	c.regs[k] = reg
	c.reqs[reg.id] = reg
	send := c.connected
	c.mu.Unlock()
	if send {
		c.send(buildRegister(reg.id, &reg.info))
	}
	var retry <-chan time.Time
	if c.datagram {
		t := time.NewTicker(c.opts.RetryInterval)
		defer t.Stop()
		retry = t.C
	}
	for {
		select {
		case <-reg.acked:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("namesvc: register %q: no reply from the name server at %v: %w (the client keeps re-sending it)", info.Name, c.addr, ctx.Err())
		case <-c.stop:
			return ErrClosed
		case <-retry:
			c.send(buildRegister(reg.id, &reg.info))
		}
	}
}

// Unregister forgets the registration of name in group ("" means
// ClientOptions.Group): it is no longer sent again. STK has no unregister
// message, so the server keeps it until this client's connection closes
// and its linger ends (over UDP: until its TTL ends after Close).
func (c *Client) Unregister(name, group string) {
	if group == "" {
		group = c.opts.Group
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := regKey{group, name}
	if r := c.regs[k]; r != nil {
		delete(c.reqs, r.id)
		delete(c.regs, k)
	}
}

// LookupOptions configure one lookup.
type LookupOptions struct {
	// Group to look in; "" means ClientOptions.Group. A group unknown to
	// the server searches the default group (server behaviour, §7.4).
	Group string
	// Expiration bounds the wait for answers; 0 means
	// ClientOptions.LookupExpiration. Against our server the lookup usually
	// ends much earlier, at the end-of-answers marker.
	Expiration time.Duration
	// Once ends the lookup at the first answer.
	Once bool
}

// LookupResult is how a lookup ended.
type LookupResult struct {
	// Answers is the number of answers delivered.
	Answers int
	// Complete is true when the lookup ended before its expiration: the
	// server said there are no more answers (end-of-answers extension), or
	// Once got its answer. False: it expired, which is the only end a C
	// server gives.
	Complete bool
	// Err is ErrClosed when the client closed first.
	Err error
}

// Query is an outstanding lookup.
type Query struct {
	c        *Client
	id       uint64
	name     string
	once     bool
	onAnswer func(Info)
	onDone   func(LookupResult)
	timer    *time.Timer

	cbMu     sync.Mutex // serialises callbacks: answers, then the end
	mu       sync.Mutex
	finished bool
	count    int
}

// Lookup asks the server for name. onAnswer runs once per answer (one per
// registration, in registration order); onDone runs exactly once at the
// end, after the last onAnswer, with the number of answers. Either may be
// nil. See LookupResult for how a lookup ends.
func (c *Client) Lookup(name string, opts LookupOptions, onAnswer func(Info), onDone func(LookupResult)) (*Query, error) {
	if opts.Group == "" {
		opts.Group = c.opts.Group
	}
	if err := checkQuery(name, opts.Group); err != nil {
		return nil, err
	}
	if opts.Expiration <= 0 {
		opts.Expiration = c.opts.LookupExpiration
	}
	q := &Query{c: c, name: name, once: opts.Once, onAnswer: onAnswer, onDone: onDone}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	q.id = c.newIDLocked()
	c.reqs[q.id] = q
	q.mu.Lock()
	q.timer = time.AfterFunc(opts.Expiration, func() { q.finish(false, nil) })
	q.mu.Unlock()
	c.mu.Unlock()
	c.send(buildQuery(seq.TypeQuery, q.id, name, opts.Group, !c.opts.NoEndOfAnswers))
	return q, nil
}

// Cancel ends the lookup without calling onDone. A callback already
// running completes.
func (q *Query) Cancel() {
	q.mu.Lock()
	q.finished = true
	t := q.timer
	q.mu.Unlock()
	t.Stop()
	q.c.forget(q.id)
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.reqs, id)
	c.mu.Unlock()
}

// answer delivers one answer.
func (q *Query) answer(info Info) {
	q.cbMu.Lock()
	defer q.cbMu.Unlock()
	q.mu.Lock()
	if q.finished {
		q.mu.Unlock()
		return
	}
	q.count++
	q.mu.Unlock()
	if q.onAnswer != nil {
		q.onAnswer(info)
	}
	if q.once {
		q.finishLocked(true, nil)
	}
}

// finish ends the lookup once, calling onDone after any running answer.
func (q *Query) finish(complete bool, err error) {
	q.cbMu.Lock()
	defer q.cbMu.Unlock()
	q.finishLocked(complete, err)
}

func (q *Query) finishLocked(complete bool, err error) {
	q.mu.Lock()
	if q.finished {
		q.mu.Unlock()
		return
	}
	q.finished = true
	n, t := q.count, q.timer
	q.mu.Unlock()
	t.Stop()
	q.c.forget(q.id)
	if q.onDone != nil {
		q.onDone(LookupResult{Answers: n, Complete: complete, Err: err})
	}
}

// LookupAll looks name up and returns every answer once the lookup ends:
// at the server's end-of-answers marker, at its expiration, or when ctx
// ends (then with ctx's error and the answers so far).
func (c *Client) LookupAll(ctx context.Context, name string, opts LookupOptions) ([]Info, error) {
	var (
		mu    sync.Mutex
		infos []Info
		done  = make(chan LookupResult, 1)
	)
	q, err := c.Lookup(name, opts, func(i Info) {
		mu.Lock()
		infos = append(infos, i)
		mu.Unlock()
	}, func(r LookupResult) { done <- r })
	if err != nil {
		return nil, err
	}
	select {
	case r := <-done:
		mu.Lock()
		defer mu.Unlock()
		return infos, r.Err
	case <-ctx.Done():
		q.Cancel()
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(infos), ctx.Err()
	}
}

// LookupOnce returns the first answer for name, or ErrNotFound when the
// lookup ends without one (at once against our server, after the
// expiration against a C server), or ctx's error.
func (c *Client) LookupOnce(ctx context.Context, name string, opts LookupOptions) (Info, error) {
	opts.Once = true
	infos, err := c.LookupAll(ctx, name, opts)
	if len(infos) > 0 {
		return infos[0], nil
	}
	if err == nil {
		err = fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return Info{}, err
}

// SubscribeOptions configure a subscription.
type SubscribeOptions struct {
	// Group to watch; "" means ClientOptions.Group.
	Group string
	// OnSynced, if set, runs after the answers for the registrations that
	// existed when the subscription reached the server, with their number;
	// again after every re-subscription. Our server only (end-of-answers
	// extension): a C server never triggers it.
	OnSynced func(n int)
	// OnRemoved, if set, runs with a registration answered before (the
	// same Info) once the server no longer answers it: its linger ran
	// out, it was replaced by one with other elements, or the cluster
	// node holding it went. Our server only (removal notices, §7.13): STK
	// itself tells nothing when a registration goes, so against a C server
	// it never runs. The same Info may be answered again later.
	OnRemoved func(Info)
}

// Subscription is an active subscription.
type Subscription struct {
	c         *Client
	id        uint64
	name      string
	group     string
	onAnswer  func(Info)
	onSynced  func(int)
	onRemoved func(Info)
	canceled  atomic.Bool
}

// Subscribe asks the server for every registration of name: first those
// that exist, then each later one as it happens. onAnswer runs for each.
// The subscription lasts until Unsubscribe or Close, across reconnects and
// server restarts (the client subscribes again, and the current
// registrations are answered again).
func (c *Client) Subscribe(name string, opts SubscribeOptions, onAnswer func(Info)) (*Subscription, error) {
	if opts.Group == "" {
		opts.Group = c.opts.Group
	}
	if err := checkQuery(name, opts.Group); err != nil {
		return nil, err
	}
	s := &Subscription{c: c, name: name, group: opts.Group, onAnswer: onAnswer, onSynced: opts.OnSynced, onRemoved: opts.OnRemoved}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	s.id = c.newIDLocked()
	c.reqs[s.id] = s
	c.subs = append(c.subs, s)
	send := c.connected
	c.mu.Unlock()
	if send {
		c.send(s.request())
	}
	return s, nil
}

func (s *Subscription) request() *seq.Sequence {
	return buildQuery(seq.TypeSubscribe, s.id, s.name, s.group, !s.c.opts.NoEndOfAnswers)
}

// Unsubscribe stops the subscription's callbacks (one already running
// completes). STK has no unsubscribe message: the server keeps pushing
// until the connection closes, and the client drops those pushes.
func (s *Subscription) Unsubscribe() {
	if s.canceled.Swap(true) {
		return
	}
	c := s.c
	c.mu.Lock()
	delete(c.reqs, s.id)
	if i := slices.Index(c.subs, s); i >= 0 {
		c.subs = slices.Delete(c.subs, i, i+1)
	}
	c.mu.Unlock()
}

func checkQuery(name, group string) error {
	if name == "" {
		return errors.New("namesvc: empty name; give the name to look up")
	}
	if err := checkString(name, MaxNameLen, "name"); err != nil {
		return err
	}
	return checkString(group, MaxGroupLen, "group")
}

// handle is the flow's Handler: keep-alive echoes and name answers.
func (c *Client) handle(from flow.Peer, q *seq.Sequence) {
	switch q.ID {
	case seq.IDSmartbeat:
		for i := len(q.Elements) - 1; i >= 0; i-- {
			if e := q.Elements[i]; e.UserType == seq.UTNSID {
				if id, ok := e.Uint64(); ok {
					c.serverSeen(id)
				}
				return
			}
		}
	case seq.IDNameRequest:
		c.dispatch(q)
	}
}

func (c *Client) dispatch(q *seq.Sequence) {
	a := parseAnswer(q, nil)
	if !a.hasRequestID {
		return
	}
	c.mu.Lock()
	r := c.reqs[a.requestID]
	c.mu.Unlock()
	switch r := r.(type) {
	case *clientReg:
		if a.typ == seq.TypeRequest && a.name == r.info.Name {
			r.once.Do(func() { close(r.acked) })
		}
	case *Query:
		if a.typ != seq.TypeQuery || a.name != r.name || a.removed {
			return
		}
		if a.endOfAnswers {
			r.finish(true, nil)
			return
		}
		var info Info
		parseAnswer(q, &info)
		c.checkReachable(&info)
		r.answer(info)
	case *Subscription:
		if a.typ != seq.TypeQuery || a.name != r.name || r.canceled.Load() {
			return // the REQUEST confirmation needs no action
		}
		if a.endOfAnswers {
			if r.onSynced != nil {
				r.onSynced(int(a.count))
			}
			return
		}
		var info Info
		parseAnswer(q, &info)
		if a.removed {
			if r.onRemoved != nil {
				r.onRemoved(info)
			}
			return
		}
		c.checkReachable(&info)
		if r.onAnswer != nil {
			r.onAnswer(info)
		}
	}
}

// serverSeen handles the server id of a keep-alive echo (§7.9).
func (c *Client) serverSeen(id uint64) {
	c.mu.Lock()
	old := c.serverID
	wasConfirmed := c.confirmed
	c.serverID, c.confirmed = id, true
	c.mu.Unlock()
	if id == old {
		return
	}
	if old != 0 {
		c.log.Info("name server id changed", "old", fmt.Sprintf("%#x", old), "new", fmt.Sprintf("%#x", id))
	}
	if c.opts.OnServerChange != nil {
		c.opts.OnServerChange(old, id)
	}
	// After a reconnect everything was re-sent already; otherwise (UDP, or
	// a server change behind a kept connection) send it now.
	if wasConfirmed && old != 0 {
		c.resend("server id changed")
	}
}

// onConnectHook, when set (tests), runs in onConnect after the first
// keep-alive and before the connection is marked up.
var onConnectHook func()

// onConnect sends the first keep-alive (it carries the token, and a request
// before it could be refused), then marks the connection up and takes the
// registrations and subscriptions to send again in one critical section: a
// Register or Subscribe that ran before it is in that list and did not send
// itself; one that runs after it sends itself. (Marking the connection up
// first let a Register in between send its request twice: a policy refusing
// it then counted two refusals.)
func (c *Client) onConnect(p flow.Peer) {
	c.mu.Lock()
	c.local = p.LocalAddr()
	c.mu.Unlock()
	c.sendKeepalive()
	if onConnectHook != nil {
		onConnectHook()
	}
	c.mu.Lock()
	c.connected, c.confirmed = true, false
	regs, subs := c.pendingLocked()
	c.mu.Unlock()
	c.sendAll("connected", regs, subs)
}

func (c *Client) onDisconnect(flow.Peer, error) {
	c.mu.Lock()
	c.connected, c.confirmed = false, false
	c.mu.Unlock()
}

// resend sends every remembered registration and subscription.
func (c *Client) resend(why string) {
	c.mu.Lock()
	regs, subs := c.pendingLocked()
	c.mu.Unlock()
	c.sendAll(why, regs, subs)
}

// pendingLocked returns the remembered registrations, in the order they
// were first made, and subscriptions (c.mu held).
func (c *Client) pendingLocked() ([]*clientReg, []*Subscription) {
	regs := make([]*clientReg, 0, len(c.regs))
	for _, r := range c.regs {
		regs = append(regs, r)
	}
	slices.SortFunc(regs, func(a, b *clientReg) int { return cmp.Compare(a.order, b.order) })
	return regs, slices.Clone(c.subs)
}

// sendAll sends regs and subs (see pendingLocked).
func (c *Client) sendAll(why string, regs []*clientReg, subs []*Subscription) {
	if len(regs)+len(subs) > 0 {
		c.log.Debug("sending registrations and subscriptions", "why", why, "registrations", len(regs), "subscriptions", len(subs))
	}
	for _, r := range regs {
		c.send(buildRegister(r.id, &r.info))
	}
	for _, s := range subs {
		c.send(s.request())
	}
}

func (c *Client) keepaliveLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.Keepalive)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.mu.Lock()
			up := c.connected
			c.mu.Unlock()
			if up {
				c.sendKeepalive()
			}
		}
	}
}

// sendKeepalive sends the name-service smartbeat (§7.9, §8.4): one
// 0x50000001 element for service 0 with the current time and checkpoint 0,
// and the 0x8103 reporting address (the local end of the connection;
// 0.0.0.0:0 over UDP, as C).
func (c *Client) sendKeepalive() {
	c.mu.Lock()
	local := c.local
	c.mu.Unlock()
	c.send(c.smartbeat(time.Now(), local))
}

// smartbeat is the keep-alive sequence, with the client's token if any.
func (c *Client) smartbeat(now time.Time, local netip.AddrPort) *seq.Sequence {
	q := smartbeatSequence(now, local)
	if c.opts.Token != "" {
		q.Add(UTToken, []byte(c.opts.Token))
	}
	return q
}

func smartbeatSequence(now time.Time, local netip.AddrPort) *seq.Sequence {
	sb := make([]byte, 32)
	binary.LittleEndian.PutUint64(sb[8:], uint64(now.Unix()))
	binary.LittleEndian.PutUint64(sb[16:], uint64(now.Nanosecond()/1000))
	q := &seq.Sequence{ID: seq.IDSmartbeat, Name: seq.NameSmartbeat, Type: seq.TypeMgmt, Elements: make([]seq.Element, 0, 2)}
	q.Add(seq.UTSmartbeat, sb)
	if !local.IsValid() {
		local = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	q.Add(seq.UTServiceIP, appendReportingIP(make([]byte, 0, 16), local))
	return q
}
