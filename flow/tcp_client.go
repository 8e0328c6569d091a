package flow

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/internal/ratelog"
	"github.com/stk-go/stk/seq"
)

// TCPClient is a TCP data flow that connects to a server and keeps
// reconnecting, with capped exponential back-off and jitter, whenever the
// connection fails (the C library retries every 5 ms instead).
//
// One writer goroutine writes everything queued in one system call; one
// reader goroutine decodes frames and calls Options.Handler directly.
// Sequences sent while disconnected wait in the queue (bounded by
// Options.QueueBytes) and go out when the connection is back; a batch that
// was being written when a connection failed is lost and counted as dropped.
type TCPClient struct {
	opts Options
	log  *slog.Logger
	addr string
	ctr  counters

	queue *outQueue

	mu        sync.Mutex
	conn      net.Conn
	peer      *clientPeer
	up        chan struct{} // closed while connected; replaced on disconnect
	connected atomic.Bool
	local     atomic.Pointer[netip.AddrPort]

	closed   atomic.Bool
	closing  chan struct{} // closed by Close
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	everConn bool
	dropLog  ratelog.Limiter       // "queue full, dropping": one line a second
	dialErr  atomic.Pointer[error] // the last failed attempt's, until a connection succeeds
	tlsCfg   *tls.Config           // opts.TLS with ServerName filled; nil for plain TCP
}

// DialTCP starts a client flow to addr ("ip:port"). It returns at once; the
// connection is made in the background (see WaitConnected, and
// Options.OnConnect which runs on every connection and reconnection).
// With Options.TLS set, each connection is a TLS one (to a ListenTLS
// server); a failed handshake (an untrusted certificate, say) is retried
// like a refused connection, logged as a warning and given by DialError.
func DialTCP(addr string, opts Options) (*TCPClient, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("flow: TCP client address %q: %w (want ip:port)", addr, err)
	}
	var tlsCfg *tls.Config
	if opts.TLS != nil {
		tlsCfg = opts.TLS.Clone()
		if tlsCfg.ServerName == "" { // verify the server's certificate against the IP dialed
			tlsCfg.ServerName = ap.Addr().String()
		}
	}
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &TCPClient{
		opts:    opts,
		log:     opts.Logger.With("flow", opts.Name, "proto", "tcp", "server", addr),
		addr:    addr,
		queue:   newOutQueue(opts.QueueBytes),
		up:      make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		closing: make(chan struct{}),
		tlsCfg:  tlsCfg,
	}
	if tlsCfg != nil {
		c.log = c.log.With("tls", true)
	}
	go c.run()
	return c, nil
}

// DialError returns why the last connection attempt failed (refused,
// timed out, TLS handshake failed), or nil once a connection succeeded.
// Over TLS a connection has succeeded once the server sent something: under
// TLS 1.3 the server refuses a client certificate after the client's side
// of the handshake is done, so until then the last refusal still stands.
func (c *TCPClient) DialError() error {
	if p := c.dialErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Connected reports whether the client has a connection now.
func (c *TCPClient) Connected() bool { return c.connected.Load() }

// WaitConnected waits until the client is connected or ctx ends.
func (c *TCPClient) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		up := c.up
		c.mu.Unlock()
		if c.closed.Load() {
			return ErrClosed
		}
		select {
		case <-up:
			if c.connected.Load() {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return ErrClosed
		}
	}
}

// LocalAddr returns the local address of the current connection, or the
// zero AddrPort while disconnected.
func (c *TCPClient) LocalAddr() netip.AddrPort {
	if p := c.local.Load(); p != nil {
		return *p
	}
	return netip.AddrPort{}
}

// Protocol returns TCP.
func (c *TCPClient) Protocol() Protocol { return TCP }

// Stats returns the client's counters.
func (c *TCPClient) Stats() Stats { return c.ctr.snapshot() }

