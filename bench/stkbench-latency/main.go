// Command stkbench-latency measures the latency of STK flows over loopback:
//
//   - rtt: round trips of one sequence to a child process that echoes it,
//     one outstanding at a time, over a TCP flow (flow.DialTCP to a
//     flow.ListenTCP echoing with Peer.Send), over STK-UDP flows
//     (flow.NewUDP at both ends), and over a raw net.Conn ping-pong of the
//     same frame bytes (the floor: what Go and the kernel cost without the
//     flow), and a raw client against the TCP flow's echo (tcp-srv: the
//     server side's share), and the TCP flow with the next ping sent by
//     the Handler that got the reply (tcp-chained: the flow's cost without
//     the hand-off to a goroutine waiting for the reply, as the raw
//     ping-pong reads and writes in one goroutine), and NATS request/reply
//     (nats: a nats-server child on 127.0.0.1, an echo child replying to
//     each request, this process publishing with an inbox as reply
//     subject; a minimal client, nats.go, so the floor of what NATS costs,
//     through a broker where STK goes peer to peer); --runs runs of each,
//     interleaved, with the median of each figure as the case's line, and
//     each transport's median p50 and p99 against the raw floor's. nats
//     runs when asked (--rtt ...,nats) or with the default list if a
//     nats-server is on PATH or given by --nats-server; otherwise a note
//     says it was skipped (the harness downloads nothing; bench/latency.sh
//     --nats builds one);
//   - oneway: a publisher child sends at a fixed rate, each sequence at its
//     intended time start + i/rate (a sleep, then a wait that --pace
//     chooses: spin, gosched or yield; never bursts), carrying that time;
//     this process subscribes and records now - intended for each, so that
//     a publisher or a flow that falls behind shows as latency
//     (coordinated omission accounted for), and reports whether the rate
//     was held; --runs runs of each transport and pacing, interleaved,
//     medians as for rtt.
//
// Publisher, echo and subscriber are separate processes (this program
// re-executed with --role; nats-server too for nats), so the figures
// include real scheduling between processes. Each case prints one summary
// line, e.g.
//
//	rtt tcp 16B p50=31.2us p99=52.1us p999=120us max=2.1ms n=100000
//	oneway tcp 16B rate=100k held=yes p50=... n=500000 lost=0 ...
//
// then a log-scale text histogram; --svg writes the percentile curves.
// Before and after the cases, a busy loop alone on each CPU measures the
// machine's hiccups (hiccup.go), which no program on it can go below.
// Time is unix ns from one host's clock, read by both processes.
// Only 127.0.0.1 is used. bench/latency.sh builds and runs it.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

