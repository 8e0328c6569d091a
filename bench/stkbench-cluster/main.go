// Command stkbench-cluster measures the clustered name service (package
// cluster) on one machine: three name-server nodes A, B and C in this
// process, on loopback sockets, each with its cluster node, against a
// 3-member etcd of child processes (Debian's etcd), plus stkd processes
// (the binary given by --stkd) where a separate process is what is
// measured (killed, or weighed). It reports, medians of --runs runs:
//
//   - propagation: a client at A registers names at a fixed rate, each
//     at its intended time; a client at C subscribed to each name beforehand
//     records when C pushes it; delay = push at C - Register call at A
//     (p50, p99), at 1,000 and 10,000 registrations/s;
//   - throughput: clients at A, B and C register N names at once, as fast
//     as the servers confirm them; rate = N / the time until every node
//     holds every other node's names;
//   - lookup: LookupAll round trips of one client, at a clustered node
//     (a name registered at another node) and at a name server without
//     clustering (a name registered there), interleaved;
//   - forget: an stkd process with names is killed (SIGKILL); the time
//     until C no longer holds any of them, against the lease TTL;
//   - RSS: an stkd process's resident memory before and after it holds
//     100,000 names of other nodes;
//   - re-sync: with those 100,000 names, every etcd member is killed,
//     then started again; the time from etcd healthy until every node
//     has joined again and holds all the names.
//
// bench/cluster.sh builds stkd and this program and runs them.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/cluster"
	"github.com/stk-go/stk/internal/etcdtest"
	"github.com/stk-go/stk/internal/stkdproc"
	"github.com/stk-go/stk/namesvc"
)

var quiet = slog.New(slog.DiscardHandler)

// nodeLog receives the in-process cluster nodes' lines (--log-level).
var nodeLog = quiet

// verbose prints the nodes' counters after each run (--verbose).
var verbose bool

func main() {
	fs := pflag.NewFlagSet("stkbench-cluster", pflag.ContinueOnError)
	etcdBin := fs.String("etcd", "/usr/bin/etcd", "the etcd server binary (Debian package etcd-server)")
	stkdBin := fs.String("stkd", "", "the stkd binary, for the cases with stkd processes (forget, rss, resync); \"\" skips them")
	runs := fs.Int("runs", 3, "runs of each case; the figures are their medians")
	rates := fs.IntSlice("rates", []int{1000, 10000}, "propagation rates, registrations per second")
	propFor := fs.Duration("prop-for", 2*time.Second, "duration of each propagation run")
	thrN := fs.Int("throughput-names", 30000, "names registered per throughput run (a third at each node)")
	lookups := fs.Int("lookups", 20000, "lookups per lookup run")
	bigN := fs.Int("names", 100000, "names held by the nodes in the rss and resync cases")
	ttl := fs.Duration("lease-ttl", 2*time.Second, "the nodes' lease TTL")
	fs.BoolVarP(&verbose, "verbose", "v", false, "print the nodes' cluster counters and the CPU time used after each run")
	maxOps := fs.Int("etcd-max-txn-ops", 1024, "etcd's --max-txn-ops (its default is 128; the nodes adapt to it)")
	etcdFlags := fs.StringSlice("etcd-flag", nil, "more flags for each etcd member (--etcd-flag=--enable-pprof: its profiles at the endpoints that -v prints)")
	logLevel := fs.String("log-level", "", "log the in-process nodes' lines to stderr at this level (debug, info, warn); \"\": none")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (the three nodes and the clients) to this file")
	cases := fs.StringSlice("cases", []string{"propagation", "throughput", "lookup", "forget", "rss", "resync"}, "cases to run")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			return
		}
		fmt.Fprintln(os.Stderr, "stkbench-cluster:", err)
		os.Exit(2)
	}
	if *logLevel != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(*logLevel)); err != nil {
			fmt.Fprintln(os.Stderr, "stkbench-cluster: --log-level:", err)
			os.Exit(2)
		}
		nodeLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "stkbench-cluster: cpu profile:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	b := &bench{etcdBin: *etcdBin, stkdBin: *stkdBin, runs: *runs, ttl: *ttl, maxOps: *maxOps, etcdFlags: *etcdFlags}
	if err := b.run(*cases, *rates, *propFor, *thrN, *lookups, *bigN); err != nil {
		fmt.Fprintln(os.Stderr, "stkbench-cluster:", err)
		b.close()
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	b.close()
}

