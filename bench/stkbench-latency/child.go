package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
)

// The payload of every measured sequence: one element of --size bytes whose
// first 8 are a time in unix ns (the send time for round trips, the
// intended send time one-way) and next 8 a counter.
const (
	seqIDWarmup   = 0x1a7e0001
	seqIDMeasured = 0x1a7e0002
)

func newPayloadSeq(id uint64, size int) (*seq.Sequence, []byte) {
	s := seq.New(id, "", seq.TypeData)
	buf := make([]byte, size)
	s.Add(seq.UTExampleData, buf)
	return s, buf
}

func payload(s *seq.Sequence) (t int64, n uint64, ok bool) {
	if len(s.Elements) != 1 || len(s.Elements[0].Data) < 16 {
		return 0, 0, false
	}
	d := s.Elements[0].Data
	return int64(binary.LittleEndian.Uint64(d)), binary.LittleEndian.Uint64(d[8:]), true
}

// child is a re-executed copy of this program in a role: an echo server or
// a publisher. It says "ready ADDR" on its stdout when it can be used and
// ends with a "stats JSON" line; it stops when its stdin closes, so a child
// never outlives its parent.
type child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string
	done    chan struct{} // closed when the child has exited; then exitErr is set
	exitErr error
}

// childCPU is the CPU children are pinned to (--pin), or -1.
var childCPU = -1

func startChild(ctx context.Context, args ...string) (*child, error) {
	return startChildOn(ctx, childCPU, args...)
}

// startChildOn starts a child pinned to cpu (none if cpu < 0).
func startChildOn(ctx context.Context, cpu int, args ...string) (*child, error) {
	if cpu >= 0 {
		args = append(args, "--cpu", fmt.Sprint(cpu))
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program to re-execute: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s %s: %w", exe, strings.Join(args, " "), err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 16), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.exitErr = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// expect waits for the child's next stdout line starting with prefix and
// returns the rest.
func (c *child) expect(prefix string, within time.Duration) (string, error) {
	t := time.NewTimer(within)
	defer t.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				<-c.done
				return "", fmt.Errorf("child %s exited before saying %q: %v", c.cmd.Args[1:], prefix, c.exitErr)
			}
			if rest, found := strings.CutPrefix(l, prefix+" "); found {
				return rest, nil
			}
		case <-t.C:
			return "", fmt.Errorf("child %s did not say %q within %v", c.cmd.Args[1:], prefix, within)
		}
	}
}

// stop closes the child's stdin and waits for it to exit, killing it after
// a few seconds.
func (c *child) stop() {
	c.stdin.Close()
	go func() { // its stdout must be read to its end for it to be waited for
		for range c.lines {
		}
	}()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// waitStdin blocks until the parent closes our stdin (or dies).
func waitStdin() { io.Copy(io.Discard, os.Stdin) }

// runEcho serves round trips: every sequence (or, raw, every frame of size
// bytes; nats, every request to the nats-server at to) goes back to its
// sender at once.
func runEcho(transport, to string, size int) error {
	switch transport {
	case "nats":
		stop, err := startNATSEcho(to)
		if err != nil {
			return err
		}
		defer stop()
		fmt.Println("ready", to)
	case "tcp":
		srv, err := flow.ListenTCP("127.0.0.1:0", flow.Options{
			Handler: func(from flow.Peer, s *seq.Sequence) { from.Send(s) },
			Name:    "echo",
		})
		if err != nil {
			return err
		}
		defer srv.Close()
		fmt.Println("ready", srv.LocalAddr())
	case "udp":
		u, err := flow.NewUDP(flow.UDPConfig{Bind: "127.0.0.1:0"}, flow.Options{
			Handler: func(from flow.Peer, s *seq.Sequence) { from.Send(s) },
			Name:    "echo",
		})
		if err != nil {
			return err
		}
		defer u.Close()
		fmt.Println("ready", u.LocalAddr())
	case "raw":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					frame := make([]byte, tcpFrameLen(size))
					for {
						if _, err := io.ReadFull(c, frame); err != nil {
							return
						}
						if _, err := c.Write(frame); err != nil {
							return
						}
					}
				}()
			}
		}()
		fmt.Println("ready", ln.Addr())
	default:
		return fmt.Errorf("unknown transport %q: tcp, udp, raw or nats", transport)
	}
	waitStdin()
	return nil
}

// tcpFrameLen is the size of the STK TCP frame of one payload sequence, so
// that the raw ping-pong moves the same bytes as the TCP flow.
func tcpFrameLen(size int) int {
	s, _ := newPayloadSeq(seqIDMeasured, size)
	return seq.TCPSize(s)
}

