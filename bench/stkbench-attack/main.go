// Command stkbench-attack replays hostile and heavy loads against a real stkd on
// loopback and measures what they cost it and every other client: stkd's
// RSS (from /proc/PID/status), other clients' lookup latency (p50/p99/max,
// and lookups that failed or found nothing) and the name server's refusal
// counters (/metrics).
//
// Usage:
//
//	stkbench-attack --stkd PATH [--cases a,b] [flags]
//
// Each case starts its own stkd (names on a free loopback TCP port, the
// HTTP UI on another, UDP off), a probe client that registers one name and
// looks it up every --probe-every, then the attack; it prints one table row
// per case. Cases are bounded in time (--timeout) and count (their flags),
// and only ever talk to 127.0.0.0/8.
//
// The cases live in files by family, each registering its own with
// addCase (names.go: the name service; conns.go: connections). Run it against an old and a new
// stkd to compare (bench/attack.sh before/after does both).
package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
)

// attackCase is one scenario.
type attackCase struct {
	name string
	help string
	// run attacks d; env has the flags and the probe. It returns the
	// figures to print (name → value), in order.
	run func(ctx context.Context, env *env) ([]figure, error)
	// nofile, when set, is stkd's open-file limit for this case.
	nofile int
}

// figure is one measured value of a case.
type figure struct{ k, v string }

var cases []attackCase

// addCase registers a case; call it from an init function.
func addCase(c attackCase) { cases = append(cases, c) }

// env is what a case gets.
type env struct {
	d     *daemon
	probe *probe
	fs    *pflag.FlagSet
}

func main() {
	fs := pflag.NewFlagSet("stkbench-attack", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: attack --stkd PATH [flags]\n\nCases:\n")
		for _, c := range cases {
			fmt.Fprintf(os.Stderr, "  %-16s %s\n", c.name, c.help)
		}
		fmt.Fprintf(os.Stderr, "\nFlags:\n%s", fs.FlagUsages())
	}
	bin := fs.String("stkd", "", "the stkd binary to attack (required)")
	label := fs.String("label", "", "a label for this run's rows (e.g. before, after)")
	only := fs.StringSlice("cases", nil, "cases to run (default: all)")
	timeout := fs.Duration("timeout", 90*time.Second, "bound on each case")
	probeEvery := fs.Duration("probe-every", 5*time.Millisecond, "how often the probe client looks its name up")
	for _, reg := range flagRegistrars {
		reg(fs)
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			return
		}
		os.Exit(2)
	}
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "stkbench-attack: --stkd is required: the stkd binary to attack (go build -o /tmp/stkd ./stkd)")
		os.Exit(2)
	}
	var run []attackCase
	for _, c := range cases {
		if len(*only) == 0 || slices.Contains(*only, c.name) {
			run = append(run, c)
		}
	}
	if len(run) == 0 {
		fmt.Fprintf(os.Stderr, "stkbench-attack: no case matches %v\n", *only)
		os.Exit(2)
	}
	failed := false
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	for _, c := range run {
		figs, err := runCase(c, *bin, *timeout, *probeEvery, fs)
		row := []string{*label, c.name}
		if err != nil {
			failed = true
			row = append(row, "ERROR: "+err.Error())
		}
		for _, f := range figs {
			row = append(row, f.k+"="+f.v)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
		tw.Flush()
	}
	if failed {
		os.Exit(1)
	}
}

func runCase(c attackCase, bin string, timeout, probeEvery time.Duration, fs *pflag.FlagSet) ([]figure, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d, err := startDaemon(bin, c.nofile)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	rss := d.watchRSS(100 * time.Millisecond)
	p, err := startProbe(ctx, d.names, probeEvery)
	if err != nil {
		return nil, err
	}
	p.reset() // measure during the attack only
	start := time.Now()
	figs, err := c.run(ctx, &env{d: d, probe: p, fs: fs})
	el := time.Since(start)
	p.stop()
	peak, last := rss.stop()
	out := []figure{{"time", el.Round(10 * time.Millisecond).String()}, {"rss_peak", mb(peak)}, {"rss_end", mb(last)}}
	out = append(out, figs...)
	out = append(out, p.figures()...)
	out = append(out, d.refusals()...)
	return out, err
}

func mb(b int64) string { return fmt.Sprintf("%.0fMB", float64(b)/(1<<20)) }