type bench struct {
	etcdBin, stkdBin string
	runs             int
	maxOps           int
	etcdFlags        []string
	ttl              time.Duration
	dir              string
	etcd             *etcdtest.Cluster
	nodes            []*node // A, B, C
	procs            []*proc
	big              []*namesvc.Client // the clients of the bigLoad names
	weighed          *proc             // the stkd of the rss case
	summary          []string
}

// node is an in-process name server with its cluster node.
type node struct {
	id   string
	srv  *namesvc.Server
	cl   *cluster.Node
	addr string
}

func (b *bench) run(cases []string, rates []int, propFor time.Duration, thrN, lookups, bigN int) error {
	var err error
	if b.dir, err = os.MkdirTemp("", "stkbench-cluster-"); err != nil {
		return err
	}
	fmt.Printf("# stkbench-cluster: 3 nodes in this process + a 3-member etcd (%s, --max-txn-ops %d) on loopback; %d CPUs; lease TTL %v; medians of %d runs\n",
		b.etcdBin, b.maxOps, runtime.NumCPU(), b.ttl, b.runs)
	if b.etcd, err = startEtcd(b.etcdBin, b.dir, 3, b.maxOps, b.etcdFlags); err != nil {
		return err
	}
	if verbose {
		fmt.Printf("# etcd endpoints: %s\n", strings.Join(b.etcd.Endpoints(), " "))
	}
	for _, id := range []string{"A", "B", "C"} {
		n, err := startNode(b.etcd.Endpoints(), id, b.ttl)
		if err != nil {
			return err
		}
		b.nodes = append(b.nodes, n)
	}
	for _, c := range cases {
		switch c {
		case "propagation":
			for _, r := range rates {
				if err := b.propagation(r, propFor); err != nil {
					return err
				}
			}
		case "throughput":
			if err := b.throughput(thrN); err != nil {
				return err
			}
		case "lookup":
			if err := b.lookup(lookups); err != nil {
				return err
			}
		case "forget", "rss", "resync":
			if b.stkdBin == "" {
				fmt.Printf("%s: skipped (no --stkd)\n", c)
				continue
			}
			var err error
			switch c {
			case "forget":
				err = b.forget()
			case "rss":
				err = b.rss(bigN)
			case "resync":
				err = b.resync(bigN)
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown case %q", c)
		}
	}
	fmt.Println("\n# summary")
	for _, l := range b.summary {
		fmt.Println(l)
	}
	return nil
}

func (b *bench) close() {
	closeAll(b.big)
	for _, p := range b.procs {
		p.kill()
	}
	for _, n := range b.nodes {
		n.cl.Close()
		n.srv.Close()
	}
	if b.etcd != nil {
		b.etcd.StopAll()
	}
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

func (b *bench) report(format string, args ...any) {
	l := fmt.Sprintf(format, args...)
	b.summary = append(b.summary, l)
	fmt.Println(l)
}

func startNode(eps []string, id string, ttl time.Duration) (*node, error) {
	srv, err := namesvc.NewServer(namesvc.ServerConfig{Logger: quiet, Limits: namesvc.NoLimits()})
	if err != nil {
		return nil, err
	}
	ap, err := srv.ServeTCP("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cl, err := cluster.Start(cluster.Config{Endpoints: eps, NodeID: id, LeaseTTL: ttl, Server: srv, Logger: nodeLog})
	if err != nil {
		return nil, err
	}
	select {
	case <-cl.Synced():
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("node %s did not join etcd within 30 s", id)
	}
	return &node{id: id, srv: srv, cl: cl, addr: "tcp:" + ap.String()}, nil
}

func dial(addr string) (*namesvc.Client, error) {
	c, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: quiet})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return c, nil
}

func info(name string, port uint16) namesvc.Info {
	return namesvc.Info{Name: name, Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}}}
}

