package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
)

// result is one measured case.
type result struct {
	kind, transport string
	size            int
	h               *Hist
	lost            uint64 // round trips without an answer (UDP), or sequences not received
	gcs             uint32 // GC cycles in the measuring process
	gcPause         time.Duration
	elapsed         time.Duration
	prefix, note    string // one-way: rate and held first, then achieved rate, lateness...
	load            string // /proc/loadavg at the end: how busy the machine was
	held            bool   // one-way: the publisher held the rate
}

// rttConfig bounds a round-trip case.
type rttConfig struct {
	size, warmup, count int
	maxTime             time.Duration
	udpTimeout          time.Duration
	natsServer          string // the nats-server binary, for transport nats
}

// runRTT measures count round trips with one outstanding at a time against
// an echo child: from the Send call to the reply reaching the Handler
// (the time the application would see it), or, raw, from Write to the end
// of ReadFull. tcp-srv is a raw client against the TCP flow's echo: the
// server side's share of the flow's round trip, the rest being the
// client's. tcp-chained is the TCP flow with the next ping sent by the
// Handler that received the reply, as the raw ping-pong reads and writes in
// one goroutine: no hand-off to a waiting goroutine, the flow's own cost.
// nats is request/reply through a nats-server child (pinned with the
// echo), timed as raw from the PUB to the reply's payload read.
func runRTT(ctx context.Context, transport string, cfg rttConfig, h *Hist) (result, error) {
	r := result{kind: "rtt", transport: transport, size: cfg.size, h: h}
	h.Reset()
	echo := transport
	if transport == "tcp-srv" || transport == "tcp-chained" {
		echo = "tcp" // the flow's echo, pinged by a raw client or chained
	}
	args := []string{"--role", "echo", "--transport", echo, "--size", fmt.Sprint(cfg.size)}
	if transport == "nats" {
		srv, err := startNATSServer(ctx, cfg.natsServer, childCPU)
		if err != nil {
			return r, err
		}
		defer srv.stop() // after the echo's stop, deferred below
		args = append(args, "--to", srv.addr)
	}
	c, err := startChild(ctx, args...)
	if err != nil {
		return r, err
	}
	defer c.stop()
	addr, err := c.expect("ready", 10*time.Second)
	if err != nil {
		return r, err
	}
	var ping func(i uint64) (int64, bool, error) // one round trip: its time, false if lost
	switch transport {
	case "nats":
		// A reply that never comes fails the run once --max-time is well
		// past, as a raw echo that died would by closing its conn.
		p, err := newNATSPinger(addr, cfg.size, time.Now().Add(cfg.maxTime+time.Minute))
		if err != nil {
			return r, err
		}
		defer p.close()
		// The server outlives an echo that dies: close the connection
		// then, so that the wait for its reply ends at once.
		quit, watched := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(watched)
			select {
			case <-c.done:
				p.close()
			case <-quit:
			}
		}()
		defer func() { close(quit); <-watched }()
		ping = func(i uint64) (int64, bool, error) {
			d, ok, err := p.ping(i)
			if err != nil {
				select {
				case <-c.done:
					err = fmt.Errorf("%w (the echo child exited: %v)", err, c.exitErr)
				default:
				}
			}
			return d, ok, err
		}
	case "raw", "tcp-srv":
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return r, fmt.Errorf("dialling the raw echo at %s: %w", addr, err)
		}
		defer conn.Close()
		s, _ := newPayloadSeq(seqIDMeasured, cfg.size)
		frame, err := seq.AppendTCP(nil, s)
		if err != nil {
			return r, err
		}
		in := make([]byte, len(frame))
		off := len(frame) - cfg.size // the payload is the frame's end
		ping = func(i uint64) (int64, bool, error) {
			t0 := time.Now().UnixNano()
			binary.LittleEndian.PutUint64(frame[off:], uint64(t0))
			binary.LittleEndian.PutUint64(frame[off+8:], i)
			if _, err := conn.Write(frame); err != nil {
				return 0, false, err
			}
			if _, err := io.ReadFull(conn, in); err != nil {
				return 0, false, err
			}
			if n := binary.LittleEndian.Uint64(in[off+8:]); n != i {
				return 0, false, fmt.Errorf("raw echo returned round trip %d, want %d", n, i)
			}
			return time.Now().UnixNano() - t0, true, nil
		}
	case "tcp", "udp":
		// The Handler records when the reply arrived and wakes the sender;
		// a reply to an older (timed-out) round trip is ignored.
		var want atomic.Uint64
		var arrived atomic.Int64
		wake := make(chan struct{}, 1)
		opts := flow.Options{Name: "rtt", Handler: func(_ flow.Peer, s *seq.Sequence) {
			now := time.Now().UnixNano()
			if _, n, ok := payload(s); ok && n == want.Load() {
				arrived.Store(now)
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}}
		var f flow.Flow
		if transport == "tcp" {
			cl, err := flow.DialTCP(addr, opts)
			if err != nil {
				return r, err
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = cl.WaitConnected(wctx)
			cancel()
			if err != nil {
				cl.Close()
				return r, fmt.Errorf("connecting to the echo at %s: %w", addr, err)
			}
			f = cl
		} else {
			u, err := flow.NewUDP(flow.UDPConfig{Bind: "127.0.0.1:0", Destination: addr}, opts)
			if err != nil {
				return r, err
			}
			f = u
		}
		defer f.Close()
		s, buf := newPayloadSeq(seqIDMeasured, cfg.size)
		timeout := 5 * time.Second
		if transport == "udp" {
			timeout = cfg.udpTimeout
		}
		timer := time.NewTimer(time.Hour)
		ping = func(i uint64) (int64, bool, error) {
			want.Store(i)
			t0 := time.Now().UnixNano()
			binary.LittleEndian.PutUint64(buf, uint64(t0))
			binary.LittleEndian.PutUint64(buf[8:], i)
			if err := f.Send(s); err != nil {
				return 0, false, err
			}
			timer.Reset(timeout)
			select {
			case <-wake:
				timer.Stop()
				return arrived.Load() - t0, true, nil
			case <-timer.C:
				if transport == "udp" {
					return 0, false, nil
				}
				return 0, false, fmt.Errorf("no echo within %v", timeout)
			}
		}
	case "tcp-chained":
		return runChained(ctx, addr, cfg, r)
	default:
		return r, fmt.Errorf("unknown transport %q: tcp, udp, raw, tcp-srv, tcp-chained or nats", transport)
	}

	deadline := time.Now().Add(cfg.maxTime)
	for i := 0; i < cfg.warmup; i++ {
		if _, _, err := ping(uint64(i) + 1); err != nil {
			return r, fmt.Errorf("warm-up round trip %d: %w", i, err)
		}
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	t0 := time.Now()
	for i := 0; i < cfg.count; i++ {
		d, ok, err := ping(uint64(cfg.warmup+i) + 1)
		if err != nil {
			return r, fmt.Errorf("round trip %d: %w", i, err)
		}
		if !ok {
			r.lost++
		} else {
			h.Record(d)
		}
		if i&1023 == 0 && time.Now().After(deadline) {
			r.note = fmt.Sprintf("stopped at --max-time %v", cfg.maxTime)
			break
		}
	}
	r.elapsed = time.Since(t0)
	r.load = loadavg()
	runtime.ReadMemStats(&ms1)
	r.gcs = ms1.NumGC - ms0.NumGC
	r.gcPause = time.Duration(ms1.PauseTotalNs - ms0.PauseTotalNs)
	return r, nil
}

// runChained measures tcp-chained (see runRTT): the reply's Handler
// records the round trip and sends the next ping itself, on the flow's
// read loop, so that no other goroutine has to be woken between round
// trips. The time is from the Send call (its time is in the payload) to
// the Handler.
func runChained(ctx context.Context, addr string, cfg rttConfig, r result) (result, error) {
	total := cfg.warmup + cfg.count
	s, buf := newPayloadSeq(seqIDMeasured, cfg.size)
	done := make(chan error, 1)
	var cl *flow.TCPClient
	var ms0 runtime.MemStats
	var t0 time.Time
	deadline := time.Now().Add(cfg.maxTime)
	next := uint64(1) // the round trip awaited; only the read loop touches it after the first Send
	send := func(i uint64) error {
		binary.LittleEndian.PutUint64(buf, uint64(time.Now().UnixNano()))
		binary.LittleEndian.PutUint64(buf[8:], i)
		return cl.Send(s)
	}
	handler := func(_ flow.Peer, q *seq.Sequence) {
		now := time.Now().UnixNano()
		t, n, ok := payload(q)
		if !ok || n != next {
			return
		}
		if n > uint64(cfg.warmup) {
			r.h.Record(now - t)
		}
		switch {
		case n == uint64(total):
			done <- nil
			return
		case n == uint64(cfg.warmup):
			runtime.ReadMemStats(&ms0) // once, between warm-up and measurement
			t0 = time.Now()
		case n&1023 == 0 && time.Now().After(deadline):
			r.note = fmt.Sprintf("stopped at --max-time %v", cfg.maxTime)
			done <- nil
			return
		}
		next = n + 1
		if err := send(next); err != nil {
			done <- fmt.Errorf("round trip %d: %w", next, err)
		}
	}
	cl, err := flow.DialTCP(addr, flow.Options{Name: "rtt-chained", Handler: handler})
	if err != nil {
		return r, err
	}
	defer cl.Close()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = cl.WaitConnected(wctx)
	cancel()
	if err != nil {
		return r, fmt.Errorf("connecting to the echo at %s: %w", addr, err)
	}
	if cfg.warmup == 0 {
		runtime.ReadMemStats(&ms0)
		t0 = time.Now()
	}
	if err := send(next); err != nil {
		return r, err
	}
	// A reply that never comes stops the chain: the wait is bounded.
	select {
	case err = <-done:
	case <-time.After(cfg.maxTime + 10*time.Second):
		err = fmt.Errorf("the chain stopped: no echo after %d of %d round trips", r.h.Count(), cfg.count)
	}
	if err != nil {
		return r, err
	}
	r.elapsed = time.Since(t0)
	r.load = loadavg()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	r.gcs = ms1.NumGC - ms0.NumGC
	r.gcPause = time.Duration(ms1.PauseTotalNs - ms0.PauseTotalNs)
	return r, nil
}
