package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The buckets tile the value range: every value falls in the bucket whose
// range holds it, and the widths stay within the stated precision.
func TestBucketsTile(t *testing.T) {
	var next int64
	for i := 0; i < nBuckets; i++ {
		low, w := bucketRange(i)
		if low != next {
			t.Fatalf("bucket %d starts at %d, want %d (gap or overlap)", i, low, next)
		}
		if low >= 2*subCount && float64(w) > float64(low)/subCount {
			t.Fatalf("bucket %d [%d,+%d) wider than 1/%d of its values", i, low, w, subCount)
		}
		for _, v := range []int64{low, low + w - 1} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		next = low + w
	}
	if next != 1<<maxLen {
		t.Fatalf("buckets end at %d, want 2^%d", next, maxLen)
	}
}

// Quantiles of known distributions are within one bucket (1/128) above the
// exact order statistic and never below it.
func TestQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() int64{
		"uniform 0..10ms": func() int64 { return rng.Int64N(10_000_000) },
		// Latency-like: a 20 µs body with an exponential tail of mean 200 µs.
		"exp tail":   func() int64 { return 20_000 + int64(rng.ExpFloat64()*200_000) },
		"small ints": func() int64 { return rng.Int64N(300) },
	}
	for name, draw := range dists {
		h := NewHist()
		vals := make([]int64, 200_000)
		for i := range vals {
			vals[i] = draw()
			h.Record(vals[i])
		}
		slices.Sort(vals)
		for _, q := range []float64{0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
			rank := int(math.Ceil(q * float64(len(vals))))
			rank = max(rank, 1)
			exact := vals[rank-1]
			got := h.Quantile(q)
			if got < exact || float64(got-exact) > float64(exact)/subCount+1 {
				t.Errorf("%s: q=%g: got %d, exact %d (allowed %d..%d)", name, q, got, exact,
					exact, exact+int64(float64(exact)/subCount)+1)
			}
		}
		if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] || h.Count() != uint64(len(vals)) {
			t.Errorf("%s: min/max/count %d/%d/%d, want %d/%d/%d", name, h.Min(), h.Max(), h.Count(),
				vals[0], vals[len(vals)-1], len(vals))
		}
	}
}

func TestMergeAndReset(t *testing.T) {
	a, b := NewHist(), NewHist()
	for v := int64(1); v <= 1000; v++ {
		a.Record(v * 1000)
		b.Record(v*1000 + 1_000_000)
	}
	a.Merge(b)
	if a.Count() != 2000 || a.Min() != 1000 || a.Max() != 2_000_000 {
		t.Fatalf("merged: count %d min %d max %d", a.Count(), a.Min(), a.Max())
	}
	if q := a.Quantile(0.5); q < 1_000_000 || q > 1_000_000+1_000_000/subCount {
		t.Fatalf("merged median %d, want ~1000000", q)
	}
	a.Reset()
	if a.Count() != 0 || a.Quantile(0.5) != 0 || a.Max() != 0 {
		t.Fatalf("reset histogram not empty: count %d", a.Count())
	}
	a.Record(-5) // clock step backwards: counted as 0, not a panic
	a.Record(1 << 50)
	if a.Count() != 2 || a.over != 1 || a.Quantile(1) != 1<<50 {
		t.Fatalf("out of range values: count %d over %d max %d", a.Count(), a.over, a.Quantile(1))
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	h := NewHist()
	v := int64(0)
	if n := testing.AllocsPerRun(1000, func() { v += 7919; h.Record(v) }); n != 0 {
		t.Fatalf("Record allocates %v times per call", n)
	}
}

func TestWriteText(t *testing.T) {
	h := NewHist()
	for i := 0; i < 1000; i++ {
		h.Record(30_000)
	}
	h.Record(5_000_000)
	var sb strings.Builder
	h.WriteText(&sb, "")
	out := sb.String()
	// 30 µs row, empty rows for the gap, and the 5 ms row at 100 %.
	if !strings.Contains(out, "[   16.4us,    32.8us)       1000") || !strings.Contains(out, "100.0000%") ||
		strings.Count(out, "\n") < 5 {
		t.Fatalf("unexpected text histogram:\n%s", out)
	}
}

func BenchmarkRecord(b *testing.B) {
	h := NewHist()
	for i := 0; b.Loop(); i++ {
		h.Record(int64(i) * 997)
	}
}