// waitFor polls cond every step until it holds or d passes.
func waitFor(d, step time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(step) // polling: the servers have no change signal for counts
	}
	return nil
}

func remote(n *node) int { return n.srv.Stats().Remote }

// sync makes sure the server has handled every request c sent before:
// requests of one connection are handled in order.
func syncClient(c *namesvc.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.LookupAll(ctx, "stkbench-sync-none", namesvc.LookupOptions{})
	return err
}

// ---- propagation ----

func (b *bench) propagation(rate int, d time.Duration) error {
	a, c := b.nodes[0], b.nodes[2]
	var p50s, p99s, held []float64
	lost := 0
	for run := range b.runs {
		n := int(float64(rate) * d.Seconds())
		bases := make([]int, len(b.nodes))
		for i, nd := range b.nodes {
			bases[i] = remote(nd)
		}
		sub, err := dial(c.addr)
		if err != nil {
			return err
		}
		arrive := make([]atomic.Int64, n)
		for i := range n {
			i := i
			name := fmt.Sprintf("prop-%d-%d-%d", rate, run, i)
			if _, err := sub.Subscribe(name, namesvc.SubscribeOptions{}, func(namesvc.Info) {
				arrive[i].CompareAndSwap(0, time.Now().UnixNano())
			}); err != nil {
				return err
			}
		}
		if err := syncClient(sub); err != nil {
			return err
		}
		reg, err := dial(a.addr)
		if err != nil {
			return err
		}
		sent := make([]int64, n)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range n {
			at := start.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))
			if w := time.Until(at); w > 0 {
				time.Sleep(w)
			}
			sent[i] = time.Now().UnixNano()
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				reg.Register(ctx, info(fmt.Sprintf("prop-%d-%d-%d", rate, run, i), uint16(1+i%60000)))
				cancel()
			}(i)
		}
		sendTime := time.Since(start)
		wg.Wait()
		err = waitFor(10*time.Second, 5*time.Millisecond, "every name pushed at C", func() bool {
			for i := range n {
				if arrive[i].Load() == 0 {
					return false
				}
			}
			return true
		})
		var lat []float64
		for i := range n {
			if t := arrive[i].Load(); t != 0 {
				lat = append(lat, float64(t-sent[i])/1e6)
			} else {
				lost++
			}
		}
		if err != nil && len(lat) == 0 {
			return err
		}
		slices.Sort(lat)
		p50, p99 := pct(lat, 50), pct(lat, 99)
		achieved := float64(n) / sendTime.Seconds()
		fmt.Printf("propagation A->C %d/s run %d: p50=%.2fms p99=%.2fms max=%.2fms n=%d sent at %.0f/s missing=%d\n",
			rate, run+1, p50, p99, lat[len(lat)-1], len(lat), achieved, n-len(lat))
		p50s, p99s, held = append(p50s, p50), append(p99s, p99), append(held, achieved)
		reg.Close() // linger 0: the names go everywhere
		sub.Close()
		// Gone at every node, not only at C: a node still applying the
		// removals would skew the next case's counts.
		if err := waitFor(30*time.Second, 10*time.Millisecond, "the names gone at every node", func() bool {
			for i, nd := range b.nodes {
				if remote(nd) != bases[i] {
					return false
				}
			}
			return true
		}); err != nil {
			return err
		}
	}
	goal := ""
	if rate == 1000 {
		goal = fmt.Sprintf(" (goal p99 < 50 ms: %s)", passFail(median(p99s) < 50))
	}
	b.report("propagation A->C at %d/s: p50 %.2f ms, p99 %.2f ms (sent at %.0f/s; %d missing)%s",
		rate, median(p50s), median(p99s), median(held), lost, goal)
	return nil
}