// pubStats is what a publisher child reports at the end.
type pubStats struct {
	Sent      uint64  `json:"sent"`     // measured sequences sent
	Late      uint64  `json:"late"`     // of them, sent more than 1 ms after their intended time
	MaxLateNS int64   `json:"max_late"` // the latest send, behind its intended time
	Achieved  float64 `json:"achieved"` // measured sequences per second, first intended to last sent
	Dropped   uint64  `json:"dropped"`  // the flow's Stats.Dropped
	GCs       uint32  `json:"gcs"`      // GC cycles during the measured part
	GCPauseNS uint64  `json:"gc_pause"` // their total stop-the-world pause
	// How late the publisher itself sent, behind the intended time: its
	// own scheduling, which the receive latency includes.
	SendP50  int64  `json:"send_p50"`
	SendP99  int64  `json:"send_p99"`
	SendP999 int64  `json:"send_p999"`
	SendErrs uint64 `json:"send_errs"` // Send calls that failed
	FirstErr string `json:"first_err"` // the first failure, if any
	GaveUp   bool   `json:"gave_up"`   // stopped at --give-up before sending them all
}

// runPub publishes warmup then count sequences at rate per second, each
// at its intended time start + i/rate, with that time in the payload.
// For tcp it listens and waits for one subscriber; for udp it sends to to.
//
// A publisher that cannot keep up would take ever longer to send count
// sequences: it stops after giveUp (if set) and says so (GaveUp).
func runPub(transport, to string, size int, rate float64, warmup, count int, giveUp time.Duration, pace pacer) error {
	var f sender
	switch transport {
	case "raw":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		fmt.Println("ready", ln.Addr())
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
		conn, err := ln.Accept()
		ln.Close()
		if err != nil {
			return fmt.Errorf("no subscriber connected within 10 s: %w", err)
		}
		f = &rawSender{conn: conn}
	case "tcp":
		srv, err := flow.ListenTCP("127.0.0.1:0", flow.Options{Name: "pub"})
		if err != nil {
			return err
		}
		fmt.Println("ready", srv.LocalAddr())
		deadline := time.Now().Add(10 * time.Second)
		for srv.Conns() < 1 {
			if time.Now().After(deadline) {
				srv.Close()
				return errors.New("no subscriber connected within 10 s")
			}
			time.Sleep(time.Millisecond)
		}
		f = srv
	case "udp":
		u, err := flow.NewUDP(flow.UDPConfig{Destination: to}, flow.Options{Name: "pub", SendBuffer: 4 << 20})
		if err != nil {
			return err
		}
		fmt.Println("ready", u.LocalAddr())
		f = u
	default:
		return fmt.Errorf("unknown transport %q: tcp or udp", transport)
	}
	var st pubStats
	lateness := NewHist()
	defer pace.start()()
	s, buf := newPayloadSeq(seqIDWarmup, size)
	period := 1e9 / rate
	var ms0, ms1 runtime.MemStats
	start := time.Now().UnixNano() + int64(10*time.Millisecond)
	var lastSent int64
	for i := 0; i < warmup+count; i++ {
		if i == warmup {
			s.ID = seqIDMeasured
			runtime.ReadMemStats(&ms0)
		}
		due := start + int64(float64(i)*period)
		now := pace.until(due)
		if giveUp > 0 && now-start > int64(giveUp) {
			st.GaveUp = true
			break
		}
		binary.LittleEndian.PutUint64(buf, uint64(due))
		binary.LittleEndian.PutUint64(buf[8:], uint64(i))
		if err := f.Send(s); err != nil {
			st.SendErrs++
			if st.FirstErr == "" {
				st.FirstErr = err.Error()
			}
		}
		if i >= warmup {
			st.Sent++
			late := now - due
			lateness.Record(late)
			st.MaxLateNS = max(st.MaxLateNS, late)
			if late > int64(time.Millisecond) {
				st.Late++
			}
			lastSent = time.Now().UnixNano()
		}
	}
	runtime.ReadMemStats(&ms1)
	first := start + int64(float64(warmup)*period)
	if span := lastSent - first; span > 0 && st.Sent > 1 {
		// count-1 periods from the first intended time to the last send.
		st.Achieved = float64(st.Sent-1) / (float64(span) / 1e9)
	}
	st.SendP50, st.SendP99, st.SendP999 = lateness.Quantile(0.5), lateness.Quantile(0.99), lateness.Quantile(0.999)
	st.GCs = ms1.NumGC - ms0.NumGC
	st.GCPauseNS = ms1.PauseTotalNs - ms0.PauseTotalNs
	f.Close() // delivers what was queued
	st.Dropped = f.Stats().Dropped
	j, _ := json.Marshal(st)
	fmt.Println("stats", string(j))
	waitStdin()
	return nil
}

