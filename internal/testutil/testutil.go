// Package testutil holds the helpers that the tests of every package
// share: WaitFor and WaitForf, which poll a condition with a deadline;
// Clock, a clock that tests move by hand; Discard and Logger, the loggers
// of the code under test; FreePort, for programs that need a fixed port;
// and IdleConns, which fills a listener's backlog. It imports nothing of
// ours, so any package's tests, flow's and seq's included, can use it. Fake
// flow peers are in the subpackage testpeer, which imports flow.
package testutil

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// WaitFor polls cond until it holds and fails the test if it does not
// within d, saying what it waited for ("the subscriber to connect"). The
// poll starts at 1 ms and backs off to 10 ms: a condition that holds soon
// is seen soon, a long wait does not spin on the shared cores.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// WaitForf is WaitFor whose failure message is built by msg once the
// wait has failed, when it can report the state that was not reached
// ("node b: 3 of 60 names; status ...").
func WaitForf(t testing.TB, d time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	if !poll(d, cond) {
		t.Fatalf("timed out after %v: %s", d, msg())
	}
}

// poll reports whether cond held within d.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
	return true
}

// Clock is a clock that only moves when a test moves it; inject its Now
// where the code under test takes a clock. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock showing start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock d forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set puts the clock at t, earlier or later: a replay sets it to each
// captured packet's time.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Discard returns a logger that drops everything: for code under test
// whose log lines the test does not look at.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Logger returns a logger for code under test: with -v its lines, from
// Debug up, go to t.Log (so they appear with the test that caused them);
// otherwise they are dropped.
func Logger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return Discard()
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tWriter writes each log line to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = tWriter{}

// FreePort returns a port that is free on 127.0.0.1 now, for network "tcp"
// or "udp": for a program whose flag takes a fixed port and not port 0
// (another process may take the port before the program binds it, so
// prefer port 0 where the program can say what it bound).
func FreePort(t testing.TB, network string) int {
	t.Helper()
	var (
		port int
		err  error
	)
	switch network {
	case "tcp":
		var l *net.TCPListener
		if l, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}); err == nil {
			port = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
	case "udp":
		var c *net.UDPConn
		if c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err == nil {
			port = c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
		}
	default:
		t.Fatalf("FreePort: network %q is neither tcp nor udp", network)
	}
	if err != nil {
		t.Fatalf("FreePort: %v", err)
	}
	return port
}

// IdleConns opens up to n TCP connections to addr that send nothing, until
// one fails to connect within 2 s (the listener's backlog is full: enough
// to hold a server's descriptors), and returns them; those the test has
// not closed are closed when it ends.
func IdleConns(t testing.TB, addr string, n int) []net.Conn {
	t.Helper()
	var idle []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			break
		}
		idle = append(idle, c)
	}
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	t.Logf("%d idle connections opened to %s", len(idle), addr)
	return idle
}
