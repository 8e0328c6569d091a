package namesvc

import (
	"context"
	"crypto/tls"
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
	"github.com/stk-go/stk/internal/listeners"
	"github.com/stk-go/stk/internal/ratelog"
	"github.com/stk-go/stk/seq"
)

// ErrServerClosed is returned by the Serve methods of a closed Server.
var ErrServerClosed = errors.New("namesvc: server closed")

// Server is a name server, wire-compatible with the C stknamed.
//
// Its protocol core is Handle (every received sequence) and Disconnect
// (every closed connection). The Serve methods open flows wired to them;
// a program with flows of its own can call them directly. All methods are
// safe for concurrent use: flows call Handle from several event loops.
type Server struct {
	cfg   ServerConfig
	id    uint64
	idBuf []byte // NS_ID element data
	log   *slog.Logger
	now   func() time.Time

	mu       sync.RWMutex
	store    Store
	owners   map[ownerKey]*owner
	subs     map[subKey]*subList
	expiring map[*Registration]struct{} // lingering registrations
	closed   bool

	ls *listeners.Set // what the Serve methods opened

	// What Limits bound, kept up to date on every change so that no
	// check scans anything.
	ipRegs  map[netip.Addr]int // stored registrations by registrant IP
	ipSubs  map[netip.Addr]int // active subscriptions by subscriber IP
	nSubs   int                // active subscriptions
	nGroups int                // groups created
	stored  int64              // element bytes of the stored registrations
	serial  uint64             // the last Registration.serial given

	version atomic.Uint64 // NamesVersion

	rep replicaState // replica.go: the export hand-off and other nodes' registrations

	// removals holds the removal notices of registrations removed under
	// the lock, sent once it is released (takeRemovalsLocked).
	removals []delivery

	stop chan struct{}
	wg   sync.WaitGroup

	ctr       serverCounters
	rejectLog ratelog.Limiter // the malformed-request warning: one a second

	refusals refusalCounters

	// policy is the access policy (nil: open); auth holds the identities
	// connections and datagram sources showed with a token (guarded by mu).
	policy atomic.Pointer[Policy]
	auth   map[ownerKey]*authEntry

	// afterDisconnect, when set (tests), runs at the end of Disconnect.
	afterDisconnect func(flow.Peer)
}

// ownerKey identifies who made a registration or subscription: a TCP
// connection (peer id), or a datagram source (flow id and address).
type ownerKey struct {
	peer uint64
	addr netip.AddrPort // datagram sources only
}

// owner is a registrant or subscriber: a connection, or a datagram source.
type owner struct {
	key      ownerKey
	peer     flow.Peer
	datagram bool
	lastSeen atomic.Int64 // datagram owners: unix nanoseconds of the last request or keep-alive
	closed   bool         // the connection closed; its registrations linger
	ip       netip.Addr
	regs     map[subKey]*Registration // its registrations by group and name
	subs     map[subID]*subscription
	refusals int // requests refused (Limits.DisconnectAfter)
}

type subKey struct{ group, name string }

// subID identifies a subscription of an owner: a repeat replaces it.
type subID struct {
	key subKey
	id  string // the request-id element data; "" if none
}

// subList holds the subscriptions to one name, each at its idx, so that
// removing one is a swap with the last.
type subList struct{ subs []*subscription }

// subscription is one SUBSCRIBE: answers for every later registration of
// key go to owner with requestID last.
type subscription struct {
	owner *owner
	key   subKey
	sid   subID
	idx   int    // position in its subList
	id    []byte // request-id element data; nil if the request had none
	// removals: the subscriber asked to be told when a registration
	// goes (the removal notices of our extension; never for C clients).
	removals bool
	// pending is set while the subscribe handler sends the current
	// answers; pushes for registrations made meanwhile wait in queued so
	// that they follow those answers.
	pending bool
	queued  []*seq.Sequence
}

type serverCounters struct {
	registrations, lookups, subscribes, answers, keepalives, rejected atomic.Uint64
	refusalDisconnects, lingerClamped                                 atomic.Uint64
}

