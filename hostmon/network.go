package hostmon

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/net"
	"github.com/stk-go/stk/step"
)

func init() {
	Register("network", true, func(cfg Config) (any, error) { return NewNetworkCollector(cfg) })
}

// networkSteps turns two samples of the interface counters, taken elapsed
// apart, into system.network STEPs, one per interface present in both,
// sorted by name. The loopback interface is kept: on a host running STK,
// the traffic between stkd and its local services crosses lo, and a
// consumer that does not want it filters on the interface field.
// Interfaces that never carried a packet are left out (ifb, dummy and
// down interfaces would otherwise report zeros every interval). An
// interface whose counters were reset reports again from the next sample.
func networkSteps(env Env, now time.Time, prev map[string]net.IOCountersStat, cur []net.IOCountersStat, elapsed time.Duration) []*step.Step {
	if elapsed <= 0 || len(prev) == 0 {
		return nil
	}
	out := make([]*step.Step, 0, len(cur))
	for _, c := range cur {
		p, ok := prev[c.Name]
		if !ok || c.PacketsRecv+c.PacketsSent == 0 {
			continue
		}
		rxB, ok1 := counterDelta(p.BytesRecv, c.BytesRecv, 1)
		txB, ok2 := counterDelta(p.BytesSent, c.BytesSent, 1)
		rxP, ok3 := counterDelta(p.PacketsRecv, c.PacketsRecv, 1)
		txP, ok4 := counterDelta(p.PacketsSent, c.PacketsSent, 1)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			continue
		}
		rx, tx := perSecond(rxB, elapsed), perSecond(txB, elapsed)
		s := env.NewMetric("system.network",
			fmt.Sprintf("network %s rx %s, tx %s", c.Name, rateText(rx), rateText(tx)), now)
		s.Set("interface", c.Name)
		s.Set("rx_bytes_per_sec", rx)
		s.Set("tx_bytes_per_sec", tx)
		s.Set("bytes_per_sec", roundHundredths(rx+tx))
		s.Set("rx_packets_per_sec", perSecond(rxP, elapsed))
		s.Set("tx_packets_per_sec", perSecond(txP, elapsed))
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *step.Step) int {
		x, _ := a.String("interface")
		y, _ := b.String("interface")
		return strings.Compare(x, y)
	})
	return out
}

// networkCollector samples <proc>/net/dev through gopsutil each call and
// reports rates over the time between calls.
type networkCollector struct {
	env Env

	mu     sync.Mutex
	prev   map[string]net.IOCountersStat
	prevAt time.Time
}

// NewNetworkCollector returns the "network" collector: receive and send
// rates of every network interface, loopback included.
func NewNetworkCollector(cfg Config) (Collector, error) {
	return &networkCollector{env: cfg.Env}, nil
}

func (c *networkCollector) Name() string { return "network" }

func (c *networkCollector) Collect(ctx context.Context, now time.Time) ([]*step.Step, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, err := net.IOCountersWithContext(c.env.Context(ctx), true)
	if err != nil {
		return nil, fmt.Errorf("network counters: %w", err)
	}
	steps := networkSteps(c.env, now, c.prev, cur, now.Sub(c.prevAt))
	prev := make(map[string]net.IOCountersStat, len(cur))
	for _, s := range cur {
		prev[s.Name] = s
	}
	c.prev, c.prevAt = prev, now
	return steps, nil
}
