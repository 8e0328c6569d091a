package stk

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
)

// EndpointStatus describes one publisher address a subscription receives
// from (Subscription.Status).
type EndpointStatus struct {
	// Endpoint is the registered address ("tcp" when the registration
	// said no protocol).
	Endpoint namesvc.Endpoint
	// Connected says whether a TCP connection to it is up (a datagram
	// flow has none: false); Since is when that last changed, or when the
	// address was first received from.
	Connected bool
	Since     time.Time
	// Announced is when the name server last said the address is
	// registered: the registration that made the subscription receive
	// from it, one renewed later, or a lookup before pruning.
	Announced time.Time
	// Stats are the counters of its flow (Stats.SequencesIn: sequences
	// received from it).
	Stats flow.Stats
}

// Status returns the state of each publisher address received from now,
// sorted by address: what a program shows of its sources.
func (s *Subscription) Status() []EndpointStatus {
	s.mu.Lock()
	out := make([]EndpointStatus, 0, len(s.eps))
	fs := make([]flow.Flow, 0, len(s.eps))
	for _, e := range s.eps {
		out = append(out, EndpointStatus{Endpoint: e.ep, Connected: e.up, Since: e.since, Announced: e.announced})
		fs = append(fs, e.f)
	}
	s.mu.Unlock()
	for i, f := range fs { // outside the lock: a flow's Stats takes its own
		out[i].Stats = f.Stats()
	}
	slices.SortFunc(out, func(a, b EndpointStatus) int { return cmp.Compare(a.Endpoint.String(), b.Endpoint.String()) })
	return out
}

// Flows returns the flows receiving from the publisher addresses, sorted
// by address, for a program that lists its flows with the others it runs
// (their Stats, LocalAddr, Protocol). They belong to the subscription:
// Close it, not them.
func (s *Subscription) Flows() []flow.Flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]flow.Flow, 0, len(s.eps))
	for _, k := range slices.Sorted(maps.Keys(s.eps)) {
		out = append(out, s.eps[k].f)
	}
	return out
}
