package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/spf13/pflag"
)

// This file holds what the load, sigstop and scale modes share: stkd with
// services of the beaters mode reporting to it, and a watcher of its event
// stream.

// watcher follows the event stream: the intervals between the smartbeats
// of every record as the monitor received them, and the timeouts.
type watcher struct {
	mu         sync.Mutex
	last       map[uint64]time.Time
	gaps       []float64 // ms
	maxGap     float64
	maxGapName string
	timedOut   []event
}

func watch(evs <-chan event) *watcher {
	w := &watcher{last: map[uint64]time.Time{}}
	go func() {
		for ev := range evs {
			w.add(ev)
		}
	}()
	return w
}

func (w *watcher) add(ev event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch ev.Kind {
	case "beat":
		uid := ev.Service.UID
		if prev, ok := w.last[uid]; ok {
			g := msOf(ev.At.Sub(prev))
			w.gaps = append(w.gaps, g)
			if g > w.maxGap {
				w.maxGap, w.maxGapName = g, ev.Service.Name
			}
		}
		w.last[uid] = ev.At
	case "timed_out":
		w.timedOut = append(w.timedOut, ev)
	}
}

// reset forgets the intervals seen so far.
func (w *watcher) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gaps, w.maxGap, w.maxGapName = nil, 0, ""
}

// gapSummary formats the smartbeat intervals seen since the last reset.
func (w *watcher) gapSummary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := slices.Sorted(slices.Values(w.gaps))
	if len(s) == 0 {
		return "no intervals"
	}
	return fmt.Sprintf("p50 %.0f  p99 %.0f  p99.9 %.0f  max %.0f ms (%s; n=%d)",
		percentile(s, 50), percentile(s, 99), percentile(s, 99.9), s[len(s)-1], w.maxGapName, len(s))
}

func (w *watcher) timeouts() []event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.timedOut)
}

func printTimeouts(evs []event) {
	for _, ev := range evs {
		fmt.Printf("  timed out: %s at %s: %s\n", ev.Service.Name, ev.At.Format(time.TimeOnly+".000"), ev.reason())
	}
}

// serviceFlags are the flags of the modes that run beaters.
type serviceFlags struct {
	bin                        *string
	services, procs, perSender *int
	beat, activity, sendWait   *time.Duration
}

func addServiceFlags(fs *pflag.FlagSet, services, procs int, sendWait time.Duration) serviceFlags {
	return serviceFlags{
		bin:       binFlag(fs),
		services:  fs.Int("services", services, "number of services"),
		procs:     fs.Int("procs", procs, "processes the services are spread over"),
		perSender: fs.Int("per-sender", 0, "services per smartbeat.Sender, each with its own connection (0: one Sender per process)"),
		beat:      fs.Duration("beat", 500*time.Millisecond, "smartbeat period"),
		activity:  fs.Duration("activity-timeout", 1200*time.Millisecond, "activity timeout of the services"),
		sendWait: fs.Duration("send-wait", sendWait, "how long the services' sends wait for room in a full queue (4 MiB per connection) before\n"+
			"dropping; 0 is smartbeat's default, drop at once"),
	}
}

func (f serviceFlags) spec(prefix string) (beaterSpec, error) {
	if *f.services <= 0 || *f.procs <= 0 || *f.procs > *f.services || *f.perSender < 0 {
		return beaterSpec{}, fmt.Errorf("want --services > 0, 0 < --procs <= --services, --per-sender >= 0")
	}
	if *f.beat <= 0 || *f.activity < *f.beat {
		return beaterSpec{}, fmt.Errorf("want --beat > 0 and --activity-timeout >= --beat")
	}
	return beaterSpec{services: *f.services, procs: *f.procs, perSender: *f.perSender, beat: *f.beat, activity: *f.activity, sendWait: *f.sendWait, prefix: prefix}, nil
}

// bench is what every mode but detect runs: stkd, its event stream, the
// beaters.
type bench struct {
	d       *daemon
	w       *watcher
	beaters []*child
	cleanup []func()
}

func (b *bench) close() {
	for _, f := range slices.Backward(b.cleanup) {
		f()
	}
}

// startBench starts stkd and the services of spec, and waits until the
// monitor has them all (running, when checkRunning).
func startBench(bin string, spec beaterSpec, noHTTP, events, checkRunning bool) (_ *bench, err error) {
	b := &bench{}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	dir, cleanup, err := programs(bin)
	if err != nil {
		return nil, err
	}
	b.cleanup = append(b.cleanup, cleanup)
	logDir, err := os.MkdirTemp("", "stk-bench-monitor-logs-")
	if err != nil {
		return nil, err
	}
	b.cleanup = append(b.cleanup, func() { os.RemoveAll(logDir) })
	if b.d, err = startDaemon(dir, logDir, noHTTP); err != nil {
		return nil, err
	}
	b.cleanup = append(b.cleanup, b.d.stop)
	if events {
		ctx, cancel := context.WithCancel(context.Background())
		b.cleanup = append(b.cleanup, cancel)
		evs, err := b.d.events(ctx)
		if err != nil {
			return nil, err
		}
		b.w = watch(evs)
	}
	start := time.Now()
	if b.beaters, _, err = startBeaters(b.d.Monitor, spec, 10*time.Minute); err != nil {
		return nil, err
	}
	b.cleanup = append(b.cleanup, func() { killAll(b.beaters) })
	if !noHTTP {
		if err := b.d.waitCurrent(spec.services, checkRunning, 10*time.Minute, 30*time.Second); err != nil {
			return nil, err
		}
	}
	fmt.Printf("%d services over %d processes (%s) reporting to stkd (pid %d) after %.2f s\n",
		spec.services, spec.procs, senders(spec), b.d.pid(), time.Since(start).Seconds())
	// Every service added sends a smartbeat for all the services of its
	// Sender: let that burst reach the event stream before measuring.
	time.Sleep(time.Second)
	return b, nil
}

func senders(spec beaterSpec) string {
	if spec.perSender == 0 {
		return "one smartbeat.Sender per process"
	}
	return fmt.Sprintf("%d services per smartbeat.Sender", spec.perSender)
}
