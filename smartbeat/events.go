package smartbeat

import "sync/atomic"

// eventRing keeps the latest events for EventsSince. Its methods run under
// the Monitor's lock.
type eventRing struct {
	buf  []Event
	next int    // position of the next event once full
	last uint64 // Seq of the latest event
}

func (r *eventRing) add(ev Event, size int) {
	r.last = ev.Seq
	if len(r.buf) < size {
		r.buf = append(r.buf, ev)
		return
	}
	r.buf[r.next] = ev
	r.next = (r.next + 1) % size
}

// since returns the events after seq, oldest first, and whether none of
// them is missing.
func (r *eventRing) since(seq uint64) ([]Event, bool) {
	if seq >= r.last {
		return nil, seq == r.last || seq == 0
	}
	n := len(r.buf)
	oldest := r.last - uint64(n) + 1
	ok := seq+1 >= oldest
	start := 0
	if ok {
		start = int(seq + 1 - oldest)
	}
	out := make([]Event, 0, n-start)
	for i := start; i < n; i++ {
		out = append(out, r.buf[(r.next+i)%n])
	}
	return out, ok
}

// subscriber is one Subscribe call: a bounded queue drained by its own
// goroutine.
type subscriber struct {
	ch      chan Event
	stopped atomic.Bool
	closed  bool // ch closed; under the Monitor's lock
}

func (s *subscriber) run(fn func(Event)) {
	for ev := range s.ch {
		if s.stopped.Load() {
			continue // drain without calling fn
		}
		fn(ev)
	}
}
