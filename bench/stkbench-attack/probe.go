package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/stk-go/stk/namesvc"
)

// probe is another client of the name server: it registered one name
// before the attack and looks it up every period, recording each lookup's
// latency and the lookups that failed or found nothing.
type probe struct {
	c      *namesvc.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	lat    []time.Duration
	failed int
	empty  int
}

const probeName = "attack-probe"

func startProbe(ctx context.Context, names string, every time.Duration) (*probe, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := namesvc.Dial("tcp:"+names, namesvc.ClientOptions{Logger: quiet})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info := namesvc.Info{Name: probeName, Linger: 5 * time.Second,
		Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:7000")}}}
	if err := c.Register(rctx, info); err != nil {
		c.Close()
		return nil, fmt.Errorf("probe: register: %w", err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	p := &probe{c: c, cancel: pcancel, done: make(chan struct{})}
	go p.loop(pctx, every)
	return p, nil
}

func (p *probe) loop(ctx context.Context, every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		infos, err := p.c.LookupAll(ctx, probeName, namesvc.LookupOptions{Expiration: time.Second})
		el := time.Since(start)
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		switch {
		case err != nil:
			p.failed++
		case len(infos) == 0:
			p.empty++
		default:
			p.lat = append(p.lat, el)
		}
		p.mu.Unlock()
	}
}

func (p *probe) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lat, p.failed, p.empty = nil, 0, 0
}

func (p *probe) stop() {
	p.cancel()
	<-p.done
	p.c.Close()
}

// figures: lookups answered, their p50/p99/max, and the failed or empty.
func (p *probe) figures() []figure {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := slices.Clone(p.lat)
	slices.Sort(s)
	q := func(f float64) string {
		if len(s) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fms", float64(s[min(len(s)-1, int(f*float64(len(s))))])/1e6)
	}
	maxs := "-"
	if len(s) > 0 {
		maxs = fmt.Sprintf("%.1fms", float64(s[len(s)-1])/1e6)
	}
	return []figure{{"lookups", fmt.Sprint(len(s))}, {"lookup_p50", q(0.5)}, {"lookup_p99", q(0.99)},
		{"lookup_max", maxs}, {"lookups_failed", fmt.Sprint(p.failed + p.empty)}}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