// Pacing modes (--pace): how the publisher waits for a send's intended
// time once it is closer than --spin.
const (
	// paceSpin: one locked thread spins without yielding (a Gosched on a
	// locked thread is a thread switch, ~15 µs here). Precise, but on 2
	// cores it keeps one busy, and the flow's writer and the subscriber
	// share the other.
	paceSpin = "spin"
	// paceGosched: spins calling runtime.Gosched, not locked to a thread,
	// so that the flow's writer goroutine runs on the publisher's own P
	// between sends instead of waking another thread.
	paceGosched = "gosched"
	// paceYield: as paceGosched, and sched_yield(2) on every turn, so that
	// another process waiting for this core (the subscriber) runs too.
	paceYield = "yield"
)

// pacer waits for intended send times: it sleeps in nanosleep(2) until
// spin before one, then waits as its mode says. Not time.Sleep: the Go
// runtime waits for timers in epoll with millisecond resolution, so a
// sleep under 1 ms overshoots by about 1 ms; nanosleep overshoots by the
// timer slack (lowered to 1 ns) and a wake-up (~12 µs p50 here).
type pacer struct {
	mode string
	spin time.Duration
}

func parsePace(mode string, spin time.Duration) (pacer, error) {
	switch mode {
	case paceSpin, paceGosched, paceYield:
		return pacer{mode: mode, spin: spin}, nil
	}
	return pacer{}, fmt.Errorf("--pace %q: spin, gosched or yield", mode)
}

// start prepares the sending goroutine and returns what undoes it. spin
// keeps one thread, whose timer slack (how late the kernel may wake a
// sleeper to batch wake-ups, 50 µs by default) is made 1 ns once; the
// other modes move between threads and lower it before each sleep.
func (p pacer) start() (stop func()) {
	if p.mode != paceSpin {
		return func() {}
	}
	runtime.LockOSThread()
	lowerTimerSlack()
	return runtime.UnlockOSThread
}

var slackWarned bool

// lowerTimerSlack makes this thread's timer slack 1 ns, so that nanosleep
// returns close to when it was asked.
func lowerTimerSlack() {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 1, 0); errno != 0 && !slackWarned {
		slackWarned = true
		slog.Warn("cannot lower the timer slack; sends may be up to 50 µs late", "err", errno)
	}
}

const prSetTimerSlack = 29 // PR_SET_TIMERSLACK of prctl(2)

// until returns at (or after) the unix-ns time due, and the time it got to.
func (p pacer) until(due int64) int64 {
	// spin sleeps only when the sleep is worth its ~20 µs overshoot; the
	// yielding modes sleep whenever due is further than spin.
	minSleep := int64(p.spin)
	if p.mode == paceSpin {
		minSleep += int64(20 * time.Microsecond)
	}
	for {
		now := time.Now().UnixNano()
		d := due - now
		switch {
		case d <= 0:
			return now
		case d > minSleep:
			if p.mode != paceSpin {
				lowerTimerSlack() // whichever thread this is
			}
			ts := syscall.NsecToTimespec(d - int64(p.spin))
			syscall.Nanosleep(&ts, nil)
			continue
		}
		switch p.mode {
		case paceGosched:
			runtime.Gosched()
		case paceYield:
			runtime.Gosched()
			syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
		}
	}
}

// sender is what the publisher needs of a flow, so that a plain net.Conn
// can stand in for one (the raw floor).
type sender interface {
	Send(s *seq.Sequence) error
	Close() error
	Stats() flow.Stats
}

// rawSender writes each sequence's TCP frame with one Write, as a
// ping-pong or a naive publisher in plain Go would.
type rawSender struct {
	conn net.Conn
	buf  []byte
}

func (r *rawSender) Send(s *seq.Sequence) error {
	var err error
	if r.buf, err = seq.AppendTCP(r.buf[:0], s); err != nil {
		return err
	}
	_, err = r.conn.Write(r.buf)
	return err
}

func (r *rawSender) Close() error      { return r.conn.Close() }
func (r *rawSender) Stats() flow.Stats { return flow.Stats{} }