// NewServer returns a server with no listeners yet; add them with
// ServeTCP, ServeUDP and ServeMulticast, or feed it with Handle.
func NewServer(cfg ServerConfig) (*Server, error) {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		id:       cfg.ID,
		log:      cfg.Logger,
		now:      cfg.Now,
		store:    cfg.Store,
		owners:   map[ownerKey]*owner{},
		subs:     map[subKey]*subList{},
		expiring: map[*Registration]struct{}{},
		ipRegs:   map[netip.Addr]int{},
		ipSubs:   map[netip.Addr]int{},
		auth:     map[ownerKey]*authEntry{},
		nGroups:  1, // the default group
		stop:     make(chan struct{}),
	}
	for s.id == 0 {
		s.id = rand.Uint64()
	}
	s.idBuf = u64Bytes(s.id)
	s.ls = listeners.New(listeners.Config{What: "namesvc", Flow: cfg.Flow, Handler: s.Handle,
		OnDisconnect: s.Disconnect, Logger: s.log, Closed: ErrServerClosed})
	if cfg.Policy != nil {
		s.policy.Store(cfg.Policy)
		s.log.Info("name server access policy set", "policy", cfg.Policy.String(), "source", cfg.Policy.Source)
	}
	s.wg.Add(1)
	go s.collectLoop()
	s.log.Info("name server started", "id", fmt.Sprintf("%#x", s.id))
	return s, nil
}

// ID returns the server id echoed in keep-alives.
func (s *Server) ID() uint64 { return s.id }

// ServeTCP listens for name-service connections on addr ("ip:port"; port 0
// picks one) and returns the bound address.
func (s *Server) ServeTCP(addr string) (netip.AddrPort, error) {
	return s.listening(s.ls.TCP(addr))
}

// ServeTLS listens for name-service connections inside TLS on addr
// ("ip:port"; port 0 picks one) with cfg (flow.NewServerTLS builds one
// from certificate files, mutual TLS when given a client CA) and returns
// the bound address. Clients dial it as "tls:ip:port". Requests over TLS
// are handled as over TCP; under mutual TLS the access policy also sees
// the client certificate (rules with "cert").
func (s *Server) ServeTLS(addr string, cfg *tls.Config) (netip.AddrPort, error) {
	return s.listening(s.ls.TLS(addr, cfg))
}

// ServeUDP receives STK-UDP name requests on addr ("ip:port") and returns
// the bound address. Replies go to each datagram's source.
func (s *Server) ServeUDP(addr string) (netip.AddrPort, error) {
	return s.listening(s.ls.UDP(addr))
}

// ServeMulticast joins the multicast group of groupPort ("group:port",
// e.g. "224.10.10.20:20002"; the port defaults to DefaultPort) and serves
// the STK-UDP requests sent to it. Replies go unicast to each datagram's
// source. The interface and loopback come from ServerConfig.Flow.
func (s *Server) ServeMulticast(groupPort string) (netip.AddrPort, error) {
	f, _, err := s.ls.Multicast(groupPort, DefaultPort)
	return s.listening(f, err)
}

// listening logs a listener a Serve method opened.
func (s *Server) listening(f flow.Flow, err error) (netip.AddrPort, error) {
	if err != nil {
		return netip.AddrPort{}, err
	}
	s.log.Info("name server listening", "addr", f.LocalAddr(), "flow", fmt.Sprintf("%T", f))
	return f.LocalAddr(), nil
}

// Flows returns the listeners the Serve methods opened, for status pages.
func (s *Server) Flows() []flow.Flow { return s.ls.Flows() }

// Close stops the listeners and the collector. Registrations are lost: the
// name service keeps no state across restarts, and clients register again
// when they see the next server's id.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	err := s.ls.Close()
	s.wg.Wait()
	return err
}

// Handle processes one received sequence: name requests (register, lookup,
// subscribe) and keep-alive smartbeats. Anything else, and any malformed
// name request, is dropped with a log line and, on TCP, its connection is
// closed; nothing else is affected. from must stay usable
// for replies after Handle returns, and its Send must not keep the
// sequence it is given (flow peers encode it before returning).
func (s *Server) Handle(from flow.Peer, q *seq.Sequence) {
	switch q.ID {
	case seq.IDSmartbeat:
		s.keepalive(from, q)
	case seq.IDNameRequest:
		req, err := parseRequest(q)
		if err != nil {
			s.reject(from, q, err)
			return
		}
		switch req.typ {
		case seq.TypeRequest:
			s.register(from, &req, q)
		case seq.TypeQuery:
			s.lookup(from, &req)
		case seq.TypeSubscribe:
			s.subscribe(from, &req)
		}
	default:
		// C clients send the name server nothing else: this is garbage
		// (random bytes decode as header-only frames).
		s.reject(from, q, invalid("sequence id %#x is neither a name request (%#x) nor a smartbeat (%#x)", q.ID, seq.IDNameRequest, seq.IDSmartbeat))
	}
}