// ---- throughput ----

// registerMany registers names through k clients of addr, with at most
// inflight confirmations awaited per client; it returns the clients (the
// caller closes them: the names go with them).
func registerMany(addr string, names []string, k, inflight int) ([]*namesvc.Client, error) {
	var cls []*namesvc.Client
	for range k {
		c, err := dial(addr)
		if err != nil {
			return cls, err
		}
		cls = append(cls, c)
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for ci, c := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem := make(chan struct{}, inflight)
			var inner sync.WaitGroup
			for i := ci; i < len(names); i += k {
				sem <- struct{}{}
				inner.Add(1)
				go func(i int) {
					defer func() { <-sem; inner.Done() }()
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					if c.Register(ctx, info(names[i], uint16(1+i%60000))) != nil {
						failed.Add(1)
					}
				}(i)
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return cls, fmt.Errorf("%d registrations failed", f)
	}
	return cls, nil
}

func closeAll(cls []*namesvc.Client) {
	for _, c := range cls {
		c.Close()
	}
}

func (b *bench) throughput(total int) error {
	per := total / 3
	var rates, localRates []float64
	for run := range b.runs {
		base := make([]int, 3)
		for i, n := range b.nodes {
			base[i] = remote(n)
		}
		start := time.Now()
		cpuEtcd, cpuSelf := etcdCPU(b.etcd), selfCPU()
		var wg sync.WaitGroup
		clients := make([][]*namesvc.Client, 3)
		errs := make([]error, 3)
		var localDone atomic.Int64
		for i, n := range b.nodes {
			names := make([]string, per)
			for j := range names {
				names[j] = fmt.Sprintf("thr-%d-%s-%d", run, n.id, j)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				clients[i], errs[i] = registerMany(n.addr, names, 4, 256)
				localDone.Store(max(localDone.Load(), int64(time.Since(start))))
			}()
		}
		err := waitFor(120*time.Second, 2*time.Millisecond, "every node holding the others' names", func() bool {
			for i, n := range b.nodes {
				if remote(n)-base[i] != 2*per {
					return false
				}
			}
			return true
		})
		elapsed := time.Since(start)
		if verbose {
			fmt.Printf("  CPU used meanwhile: etcd %v, this process %v\n",
				(etcdCPU(b.etcd) - cpuEtcd).Round(10*time.Millisecond), (selfCPU() - cpuSelf).Round(10*time.Millisecond))
		}
		if err != nil || verbose {
			for i, n := range b.nodes {
				st := n.cl.Status()
				fmt.Printf("  node %s: remote %d (base %d, want +%d), local %d, connected %v, counters %+v\n",
					n.id, remote(n), base[i], 2*per, st.Local, st.Connected, st.Counters)
			}
		}
		wg.Wait()
		for i := range 3 {
			closeAll(clients[i])
			if errs[i] != nil && err == nil {
				err = errs[i]
			}
		}
		if err != nil {
			return err
		}
		rate := float64(3*per) / elapsed.Seconds()
		local := float64(3*per) / time.Duration(localDone.Load()).Seconds()
		fmt.Printf("throughput run %d: %d names in %v: %.0f/s cluster-wide (confirmed locally at %.0f/s)\n", run+1, 3*per, elapsed.Round(time.Millisecond), rate, local)
		rates, localRates = append(rates, rate), append(localRates, local)
		if err := waitFor(60*time.Second, 10*time.Millisecond, "the names gone", func() bool {
			for i, n := range b.nodes {
				if remote(n) != base[i] {
					return false
				}
			}
			return true
		}); err != nil {
			return err
		}
		if verbose {
			time.Sleep(2 * time.Second) // the counts should stay put now: anything else is a stale change arriving late
			for i, n := range b.nodes {
				if r := remote(n); r != base[i] {
					fmt.Printf("  node %s: %d remote names 2 s after the cleanup, %d before the run\n", n.id, r, base[i])
				}
			}
		}
	}
	b.report("cluster registration throughput: %.0f/s (%d names from A, B and C until every node holds all; confirmed locally at %.0f/s) (goal >= 20,000/s: %s)",
		median(rates), 3*per, median(localRates), passFail(median(rates) >= 20000))
	return nil
}

// ---- lookup ----

func (b *bench) lookup(n int) error {
	// Off: a name server without clustering.
	off, err := namesvc.NewServer(namesvc.ServerConfig{Logger: quiet, Limits: namesvc.NoLimits()})
	if err != nil {
		return err
	}
	defer off.Close()
	ap, err := off.ServeTCP("127.0.0.1:0")
	if err != nil {
		return err
	}
	offAddr := "tcp:" + ap.String()
	regOff, err := registerMany(offAddr, []string{"lookup-me"}, 1, 1)
	defer closeAll(regOff)
	if err != nil {
		return err
	}
	// On: looked up at A, registered at B.
	regB, err := registerMany(b.nodes[1].addr, []string{"lookup-me"}, 1, 1)
	defer closeAll(regB)
	if err != nil {
		return err
	}
	atA, err := dial(b.nodes[0].addr)
	if err != nil {
		return err
	}
	defer atA.Close()
	if err := waitFor(10*time.Second, 5*time.Millisecond, "lookup-me at A", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, _ := atA.LookupAll(ctx, "lookup-me", namesvc.LookupOptions{})
		return len(r) == 1
	}); err != nil {
		return err
	}
	atOff, err := dial(offAddr)
	if err != nil {
		return err
	}
	defer atOff.Close()
	measure := func(c *namesvc.Client) ([]float64, error) {
		out := make([]float64, 0, n)
		for i := range n + n/10 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			t := time.Now()
			r, err := c.LookupAll(ctx, "lookup-me", namesvc.LookupOptions{})
			d := time.Since(t)
			cancel()
			if err != nil || len(r) != 1 {
				return nil, fmt.Errorf("lookup: %d answers, %v", len(r), err)
			}
			if i >= n/10 { // the first tenth warms up
				out = append(out, float64(d)/1e3)
			}
		}
		slices.Sort(out)
		return out, nil
	}
	var on50, off50, onMean, offMean, on99, off99 []float64
	for run := range b.runs {
		for _, which := range []string{"off", "on"} {
			c := atOff
			if which == "on" {
				c = atA
			}
			l, err := measure(c)
			if err != nil {
				return err
			}
			m := mean(l)
			fmt.Printf("lookup clustering %s run %d: p50=%.1fus p99=%.1fus mean=%.1fus n=%d\n", which, run+1, pct(l, 50), pct(l, 99), m, len(l))
			if which == "on" {
				on50, on99, onMean = append(on50, pct(l, 50)), append(on99, pct(l, 99)), append(onMean, m)
			} else {
				off50, off99, offMean = append(off50, pct(l, 50)), append(off99, pct(l, 99)), append(offMean, m)
			}
		}
	}
	diff := (median(on50) - median(off50)) / median(off50) * 100
	b.report("lookup latency: clustering on p50 %.1f us (p99 %.1f, mean %.1f), off p50 %.1f us (p99 %.1f, mean %.1f): %+.1f %% (goal within 10 %%: %s)",
		median(on50), median(on99), median(onMean), median(off50), median(off99), median(offMean), diff, passFail(diff <= 10))
	return nil
}

