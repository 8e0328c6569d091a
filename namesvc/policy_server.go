package namesvc

import (
	"crypto/sha256"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
)

// UTToken is the element user type that carries a client's token
// ("NAME:SECRET", ClientOptions.Token) in its keep-alive smartbeats. STK
// does not use it. A C name server echoes the smartbeat, token included,
// to the same connection and stores nothing of it (docs/protocol.md §7.9);
// this server strips it from the echo and takes the connection (or, over
// UDP, the datagram source address) as authenticated with that token's
// name while it lasts.
const UTToken uint64 = 0x9a3e0002

// authEntry is an identity shown by a connection or datagram source: the
// token's name and the SHA-256 of its secret (to check it against a
// reloaded policy). The secret itself is not kept.
type authEntry struct {
	name     string
	hash     [sha256.Size]byte
	datagram bool
	lastSeen atomic.Int64 // unix nanoseconds of the last keep-alive with the token
}

// SetPolicy replaces the server's access policy (nil: open, as without
// one). Requests handled after it returns follow p; what is stored stays
// (a stricter policy does not remove registrations already made). Clients
// authenticated with a token p no longer has, or whose secret changed,
// lose that identity until they show a valid token again.
func (s *Server) SetPolicy(p *Policy) {
	s.policy.Store(p)
	s.mu.Lock()
	dropped := 0
	for k, a := range s.auth {
		if !p.stillValid(a.name, a.hash) {
			delete(s.auth, k)
			dropped++
		}
	}
	s.mu.Unlock()
	s.log.Info("name server access policy set", "policy", p.String(), "source", policySource(p), "identities_dropped", dropped)
}

// Policy returns the server's access policy, nil if it has none.
func (s *Server) Policy() *Policy { return s.policy.Load() }

func policySource(p *Policy) string {
	if p == nil {
		return ""
	}
	return p.Source
}

// identityLocked returns who p is: its source IP, the token name it
// showed if any, and over mutual TLS its client certificate. s.mu is held
// (read or write).
func (s *Server) identityLocked(p flow.Peer) identity {
	w := identity{ip: p.RemoteAddr().Addr().Unmap()}
	if tp, ok := p.(flow.TLSPeer); ok {
		// VerifiedChains, not PeerCertificates: a server configured to
		// request a certificate without verifying it would otherwise let
		// anyone claim any name.
		if cs := tp.ConnectionState(); len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 {
			w.cert = cs.VerifiedChains[0][0]
		}
	}
	if len(s.auth) > 0 {
		if a := s.auth[keyOf(p)]; a != nil {
			w.token = a.name
		}
	}
	return w
}

// tokenElement returns the data of q's UTToken element and whether it
// has one.
func tokenElement(q *seq.Sequence) ([]byte, bool) {
	for _, e := range q.Elements {
		if e.UserType == UTToken {
			return e.Data, true
		}
	}
	return nil, false
}

// authenticate handles the token of a keep-alive from p: a valid one
// makes it p's identity, an unknown one is refused (counted, logged) and
// drops p's identity. Without a policy holding tokens it does nothing.
func (s *Server) authenticate(from flow.Peer, tok []byte) {
	pol := s.policy.Load()
	if pol == nil || len(pol.tokens) == 0 {
		return
	}
	k := keyOf(from)
	name, h, ok := pol.verifyToken(tok)
	if !ok {
		s.mu.Lock()
		delete(s.auth, k)
		s.mu.Unlock()
		s.refusePolicy(from, RefusedPolicyToken, "", "", identity{ip: from.RemoteAddr().Addr()}, decision{})
		return
	}
	now := s.now().UnixNano()
	s.mu.RLock()
	a := s.auth[k]
	same := a != nil && a.name == name && a.hash == h
	if same {
		a.lastSeen.Store(now)
	}
	s.mu.RUnlock()
	if same {
		return
	}
	a = &authEntry{name: name, hash: h, datagram: isDatagram(from)}
	a.lastSeen.Store(now)
	s.mu.Lock()
	s.auth[k] = a
	s.mu.Unlock()
	s.log.Debug("name-service client authenticated", "peer", from.RemoteAddr(), "protocol", from.Protocol(), "token", name)
}

// ownedByOtherLocked returns a stored registration of r's name and group
// (lingering ones included) whose owner is not owner, or nil.
func (s *Server) ownedByOtherLocked(r *Registration, owner identity, now time.Time) *Registration {
	bp := regBufPool.Get().(*[]*Registration)
	regs := s.store.Get((*bp)[:0], r.Group, r.Name)
	var other *Registration
	for _, o := range regs {
		if o.ident != owner && s.visibleLocked(o, now) {
			other = o
			break
		}
	}
	clear(regs)
	*bp = regs[:0]
	regBufPool.Put(bp)
	return other
}

// checkRegisterLocked applies the policy to a registration of r by who:
// the refusal kind, or false if allowed. s.mu is held.
func (s *Server) checkRegisterLocked(pol *Policy, r *Registration, who identity, proto flow.Protocol, now time.Time) (Refusal, decision, bool) {
	d := pol.decide(OpRegister, r.Name, r.Group, who, proto)
	if !d.allow {
		return RefusedPolicyRegister, d, true
	}
	if pol.Mode == ModeFirstOwner && !d.explicit {
		if other := s.ownedByOtherLocked(r, who.owner(), now); other != nil {
			return RefusedPolicyOwner, d, true
		}
	}
	return 0, d, false
}

// refusePolicy counts and logs (at most once a second per kind) a request
// the access policy refused. A refused registration counts towards
// Limits.DisconnectAfter; lookups and subscriptions are answered as for
// an unknown name by the caller. s.mu is not held.
func (s *Server) refusePolicy(from flow.Peer, kind Refusal, name, group string, who identity, d decision) {
	c := &s.refusals
	total := c.n[kind].Add(1)
	if ok, quiet := c.log[kind].Allow(); ok {
		args := []any{"reason", kind.String(), "peer", from.RemoteAddr(), "protocol", from.Protocol(),
			"identity", who.String(), "name", name, "group", group,
			"refused_total", total, "suppressed", quiet}
		if d.explicit {
			args = append(args, "policy_line", d.line)
		}
		if pol := s.policy.Load(); pol != nil {
			args = append(args, "policy", pol.Mode.String())
		}
		s.log.Warn("name request refused by the access policy", args...)
	}
	if kind == RefusedPolicyRegister || kind == RefusedPolicyOwner {
		s.countRefusal(from)
	}
}

// forgetAuthLocked drops p's identity (its connection closed).
func (s *Server) forgetAuthLocked(k ownerKey) {
	delete(s.auth, k)
}

// collectAuthLocked drops the identities of datagram sources silent for
// longer than UDPTTL.
func (s *Server) collectAuthLocked(now time.Time) {
	if s.cfg.UDPTTL <= 0 {
		return
	}
	for k, a := range s.auth {
		if a.datagram && now.UnixNano()-a.lastSeen.Load() > int64(s.cfg.UDPTTL) {
			delete(s.auth, k)
		}
	}
}