// reject drops a bad request. It logs at most one warning a second (a UDP
// sender can send garbage as fast as it likes); the rest go to Debug and
// are counted in the next warning.
func (s *Server) reject(from flow.Peer, q *seq.Sequence, err error) {
	s.ctr.rejected.Add(1)
	closing := from.Protocol() == flow.TCP
	level := slog.LevelDebug
	warn, suppressed := s.rejectLog.Allow()
	if warn {
		level = slog.LevelWarn
	}
	if s.log.Enabled(context.Background(), level) {
		args := []any{"peer", from.RemoteAddr(), "protocol", from.Protocol(),
			"seq", q, "err", err, "closing_connection", closing, "rejected_total", s.ctr.rejected.Load()}
		if warn {
			args = append(args, "suppressed", suppressed) // the Debug lines since the last warning
		}
		s.log.Log(context.Background(), level, "dropped a malformed name request", args...)
	}
	if closing {
		from.Close()
	}
}

// keepalive echoes a smartbeat with NS_ID appended (§7.9) and refreshes a
// datagram source's registrations.
func (s *Server) keepalive(from flow.Peer, q *seq.Sequence) {
	s.ctr.keepalives.Add(1)
	if isDatagram(from) {
		s.mu.RLock()
		if o := s.owners[keyOf(from)]; o != nil {
			o.lastSeen.Store(s.now().UnixNano())
		}
		s.mu.RUnlock()
	}
	echo := pooledSequence(q.Type)
	echo.ID, echo.Name, echo.Generation = q.ID, q.Name, q.Generation
	tok, hasToken := tokenElement(q)
	if hasToken { // the token goes nowhere, not even back
		for _, e := range q.Elements {
			if e.UserType != UTToken {
				echo.Elements = append(echo.Elements, e)
			}
		}
		s.authenticate(from, tok)
	} else {
		echo.Elements = append(echo.Elements, q.Elements...)
	}
	echo.Elements = append(echo.Elements, seq.Element{UserType: seq.UTNSID, Data: s.idBuf})
	s.send(from, echo)
	release(echo)
}

func isDatagram(p flow.Peer) bool { return p.Protocol() != flow.TCP }

func keyOf(p flow.Peer) ownerKey {
	if isDatagram(p) {
		return ownerKey{peer: p.ID(), addr: p.RemoteAddr()}
	}
	return ownerKey{peer: p.ID()}
}

// ownerLocked returns the owner record of p, creating it. s.mu is held.
func (s *Server) ownerLocked(p flow.Peer, now time.Time) *owner {
	k := keyOf(p)
	o := s.owners[k]
	if o == nil {
		o = &owner{key: k, peer: p, datagram: isDatagram(p), ip: p.RemoteAddr().Addr(),
			regs: map[subKey]*Registration{}, subs: map[subID]*subscription{}}
		s.owners[k] = o
	}
	if o.datagram {
		o.lastSeen.Store(now.UnixNano())
	}
	return o
}

// groupLocked returns the store a request for group uses: the group's own
// if it exists, else the default one (§7.4, §7.8: an unknown group falls
// back to the default store, docs/differences.md B10 kept for compatibility).
func (s *Server) groupLocked(group string) string {
	if group != "" && !s.store.HasGroup(group) {
		return ""
	}
	return group
}

// visibleLocked reports whether r is still answered at now.
func (s *Server) visibleLocked(r *Registration, now time.Time) bool {
	if !r.expires.IsZero() && !now.Before(r.expires) {
		return false
	}
	if o := r.owner; o != nil && o.datagram && !o.closed && s.cfg.UDPTTL > 0 {
		// A silent datagram source lingers like a closed connection
		// until the collector drops it.
		return now.UnixNano()-o.lastSeen.Load() <= int64(s.cfg.UDPTTL+r.Linger)
	}
	return true
}

type delivery struct {
	to flow.Peer
	q  *seq.Sequence
}