// ---- stkd processes ----

type proc struct {
	*stkdproc.Daemon
	id    string
	names string // tcp:127.0.0.1:port
	http  string // http://127.0.0.1:port
}

// startStkd runs an stkd node of the cluster (names on TCP and the HTTP
// UI on loopback ports, nothing else), its log in the bench's directory,
// and waits until it has joined etcd.
func (b *bench) startStkd(id string) (*proc, error) {
	lf, err := os.Create(fmt.Sprintf("%s/stkd-%s.log", b.dir, id))
	if err != nil {
		return nil, err
	}
	sd, err := stkdproc.Start(context.Background(), b.stkdBin, stkdproc.Options{Log: lf, Args: []string{"--monitor-tcp", "", "--steps=false",
		"--cluster", b.etcd.ClusterFlag(), "--node-id", id, "--cluster-lease-ttl", b.ttl.String()}})
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("%w (log: %s)", err, lf.Name())
	}
	go func() { <-sd.Done(); lf.Close() }()
	p := &proc{Daemon: sd, id: id, names: sd.Names, http: "http://" + sd.HTTP}
	b.procs = append(b.procs, p)
	if err := waitFor(30*time.Second, 20*time.Millisecond, "stkd "+id+" joined", func() bool {
		st, err := p.status()
		return err == nil && st.Connected
	}); err != nil {
		return nil, fmt.Errorf("%w (log: %s)", err, lf.Name())
	}
	return p, nil
}

