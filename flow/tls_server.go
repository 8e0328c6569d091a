package flow

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/stk-go/stk/internal/ratelog"
	"github.com/stk-go/stk/seq"
)

// DefaultHandshakeTimeout bounds a TLS server's handshake with a new
// connection, so that a client that connects and sends nothing cannot hold
// a slot.
const DefaultHandshakeTimeout = 10 * time.Second

// TLSServer is a listening TCP data flow whose connections are TLS: STK TCP
// frames inside TLS. It does what a TCPServer does (fan-out encoded once,
// bounded per-connection queues, Options.SlowConsumer, MaxConns and
// MaxConnsPerIP, IdleTimeout and FrameTimeout, the same Stats) and its
// peers' Protocol is TCP, so code handling a Flow or a Peer need not know
// which it has.
//
// gnet's event loops cannot run TLS, so each connection here has a reader
// goroutine of its own reading through crypto/tls, plus the writer
// goroutine every connection has. That costs a goroutine stack per
// connection more than TCPServer: fine for name-service clients and
// subscribers across a network, not meant for tens of thousands of
// connections.
//
// A connection joins the server (Conns, Send, OnConnect) only once its
// handshake has succeeded; a failed handshake is logged (at most once a
// second) and counted in Stats.HandshakeErrors. A peer of a TLSServer is
// a TLSPeer: its ConnectionState gives the client certificate verified
// under mutual TLS.
type TLSServer struct {
	listener
	hsFailLog ratelog.Limiter // failed handshakes: one line a second

	mu        sync.Mutex
	conns     connList[*tlsConn]
	raw       map[net.Conn]struct{} // every accepted socket not yet closed, handshaking ones included
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // the accept loop and every connection's goroutines

	scratch *sync.Pool // encode buffers for fan-out
}

// TLSPeer is a Peer over TLS. Peers of a TLSServer are TLSPeers.
type TLSPeer interface {
	Peer
	// ConnectionState is the connection's TLS state after the handshake:
	// PeerCertificates holds the client's verified certificate under
	// mutual TLS.
	ConnectionState() tls.ConnectionState
}

// ListenTLS starts a TLS server flow on addr ("ip:port"; port 0 picks a
// free one) with the configuration opts.TLS, which must hold a certificate
// (Certificates or GetCertificate; NewServerTLS builds one from files).
func ListenTLS(addr string, opts Options) (*TLSServer, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("flow: TLS server address %q: %w (want ip:port)", addr, err)
	}
	if opts.TLS == nil || len(opts.TLS.Certificates) == 0 && opts.TLS.GetCertificate == nil && opts.TLS.GetConfigForClient == nil {
		return nil, fmt.Errorf("flow: TLS server on %s: Options.TLS holds no certificate (see NewServerTLS)", addr)
	}
	opts = opts.withDefaults()
	ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("flow: TLS server on %s: %w", addr, err)
	}
	s := &TLSServer{raw: map[net.Conn]struct{}{}, scratch: newScratch()}
	s.opts, s.log, s.ln, s.addr = opts, opts.Logger.With("flow", opts.Name, "proto", "tls"), ln, addrPortOf(ln.Addr())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.acceptLoop("TLS", s.serve)
	}()
	s.log.Debug("TLS server listening", "addr", s.addr)
	return s, nil
}

// serve starts a goroutine for an accepted connection (the accept loop's
// serve): it owns nc and its slot from here.
func (s *TLSServer) serve(nc *net.TCPConn, _ netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		nc.Close()
		return ErrClosed
	}
	s.raw[nc] = struct{}{}
	s.wg.Add(1)
	go s.serveConn(nc)
	return nil
}

// serveConn runs one connection: handshake, then reads until it ends.
func (s *TLSServer) serveConn(nc *net.TCPConn) {
	defer s.wg.Done()
	remote := addrPortOf(nc.RemoteAddr())
	defer func() {
		nc.Close()
		s.mu.Lock()
		delete(s.raw, nc)
		s.mu.Unlock()
		s.slots.release(remote.Addr())
	}()
	s.opts.tuneTCP(nc)
	tc := tls.Server(nc, s.opts.TLS)
	ctx, cancel := context.WithTimeout(context.Background(), DefaultHandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.ctr.handshakeErrs.Add(1)
		if !s.closed.Load() {
			s.hsFailLog.Warn(s.log, "TLS handshake failed, closing the connection", "peer", remote, "err", err)
		}
		return
	}
	c := &tlsConn{
		servedConn: newServedConn(&s.listener, nc.Close, addrPortOf(nc.LocalAddr()), remote),
		s:          s,
		tc:         tc,
		raw:        nc,
		state:      tc.ConnectionState(),
	}
	if !s.addConn(c) { // the server is closing
		return
	}
	go c.writeLoop()
	if s.opts.OnConnect != nil {
		s.opts.OnConnect(c)
	}
	err = c.readLoop()
	if p := c.closeErr.Load(); p != nil {
		err = *p
	} else if errors.Is(err, io.EOF) || s.closed.Load() {
		err = nil
	}
	c.finish(err)
}

// Protocol returns TCP: STK TCP frames, inside TLS.
func (s *TLSServer) Protocol() Protocol { return TCP }

// Conns returns the number of open connections (handshake done).
func (s *TLSServer) Conns() int { return len(s.conns.load()) }

// Peers returns the open connections; each is a TLSPeer.
func (s *TLSServer) Peers() []Peer {
	cs := s.conns.load()
	out := make([]Peer, len(cs))
	for i, c := range cs {
		out[i] = c
	}
	return out
}