func (s *Server) register(from flow.Peer, req *request, q *seq.Sequence) {
	s.ctr.registrations.Add(1)
	lim := &s.cfg.Limits
	switch {
	case req.tooLong && req.tooLongAs == RefusedNameLength:
		s.refuse(from, RefusedNameLength, req.name, req.group, int64(len(req.nameData)-1), MaxNameLen)
		return
	case req.tooLong:
		s.refuse(from, RefusedGroupLength, req.name, req.group, int64(req.groupLen), MaxGroupLen)
		return
	case req.addrs > lim.Addresses:
		s.refuse(from, RefusedAddresses, req.name, req.group, int64(req.addrs), int64(lim.Addresses))
		return
	case lim.MetaBytes >= 0 && req.metaBytes > lim.MetaBytes:
		s.refuse(from, RefusedMetaBytes, req.name, req.group, int64(req.metaBytes), int64(lim.MetaBytes))
		return
	}
	if lim.MaxLinger > 0 && req.linger > lim.MaxLinger {
		s.debugLinger(from, req.name, req.linger)
		req.linger, req.lingerClamped = lim.MaxLinger.Truncate(time.Second), true
	}
	now := s.now()
	r := newRegistration(req, q, from, now)
	key := subKey{r.Group, r.Name}
	var pushes []delivery

	s.mu.Lock()
	who := s.identityLocked(from)
	r.ident = who.owner()
	if pol := s.policy.Load(); pol != nil {
		if kind, d, refused := s.checkRegisterLocked(pol, r, who, from.Protocol(), now); refused {
			s.mu.Unlock()
			s.refusePolicy(from, kind, r.Name, r.Group, who, d)
			return
		}
	}
	own := s.ownerLocked(from, now)
	// Same connection: a replacement (§7.3). A lingering identical
	// registration: the same service back after a reconnect.
	old := own.regs[key]
	if old == nil {
		old = s.lingeringTwinLocked(r)
	}
	if kind, v, max, over := s.registrationOverLocked(own, r, old); over {
		s.mu.Unlock()
		s.refuse(from, kind, r.Name, r.Group, v, max)
		return
	}
	r.owner = own
	if old != nil {
		r.serial = old.serial // keeps its rank, and its place in listings
		s.store.Put(r, func(o *Registration) bool { return o == old })
		s.unaccountLocked(old)
		s.detachLocked(old)
	} else {
		if !s.store.HasGroup(r.Group) {
			s.nGroups++
		}
		s.serial++
		r.serial = s.serial
		s.store.Put(r, nil)
	}
	s.accountLocked(r)
	own.regs[key] = r
	s.version.Add(1)
	s.exportLocked(r, false)
	if old != nil && !seq.ElementsEqual(old.Elements, r.Elements) {
		pushes = s.removalPushesLocked(old, pushes) // replaced by other elements: old's answer no longer holds
	}
	pushes = s.pushesLocked(key, r, pushes)
	s.mu.Unlock()

	reply := pooledSequence(seq.TypeRequest)
	fillReply(reply, req.idData, req.nameData)
	s.send(from, reply)
	release(reply)
	for _, d := range pushes {
		s.send(d.to, d.q)
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("registered", "name", r.Name, "group", r.Group, "peer", from.RemoteAddr(),
			"replaced", old != nil, "pushed", len(pushes))
	}
}

// lingeringTwinLocked returns a lingering registration with the same
// elements as r (the same service back after a reconnect), or nil.
func (s *Server) lingeringTwinLocked(r *Registration) *Registration {
	bp := regBufPool.Get().(*[]*Registration)
	regs := s.store.Get((*bp)[:0], r.Group, r.Name)
	var twin *Registration
	for _, o := range regs {
		if o.owner != nil && o.owner.closed && seq.ElementsEqual(o.Elements, r.Elements) {
			twin = o
			break
		}
	}
	clear(regs)
	*bp = regs[:0]
	regBufPool.Put(bp)
	return twin
}

// registrationOverLocked reports which limit storing r would exceed,
// with the value it would reach and the limit; old is the registration r
// replaces, if any.
func (s *Server) registrationOverLocked(own *owner, r, old *Registration) (Refusal, int64, int64, bool) {
	lim := &s.cfg.Limits
	ip := r.Registrant.Addr()
	if own.regs[subKey{r.Group, r.Name}] == nil && !limitOK(len(own.regs), lim.RegistrationsPerClient) {
		return RefusedClientRegistrations, int64(len(own.regs) + 1), int64(lim.RegistrationsPerClient), true
	}
	if (old == nil || old.Registrant.Addr() != ip) && !limitOK(s.ipRegs[ip], lim.RegistrationsPerIP) {
		return RefusedIPRegistrations, int64(s.ipRegs[ip] + 1), int64(lim.RegistrationsPerIP), true
	}
	if old == nil && !limitOK(s.store.Len(), lim.Registrations) {
		return RefusedRegistrations, int64(s.store.Len() + 1), int64(lim.Registrations), true
	}
	if old == nil && !s.store.HasGroup(r.Group) && !limitOK(s.nGroups, lim.Groups) {
		return RefusedGroups, int64(s.nGroups + 1), int64(lim.Groups), true
	}
	stored := s.stored + int64(r.size)
	if old != nil {
		stored -= int64(old.size)
	}
	if lim.MaxStoredBytes >= 0 && stored > lim.MaxStoredBytes {
		return RefusedStoredBytes, stored, lim.MaxStoredBytes, true
	}
	return 0, 0, 0, false
}