// Send queues q for the server. While disconnected, sequences wait in the
// queue. When the queue is full Send waits up to Options.SlowConsumerWait
// for room, then returns ErrQueueFull (policy Drop, or no connection) or
// disconnects and returns ErrSlowConsumer (policy Disconnect: a server that
// does not read is as stuck as a client that does not). q may be reused
// when Send returns.
func (c *TCPClient) Send(q *seq.Sequence) error {
	if c.closed.Load() {
		return ErrClosed
	}
	r, err := c.queue.pushEncode(q, seq.TCPSize(q), c.opts.SlowConsumerWait)
	if err != nil {
		return err
	}
	switch r {
	case pushClosed:
		return ErrClosed
	case pushFull:
		c.ctr.dropped.Add(1)
		if c.opts.SlowConsumer == Disconnect && c.connected.Load() {
			c.log.Warn("server too slow, reconnecting", "queue_bytes", c.opts.QueueBytes)
			c.ctr.slow.Add(1)
			c.dropConn()
			c.ctr.dropped.Add(uint64(c.queue.discard()))
			return ErrSlowConsumer
		}
		c.dropLog.Warn(c.log, "outbound queue full, dropping sequences", "connected", c.connected.Load(), "queue_bytes", c.opts.QueueBytes)
		return ErrQueueFull
	}
	return nil
}

// Close delivers what is queued if connected (waiting at most
// Options.CloseTimeout), then closes the connection and stops reconnecting.
func (c *TCPClient) Close() error {
	if c.closed.Swap(true) {
		<-c.done
		return nil
	}
	c.queue.close()
	close(c.closing)
	select {
	case <-c.done: // the writer drained the queue and the run loop ended
	case <-time.After(c.opts.CloseTimeout):
		c.cancel()
		c.dropConn()
		<-c.done
	}
	c.cancel()
	if n := c.queue.discard(); n > 0 {
		c.ctr.dropped.Add(uint64(n))
	}
	return nil
}

// dropConn closes the current connection; the run loop reconnects.
func (c *TCPClient) dropConn() {
	c.mu.Lock()
	if c.conn != nil {
		c.conn.Close()
	}
	c.mu.Unlock()
}

func (c *TCPClient) run() {
	defer close(c.done)
	backoff := c.opts.ReconnectMin
	closing := c.closing
	for {
		if c.queue.finished() {
			return // closed with nothing left to deliver
		}
		conn, err := c.dial()
		if err == nil {
			if c.tlsCfg == nil {
				c.dialErr.Store(nil)
			} // else once the server sends something (readLoop): until then a TLS 1.3 refusal may still come
			clean, serr := c.serve(conn)
			if clean || c.closed.Load() {
				return
			}
			if !isRemoteAlert(serr) {
				backoff = c.opts.ReconnectMin
				continue
			}
			// Under TLS 1.3 the server checks a client's certificate after
			// the client's handshake is done: its refusal arrives as an
			// alert on the first read. That is a failed handshake, to back
			// off from like one, not a connection that worked.
			err = &handshakeError{serr}
		}
		if c.ctx.Err() != nil {
			return
		}
		wait := jitter(backoff)
		if prev := c.dialErr.Swap(&err); isHandshakeErr(err) && (prev == nil || (*prev).Error() != err.Error()) {
			// A configuration problem, not a server that is down: say so once per error.
			c.log.Warn("TLS handshake with the server failed, retrying", "err", err, "in", wait)
		} else {
			c.log.Debug("connect failed, retrying", "err", err, "in", wait)
		}
		select {
		case <-time.After(wait):
		case <-closing:
			closing = nil // look at the queue once more, then keep trying until CloseTimeout
		case <-c.ctx.Done():
			return
		}
		backoff = min(2*backoff, c.opts.ReconnectMax)
	}
}

// isRemoteAlert reports whether err is a TLS alert the server sent.
func isRemoteAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

func jitter(d time.Duration) time.Duration {
	return d - d/5 + time.Duration(rand.Int64N(int64(d)/5*2+1))
}

func (c *TCPClient) dial() (net.Conn, error) {
	d := net.Dialer{Timeout: c.opts.DialTimeout}
	ctx := c.ctx
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	tc := conn.(*net.TCPConn)
	c.opts.tuneTCP(tc)
	if c.tlsCfg == nil {
		return conn, nil
	}
	tc2 := tls.Client(conn, c.tlsCfg)
	hctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	if err := tc2.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, &handshakeError{err}
	}
	return tc2, nil
}

// handshakeError marks a failed TLS handshake, as opposed to a failed
// TCP connect.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// IsHandshakeError reports whether err (a TCPClient's DialError, say) is a
// failed TLS handshake: the server's certificate not trusted, or this
// client's certificate refused (under TLS 1.3 seen just after the
// handshake, and handled as part of it). Such a failure is a configuration
// to fix, not a server that is down.
func IsHandshakeError(err error) bool { return isHandshakeErr(err) }