// Send queues q to every open connection, encoding it once, as
// TCPServer.Send does.
func (s *TLSServer) Send(q *seq.Sequence) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return fanOut(s.conns.load(), q, s.opts.SlowConsumerWait, s.scratch)
}

// Close stops accepting connections, delivers what every connection has
// queued (waiting at most Options.CloseTimeout), then closes them all.
func (s *TLSServer) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *TLSServer) close() error {
	s.mu.Lock()
	s.closed.Store(true) // under mu: no connection is added after this
	s.mu.Unlock()
	s.ln.Close()
	deadline := time.Now().Add(s.opts.CloseTimeout)
	cs := s.conns.load()
	for _, c := range cs {
		c.queue.close()
	}
	for _, c := range cs {
		select {
		case <-c.writerDone:
		case <-time.After(time.Until(deadline)):
			c.raw.Close() // unblock a writer stuck on a peer that does not read
			<-c.writerDone
		}
	}
	s.mu.Lock()
	for nc := range s.raw { // ends every reader and handshake
		nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// addConn adds c unless the server is closing.
func (s *TLSServer) addConn(c *tlsConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	s.conns.add(c)
	s.ctr.conns.Add(1)
	return true
}

func (s *TLSServer) removeConn(c *tlsConn) bool {
	if !s.conns.remove(c) {
		return false
	}
	s.ctr.conns.Add(-1)
	return true
}

// tlsConn is one connection of a TLSServer: a TLSPeer.
type tlsConn struct {
	servedConn
	s     *TLSServer
	tc    *tls.Conn
	raw   *net.TCPConn // closed to break a read or a write at once
	state tls.ConnectionState
}

// ConnectionState is the connection's TLS state after the handshake.
func (c *tlsConn) ConnectionState() tls.ConnectionState { return c.state }

func (c *tlsConn) writeLoop() {
	defer close(c.writerDone)
	lost, err := c.queue.drain(c.tc, &c.s.ctr, nil)
	if err != nil && !c.finished.Load() {
		c.s.ctr.dropped.Add(uint64(lost))
		c.s.log.Debug("write failed, closing the connection", "peer", c.remote, "err", err)
		c.raw.Close()
		return
	}
	if err == nil && c.s.closed.Load() {
		c.tc.CloseWrite() // the server is closing and this one is drained: close_notify
	}
}

// readLoop decodes frames until the connection fails, enforcing
// Options.IdleTimeout and FrameTimeout with read deadlines (each
// connection has its goroutine, so no sweeper is needed).
func (c *tlsConn) readLoop() error {
	s := c.s
	fr := framer{maxSize: s.opts.MaxSequenceSize}
	deliver := func(q *seq.Sequence) {
		s.ctr.seqIn.Add(1)
		s.opts.Handler(c, q)
	}
	idle, frameT := s.opts.IdleTimeout, s.opts.FrameTimeout
	timed := idle > 0 || frameT > 0
	lastFrame, partialSince := time.Now(), time.Time{}
	buf := make([]byte, DefaultReadBufferSize)
	r, w := 0, 0
	for {
		buf, w = fr.room(buf, r, w)
		r = 0
		if timed {
			var dl time.Time
			if idle > 0 {
				dl = lastFrame.Add(idle)
			}
			if frameT > 0 && !partialSince.IsZero() && (dl.IsZero() || partialSince.Add(frameT).Before(dl)) {
				dl = partialSince.Add(frameT)
			}
			c.raw.SetReadDeadline(dl)
		}
		n, err := c.tc.Read(buf[w:])
		if n == 0 && err != nil {
			if timed && errors.Is(err, os.ErrDeadlineExceeded) && c.closeErr.CompareAndSwap(nil, &errTimedOut) {
				s.ctr.timedOut.Add(1)
				s.timeoutLog.Info(s.log, "closing a connection", "peer", c.remote, "reason", "no complete frame in time",
					"idle_timeout", idle, "frame_timeout", frameT)
			} else if w > r {
				s.log.Debug("peer disconnected in the middle of a frame", "peer", c.remote, "bytes", w-r)
			}
			return err
		}
		w += n
		s.ctr.bytesIn.Add(uint64(n))
		if !fr.ready(w - r) {
			if timed && partialSince.IsZero() {
				partialSince = time.Now()
			}
			continue
		}
		n, err = fr.consume(buf[r:w], deliver)
		r += n
		if err != nil {
			s.ctr.malformed.Add(1)
			s.log.Warn("closing a connection that sent an undecodable frame", "peer", c.remote, "err", err)
			c.closeErr.CompareAndSwap(nil, &err)
			return err
		}
		if timed {
			now := time.Now()
			if n > 0 {
				lastFrame = now
				partialSince = time.Time{}
			}
			if r < w && partialSince.IsZero() {
				partialSince = now // progress: the next frame's clock starts now
			}
		}
		if r == w {
			r, w = 0, 0
		}
	}
}

// finish releases the connection once its reader has ended: the writer
// stops, what it still held is counted as dropped.
func (c *tlsConn) finish(err error) {
	if c.finished.Swap(true) {
		return
	}
	c.queue.close()
	c.raw.Close()
	<-c.writerDone
	if n := c.queue.discard(); n > 0 {
		c.s.ctr.dropped.Add(uint64(n))
	}
	if c.s.removeConn(c) && c.s.opts.OnDisconnect != nil {
		c.s.opts.OnDisconnect(c, err)
	}
}