type procStatus struct {
	Connected   bool `json:"connected"`
	RemoteNames int  `json:"remote_names"`
	Resyncs     int  `json:"resyncs"`
}

var hc = &http.Client{Timeout: 2 * time.Second}

func (p *proc) status() (procStatus, error) {
	var st procStatus
	resp, err := hc.Get(p.http + "/api/v1/cluster")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

func (p *proc) kill() { p.Kill() }

// rssBytes reads the process's resident set size.
func rssBytes(pid int) (int64, error) { return stkdproc.ProcStatus(pid, "VmRSS") }

// ---- forget ----

func (b *bench) forget() error {
	c := b.nodes[2]
	const n = 900 // under stkd's default of 1000 registrations per client
	var times []float64
	for run := range b.runs {
		base := remote(c)
		p, err := b.startStkd(fmt.Sprintf("doomed-%d", run))
		if err != nil {
			return err
		}
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("doomed-%d-%d", run, i)
		}
		cls, err := registerMany(p.names, names, 1, 128)
		if err != nil {
			return err
		}
		atC, err := dial(c.addr)
		if err != nil {
			return err
		}
		answers := func(name string) int {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			r, _ := atC.LookupAll(ctx, name, namesvc.LookupOptions{})
			return len(r)
		}
		if err := waitFor(30*time.Second, 5*time.Millisecond, "the doomed names at C", func() bool {
			return answers(names[0]) == 1 && answers(names[n-1]) == 1
		}); err != nil {
			return fmt.Errorf("%w (C holds %d remote names, %d before they were registered)", err, remote(c), base)
		}
		// Gone when the first and the last name have no answer at C: the
		// lease takes them all in one revision. (C's count of remote names
		// is not used: other cases' leftovers may still move it.)
		gone := func() bool { return answers(names[0]) == 0 && answers(names[n-1]) == 0 }
		killed := time.Now()
		p.kill()
		if err := waitFor(30*time.Second, 2*time.Millisecond, "the doomed names gone at C", gone); err != nil {
			return fmt.Errorf("%w (C holds %d remote names, %d before the kill)", err, remote(c), base+n)
		}
		d := time.Since(killed)
		atC.Close()
		closeAll(cls)
		fmt.Printf("forget run %d: %d names of a killed stkd gone at C after %v (lease TTL %v)\n", run+1, n, d.Round(time.Millisecond), b.ttl)
		times = append(times, d.Seconds())
	}
	m := median(times)
	b.report("forget a killed node: %.2f s (lease TTL %v) (goal <= TTL + 1 s: %s)", m, b.ttl, passFail(m <= b.ttl.Seconds()+1))
	return nil
}

// ---- rss and resync ----

