package stepbus

import (
	"slices"
	"sync/atomic"

	"github.com/stk-go/stk/step"
)

// Subscription receives the STEPs published after it was made that match
// its filter, on a bounded channel. When the channel is full, Publish drops
// the STEP for this subscriber and counts it (Dropped); it never waits.
type Subscription struct {
	b       *Bus
	ch      chan *step.Step
	filter  atomic.Pointer[filter]
	dropped atomic.Uint64
	closed  bool // under b.mu
}

type filter struct {
	pattern step.Pattern
	host    string
}

// Subscribe returns a subscription to the STEPs whose type matches p and
// whose host is host ("" for all hosts; matched as Query.Host is). buffer
// is the channel's capacity; 0 or less means DefaultSubscriberBuffer. On a
// closed bus the subscription's channel is closed at once.
func (b *Bus) Subscribe(p step.Pattern, host string, buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultSubscriberBuffer
	}
	s := &Subscription{b: b, ch: make(chan *step.Step, buffer)}
	s.filter.Store(&filter{pattern: p, host: host})
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		s.closeLocked()
		return s
	}
	b.subs = append(b.subs, s)
	return s
}

// C returns the channel the STEPs arrive on, in publish order. It is
// closed by Close and when the bus closes. The STEPs are shared: treat
// them as read-only.
func (s *Subscription) C() <-chan *step.Step { return s.ch }

// Dropped returns how many matching STEPs were lost because the channel
// was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// SetFilter replaces the subscription's pattern and host; STEPs published
// afterwards are matched against the new ones.
func (s *Subscription) SetFilter(p step.Pattern, host string) {
	s.filter.Store(&filter{pattern: p, host: host})
}

// Filter returns the subscription's pattern and host.
func (s *Subscription) Filter() (step.Pattern, string) {
	f := s.filter.Load()
	return f.pattern, f.host
}

// Close ends the subscription and closes its channel. STEPs still in the
// channel can be read. Close may be called more than once.
func (s *Subscription) Close() {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.closed {
		return
	}
	if i := slices.Index(b.subs, s); i >= 0 {
		b.subs = slices.Delete(b.subs, i, i+1)
	}
	s.closeLocked()
}

func (s *Subscription) closeLocked() {
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

// offer delivers st if it matches, without waiting; b.mu is held.
func (s *Subscription) offer(st *step.Step) {
	f := s.filter.Load()
	if !f.pattern.Match(st.Event.Type) || !matchHost(st, f.host) {
		return
	}
	select {
	case s.ch <- st:
	default:
		s.dropped.Add(1)
		s.b.dropped.Add(1)
	}
}
