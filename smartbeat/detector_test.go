package smartbeat

import (
	"math"
	"testing"
	"time"
)

func beatEvery(d *PhiDetector, start time.Time, n int, every time.Duration) time.Time {
	t := start
	for range n {
		d.Heartbeat(t)
		t = t.Add(every)
	}
	return t.Add(-every)
}

func TestPhiGrowsWithSilence(t *testing.T) {
	d := NewPhiDetector(PhiConfig{AcceptablePause: -1}) // no pause: the bare distribution
	last := beatEvery(d, time.Unix(1000, 0), 20, 500*time.Millisecond)
	if d.Samples() != 19 || d.Mean() != 500*time.Millisecond || d.StdDev() != 0 {
		t.Fatalf("samples %d mean %v sd %v", d.Samples(), d.Mean(), d.StdDev())
	}
	prev := -1.0
	for ms := 0; ms <= 2000; ms += 50 {
		p := d.Phi(last.Add(time.Duration(ms) * time.Millisecond))
		if p < prev {
			t.Fatalf("φ fell from %v to %v at %d ms", prev, p, ms)
		}
		prev = p
	}
	// At the mean, half the beats are later: φ = -log10(0.5).
	if p := d.Phi(last.Add(500 * time.Millisecond)); math.Abs(p-math.Log10(2)) > 0.01 {
		t.Errorf("φ at the mean = %v, want %v", p, math.Log10(2))
	}
	// MinStdDev 100 ms: one sd late is P ≈ 0.16, φ ≈ 0.8; 5 sd late φ > 6.
	if p := d.Phi(last.Add(600 * time.Millisecond)); p < 0.7 || p > 0.9 {
		t.Errorf("φ one sd late = %v", p)
	}
	if p := d.Phi(last.Add(1000 * time.Millisecond)); p < 6 {
		t.Errorf("φ five sd late = %v", p)
	}
}

func TestPhiSuspectThresholdAndMinSamples(t *testing.T) {
	start := time.Unix(1000, 0)
	d := NewPhiDetector(PhiConfig{}) // defaults: threshold 8, pause 1 s, min sd 100 ms, 3 samples
	d.Heartbeat(start)
	d.Heartbeat(start.Add(500 * time.Millisecond))
	d.Heartbeat(start.Add(time.Second))
	if s, _ := d.Suspect(start.Add(time.Hour)); s {
		t.Fatal("suspected with 2 samples")
	}
	last := start.Add(1500 * time.Millisecond)
	d.Heartbeat(last)
	for _, c := range []struct {
		after   time.Duration
		suspect bool
	}{{time.Second, false}, {1800 * time.Millisecond, false}, {2200 * time.Millisecond, true}, {time.Minute, true}} {
		if s, p := d.Suspect(last.Add(c.after)); s != c.suspect {
			t.Errorf("after %v: suspect %v (φ %.2f), want %v", c.after, s, p, c.suspect)
		}
	}
	off := NewPhiDetector(PhiConfig{Threshold: -1})
	beatEvery(off, start, 10, time.Second)
	if s, p := off.Suspect(start.Add(time.Hour)); s || p <= 0 {
		t.Errorf("disabled detector: suspect %v φ %v", s, p)
	}
}

// TestPhiAdapts: an irregular sender is given more slack than a regular
// one with the same mean.
func TestPhiAdapts(t *testing.T) {
	start := time.Unix(1000, 0)
	regular, irregular := NewPhiDetector(PhiConfig{}), NewPhiDetector(PhiConfig{})
	tr, ti := start, start
	for i := range 50 {
		regular.Heartbeat(tr)
		irregular.Heartbeat(ti)
		tr = tr.Add(time.Second)
		ti = ti.Add(time.Duration(200+1600*(i%2)) * time.Millisecond) // 0.2 s, 1.8 s, ...
	}
	lr, li := regular.Last(), irregular.Last()
	silence := 3 * time.Second
	pr, pi := regular.Phi(lr.Add(silence)), irregular.Phi(li.Add(silence))
	if !(pr > pi) || irregular.StdDev() < 700*time.Millisecond {
		t.Fatalf("regular φ %.2f, irregular φ %.2f (sd %v): the irregular sender should be suspected less", pr, pi, irregular.StdDev())
	}
}

func TestPhiWindowAndExtend(t *testing.T) {
	start := time.Unix(1000, 0)
	d := NewPhiDetector(PhiConfig{WindowSize: 4})
	last := beatEvery(d, start, 10, 2*time.Second)
	last = beatEvery(d, last.Add(100*time.Millisecond), 5, 100*time.Millisecond)
	if d.Samples() != 4 || d.Mean() != 100*time.Millisecond {
		t.Fatalf("window kept %d samples, mean %v", d.Samples(), d.Mean())
	}
	p := d.Phi(last.Add(3 * time.Second))
	d.Extend(3 * time.Second)
	if d.Last() != last.Add(3*time.Second) || d.Phi(last.Add(3*time.Second)) >= p {
		t.Fatal("Extend did not move the last heartbeat")
	}
	// A beat that is not later than the last adds no interval.
	d.Heartbeat(last)
	if d.Samples() != 4 {
		t.Fatal("a beat from the past added an interval")
	}
}
