package flow

import (
	"fmt"
	"sync"
	"time"
)

// acceptUnhealthyFor is how long after a failed accept a listener counts as
// not accepting: longer than the longest back-off (1 s), so an ongoing
// burst of failures never looks healthy between two retries.
const acceptUnhealthyFor = 2 * time.Second

// acceptHealth tracks whether a listener is accepting connections, for
// TCPServer.AcceptError and the daemon's health check.
type acceptHealth struct {
	mu         sync.Mutex
	lastErr    error
	lastFail   time.Time
	burstStart time.Time
	burstFails int
	lastWarn   time.Time
	dead       error
}

// acceptLogEvery rate-limits the accept failure log lines: at the descriptor
// limit, accepts can fail and succeed in turn for every connection.
const acceptLogEvery = 10 * time.Second

// failed records a failed accept; it reports whether to log it: the first
// of a burst, at most once per acceptLogEvery.
func (h *acceptHealth) failed(err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if h.burstFails == 0 {
		h.burstStart = now
	}
	h.burstFails++
	h.lastErr, h.lastFail = err, now
	if now.Sub(h.lastWarn) < acceptLogEvery {
		return false
	}
	h.lastWarn = now
	return true
}

// succeeded records an accepted connection. It returns the number of
// failures of the burst it ends and when that burst started, or 0 when
// there is nothing worth a log line (no burst, or a line was logged less
// than acceptLogEvery ago).
func (h *acceptHealth) succeeded() (int, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, since := h.burstFails, h.burstStart
	h.burstFails = 0
	h.lastErr = nil
	if n == 0 || time.Since(h.lastWarn) < acceptLogEvery/10 {
		return 0, since
	}
	return n, since
}

// died records that the listener ended for good.
func (h *acceptHealth) died(err error) {
	h.mu.Lock()
	h.dead = err
	h.mu.Unlock()
}

func (h *acceptHealth) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dead != nil {
		return fmt.Errorf("listener closed: %w", h.dead)
	}
	if h.lastErr != nil && time.Since(h.lastFail) < acceptUnhealthyFor {
		return fmt.Errorf("cannot accept connections since %s: %w", h.burstStart.Format(time.RFC3339), h.lastErr)
	}
	return nil
}
