package flow

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// UDPPacing spreads the datagrams of a large STK-UDP sequence over time, so
// that a receiver whose socket has the system's default receive buffer
// (net.core.rmem_default, 208 KiB on most Linux systems) is not overrun by
// one sequence's fragments arriving in a single burst. The C library sends
// one fragment per sendto call with a 64 KiB copy in between, which gives a
// receiver on another core time to read; a batch of fragments in one
// sendmmsg call does not, and a C subscriber with the default buffer lost
// the third and fourth fragments of 200,000-byte sequences.
//
// Pacing is a token bucket over the payload bytes of datagrams that belong
// to sequences of more than one datagram: up to Burst bytes leave back to
// back, the rest at Rate bytes per second. Sequences that fit in one
// datagram (every sequence of up to about 64 KiB) are never held back and
// do not draw from the bucket, so small-sequence throughput is unchanged.
// Raw UDP datagrams are always single.
//
// The zero value is the default, sized for a receiver with
// net.core.rmem_default bytes of buffer (208 KiB on most Linux systems; 208
// KiB where it cannot be read) that reads at least once a millisecond:
// Burst a third of that buffer (at least one full datagram leaves at once),
// Rate half of it each millisecond (104 MB/s with 208 KiB). Such a receiver
// never has more than Burst + Rate × 1 ms = 5/6 of its buffer waiting,
// which leaves room for the kernel's charge per datagram beyond its payload
// (about 8 % for 64 KiB datagrams on loopback: three fit in 208 KiB, the
// fourth of a 200,000-byte sequence did not). A receiver with a larger
// buffer (stk's subscribers set 4 MiB) takes more; raise Burst and Rate for
// it, or set Off.
type UDPPacing struct {
	// Off sends every datagram as soon as the socket takes it.
	Off bool
	// Burst is how many payload bytes of large sequences may leave back to
	// back; at least one full datagram (seq.MRU) is always allowed. 0: the
	// default above.
	Burst int
	// Rate is the payload bytes per second of large sequences once a burst
	// is spent. 0: the default above.
	Rate int64
}

// defaultUDPReceiveBuffer is net.core.rmem_default where it cannot be read:
// Linux's usual value.
const defaultUDPReceiveBuffer = 212992

// systemUDPReceiveBuffer is the system's default socket receive buffer,
// read once.
var systemUDPReceiveBuffer = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_default")
	if err != nil {
		return defaultUDPReceiveBuffer
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return defaultUDPReceiveBuffer
	}
	return n
})

// withDefaults fills in the zero fields.
func (p UDPPacing) withDefaults() UDPPacing {
	rmem := systemUDPReceiveBuffer()
	if p.Burst <= 0 {
		p.Burst = rmem / 3
	}
	if p.Rate <= 0 {
		p.Rate = int64(rmem) / 2 * 1000
	}
	return p
}

// udpPacer is the token bucket of UDPPacing; it belongs to the writer
// goroutine.
type udpPacer struct {
	off    bool
	burst  float64 // bucket size in bytes
	rate   float64 // bytes per nanosecond
	tokens float64
	last   time.Time // when tokens was last brought up to date
	timer  *time.Timer
	waits  uint64 // pauses made (tests)
}

func newUDPPacer(p UDPPacing) *udpPacer {
	p = p.withDefaults()
	return &udpPacer{
		off:    p.Off,
		burst:  float64(p.Burst),
		rate:   float64(p.Rate) / 1e9,
		tokens: float64(p.Burst),
	}
}

// take reports whether a datagram of n payload bytes may leave now, and if
// so takes its tokens. A datagram larger than the bucket may leave when
// the bucket is full (tokens go negative), so any size gets through.
func (p *udpPacer) take(n int, now time.Time) bool {
	if p.off {
		return true
	}
	p.refill(now)
	need := min(float64(n), p.burst)
	if p.tokens < need {
		return false
	}
	p.tokens -= float64(n)
	return true
}

func (p *udpPacer) refill(now time.Time) {
	if !p.last.IsZero() {
		p.tokens = min(p.burst, p.tokens+float64(now.Sub(p.last))*p.rate)
	}
	p.last = now
}

// wait sleeps until a datagram of n bytes may leave, or stop is closed,
// and reports whether it slept.
func (p *udpPacer) wait(n int, stop <-chan struct{}) bool {
	p.refill(time.Now())
	need := min(float64(n), p.burst) - p.tokens
	if need <= 0 {
		return false
	}
	d := time.Duration(need/p.rate) + 1
	p.waits++
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-p.timer.C:
	case <-stop:
		p.timer.Stop()
		p.off = true // Close gave up: send what is left at once
	}
	return true
}