// accountLocked counts a registration just stored; unaccountLocked one
// just replaced or removed.
func (s *Server) accountLocked(r *Registration) {
	s.ipRegs[r.Registrant.Addr()]++
	s.stored += int64(r.size)
}

func (s *Server) unaccountLocked(r *Registration) {
	ip := r.Registrant.Addr()
	if s.ipRegs[ip]--; s.ipRegs[ip] <= 0 {
		delete(s.ipRegs, ip)
	}
	s.stored -= int64(r.size)
}

// detachLocked forgets r's bookkeeping after the store dropped or
// replaced it.
func (s *Server) detachLocked(r *Registration) {
	delete(s.expiring, r)
	if o := r.owner; o != nil {
		if k := (subKey{r.Group, r.Name}); o.regs[k] == r {
			delete(o.regs, k)
		}
	}
}

// removeLocked deletes r from the store and forgets it.
func (s *Server) removeLocked(r *Registration) {
	if s.store.Delete(r) {
		s.unaccountLocked(r)
		s.exportLocked(r, true)
		s.removals = s.removalPushesLocked(r, s.removals)
	}
	s.detachLocked(r)
	s.version.Add(1)
}

// regBufPool holds the registration slices lookups collect matches in.
var regBufPool = sync.Pool{New: func() any { return new([]*Registration) }}

func (s *Server) lookup(from flow.Peer, req *request) {
	s.ctr.lookups.Add(1)
	now := s.now()
	bp := regBufPool.Get().(*[]*Registration)
	s.mu.RLock()
	group := s.groupLocked(req.group)
	var (
		who     identity
		refused bool
		d       decision
	)
	if pol := s.policy.Load(); pol != nil && pol.restricts&OpLookup != 0 {
		who = s.identityLocked(from)
		d = pol.decide(OpLookup, req.name, group, who, from.Protocol())
		refused = !d.allow
	}
	regs := (*bp)[:0]
	if !refused { // refused: answered as a miss
		regs = s.store.Get(regs, group, req.name)
		regs = s.remoteGetLocked(regs, group, req.name) // other nodes' after ours
	}
	n := 0
	for _, r := range regs {
		if s.visibleLocked(r, now) {
			regs[n] = r
			n++
		}
	}
	s.mu.RUnlock()
	if refused {
		s.refusePolicy(from, RefusedPolicyLookup, req.name, group, who, d)
	}
	// Registrations are immutable, so answers can be built and sent
	// outside the lock.
	a := pooledSequence(seq.TypeQuery)
	for _, r := range regs[:n] {
		fillAnswer(a, r, req.idData)
		s.send(from, a)
	}
	s.ctr.answers.Add(uint64(n))
	if req.endOfAnswers {
		fillEnd(a, req.idData, req.nameData, n)
		s.send(from, a)
	}
	release(a)
	clear(regs)
	*bp = regs[:0]
	regBufPool.Put(bp)
}