func isHandshakeErr(err error) bool {
	var h *handshakeError
	return errors.As(err, &h)
}

// serve runs one connection until it fails or the client is closed and its
// queue drained (clean).
func (c *TCPClient) serve(conn net.Conn) (clean bool, err error) {
	local := addrPortOf(conn.LocalAddr())
	p := &clientPeer{c: c, id: nextPeerID(), local: local, remote: addrPortOf(conn.RemoteAddr())}
	down := make(chan struct{})
	c.mu.Lock()
	c.conn, c.peer = conn, p
	c.local.Store(&local)
	c.connected.Store(true)
	close(c.up)
	if c.everConn {
		c.ctr.reconn.Add(1)
	}
	c.everConn = true
	c.mu.Unlock()
	c.ctr.conns.Add(1)
	c.log.Debug("connected", "local", local)
	if c.opts.OnConnect != nil {
		c.opts.OnConnect(p)
	}

	readErr := make(chan error, 1)
	go func() {
		err := c.readLoop(conn, p)
		close(down)
		readErr <- err
	}()
	c.queue.attachConn(conn, &c.ctr)
	lost, werr := c.queue.drain(conn, &c.ctr, down)
	// From here on sequences wait for the next connection; the end of a
	// frame written in part to this one is lost with it.
	lost += c.queue.detach()
	if werr == nil && c.queue.finished() && c.ctx.Err() == nil {
		// Closed and drained: say goodbye and let the reader see EOF.
		conn.(interface{ CloseWrite() error }).CloseWrite() // TLS: close_notify, then EOF
		select {
		case <-down:
		case <-time.After(c.opts.CloseTimeout):
		}
		clean = true
	}
	c.ctr.dropped.Add(uint64(lost))
	conn.Close()
	err = <-readErr
	if werr != nil {
		err = werr
	}

	c.mu.Lock()
	c.conn, c.peer = nil, nil
	c.local.Store(nil)
	c.connected.Store(false)
	c.up = make(chan struct{})
	c.mu.Unlock()
	c.ctr.conns.Add(-1)
	if clean || c.closed.Load() {
		err = nil
	} else if !isRemoteAlert(err) { // a refused handshake: run warns
		c.log.Info("connection lost, reconnecting", "err", err)
	}
	if c.opts.OnDisconnect != nil {
		c.opts.OnDisconnect(p, err)
	}
	return clean, err
}

// readLoop decodes frames from conn until it fails.
func (c *TCPClient) readLoop(conn net.Conn, p *clientPeer) error {
	fr := framer{maxSize: c.opts.MaxSequenceSize}
	deliver := func(q *seq.Sequence) {
		c.ctr.seqIn.Add(1)
		c.opts.Handler(p, q)
	}
	buf := make([]byte, DefaultReadBufferSize)
	r, w := 0, 0
	for {
		buf, w = fr.room(buf, r, w)
		r = 0
		n, err := conn.Read(buf[w:])
		if n == 0 && err != nil {
			if w > r {
				c.log.Debug("server disconnected in the middle of a frame", "bytes", w-r, "err", err)
			}
			return err
		}
		if c.tlsCfg != nil && c.dialErr.Load() != nil {
			c.dialErr.Store(nil) // the server took this certificate
		}
		w += n
		c.ctr.bytesIn.Add(uint64(n))
		if !fr.ready(w - r) {
			continue
		}
		c.queue.received()
		n, err = fr.consume(buf[r:w], deliver)
		r += n
		if err != nil {
			c.ctr.malformed.Add(1)
			c.log.Warn("server sent an undecodable frame, reconnecting", "err", err)
			return err
		}
		if r == w {
			r, w = 0, 0
		}
	}
}

// clientPeer is the server end of one client connection.
type clientPeer struct {
	c             *TCPClient
	id            uint64
	local, remote netip.AddrPort
}

func (p *clientPeer) ID() uint64                 { return p.id }
func (p *clientPeer) RemoteAddr() netip.AddrPort { return p.remote }
func (p *clientPeer) LocalAddr() netip.AddrPort  { return p.local }
func (p *clientPeer) Protocol() Protocol         { return TCP }
func (p *clientPeer) Send(q *seq.Sequence) error { return p.c.Send(q) }

// Close drops this connection; the client reconnects.
func (p *clientPeer) Close() error {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	if p.c.peer == p && p.c.conn != nil {
		return p.c.conn.Close()
	}
	return nil
}
