// Package ratelog rate-limits log lines of one kind, so that a peer
// sending garbage or a failing socket cannot flood the log: at most one
// line per interval, which says how many were left out since the last
// one. Every package that logs what a peer or a failing resource can
// repeat at will uses it (flow, namesvc, smartbeat, stepbus, hostmon); it
// imports nothing of ours.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
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

	mu         sync.Mutex   // orders the lines let through
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
	// A flood is refused without the lock; a line that may be due takes
	// it, and of goroutines racing at the same moment the first logs.
	if l.recent(t, every) {
		l.suppressed.Add(1)
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.recent(t, every) {
		l.suppressed.Add(1)
		return false, 0
	}
	// The count is taken before the new time is published: a line refused
	// because of this one counts toward the next, not this one (it did,
	// now and then, when both were atomics changed in the other order).
	n := l.suppressed.Swap(0)
	l.last.Store(t)
	return true, n
}

// recent reports whether the last line let through is less than every
// before t. A clock set back (t before it) lets the line through rather
// than silencing the kind until it catches up.
func (l *Limiter) recent(t int64, every time.Duration) bool {
	last := l.last.Load()
	return last != 0 && t >= last && t-last < int64(every)
}

// Flush returns how many lines were refused since the last one let
// through and zeroes that count, for a closing line that reports them (a
// collector working again). It does not change when the next line may be
// logged.
func (l *Limiter) Flush() int64 { return l.suppressed.Swap(0) }

// Log logs msg with args at level on log if Allow lets it, adding
// "suppressed", n when n lines were refused since the previous one.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, msg string, args ...any) {
	ok, n := l.Allow()
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Log(context.Background(), level, msg, args...)
}

// Warn is Log at Warn level.
func (l *Limiter) Warn(log *slog.Logger, msg string, args ...any) {
	l.Log(log, slog.LevelWarn, msg, args...)
}

// Info is Log at Info level.
func (l *Limiter) Info(log *slog.Logger, msg string, args ...any) {
	l.Log(log, slog.LevelInfo, msg, args...)
}
