package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// natsServer is a nats-server child process listening on 127.0.0.1.
type natsServer struct {
	cmd      *exec.Cmd
	addr     string
	done     chan struct{} // closed when it has exited; then exitErr is set
	exitErr  error
	stderr   *tailBuffer
	stopOnce sync.Once
}

// errNATSExited says the server exited while starting (its port may have
// been taken between our probe and its bind): worth another port.
var errNATSExited = errors.New("nats-server exited while starting")

// startNATSServer starts the nats-server at path on a free port of
// 127.0.0.1, pinned to cpu with GOMAXPROCS 1 as the other children under
// --pin (unpinned if cpu < 0), and waits until it answers a connection
// with INFO. The caller must stop it.
func startNATSServer(ctx context.Context, path string, cpu int) (*natsServer, error) {
	var err error
	for range 3 {
		var s *natsServer
		if s, err = tryNATSServer(ctx, path, cpu); err == nil {
			return s, nil
		}
		if !errors.Is(err, errNATSExited) {
			break
		}
	}
	return nil, err
}

// tryNATSServer starts nats-server once, on a port that was free a moment
// ago: the server has no way to tell its parent a port it picked other
// than its log, which a free port we choose spares us parsing.
func tryNATSServer(ctx context.Context, path string, cpu int) (*natsServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("finding a free port for nats-server: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &natsServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan struct{}),
		stderr: &tailBuffer{max: 4 << 10}}
	// Its log goes to stderr: kept (the end of it) to explain a failure,
	// not printed among the figures.
	s.cmd = exec.CommandContext(ctx, path, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	s.cmd.Stderr = s.stderr
	s.cmd.Stdout = s.stderr
	if cpu >= 0 {
		s.cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	}
	if err := startOnCPU(s.cmd, cpu); err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(10 * time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls the server's port until it sends INFO, the server exits
// or within has passed.
func (s *natsServer) waitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("%w on %s (%v); its log ends:\n%s", errNATSExited, s.addr, s.exitErr, s.stderr)
		default:
		}
		if c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond); err == nil {
			c.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 5)
			_, err := io.ReadFull(c, buf)
			c.Close()
			if err == nil && string(buf) == "INFO " {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats-server on %s did not accept connections within %v; its log ends:\n%s", s.addr, within, s.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop kills the server and waits for it to exit: nothing of it stays.
func (s *natsServer) stop() {
	s.stopOnce.Do(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

// Write appends p, dropping what is older than the last max bytes.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

// String returns what is kept, trimmed.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}
