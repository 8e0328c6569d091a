package smartbeat

import (
	"math"
	"time"
)

// Defaults of PhiConfig.
const (
	DefaultPhiThreshold       = 8.0
	DefaultPhiMinStdDev       = 100 * time.Millisecond
	DefaultPhiAcceptablePause = time.Second
	DefaultPhiWindowSize      = 100
	DefaultPhiMinSamples      = 3
)

func (c PhiConfig) withDefaults() PhiConfig {
	if c.Threshold == 0 {
		c.Threshold = DefaultPhiThreshold
	}
	if c.MinStdDev <= 0 {
		c.MinStdDev = DefaultPhiMinStdDev
	}
	if c.AcceptablePause == 0 {
		c.AcceptablePause = DefaultPhiAcceptablePause
	}
	if c.AcceptablePause < 0 {
		c.AcceptablePause = 0
	}
	if c.WindowSize <= 0 {
		c.WindowSize = DefaultPhiWindowSize
	}
	if c.MinSamples <= 0 {
		c.MinSamples = DefaultPhiMinSamples
	}
	return c
}

// PhiDetector is a φ-accrual failure detector for one heartbeat source
// (see PhiConfig). It is not safe for concurrent use; the Monitor keeps
// one per record under its lock.
type PhiDetector struct {
	cfg       PhiConfig
	intervals []float64 // ms, a ring of at most cfg.WindowSize
	next      int       // ring position of the next sample once full
	sum, sq   float64   // running sums of intervals and their squares
	last      time.Time // latest heartbeat, moved forward by Extend
}

// NewPhiDetector returns a detector with no heartbeat yet; zero fields of
// cfg take their defaults.
func NewPhiDetector(cfg PhiConfig) *PhiDetector {
	cfg = cfg.withDefaults()
	return &PhiDetector{cfg: cfg, intervals: make([]float64, 0, min(cfg.WindowSize, 16))}
}

// Heartbeat records a heartbeat that arrived at at. The interval since
// the previous one joins the window; an arrival that is not later than
// the previous one (a clock step, a burst after a stall) adds no interval.
func (d *PhiDetector) Heartbeat(at time.Time) {
	if d.last.IsZero() || !at.After(d.last) {
		if d.last.IsZero() || at.After(d.last) {
			d.last = at
		}
		return
	}
	ms := float64(at.Sub(d.last)) / float64(time.Millisecond)
	d.last = at
	if len(d.intervals) < d.cfg.WindowSize {
		d.intervals = append(d.intervals, ms)
	} else {
		old := d.intervals[d.next]
		d.sum -= old
		d.sq -= old * old
		d.intervals[d.next] = ms
		d.next = (d.next + 1) % d.cfg.WindowSize
	}
	d.sum += ms
	d.sq += ms * ms
}

// Extend moves the latest heartbeat forward by stall: time during which
// the observer itself was stalled does not count as silence, and the
// interval that spans it is shortened by it.
func (d *PhiDetector) Extend(stall time.Duration) {
	if !d.last.IsZero() && stall > 0 {
		d.last = d.last.Add(stall)
	}
}

// Samples returns the number of intervals in the window.
func (d *PhiDetector) Samples() int { return len(d.intervals) }

// Last returns the time of the latest heartbeat (after Extend).
func (d *PhiDetector) Last() time.Time { return d.last }

// Mean returns the mean interval (0 without samples).
func (d *PhiDetector) Mean() time.Duration {
	if len(d.intervals) == 0 {
		return 0
	}
	return time.Duration(d.sum / float64(len(d.intervals)) * float64(time.Millisecond))
}

// StdDev returns the standard deviation of the intervals, before the
// MinStdDev floor (0 with fewer than two samples).
func (d *PhiDetector) StdDev() time.Duration {
	n := float64(len(d.intervals))
	if n < 2 {
		return 0
	}
	mean := d.sum / n
	v := d.sq/n - mean*mean
	if v <= 0 {
		return 0
	}
	return time.Duration(math.Sqrt(v) * float64(time.Millisecond))
}

// Phi returns φ at now: -log10 of the probability that a heartbeat comes
// later than now, given the window's intervals shifted by the acceptable
// pause. It uses the logistic approximation of the normal distribution's
// tail of Akka's detector, accurate to about 1e-4 and monotonic. It is 0
// before the first interval.
func (d *PhiDetector) Phi(now time.Time) float64 {
	if len(d.intervals) == 0 || d.last.IsZero() {
		return 0
	}
	elapsed := float64(now.Sub(d.last)) / float64(time.Millisecond)
	mean := d.sum/float64(len(d.intervals)) + float64(d.cfg.AcceptablePause)/float64(time.Millisecond)
	sd := max(float64(d.StdDev()), float64(d.cfg.MinStdDev)) / float64(time.Millisecond)
	return phi(elapsed, mean, sd)
}

func phi(elapsed, mean, sd float64) float64 {
	y := (elapsed - mean) / sd
	e := math.Exp(-y * (1.5976 + 0.070566*y*y))
	var p float64
	if elapsed > mean {
		p = -math.Log10(e / (1 + e))
	} else {
		p = -math.Log10(1 - 1/(1+e))
	}
	if math.IsInf(p, 1) || math.IsNaN(p) {
		return math.MaxFloat64
	}
	return max(p, 0)
}

// Suspect reports whether the detector declares the source failed at now:
// enough samples, a non-negative threshold, and φ above it.
func (d *PhiDetector) Suspect(now time.Time) (bool, float64) {
	p := d.Phi(now)
	return d.cfg.Threshold >= 0 && len(d.intervals) >= d.cfg.MinSamples && p > d.cfg.Threshold, p
}