func (s *Server) subscribe(from flow.Peer, req *request) {
	s.ctr.subscribes.Add(1)
	var id []byte // kept for later pushes: a copy
	if req.idData != nil {
		id = slices.Clone(req.idData)
	}
	now := s.now()

	s.mu.Lock()
	if pol := s.policy.Load(); pol != nil && pol.restricts&OpSubscribe != 0 {
		who := s.identityLocked(from)
		if d := pol.decide(OpSubscribe, req.name, req.group, who, from.Protocol()); !d.allow {
			s.mu.Unlock()
			s.refusePolicy(from, RefusedPolicySubscribe, req.name, req.group, who, d)
			// Answered as for an unknown name: confirmed, no answers,
			// and no pushes ever, since nothing is stored.
			a := pooledSequence(seq.TypeRequest)
			fillReply(a, id, req.nameData)
			s.send(from, a)
			if req.endOfAnswers {
				fillEnd(a, id, req.nameData, 0)
				s.send(from, a)
			}
			release(a)
			return
		}
	}
	own := s.ownerLocked(from, now)
	key := subKey{req.group, req.name}
	sid := subID{key, string(id)}
	// A repeat (same connection, name, group and request id) replaces the
	// subscription, as after a client's re-subscription.
	old := own.subs[sid]
	if old == nil {
		if kind, v, max, over := s.subscriptionOverLocked(own, req.group); over {
			s.mu.Unlock()
			s.refuse(from, kind, req.name, req.group, v, max)
			return
		}
	}
	// Unlike a lookup, a subscription naming a group that does not exist
	// creates it: stknamed pushes a later registration in that group to
	// such a subscriber (capture 04), so it watches that group's store.
	if !s.store.HasGroup(req.group) {
		s.nGroups++
		s.store.AddGroup(req.group)
	}
	if old != nil {
		s.dropSubLocked(old)
	}
	sub := &subscription{owner: own, key: key, sid: sid, id: id, pending: true, removals: req.removals && id != nil}
	s.addSubLocked(sub)
	var current []*Registration
	for _, r := range s.remoteGetLocked(s.store.Get(nil, key.group, key.name), key.group, key.name) {
		if s.visibleLocked(r, now) {
			current = append(current, r)
		}
	}
	s.mu.Unlock()

	a := pooledSequence(seq.TypeRequest)
	fillReply(a, id, req.nameData)
	s.send(from, a)
	a.Type = seq.TypeQuery
	for _, r := range current {
		fillAnswer(a, r, id)
		s.send(from, a)
	}
	s.ctr.answers.Add(uint64(len(current)))
	if req.endOfAnswers {
		fillEnd(a, id, req.nameData, len(current))
		s.send(from, a)
	}
	release(a)
	// Deliver what registrations queued meanwhile, in order, then let
	// later ones push directly.
	for {
		s.mu.Lock()
		queued := sub.queued
		sub.queued = nil
		if len(queued) == 0 {
			sub.pending = false
		}
		s.mu.Unlock()
		if len(queued) == 0 {
			return
		}
		for _, q := range queued {
			s.send(from, q)
		}
	}
}

// subscriptionOverLocked reports which limit one more subscription of
// own in group would exceed, with the value it would reach and the limit.
func (s *Server) subscriptionOverLocked(own *owner, group string) (Refusal, int64, int64, bool) {
	lim := &s.cfg.Limits
	switch {
	case !limitOK(len(own.subs), lim.SubscriptionsPerClient):
		return RefusedClientSubscriptions, int64(len(own.subs) + 1), int64(lim.SubscriptionsPerClient), true
	case !limitOK(s.ipSubs[own.ip], lim.SubscriptionsPerIP):
		return RefusedIPSubscriptions, int64(s.ipSubs[own.ip] + 1), int64(lim.SubscriptionsPerIP), true
	case !limitOK(s.nSubs, lim.Subscriptions):
		return RefusedSubscriptions, int64(s.nSubs + 1), int64(lim.Subscriptions), true
	case !s.store.HasGroup(group) && !limitOK(s.nGroups, lim.Groups):
		return RefusedGroups, int64(s.nGroups + 1), int64(lim.Groups), true
	}
	return 0, 0, 0, false
}

// addSubLocked adds sub to the subscription index and its owner.
func (s *Server) addSubLocked(sub *subscription) {
	l := s.subs[sub.key]
	if l == nil {
		l = &subList{}
		s.subs[sub.key] = l
	}
	sub.idx = len(l.subs)
	l.subs = append(l.subs, sub)
	sub.owner.subs[sub.sid] = sub
	s.ipSubs[sub.owner.ip]++
	s.nSubs++
	s.version.Add(1) // the Names page shows subscriber counts
}

// dropSubLocked removes sub from the subscription index and its owner,
// in constant time.
func (s *Server) dropSubLocked(sub *subscription) {
	l := s.subs[sub.key]
	if l == nil || sub.idx >= len(l.subs) || l.subs[sub.idx] != sub {
		return // already gone
	}
	last := len(l.subs) - 1
	moved := l.subs[last]
	l.subs[sub.idx], moved.idx = moved, sub.idx
	l.subs[last] = nil
	l.subs = l.subs[:last]
	if last == 0 {
		delete(s.subs, sub.key)
	}
	o := sub.owner
	if o.subs[sub.sid] == sub {
		delete(o.subs, sub.sid)
	}
	if s.ipSubs[o.ip]--; s.ipSubs[o.ip] <= 0 {
		delete(s.ipSubs, o.ip)
	}
	s.nSubs--
	s.version.Add(1)
}

// removalPushesLocked appends a removal notice for r, which is no longer
// answered, to every subscription of its name that asked for notices
// (§7.13); subscriptions still sending their first answers queue it.
// s.mu is held.
func (s *Server) removalPushesLocked(r *Registration, pushes []delivery) []delivery {
	if l := s.subs[subKey{r.Group, r.Name}]; l != nil {
		for _, sub := range l.subs {
			if !sub.removals {
				continue
			}
			a := removalSequence(r, sub.id)
			if sub.pending {
				sub.queued = append(sub.queued, a)
				continue
			}
			pushes = append(pushes, delivery{sub.owner.peer, a})
		}
	}
	return pushes
}