func (b *bench) bigLoad(n int) error {
	if len(b.big) > 0 {
		return nil
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("big-%06d", i)
	}
	start := time.Now()
	cls, err := registerMany(b.nodes[0].addr, names, 4, 512)
	b.big = cls
	if err != nil {
		return err
	}
	fmt.Printf("%d names registered at A in %v\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}

func (b *bench) rss(n int) error {
	p, err := b.startStkd("weighed")
	if err != nil {
		return err
	}
	b.weighed = p
	time.Sleep(time.Second) // settle after the join: the baseline
	before, err := rssBytes(p.Pid())
	if err != nil {
		return err
	}
	if err := b.bigLoad(n); err != nil {
		return err
	}
	if err := waitFor(120*time.Second, 50*time.Millisecond, "the weighed stkd holding every name", func() bool {
		st, err := p.status()
		return err == nil && st.RemoteNames >= n
	}); err != nil {
		return err
	}
	time.Sleep(time.Second) // let the allocator settle
	after, err := rssBytes(p.Pid())
	if err != nil {
		return err
	}
	b.report("node RSS with %d remote names: %.1f MiB (%.1f MiB before: %.0f bytes per name)",
		n, float64(after)/(1<<20), float64(before)/(1<<20), float64(after-before)/float64(n))
	return nil
}

func (b *bench) resync(n int) error {
	if err := b.bigLoad(n); err != nil {
		return err
	}
	if b.weighed == nil {
		p, err := b.startStkd("weighed")
		if err != nil {
			return err
		}
		b.weighed = p
	}
	want := func(i int) int { // remote names each in-process node must hold
		if i == 0 {
			return 0
		}
		return n
	}
	if err := waitFor(120*time.Second, 50*time.Millisecond, "every node holding the names", func() bool {
		for i, nd := range b.nodes {
			if remote(nd) < want(i) {
				return false
			}
		}
		st, err := b.weighed.status()
		return err == nil && st.RemoteNames >= n
	}); err != nil {
		return err
	}
	var times []float64
	for run := range b.runs {
		resyncs := make([]uint64, 3)
		for i, nd := range b.nodes {
			resyncs[i] = nd.cl.Status().Counters.Resyncs
		}
		pst, _ := b.weighed.status()
		b.etcd.StopAll()
		if err := waitFor(30*time.Second, 20*time.Millisecond, "every node partitioned", func() bool {
			for _, nd := range b.nodes {
				if nd.cl.Status().Connected {
					return false
				}
			}
			st, err := b.weighed.status()
			return err == nil && !st.Connected
		}); err != nil {
			return err
		}
		if err := restartEtcd(b.etcd); err != nil {
			return err
		}
		healthy := time.Now()
		var each []string
		done := make([]bool, 4)
		err := waitFor(300*time.Second, 10*time.Millisecond, "every node re-synced", func() bool {
			all := true
			for i, nd := range b.nodes {
				if done[i] {
					continue
				}
				st := nd.cl.Status()
				if st.Connected && st.Counters.Resyncs > resyncs[i] && st.Remote >= want(i) {
					done[i] = true
					each = append(each, fmt.Sprintf("%s %v", nd.id, time.Since(healthy).Round(time.Millisecond)))
				} else {
					all = false
				}
			}
			if !done[3] {
				st, err := b.weighed.status()
				if err == nil && st.Connected && st.Resyncs > pst.Resyncs && st.RemoteNames >= n {
					done[3] = true
					each = append(each, fmt.Sprintf("stkd %v", time.Since(healthy).Round(time.Millisecond)))
				} else {
					all = false
				}
			}
			return all
		})
		if err != nil {
			return err
		}
		d := time.Since(healthy)
		fmt.Printf("resync run %d: every node re-synced %v after etcd was healthy again (%s)\n", run+1, d.Round(time.Millisecond), strings.Join(each, ", "))
		times = append(times, d.Seconds())
	}
	b.report("re-sync after an etcd outage with %d names: %.2f s from etcd healthy to every node joined with every name", n, median(times))
	return nil
}

// ---- statistics ----

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return pct(s, 50)
}

func mean(v []float64) float64 {
	var t float64
	for _, x := range v {
		t += x
	}
	return t / float64(len(v))
}

func passFail(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
