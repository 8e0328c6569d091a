package namesvc

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/ratelog"
)

// Refusal is a kind of refused request: which limit (ServerConfig.Limits,
// or a C buffer) it exceeded.
type Refusal uint8

// The kinds of refusal; String gives the label of each in /metrics.
const (
	RefusedClientRegistrations Refusal = iota // Limits.RegistrationsPerClient
	RefusedIPRegistrations                    // Limits.RegistrationsPerIP
	RefusedRegistrations                      // Limits.Registrations
	RefusedStoredBytes                        // Limits.MaxStoredBytes
	RefusedClientSubscriptions                // Limits.SubscriptionsPerClient
	RefusedIPSubscriptions                    // Limits.SubscriptionsPerIP
	RefusedSubscriptions                      // Limits.Subscriptions
	RefusedGroups                             // Limits.Groups
	RefusedMetaBytes                          // Limits.MetaBytes
	RefusedAddresses                          // Limits.Addresses
	RefusedNameLength                         // a registered name longer than MaxNameLen
	RefusedGroupLength                        // a registered group longer than MaxGroupLen

	// Refusals of the access policy (ServerConfig.Policy).
	RefusedPolicyRegister  // a registration the policy refuses
	RefusedPolicyOwner     // a registration of a name another identity owns (ModeFirstOwner)
	RefusedPolicyLookup    // a lookup the policy refuses (answered as a miss)
	RefusedPolicySubscribe // a subscription the policy refuses (answered as for an unknown name)
	RefusedPolicyToken     // a keep-alive with a token the policy does not know

	// NumRefusals is the number of kinds: the length of
	// ServerStats.Refused.
	NumRefusals
)

var refusalNames = [NumRefusals]string{
	"client_registrations", "ip_registrations", "registrations", "stored_bytes",
	"client_subscriptions", "ip_subscriptions", "subscriptions", "groups",
	"meta_bytes", "addresses", "name_length", "group_length",
	"policy_register", "policy_owner", "policy_lookup", "policy_subscribe", "policy_token",
}

// String returns the kind's label, e.g. "client_registrations".
func (r Refusal) String() string {
	if r < NumRefusals {
		return refusalNames[r]
	}
	return "unknown"
}

// refusalCounters count refusals by kind and rate-limit their log lines.
type refusalCounters struct {
	n   [NumRefusals]atomic.Uint64
	log [NumRefusals]ratelog.Limiter // one line a second of each kind
	// disconnectLog limits the lines about connections closed at
	// Limits.DisconnectAfter.
	disconnectLog ratelog.Limiter
}

// limitOK reports whether count more items stay within limit (negative:
// no limit).
func limitOK(have, limit int) bool { return limit < 0 || have < limit }

// refuse drops a request that exceeded a limit: nothing is sent (STK has
// no refusal message; the client's request times out), the kind is
// counted and logged at most once a second, and a TCP connection whose
// refusals reach Limits.DisconnectAfter is closed. what and limit
// describe the request and the bound for the log line. s.mu is not held.
func (s *Server) refuse(from flow.Peer, kind Refusal, name, group string, value, limit int64) {
	c := &s.refusals
	total := c.n[kind].Add(1)
	if ok, quiet := c.log[kind].Allow(); ok {
		s.log.Warn("name request refused: over a limit; nothing is sent, the client's request times out",
			"reason", kind.String(), "peer", from.RemoteAddr(), "protocol", from.Protocol(),
			"name", name, "group", group, "value", value, "limit", limit,
			"refused_total", total, "suppressed", quiet)
	}
	s.countRefusal(from)
}

// countRefusal counts a refused request against its TCP connection and
// closes the connection at Limits.DisconnectAfter refusals. s.mu is not
// held.
func (s *Server) countRefusal(from flow.Peer) {
	if isDatagram(from) || s.cfg.Limits.DisconnectAfter < 0 {
		return
	}
	s.mu.Lock()
	o := s.ownerLocked(from, s.now()) // a TCP owner goes with its connection
	o.refusals++
	n := o.refusals
	s.mu.Unlock()
	if n != s.cfg.Limits.DisconnectAfter {
		return
	}
	s.ctr.refusalDisconnects.Add(1)
	s.refusals.disconnectLog.Warn(s.log, "closing a name-service connection that keeps exceeding the limits",
		"peer", from.RemoteAddr(), "refusals", n, "disconnects_total", s.ctr.refusalDisconnects.Load())
	from.Close()
}

// debugLinger says at Debug that a linger was clamped.
func (s *Server) debugLinger(from flow.Peer, name string, asked time.Duration) {
	s.ctr.lingerClamped.Add(1)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("registration linger clamped", "name", name, "peer", from.RemoteAddr(),
			"asked", asked, "stored", s.cfg.Limits.MaxLinger)
	}
}