// takeRemovalsLocked returns the removal notices queued by removeLocked,
// to be sent once s.mu is released.
func (s *Server) takeRemovalsLocked() []delivery {
	d := s.removals
	s.removals = nil
	return d
}

// sendAll sends each delivery, in order. s.mu is not held.
func (s *Server) sendAll(ds []delivery) {
	for _, d := range ds {
		s.send(d.to, d.q)
	}
}

func (s *Server) send(to flow.Peer, q *seq.Sequence) {
	if err := to.Send(q); err != nil {
		s.log.Debug("name-service reply not sent", "peer", to.RemoteAddr(), "err", err)
	}
}

// Disconnect tells the server that p's connection closed: its
// subscriptions end and its registrations start to linger (§7.7). The
// TCP flows of ServeTCP call it; datagram peers never disconnect.
func (s *Server) Disconnect(p flow.Peer) {
	if isDatagram(p) {
		return
	}
	if hook := s.afterDisconnect; hook != nil {
		defer hook(p)
	}
	now := s.now()
	s.mu.Lock()
	s.forgetAuthLocked(keyOf(p))
	o := s.owners[keyOf(p)]
	if o == nil {
		s.mu.Unlock()
		return
	}
	s.log.Debug("connection closed", "peer", p.RemoteAddr(), "lingering", len(o.regs), "subscriptions", len(o.subs))
	s.dropOwnerLocked(o, now)
	removals := s.takeRemovalsLocked()
	s.mu.Unlock()
	s.sendAll(removals)
}

// dropOwnerLocked ends o: its subscriptions go, its registrations linger.
// A datagram source that went silent is treated as a connection that
// closed when its UDPTTL ran out: the linger counts from then, not from
// whenever the collector noticed.
func (s *Server) dropOwnerLocked(o *owner, now time.Time) {
	delete(s.owners, o.key)
	o.closed = true
	for _, sub := range o.subs {
		s.dropSubLocked(sub)
	}
	from := now
	if o.datagram {
		from = time.Unix(0, o.lastSeen.Load()).Add(s.cfg.UDPTTL)
	}
	for _, r := range o.regs {
		r.expires = from.Add(r.Linger)
		if o.datagram && !now.Before(r.expires) { // silent for longer than TTL + linger already
			s.removeLocked(r)
			continue
		}
		s.expiring[r] = struct{}{}
		s.exportLocked(r, false) // other cluster nodes learn its expiry
	}
	o.regs = nil
	s.version.Add(1) // lingering now
}

func (s *Server) collectLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.collect(s.now())
		}
	}
}

// collect removes the registrations whose linger ran out, and ends the
// datagram sources silent for longer than UDPTTL: their subscriptions go,
// their registrations linger from the end of the TTL. It returns how many
// registrations it removed.
func (s *Server) collect(now time.Time) int {
	s.mu.Lock()
	n := s.collectLocked(now)
	removals := s.takeRemovalsLocked()
	s.mu.Unlock()
	s.sendAll(removals)
	return n
}

func (s *Server) collectLocked(now time.Time) int {
	n := 0
	for r := range s.expiring {
		if !now.Before(r.expires) {
			s.removeLocked(r)
			n++
		}
	}
	s.collectAuthLocked(now)
	if s.cfg.UDPTTL > 0 {
		for _, o := range s.owners {
			if o.datagram && now.UnixNano()-o.lastSeen.Load() > int64(s.cfg.UDPTTL) {
				s.log.Debug("datagram client timed out; its registrations linger", "peer", o.key.addr, "registrations", len(o.regs), "subscriptions", len(o.subs))
				before := s.store.Len()
				s.dropOwnerLocked(o, now)
				n += before - s.store.Len()
			}
		}
	}
	return n
}

// Entry describes one stored registration, for status pages.
type Entry struct {
	Info
	// Registrant is the address the registration came from, over
	// Transport.
	Registrant netip.AddrPort
	Transport  flow.Protocol
	// Registered is when it was stored (or last replaced).
	Registered time.Time
	// Lingering is set once the registrant's connection closed, or its
	// datagrams stopped for longer than the server's UDPTTL; the
	// registration goes at Expires.
	Lingering bool
	// Expires is when the registration goes unless refreshed: the end of
	// its linger, or for a datagram registrant the end of its TTL plus its
	// linger. Zero: not scheduled (the connection is open).
	Expires time.Time
	// Subscribers counts the subscriptions to this name in this group.
	Subscribers int
	// Node is the cluster node the registration came from; "" for this
	// server's own (see ApplyRemote).
	Node string
}

