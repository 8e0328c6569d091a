package smartbeat

import (
	"cmp"
	"slices"
	"time"
)

// Summary is a compact, consistent read of the monitor for a publisher
// that mirrors it elsewhere (a clustered stkd publishes each node's
// services to the others): the current records and the newest history
// records, at one event sequence number, without state histories.
type Summary struct {
	// Seq is the sequence number of the latest event the summary
	// includes: events with a larger Seq came after it.
	Seq uint64
	// Current are the current records, oldest first.
	Current []ServiceView
	// Ended are the newest history records, newest first.
	Ended []ServiceView
}

// Summary returns the current records and the ended newest history
// records (ended ≤ 0: none) at one instant. Unlike Snapshot it copies
// neither the whole history nor the state histories, so that calling it
// every second costs the current list only.
func (m *Monitor) Summary(ended int) Summary {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Summary{Seq: m.eventSeq, Current: make([]ServiceView, 0, len(m.t.current))}
	for _, r := range m.t.current {
		s.Current = append(s.Current, r.view(now, false))
	}
	slices.SortFunc(s.Current, func(a, b ServiceView) int { return cmp.Compare(a.UID, b.UID) })
	h := m.t.history
	for i := len(h) - 1; i >= 0 && len(s.Ended) < ended; i-- {
		s.Ended = append(s.Ended, h[i].view(time.Time{}, false))
	}
	return s
}
