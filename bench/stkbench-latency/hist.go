package main

import (
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Hist is an HDR-style latency histogram of non-negative int64 values
// (nanoseconds here): values below 2^(subBits+1) have their own bucket, and
// every power of two above is split into 2^subBits linear sub-buckets, so a
// bucket is at most 1/2^subBits (0.8 %) of its values wide. Memory is fixed
// at construction and Record does not allocate, so recording on the hot
// path adds no garbage and no GC to what is measured.
type Hist struct {
	counts   []uint64
	n        uint64
	min, max int64
	sum      float64
	over     uint64 // values above the top bucket, counted in it
}

const (
	subBits  = 7
	subCount = 1 << subBits
	// maxLen is the bit length of the largest value with its own bucket:
	// 2^40 ns is 18 minutes, beyond anything a bounded run measures.
	maxLen   = 40
	maxShift = maxLen - (subBits + 1)
	nBuckets = (maxShift+1)*subCount + subCount
)

// NewHist returns an empty histogram.
func NewHist() *Hist {
	h := &Hist{counts: make([]uint64, nBuckets)}
	h.Reset()
	return h
}

// Reset empties h, keeping its memory.
func (h *Hist) Reset() {
	clear(h.counts)
	h.n, h.sum, h.over = 0, 0, 0
	h.min, h.max = math.MaxInt64, 0
}

// bucketOf returns the index of v's bucket: v itself below 2*subCount,
// else shift*subCount + v>>shift where shift keeps subBits+1 significant
// bits.
func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	shift := bits.Len64(uint64(v)) - (subBits + 1)
	if shift <= 0 {
		return int(v)
	}
	if shift > maxShift {
		return nBuckets - 1
	}
	return shift*subCount + int(v>>shift)
}

// bucketRange returns the lowest value of bucket i and its width.
func bucketRange(i int) (low, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	shift := i>>subBits - 1
	m := int64(i - shift*subCount)
	return m << shift, 1 << shift
}

// Record adds one value; negative values count as 0.
func (h *Hist) Record(v int64) {
	if v < 0 {
		v = 0
	}
	i := bucketOf(v)
	if bits.Len64(uint64(v)) > maxLen {
		h.over++
	}
	h.counts[i]++
	h.n++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// Merge adds o's values to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.over += o.over
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count returns the number of values recorded.
func (h *Hist) Count() uint64 { return h.n }

// Max returns the largest value recorded (exact), 0 when empty.
func (h *Hist) Max() int64 { return h.max }

// Min returns the smallest value recorded (exact), 0 when empty.
func (h *Hist) Min() int64 {
	if h.n == 0 {
		return 0
	}
	return h.min
}

// Mean returns the mean of the values recorded.
func (h *Hist) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the value at quantile q (0..1): the highest value of the
// bucket holding the ceil(q*n)-th smallest value, clamped to the exact
// minimum and maximum, as HdrHistogram reports it. It is never below the
// true quantile and above it by at most one bucket width (1/128 of it).
func (h *Hist) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	if rank >= h.n {
		return h.max
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			low, w := bucketRange(i)
			v := low + w - 1
			return max(min(v, h.max), h.min)
		}
	}
	return h.max
}

// WriteText prints h as a text histogram with one row per power of two (in
// microseconds), from the lowest to the highest bucket used, with the count,
// the cumulative percentage and a bar scaled to the fullest row.
func (h *Hist) WriteText(w io.Writer, indent string) {
	if h.n == 0 {
		fmt.Fprintf(w, "%s(no samples)\n", indent)
		return
	}
	// Rows [2^k, 2^(k+1)) ns; 2^k ns below 1 µs are merged into one row.
	type row struct {
		lo, hi int64
		n      uint64
	}
	var rows []row
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		low, _ := bucketRange(i)
		k := bits.Len64(uint64(low))
		lo, hi := int64(0), int64(1024)
		if k > 10 {
			lo, hi = int64(1)<<(k-1), int64(1)<<k
		}
		if len(rows) > 0 && rows[len(rows)-1].lo == lo {
			rows[len(rows)-1].n += c
			continue
		}
		// Empty rows between used ones show the gaps in the tail.
		for len(rows) > 0 && rows[len(rows)-1].hi < lo {
			p := rows[len(rows)-1].hi
			rows = append(rows, row{lo: p, hi: 2 * p})
		}
		rows = append(rows, row{lo: lo, hi: hi, n: c})
	}
	var most uint64
	for _, r := range rows {
		most = max(most, r.n)
	}
	var cum uint64
	for _, r := range rows {
		cum += r.n
		bar := int(math.Ceil(40 * float64(r.n) / float64(most)))
		fmt.Fprintf(w, "%s[%9s, %9s) %10d %8.4f%% %s\n", indent, fmtDur(r.lo), fmtDur(r.hi), r.n,
			100*float64(cum)/float64(h.n), strings.Repeat("#", bar))
	}
}

// fmtDur formats nanoseconds in µs or ms, short.
func fmtDur(ns int64) string {
	switch {
	case ns < 1000:
		return fmt.Sprintf("%dns", ns)
	case ns < 1_000_000:
		return fmt.Sprintf("%gus", roundSig(float64(ns)/1e3))
	case ns < 1_000_000_000:
		return fmt.Sprintf("%gms", roundSig(float64(ns)/1e6))
	default:
		return fmt.Sprintf("%gs", roundSig(float64(ns)/1e9))
	}
}

// roundSig rounds to 3 significant digits (through the decimal text, so
// that no binary residue like 13199999.999999998 is printed).
func roundSig(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 3, 64), 64)
	return v
}
