package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/namesvc"
)

// The name-service cases (issue 11): stored state without bounds, work
// that grows with a connection's subscriptions, and the names listing.

var flagRegistrars []func(*pflag.FlagSet)

var nf struct {
	registrations, metaCount, metaSize, subscriptions, names, gets int
	uiWindow                                                       time.Duration
}

func init() {
	flagRegistrars = append(flagRegistrars, func(fs *pflag.FlagSet) {
		fs.IntVar(&nf.registrations, "registrations", 1_000_000, "register-1m: registrations from one client (reconnecting when closed)")
		fs.IntVar(&nf.metaCount, "meta-count", 5000, "meta-60k: registrations with big meta-data")
		fs.IntVar(&nf.metaSize, "meta-size", 60_000, "meta-60k: meta-data bytes per registration")
		fs.IntVar(&nf.subscriptions, "subscriptions", 80_000, "subscribe-80k: subscriptions on one connection")
		fs.IntVar(&nf.names, "names", 1_000_000, "api-names: names to try to store (from many 127.x source addresses) before listing them")
		fs.IntVar(&nf.gets, "gets", 3, "api-names: concurrent GET /api/v1/names")
		fs.DurationVar(&nf.uiWindow, "ui-window", 10*time.Second, "api-names: how long an event stream (the UI) stays open while names change")
	})
	addCase(attackCase{name: "register-1m", help: "1,000,000 registrations (linger 2^31-1 s) from one client, reconnecting whenever closed", run: runRegister})
	addCase(attackCase{name: "meta-60k", help: "5000 registrations with 60 KB of meta-data each", run: runMeta})
	addCase(attackCase{name: "subscribe-80k", help: "80,000 subscriptions on one connection", run: runSubscribe})
	addCase(attackCase{name: "api-names", help: "GET /api/v1/names with up to 1,000,000 names stored, and an open UI event stream while names change", run: runAPINames})
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

func runRegister(ctx context.Context, e *env) ([]figure, error) {
	r, err := flood(e.d.names, floodOpts{n: nf.registrations, batch: 256, reconnects: 1 << 30,
		quiet: time.Second, deadline: deadlineOf(ctx)},
		func(b []byte, i int) []byte {
			return registration(b, uint64(i), fmt.Sprintf("atk-%07d", i), 1<<31-1, 0)
		})
	st := e.d.nameStats()
	return append(r.figures(), figure{"stored", fmt.Sprint(st.Registrations)}), err
}

func runMeta(ctx context.Context, e *env) ([]figure, error) {
	r, err := flood(e.d.names, floodOpts{n: nf.metaCount, batch: 16, reconnects: 1 << 30,
		quiet: time.Second, deadline: deadlineOf(ctx)},
		func(b []byte, i int) []byte {
			return registration(b, uint64(i), fmt.Sprintf("meta-%05d", i), 300, nf.metaSize)
		})
	st := e.d.nameStats()
	return append(r.figures(), figure{"stored", fmt.Sprint(st.Registrations)}), err
}

func runSubscribe(ctx context.Context, e *env) ([]figure, error) {
	r, err := flood(e.d.names, floodOpts{n: nf.subscriptions, batch: 256, reconnects: 0,
		quiet: 2 * time.Second, deadline: deadlineOf(ctx)},
		func(b []byte, i int) []byte { return subscription(b, uint64(i), fmt.Sprintf("sub-%06d", i)) })
	return r.figures(), err
}

// runAPINames stores up to --names names, 1000 per connection and 10
// connections per source address (127.1.x.y), then times the listing as
// the UI and an API user fetch it.
func runAPINames(ctx context.Context, e *env) ([]figure, error) {
	// The UI window's churn client registers its name first, so that its
	// later changes (replacements) are not refused when the attack has
	// filled the store to its limit.
	churn, err := namesvc.Dial("tcp:"+e.d.names, namesvc.ClientOptions{Logger: quietLog()})
	if err != nil {
		return nil, err
	}
	defer churn.Close()
	if err := churnOnce(ctx, churn, 0); err != nil {
		return nil, fmt.Errorf("churn client: register: %w", err)
	}
	r, err := flood(e.d.names, floodOpts{n: nf.names, batch: 256, perConn: 1000, reconnects: 1 << 30,
		quiet: time.Second, deadline: deadlineOf(ctx),
		source: func(c int) net.IP { ip := 2 + c/10; return net.IPv4(127, 1, byte(ip>>8), byte(ip)) }},
		func(b []byte, i int) []byte { return registration(b, uint64(i), fmt.Sprintf("svc-%07d", i), 3600, 0) })
	if err != nil {
		return nil, err
	}
	stored := e.d.nameStats().Registrations
	figs := []figure{{"stored", fmt.Sprint(stored)}, {"fill_time", r.elapsed.Round(10 * time.Millisecond).String()}}

	// One GET as a script would do it, then --gets at once: time and RSS.
	get := func(path string) (time.Duration, int64, error) {
		start := time.Now()
		resp, err := httpClient.Get(e.d.url + path)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		n, _ := bufio.NewReader(resp.Body).WriteTo(discard{})
		if resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return time.Since(start), n, nil
	}
	before := e.d.rss()
	w := e.d.watchRSS(50 * time.Millisecond)
	el, n, err := get("/api/v1/names")
	peak, _ := w.stop()
	if err != nil {
		return figs, err
	}
	figs = append(figs, figure{"get_1", el.Round(time.Millisecond).String()}, figure{"get_1_bytes", fmt.Sprint(n)},
		figure{"get_1_rss_extra", mb(peak - before)})
	before = e.d.rss()
	w = e.d.watchRSS(50 * time.Millisecond)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	for range nf.gets {
		wg.Go(func() {
			if el, _, err := get("/api/v1/names"); err == nil {
				mu.Lock()
				slowest = max(slowest, el)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	peak, _ = w.stop()
	figs = append(figs, figure{fmt.Sprintf("get_%d_at_once", nf.gets), slowest.Round(time.Millisecond).String()},
		figure{fmt.Sprintf("get_%d_rss_extra", nf.gets), mb(peak - before)})

	// The UI: an event stream open while one name changes every 200 ms;
	// on every "names" hint it fetches its page, as the Names page does.
	cpu, fetches, err := uiWindow(ctx, e, churn)
	figs = append(figs, figure{"ui_cpu", fmt.Sprintf("%.0f%%", cpu)}, figure{"ui_page_fetches", fmt.Sprint(fetches)})
	return figs, err
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// uiWindow opens /api/v1/events for --ui-window while a client changes a
// name every 200 ms, fetches the Names page's page on every "names"
// hint, and returns stkd's CPU use meanwhile (percent of one core) and
// the fetches.
func uiWindow(ctx context.Context, e *env, c *namesvc.Client) (float64, int, error) {
	wctx, cancel := context.WithTimeout(ctx, nf.uiWindow)
	defer cancel()
	req, _ := http.NewRequestWithContext(wctx, "GET", e.d.url+"/api/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	go func() { // the churn
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			churnOnce(wctx, c, i+1)
		}
	}()
	hints := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "event: names" {
				select {
				case hints <- struct{}{}:
				default:
				}
			}
		}
	}()
	t0, c0 := time.Now(), e.d.cpuTicks()
	fetches := 0
	for {
		select {
		case <-wctx.Done():
			cpu := float64(e.d.cpuTicks()-c0) / 100 / time.Since(t0).Seconds() * 100
			return cpu, fetches, nil
		case <-hints:
			if r, err := httpClient.Get(e.d.url + "/api/v1/names?limit=100&q="); err == nil {
				bufio.NewReader(r.Body).WriteTo(discard{})
				r.Body.Close()
				fetches++
			}
		}
	}
}

// churnOnce registers (or changes) the name "churn", with port 1000+i.
func churnOnce(ctx context.Context, c *namesvc.Client, i int) error {
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return c.Register(rctx, namesvc.Info{Name: "churn", Linger: time.Second,
		Addresses: []namesvc.Endpoint{{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(1000+i%1000))}}})
}
