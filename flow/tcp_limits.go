package flow

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// connSlots counts a TCP server's connections, in total and per source IP,
// from accept to close, to enforce Options.MaxConns and MaxConnsPerIP.
type connSlots struct {
	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

// reserve takes a slot for a connection from ip; it returns "" on success,
// else the limit that refused it.
func (c *connSlots) reserve(ip netip.Addr, maxConns, maxPerIP int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if maxConns > 0 && c.total >= maxConns {
		return "max_conns"
	}
	if maxPerIP > 0 && c.perIP[ip] >= maxPerIP {
		return "max_conns_per_ip"
	}
	if c.perIP == nil {
		c.perIP = map[netip.Addr]int{}
	}
	c.total++
	c.perIP[ip]++
	return ""
}

// release gives back a slot taken by reserve.
func (c *connSlots) release(ip netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if n := c.perIP[ip] - 1; n > 0 {
		c.perIP[ip] = n
	} else {
		delete(c.perIP, ip)
	}
}

// activity is what the timeout sweeper reads of a connection; the event
// loop writes it.
type activity struct {
	lastFrame    atomic.Int64 // unix nanoseconds of the last completed frame (or of the connection)
	partialSince atomic.Int64 // unix nanoseconds since which an incomplete frame is buffered; 0: none
}

// traffic records, on the event loop, the state after reading: frames is
// the number of bytes of complete frames consumed, left the bytes of an
// incomplete frame still buffered.
func (a *activity) traffic(now int64, consumed, left int) {
	if consumed > 0 {
		a.lastFrame.Store(now)
		if left > 0 {
			a.partialSince.Store(now) // progress: the next frame's clock starts now
		} else {
			a.partialSince.Store(0)
		}
		return
	}
	if left > 0 && a.partialSince.Load() == 0 {
		a.partialSince.Store(now)
	}
}

// sweepTimeouts closes, until the server closes, the connections that broke
// Options.IdleTimeout or FrameTimeout. It wakes a few times per timeout, so
// a connection is closed at most a quarter of the timeout late.
func (s *TCPServer) sweepTimeouts() {
	defer close(s.sweepDone)
	period := time.Second
	for _, d := range []time.Duration{s.opts.IdleTimeout, s.opts.FrameTimeout} {
		if d > 0 && d/4 < period {
			period = max(d/4, 10*time.Millisecond)
		}
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.sweepStop:
			return
		case now := <-t.C:
			s.sweep(now)
		}
	}
}

func (s *TCPServer) sweep(now time.Time) {
	n := now.UnixNano()
	for _, c := range s.conns.load() {
		reason := ""
		if d := s.opts.FrameTimeout; d > 0 {
			if since := c.act.partialSince.Load(); since != 0 && n-since > int64(d) {
				reason = "incomplete frame for longer than the frame timeout"
			}
		}
		if d := s.opts.IdleTimeout; reason == "" && d > 0 && n-c.act.lastFrame.Load() > int64(d) {
			reason = "no frame for longer than the idle timeout"
		}
		if reason == "" || !c.closeErr.CompareAndSwap(nil, &errTimedOut) {
			continue
		}
		s.ctr.timedOut.Add(1)
		s.timeoutLog.Info(s.log, "closing a connection", "peer", c.remote, "reason", reason,
			"idle_timeout", s.opts.IdleTimeout, "frame_timeout", s.opts.FrameTimeout)
		c.gc.Close()
	}
}
