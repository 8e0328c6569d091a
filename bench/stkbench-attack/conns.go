package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/namesvc"
)

// The connection cases (issue 11): a burst of idle connections beyond the
// open-file limit, which killed gnet's accept loop for good, and slowloris
// connections that hold a few bytes of a frame for ever.

var cf struct {
	idle, slow int
	slowFor    time.Duration
}

func init() {
	flagRegistrars = append(flagRegistrars, func(fs *pflag.FlagSet) {
		fs.IntVar(&cf.idle, "idle-conns", 400, "fd-exhaustion: idle connections to each of the name server and the monitor (stkd runs with 256 open files)")
		fs.IntVar(&cf.slow, "slow-conns", 250, "slowloris: connections to each of the name server and the monitor that send 10 header bytes, then a byte a second")
		fs.DurationVar(&cf.slowFor, "slow-for", 15*time.Second, "slowloris: how long the connections dribble before they are counted")
	})
	addCase(attackCase{name: "fd-exhaustion", nofile: 256, run: runFDExhaustion,
		help: "stkd with 256 open files; idle connections to names and monitor beyond it, then closed: /healthz meanwhile, and how soon both accept again"})
	addCase(attackCase{name: "slowloris", run: runSlowloris,
		help: "connections to names and monitor that send 10 bytes of a header, then a byte a second: how many stkd still holds afterwards"})
}

func runFDExhaustion(ctx context.Context, e *env) ([]figure, error) {
	// One HTTP connection, made now and kept: a new one could not be
	// accepted while descriptors are exhausted.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}, Timeout: 5 * time.Second}
	health := func() string {
		r, err := hc.Get(e.d.url + "/healthz")
		if err != nil {
			return "error"
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return strconv.Itoa(r.StatusCode)
	}
	before := health()
	var idle []net.Conn
	for _, addr := range []string{e.d.names, e.d.mon} {
		for range cf.idle {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				break
			}
			idle = append(idle, c)
		}
	}
	// Give stkd time to run out, then see what /healthz says.
	during := health()
	for deadline := time.Now().Add(3 * time.Second); during == "200" && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		during = health()
	}
	for _, c := range idle {
		c.Close()
	}
	closed := time.Now()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	recovered := "never"
	for ctx.Err() == nil && time.Since(closed) < 20*time.Second {
		if err := registerOnce(ctx, e.d.names, quiet) == nil; err {
			if c, err := net.DialTimeout("tcp", e.d.mon, time.Second); err == nil {
				c.Close()
				recovered = time.Since(closed).Round(time.Millisecond).String()
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return []figure{{"idle_conns", strconv.Itoa(len(idle))}, {"healthz_before", before}, {"healthz_during", during},
		{"serving_again_after", recovered}, {"healthz_after", health()}}, nil
}

// registerOnce registers a name over a new connection and waits at most a
// second for the confirmation.
func registerOnce(ctx context.Context, names string, log *slog.Logger) error {
	c, err := namesvc.Dial("tcp:"+names, namesvc.ClientOptions{Logger: log})
	if err != nil {
		return err
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return c.Register(rctx, namesvc.Info{Name: "attack-after-burst",
		Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:9")}}})
}

func runSlowloris(ctx context.Context, e *env) ([]figure, error) {
	var conns []net.Conn
	for _, addr := range []string{e.d.names, e.d.mon} {
		for range cf.slow {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				break
			}
			c.Write(make([]byte, 10)) // 10 bytes of a 40-byte header
			conns = append(conns, c)
		}
	}
	end := time.Now().Add(cf.slowFor)
	open := len(conns)
	for time.Now().Before(end) && ctx.Err() == nil && open > 0 {
		time.Sleep(time.Second)
		open = 0
		for _, c := range conns {
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := c.Write([]byte{0}); err == nil {
				open++
			}
		}
	}
	// A write can succeed on a connection the server has just closed (the
	// reset comes back later): count by reading instead.
	open = 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
		c.Close()
	}
	return []figure{{"conns", strconv.Itoa(len(conns))}, {"still_open", strconv.Itoa(open)},
		{"timed_out", e.d.metricSum("stk_flow_timed_out_total")}}, nil
}

// metricSum adds up the samples of a /metrics family ("n/a" when the
// daemon has none).
func (d *daemon) metricSum(family string) string {
	resp, err := httpClient.Get(d.url + "/metrics")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	found := false
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, family+"{") && !strings.HasPrefix(l, family+" ") {
			continue
		}
		f := strings.Fields(l)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return "n/a"
	}
	return fmt.Sprint(sum)
}