// Names returns every registration still answered, sorted by group and
// name, in registration order within a name. It is a copy: safe to keep.
// It copies the whole store under the server's read lock: for status
// pages use NamesPage, which lists a page at a time.
func (s *Server) Names() []Entry {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Entry
	s.ascendLocked("", "", func(_, _ string, regs []*Registration) bool {
		for _, r := range regs {
			if s.visibleLocked(r, now) {
				out = append(out, s.entryLocked(r, now))
			}
		}
		return true
	})
	return out
}

// entryLocked describes r for status pages.
func (s *Server) entryLocked(r *Registration, now time.Time) Entry {
	e := Entry{Info: r.Info(), Registrant: r.Registrant, Transport: r.Transport,
		Registered: r.Registered, Expires: r.expires,
		Lingering: !r.expires.IsZero(), Node: r.node}
	if l := s.subs[subKey{r.Group, r.Name}]; l != nil {
		e.Subscribers = len(l.subs)
	}
	if o := r.owner; o != nil && o.datagram && !o.closed && s.cfg.UDPTTL > 0 {
		ttlEnd := time.Unix(0, o.lastSeen.Load()+int64(s.cfg.UDPTTL))
		e.Expires, e.Lingering = ttlEnd.Add(r.Linger), now.After(ttlEnd)
	}
	e.Info.Group = r.Group
	return e
}

// NamesVersion changes whenever what Names lists changes (a registration
// stored, replaced, lingering or gone, a subscription made or ended), so a
// status page can tell cheaply whether to list the names again. Time
// alone (a linger running out before the collector removes it, a
// datagram registrant's TTL moving) does not change it.
func (s *Server) NamesVersion() uint64 { return s.version.Load() }

// ServerStats are a server's counters and sizes.
type ServerStats struct {
	ID            uint64 // the server id
	Registrations int    // stored registrations, lingering ones included
	Remote        int    // other cluster nodes' registrations held (ApplyRemote), not in Registrations
	Lingering     int    // registrations whose registrant's connection closed
	Subscriptions int    // active subscriptions
	Clients       int    // connections and datagram sources with registrations or subscriptions

	Registers, Lookups, Subscribes uint64 // requests handled
	Answers                        uint64 // QUERY answers sent (pushes not included)
	Keepalives                     uint64 // smartbeats echoed
	Rejected                       uint64 // malformed requests and foreign sequences dropped

	// Authenticated counts the connections and datagram sources that
	// showed a token of the access policy.
	Authenticated int
	// PolicyRules is the number of rules of the access policy (0: none).
	PolicyRules int

	Groups      int   // groups created (by other cluster nodes' registrations too), the default one included
	StoredBytes int64 // element bytes of the stored registrations (Limits.MaxStoredBytes)
	// Refused counts the requests refused by Limits, by kind (index a
	// Refusal).
	Refused [NumRefusals]uint64
	// RefusalDisconnects counts the connections closed for reaching
	// Limits.DisconnectAfter refusals.
	RefusalDisconnects uint64
	// LingerClamped counts the registrations whose linger was cut to
	// Limits.MaxLinger.
	LingerClamped uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	s.mu.RLock()
	st := ServerStats{ID: s.id, Registrations: s.store.Len(), Lingering: len(s.expiring), Clients: len(s.owners),
		Subscriptions: s.nSubs, Groups: s.nGroups + s.rep.groups, StoredBytes: s.stored, Authenticated: len(s.auth),
		Remote: s.remoteLenLocked()}
	s.mu.RUnlock()
	if p := s.policy.Load(); p != nil {
		st.PolicyRules = len(p.rules)
	}
	for i := range st.Refused {
		st.Refused[i] = s.refusals.n[i].Load()
	}
	st.RefusalDisconnects = s.ctr.refusalDisconnects.Load()
	st.LingerClamped = s.ctr.lingerClamped.Load()
	st.Registers = s.ctr.registrations.Load()
	st.Lookups = s.ctr.lookups.Load()
	st.Subscribes = s.ctr.subscribes.Load()
	st.Answers = s.ctr.answers.Load()
	st.Keepalives = s.ctr.keepalives.Load()
	st.Rejected = s.ctr.rejected.Load()
	return st
}
