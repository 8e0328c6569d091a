// Package ratelog rate-limits log lines of one kind, so that a peer
// sending garbage or a failing socket cannot flood the log: at most one
// line per interval, which says how many were left out since the last
// one. flow and smartbeat use it; it imports nothing of ours.
package ratelog

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// DefaultEvery is the interval of a Limiter whose Every is zero.
const DefaultEvery = time.Second

// Limiter lets one line of a kind through per interval and counts the
// others. The zero value allows one line a second; it is safe for
// concurrent use and must not be copied after first use.
type Limiter struct {
	// Every is the least time between two lines (0: DefaultEvery). Set
	// it before first use.
	Every time.Duration
	// Now is the clock (nil: time.Now); tests inject theirs.
	Now func() time.Time

	last       atomic.Int64 // unix nanoseconds of the last line let through; 0: none yet
	suppressed atomic.Int64 // lines refused since then
}

// Allow reports whether a line may be logged now; when it may, it also
// returns how many lines were refused since the previous one.
func (l *Limiter) Allow() (ok bool, suppressed int64) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	every := l.Every
	if every <= 0 {
		every = DefaultEvery
	}
	t := now().UnixNano()
	last := l.last.Load()
	// Of goroutines racing at the same moment, the one whose swap wins
	// logs; the others count as refused.
	if (last != 0 && t-last < int64(every)) || !l.last.CompareAndSwap(last, t) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}

// Warn logs msg with args at Warn level on log if Allow lets it, adding
// "suppressed", n when n lines were refused since the previous one.
func (l *Limiter) Warn(log *slog.Logger, msg string, args ...any) {
	ok, n := l.Allow()
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Warn(msg, args...)
}
