package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
)

// onewayConfig is one one-way case.
type onewayConfig struct {
	size    int
	rate    float64
	dur     time.Duration // measured part
	warmup  time.Duration // sent at the same rate first, not recorded
	maxTime time.Duration
	spin    time.Duration // the publisher's spin before each send (--spin)
	pace    string        // how it waits then (--pace)
}

// runOneway runs a publisher child at cfg.rate and subscribes to it in this
// process, recording for every measured sequence now - its intended send
// time, so that a publisher that fell behind (coordinated omission) shows
// as latency rather than as fewer samples.
func runOneway(ctx context.Context, transport string, cfg onewayConfig, h *Hist) (result, error) {
	r := result{kind: "oneway", transport: transport, size: cfg.size, h: h}
	h.Reset()
	count := int(cfg.rate * cfg.dur.Seconds())
	warmup := int(cfg.rate * cfg.warmup.Seconds())
	// The Handler runs on the flow's read loop; h is only read after the
	// publisher is done and the counts show everything arrived (or the
	// wait gave up), so received is the only thing shared meanwhile.
	var received, other atomic.Uint64
	handler := func(_ flow.Peer, s *seq.Sequence) {
		now := time.Now().UnixNano()
		t, _, ok := payload(s)
		switch {
		case !ok:
			other.Add(1)
		case s.ID == seqIDMeasured:
			h.Record(now - t)
			received.Add(1)
		}
	}
	args := []string{"--role", "pub", "--transport", transport, "--size", fmt.Sprint(cfg.size),
		"--rate", fmt.Sprint(cfg.rate), "--count-pub", fmt.Sprint(count), "--warmup-count", fmt.Sprint(warmup),
		// A publisher that cannot hold the rate stops at 3 times the time it
		// should take (the figures say by how much it fell behind).
		"--give-up", (3*(cfg.warmup+cfg.dur) + 2*time.Second).String(), "--spin", cfg.spin.String(), "--pace", cfg.pace}
	var sub interface{ Close() error }
	var c *child
	var err error
	var addr string // of the publisher's TCP listener, for raw and tcp
	if transport == "raw" || transport == "tcp" {
		if c, err = startChild(ctx, args...); err != nil {
			return r, err
		}
		defer c.stop()
		if addr, err = c.expect("ready", 10*time.Second); err != nil {
			return r, err
		}
	}
	switch transport {
	case "raw":
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return r, fmt.Errorf("dialling the raw publisher at %s: %w", addr, err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			rd := bufio.NewReaderSize(conn, 64<<10)
			frame := make([]byte, tcpFrameLen(cfg.size))
			var s seq.Sequence
			for {
				if _, err := io.ReadFull(rd, frame); err != nil {
					return
				}
				if _, _, err := seq.DecodeTCP(&s, frame, 0); err != nil {
					other.Add(1)
					continue
				}
				handler(nil, &s)
			}
		}()
		sub = closerFunc(func() error { err := conn.Close(); <-done; return err })
	case "tcp":
		cl, err := flow.DialTCP(addr, flow.Options{Name: "sub", Handler: handler})
		if err != nil {
			return r, err
		}
		sub = cl
	case "udp":
		u, err := flow.NewUDP(flow.UDPConfig{Bind: "127.0.0.1:0"}, flow.Options{Name: "sub", Handler: handler,
			ReceiveBuffer: 4 << 20})
		if err != nil {
			return r, err
		}
		sub = u
		if c, err = startChild(ctx, append(args, "--to", u.LocalAddr().String())...); err != nil {
			u.Close()
			return r, err
		}
		defer c.stop()
		if _, err := c.expect("ready", 10*time.Second); err != nil {
			u.Close()
			return r, err
		}
	default:
		return r, fmt.Errorf("unknown transport %q: tcp, udp or raw", transport)
	}
	defer sub.Close()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	t0 := time.Now()
	line, err := c.expect("stats", cfg.warmup+cfg.dur+cfg.maxTime)
	if err != nil {
		return r, err
	}
	var ps pubStats
	if err := json.Unmarshal([]byte(line), &ps); err != nil {
		return r, fmt.Errorf("reading the publisher's stats %q: %w", line, err)
	}
	// Everything sent is on its way: wait until it arrived, or until it
	// stopped arriving (UDP loss, a dropped slow consumer).
	last, lastChange := received.Load(), time.Now()
	for received.Load() < ps.Sent && time.Since(lastChange) < time.Second {
		time.Sleep(time.Millisecond)
		if n := received.Load(); n != last {
			last, lastChange = n, time.Now()
		}
	}
	r.elapsed = time.Since(t0)
	r.load = loadavg()
	runtime.ReadMemStats(&ms1)
	sub.Close() // no Handler call after this, so h is ours
	r.gcs = ms1.NumGC - ms0.NumGC
	r.gcPause = time.Duration(ms1.PauseTotalNs - ms0.PauseTotalNs)
	got := received.Load()
	if got < ps.Sent {
		r.lost = ps.Sent - got
	}
	r.held = ps.Achieved >= 0.99*cfg.rate && float64(ps.Late) <= 0.001*float64(ps.Sent)
	held := "yes"
	if !r.held {
		held = "no"
	}
	r.prefix = fmt.Sprintf("rate=%s pace=%s held=%s", fmtRate(cfg.rate), cfg.pace, held)
	r.note = fmt.Sprintf("achieved=%.0f/s late>1ms=%d send_late:p50=%s,p99=%s,p999=%s,max=%s", ps.Achieved, ps.Late,
		fmtDur(ps.SendP50), fmtDur(ps.SendP99), fmtDur(ps.SendP999), fmtDur(ps.MaxLateNS))
	if ps.GaveUp {
		r.note += fmt.Sprintf(" gave_up=yes(sent %d of %d in 3x the time)", ps.Sent, count)
	}
	if ps.SendErrs > 0 || ps.Dropped > 0 {
		r.note += fmt.Sprintf(" send_errs=%d dropped=%d (%s)", ps.SendErrs, ps.Dropped, ps.FirstErr)
	}
	r.note += fmt.Sprintf(" pub_gc=%d/%s", ps.GCs, time.Duration(ps.GCPauseNS).Round(time.Microsecond))
	return r, nil
}

func fmtRate(r float64) string {
	switch {
	case r >= 1e6 && r == float64(int64(r/1e6))*1e6:
		return fmt.Sprintf("%dM", int64(r/1e6))
	case r >= 1e3 && r == float64(int64(r/1e3))*1e3:
		return fmt.Sprintf("%dk", int64(r/1e3))
	}
	return fmt.Sprintf("%g", r)
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