func main() {
	fs := pflag.NewFlagSet("stkbench-latency", pflag.ContinueOnError)
	cases := fs.String("cases", "rtt,oneway", "cases to run, comma-separated: rtt, oneway")
	rttTransports := fs.String("rtt", "tcp,tcp-chained,udp,raw,tcp-srv", "round-trip transports: tcp and udp flows, tcp-chained (the TCP flow, the next ping sent by the reply's Handler: no hand-off to a waiting goroutine), raw net.Conn TCP (the floor), tcp-srv (raw client, TCP flow echo: the server side's share), nats (request/reply through a nats-server child; added to the default list when a nats-server is found)")
	natsServer := fs.String("nats-server", "", "the nats-server binary for the rtt nats case (default: nats-server on PATH; bench/latency.sh --nats builds one)")
	owTransports := fs.String("oneway", "tcp,udp,raw", "one-way transports: tcp and udp flows, raw net.Conn TCP (the floor)")
	size := fs.Int("size", 16, "payload bytes per sequence (at least 16: the time and a counter)")
	count := fs.Int("count", 100_000, "measured round trips per rtt run")
	warmup := fs.Int("warmup", 5_000, "round trips before each rtt run, not measured")
	runs := fs.Int("runs", 3, "runs of each rtt case; the summary gives the median of each figure")
	rates := fs.String("rates", "10k,100k,1M", "one-way publishing rates, sequences per second (k and M suffixes)")
	owFor := fs.Duration("for", 5*time.Second, "measured duration of each one-way case (plus 0.5 s warm-up)")
	maxTime := fs.Duration("max-time", 2*time.Minute, "bound on each case; an rtt run stops there with fewer samples")
	udpTimeout := fs.Duration("udp-timeout", 200*time.Millisecond, "a UDP round trip without echo after this is counted lost")
	svg := fs.String("svg", "", "write the percentile curves of every case to this SVG file")
	hist := fs.Bool("hist", true, "print a text histogram under each case")
	hiccupFor := fs.Duration("hiccups", 3*time.Second, "before and after the cases, run a busy loop alone on each CPU this long and report the gaps in its clock (time the machine took away: hypervisor, interrupts, other processes), the floor under every tail; 0 skips it")
	pin := fs.Bool("pin", false, "run the children (publisher, echo) on CPU 0 and this process (subscriber, pinging client) on CPU 1, each with GOMAXPROCS 1, as latency benchmarks isolate cores; without it the scheduler places every thread of both on either core")
	cpu := fs.Int("cpu", -1, "internal: the CPU a child runs on")
	// Child roles (the program re-executes itself).
	role := fs.String("role", "", "internal: echo, pub or hiccup")
	transport := fs.String("transport", "", "internal: the child's transport")
	rate := fs.Float64("rate", 0, "internal: the publisher's rate")
	pubCount := fs.Int("count-pub", 0, "internal")
	pubWarm := fs.Int("warmup-count", 0, "internal: sequences the publisher sends before the measured ones")
	spin := fs.Duration("spin", 50*time.Microsecond, "the one-way publisher sleeps until this long before a send is due, then waits as --pace says")
	paceMode := fs.String("pace", paceYield, "how the one-way publisher waits the last --spin before a send: spin (a locked thread, never yields), gosched (runtime.Gosched: the flow's writer may run on its P), yield (gosched and sched_yield(2): other processes too); comma-separated: each case with each")
	giveUp := fs.Duration("give-up", 0, "internal: the publisher stops sending this long after it started")
	to := fs.String("to", "", "internal: the UDP publisher's destination, the NATS echo's server")
	for _, n := range []string{"role", "transport", "rate", "count-pub", "warmup-count", "give-up", "to", "cpu"} {
		fs.MarkHidden(n)
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "stkbench-latency:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(log)
	if *size < 16 {
		fmt.Fprintln(os.Stderr, "stkbench-latency: --size must be at least 16 (the payload holds a time and a counter)")
		os.Exit(2)
	}

	if *cpu >= 0 {
		exitOn(pinProcess(*cpu))
	}
	if *pin && *role == "" {
		childCPU = 0
		exitOn(pinProcess(1))
	}
	switch *role {
	case "":
	case "echo":
		exitOn(runEcho(*transport, *to, *size))
		return
	case "hiccup":
		exitOn(runHiccup(*cpu, *owFor))
		return
	case "pub":
		pace, err := parsePace(*paceMode, *spin)
		exitOn(err)
		exitOn(runPub(*transport, *to, *size, *rate, *pubWarm, *pubCount, *giveUp, pace))
		return
	default:
		exitOn(fmt.Errorf("unknown --role %q", *role))
	}

	// Whether rtt runs nats is settled before anything is measured, so that
	// a wrong --nats-server fails at once.
	rttList, natsPath, natsNote, err := natsPlan(split(*rttTransports), fs.Changed("rtt"), *natsServer)
	exitOn(err)
	ctx := context.Background()
	var all []curve
	failed := 0
	placed := "the scheduler places both processes"
	if *pin {
		placed = "children pinned to CPU 0, this process to CPU 1, GOMAXPROCS 1 each"
	}
	fmt.Printf("# stkbench-latency: %d CPUs, GOMAXPROCS %d, load average %s, %s; loopback only; times from Send to the receiving Handler\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), loadavg(), placed)
	hiccupsNow := func(when string) {
		if *hiccupFor > 0 {
			if err := measureHiccups(ctx, when, *hiccupFor); err != nil {
				fmt.Printf("# hiccups %s not measured: %v\n", when, err)
			}
		}
	}
	hiccupsNow("before")
	for _, c := range split(*cases) {
		switch c {
		case "rtt":
			cfg := rttConfig{size: *size, warmup: *warmup, count: *count, maxTime: *maxTime, udpTimeout: *udpTimeout,
				natsServer: natsPath}
			curves, err := rttCases(ctx, rttList, cfg, *runs, *hist)
			if err != nil {
				fmt.Printf("rtt failed: %v\n", err)
				failed++
			}
			all = append(all, curves...)
			if natsNote != "" {
				fmt.Println(natsNote)
			}
		case "oneway":
			rs, err := parseRates(*rates)
			exitOn(err)
			paces := split(*paceMode)
			for _, p := range paces {
				_, err := parsePace(p, *spin)
				exitOn(err)
			}
			for _, r := range rs {
				cfg := onewayConfig{size: *size, rate: r, dur: *owFor, warmup: 500 * time.Millisecond,
					maxTime: *maxTime, spin: *spin}
				curves, n := onewayCases(ctx, split(*owTransports), paces, cfg, *runs, *hist)
				failed += n
				all = append(all, curves...)
			}
		default:
			exitOn(fmt.Errorf("unknown case %q: rtt or oneway", c))
		}
	}
	hiccupsNow("after")
	if *svg != "" {
		exitOn(writeSVG(*svg, all))
		fmt.Println("# percentile curves written to", *svg)
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "stkbench-latency: %d case(s) failed, see above\n", failed)
		os.Exit(1)
	}
}

// medianOf is the median of f over rs (the upper one of an even count).
func medianOf(rs []result, f func(r result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// q is the p quantile of a result's histogram, for medianOf.
func q(p float64) func(r result) float64 {
	return func(r result) float64 { return float64(r.h.Quantile(p)) }
}

// rttCases runs every transport runs times, interleaved so that a slow
// moment of the machine does not fall on one transport only, and prints
// each run and the medians.
func rttCases(ctx context.Context, transports []string, cfg rttConfig, runs int, hist bool) ([]curve, error) {
	res := map[string][]result{}
	for run := 1; run <= runs; run++ {
		for _, t := range transports {
			r, err := runRTT(ctx, t, cfg, NewHist())
			if err != nil {
				return nil, fmt.Errorf("rtt %s run %d: %w", t, run, err)
			}
			fmt.Printf("#   run %d: %s\n", run, summary("rtt", t, cfg.size, r.note, []result{r}))
			res[t] = append(res[t], r)
		}
	}
	var curves []curve
	for _, t := range transports {
		rs := res[t]
		fmt.Println(summary("rtt", t, cfg.size, fmt.Sprintf("(median of %d runs)", len(rs)), rs))
		all := NewHist()
		for _, r := range rs {
			all.Merge(r.h)
		}
		if hist {
			fmt.Printf("    all %d runs, %d round trips:\n", len(rs), all.Count())
			all.WriteText(os.Stdout, "    ")
		}
		name := map[string]string{"raw": "raw net.Conn", "tcp-srv": "tcp-srv (raw cli, flow echo)",
			"tcp-chained": "tcp-chained (Handler sends)", "nats": "nats (request/reply, nats-server)"}[t]
		if name == "" {
			name = t
		}
		curves = append(curves, curve{label: "rtt " + name, panel: 0, h: all})
	}
	if floor := res["raw"]; len(floor) > 0 && len(res) > 1 {
		var b strings.Builder
		b.WriteString("# against the raw floor, medians:")
		for _, t := range transports {
			if t == "raw" {
				continue
			}
			fmt.Fprintf(&b, " %s p50 %.2fx p99 %.2fx;", t,
				medianOf(res[t], q(0.5))/medianOf(floor, q(0.5)), medianOf(res[t], q(0.99))/medianOf(floor, q(0.99)))
		}
		fmt.Println(strings.TrimSuffix(b.String(), ";"))
	}
	return curves, nil
}

// onewayCases runs every transport with every pacing mode runs times at
// one rate, interleaved, printing each run and then the medians; it returns
// the curves and how many runs failed.
func onewayCases(ctx context.Context, transports, paces []string, cfg onewayConfig, runs int, hist bool) ([]curve, int) {
	type key struct{ t, p string }
	res := map[key][]result{}
	failed := 0
	for run := 1; run <= runs; run++ {
		for _, t := range transports {
			for _, p := range paces {
				c := cfg
				c.pace = p
				r, err := runOneway(ctx, t, c, NewHist())
				if err != nil {
					fmt.Printf("oneway %s %dB rate=%s pace=%s run %d failed: %v\n", t, cfg.size, fmtRate(cfg.rate), p, run, err)
					failed++
					continue
				}
				fmt.Printf("#   run %d: %s\n", run, summary(r.kind, r.transport, r.size, r.note, []result{r}))
				res[key{t, p}] = append(res[key{t, p}], r)
			}
		}
	}
	var curves []curve
	for _, t := range transports {
		for _, p := range paces {
			rs := res[key{t, p}]
			if len(rs) == 0 {
				continue
			}
			held := 0
			for _, r := range rs {
				if r.held {
					held++
				}
			}
			m := rs[0]
			m.prefix = fmt.Sprintf("rate=%s pace=%s held=%d/%d", fmtRate(cfg.rate), p, held, len(rs))
			line := summary(m.kind, m.transport, m.size, fmt.Sprintf("(median of %d runs)", len(rs)), append([]result{m}, rs[1:]...))
			fmt.Println(line)
			all := NewHist()
			for _, r := range rs {
				all.Merge(r.h)
			}
			if hist {
				all.WriteText(os.Stdout, "    ")
			}
			curves = append(curves, curve{label: fmt.Sprintf("oneway %s %s/s %s", t, fmtRate(cfg.rate), p), panel: 1, h: all})
		}
	}
	return curves, failed
}

// summary formats a case's line; with several runs each figure is the
// median of the runs'.
func summary(kind, transport string, size int, note string, rs []result) string {
	med := func(f func(r result) float64) float64 { return medianOf(rs, f) }
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %dB ", kind, transport, size)
	if rs[0].prefix != "" {
		b.WriteString(rs[0].prefix + " ") // one-way: rate= and held= first
	}
	fmt.Fprintf(&b, "p50=%s p99=%s p999=%s max=%s n=%.0f", us(med(q(0.5))), us(med(q(0.99))), us(med(q(0.999))),
		us(med(func(r result) float64 { return float64(r.h.Max()) })),
		med(func(r result) float64 { return float64(r.h.Count()) }))
	fmt.Fprintf(&b, " lost=%.0f gc=%.0f", med(func(r result) float64 { return float64(r.lost) }),
		med(func(r result) float64 { return float64(r.gcs) }))
	if kind == "rtt" {
		fmt.Fprintf(&b, " mean=%s", us(med(func(r result) float64 { return r.h.Mean() })))
	}
	if note != "" {
		b.WriteString(" " + note)
	}
	if len(rs) == 1 && rs[0].load != "" {
		b.WriteString(" load=" + rs[0].load)
	}
	return b.String()
}

// us formats nanoseconds as microseconds, 3 significant digits and no
// exponent.
func us(ns float64) string {
	return strconv.FormatFloat(roundSig(ns/1e3), 'f', -1, 64) + "us"
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range split(s) {
		mult := 1.0
		switch {
		case strings.HasSuffix(f, "k"):
			mult, f = 1e3, strings.TrimSuffix(f, "k")
		case strings.HasSuffix(f, "M"):
			mult, f = 1e6, strings.TrimSuffix(f, "M")
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("--rates: %q is not a rate (like 10k, 100k, 1M)", f)
		}
		out = append(out, v*mult)
	}
	return out, nil
}

// natsPlan decides whether the rtt cases include nats: when asked
// (listed) or, with the default list (listGiven false), when a nats-server
// is found: serverFlag (--nats-server), else nats-server on PATH. It
// returns the transports to run, the server's path, and the note to print
// when nats is skipped for want of a server; this harness downloads
// nothing. A --nats-server that is not an executable is an error.
func natsPlan(transports []string, listGiven bool, serverFlag string) ([]string, string, string, error) {
	asked := slices.Contains(transports, "nats")
	if listGiven && !asked {
		return transports, "", "", nil
	}
	path := ""
	if serverFlag != "" {
		p, err := exec.LookPath(serverFlag)
		if err != nil {
			return nil, "", "", fmt.Errorf("--nats-server %s: %w", serverFlag, err)
		}
		path = p
	} else if p, err := exec.LookPath("nats-server"); err == nil {
		path = p
	}
	if path == "" {
		note := "# rtt nats skipped: no nats-server on PATH (the harness downloads nothing; bench/latency.sh --nats builds one, or give --nats-server PATH)"
		return slices.DeleteFunc(transports, func(t string) bool { return t == "nats" }), "", note, nil
	}
	if !asked {
		transports = append(transports, "nats")
	}
	return transports, path, "", nil
}

// loadavg returns the 1-minute load average, to show next to figures taken
// on a machine other work shares.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "stkbench-latency:", err)
		os.Exit(1)
	}
}
