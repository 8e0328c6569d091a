package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"time"
)

// Hiccups are the gaps a busy loop alone on a CPU sees in its own clock:
// time it did not run, taken by the hypervisor, interrupts or other
// processes. They bound from below what any program on the machine can
// achieve: a publisher that loses its CPU for 2 ms sends 2,000 sequences
// late at 1 M/s, whatever the middleware does. The harness measures them
// before and after its cases (--hiccups), so that a reader can tell the
// machine's tail from the flow's.
type hiccups struct {
	CPU     int
	Seconds float64
	Over    [3]int  // gaps of at least hiccupThresholds[i]
	Max     int64   // the longest gap, ns
	Lost    float64 // fraction of the time in gaps of 100 µs or more
	// Late1ms is the fraction of the time more than 1 ms into a gap: a
	// sender whose send falls there sends more than 1 ms late, so at any
	// rate this is the share of sends the harness's held rule (at most
	// 0.1 % more than 1 ms late) sees late from the machine alone.
	Late1ms float64
	// Late100us is the same for 100 µs: where it passes 1 % on either
	// end's CPU, no p99 below 100 µs is possible.
	Late100us float64
}

var hiccupThresholds = [3]time.Duration{100 * time.Microsecond, 500 * time.Microsecond, time.Millisecond}

// runHiccup is the hiccup child: a busy loop reading the clock for d on
// the CPU it was pinned to, then a "hiccups JSON" line.
func runHiccup(cpu int, d time.Duration) error {
	h := hiccups{CPU: cpu, Seconds: d.Seconds()}
	start := time.Now()
	last := time.Duration(0)
	var lost, late, late100 time.Duration
	for last < d {
		now := time.Since(start)
		gap := now - last
		last = now
		for i, t := range hiccupThresholds {
			if gap >= t {
				h.Over[i]++
			}
		}
		if gap >= hiccupThresholds[0] {
			lost += gap
		}
		late += max(0, gap-time.Millisecond)
		late100 += max(0, gap-100*time.Microsecond)
		h.Max = max(h.Max, int64(gap))
	}
	h.Lost = float64(lost) / float64(last)
	h.Late1ms = float64(late) / float64(last)
	h.Late100us = float64(late100) / float64(last)
	j, err := json.Marshal(h)
	if err != nil {
		return err
	}
	fmt.Println("hiccups", string(j))
	return nil
}

// measureHiccups runs a hiccup child on each CPU at once for d and
// prints one line with what they saw.
func measureHiccups(ctx context.Context, when string, d time.Duration) error {
	var cs []*child
	defer func() {
		for _, c := range cs {
			c.stop()
		}
	}()
	for cpu := range runtime.NumCPU() {
		c, err := startChildOn(ctx, cpu, "--role", "hiccup", "--for", d.String())
		if err != nil {
			return err
		}
		cs = append(cs, c)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# hiccups %s (a busy loop alone on each CPU for %v; a gap is time it did not run; late>X: share of the time more than X into a gap, so of sends, at any rate, at least X late from the gaps alone):", when, d)
	on100, on1ms := 1.0, 1.0 // the share of the time no CPU was that far into a gap
	for _, c := range cs {
		line, err := c.expect("hiccups", d+10*time.Second)
		if err != nil {
			return err
		}
		var h hiccups
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			return fmt.Errorf("hiccup child said %q: %w", line, err)
		}
		per := func(n int) string { return fmt.Sprintf("%.1f/s", float64(n)/h.Seconds) }
		fmt.Fprintf(&b, " cpu%d >=100us %s >=500us %s >=1ms %s max=%s lost=%.2f%% late>100us=%.2f%% late>1ms=%.3f%%;", h.CPU,
			per(h.Over[0]), per(h.Over[1]), per(h.Over[2]), fmtDur(h.Max), 100*h.Lost, 100*h.Late100us, 100*h.Late1ms)
		on100 *= 1 - h.Late100us
		on1ms *= 1 - h.Late1ms
	}
	fmt.Println(strings.TrimSuffix(b.String(), ";"))
	// A one-way sequence or a round trip crosses every CPU here: it is late
	// if any of them is far enough into a gap (taken as independent).
	fmt.Printf("# the gaps alone, any CPU: late>100us=%.2f%% (a p99 under 100 us needs under 1%%), late>1ms=%.3f%% (held needs at most 0.1%%)\n",
		100*(1-on100), 100*(1-on1ms))
	return nil
}
