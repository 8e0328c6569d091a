package flow

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/stk-go/stk/seq"
)

// TCPServer is a listening TCP data flow. Connections are read on gnet event
// loops (one per CPU by default); each connection's frames are decoded in
// the loop and handed to Options.Handler. Send fans a sequence out to every
// connection, encoding it once.
//
// Connections are accepted in Go, not by gnet's acceptor: gnet's acceptor
// stops for good at the first accept error other than EAGAIN, so one burst
// of connections beyond the descriptor limit (EMFILE) would kill the
// listener while the port still looked open. The accept loop here backs off
// and retries, as net/http's Serve does, and hands each connection to the
// event loops.
//
// Writes do not go through gnet: each connection has a writer goroutine on a
// duplicate of its socket, fed by a bounded queue. gnet's own output buffer
// has no bound and no drained notification, so it could not enforce
// Options.QueueBytes; the writer can, and it writes everything queued in one
// system call. The duplicate is kept out of Go's network poller until a
// write has to wait for room (sockWriter): registered, it would wake the
// runtime's poller on every sequence the event loop reads.
type TCPServer struct {
	listener
	loops *gnet.Client // the event loops connections are enrolled on

	sweepStop, sweepDone chan struct{} // the timeout sweeper; nil without timeouts

	conns      connList[*serverConn]
	closeOnce  sync.Once
	closeErr   error
	acceptDone chan struct{} // the accept loop returned

	scratch *sync.Pool // encode buffers for fan-out
}

// ListenTCP starts a TCP server flow on addr ("ip:port"; port 0 picks a free
// one, see LocalAddr).
func ListenTCP(addr string, opts Options) (*TCPServer, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("flow: TCP server address %q: %w (want ip:port)", addr, err)
	}
	if opts.TLS != nil {
		return nil, fmt.Errorf("flow: TCP server on %s: Options.TLS is set: use ListenTLS for a TLS server", addr)
	}
	opts = opts.withDefaults()
	s := &TCPServer{acceptDone: make(chan struct{}), scratch: newScratch()}
	s.opts, s.log = opts, opts.Logger.With("flow", opts.Name, "proto", "tcp")
	if opts.IdleTimeout > 0 || opts.FrameTimeout > 0 { // before any event loop reads them
		s.sweepStop, s.sweepDone = make(chan struct{}), make(chan struct{})
	}
	gopts := []gnet.Option{
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{s.log, &s.closed}),
		gnet.WithReadBufferCap(256 << 10),
	}
	if opts.Nagle {
		gopts = append(gopts, gnet.WithTCPNoDelay(gnet.TCPDelay))
	}
	if opts.EventLoops > 0 {
		gopts = append(gopts, gnet.WithNumEventLoop(opts.EventLoops))
	} else {
		gopts = append(gopts, gnet.WithMulticore(true))
	}
	if opts.SendBuffer > 0 {
		gopts = append(gopts, gnet.WithSocketSendBuffer(opts.SendBuffer))
	}
	if opts.ReceiveBuffer > 0 {
		gopts = append(gopts, gnet.WithSocketRecvBuffer(opts.ReceiveBuffer))
	}
	// Go's listeners set SO_REUSEADDR, so a restarted server binds at once
	// despite connections of its previous life in TIME_WAIT.
	ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("flow: TCP server on %s: %w", addr, err)
	}
	s.ln = ln
	s.addr = addrPortOf(ln.Addr())
	if s.loops, err = gnet.NewClient(&serverEvents{s: s}, gopts...); err == nil {
		err = s.loops.Start()
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("flow: TCP server on %s: starting the event loops: %w", addr, err)
	}
	go func() {
		defer close(s.acceptDone)
		s.acceptLoop("TCP", func(nc *net.TCPConn, _ netip.Addr) error {
			_, err := s.loops.Enroll(nc) // closes nc; OnOpen takes the slot's ownership
			return err
		})
	}()
	if s.sweepStop != nil {
		go s.sweepTimeouts()
	}
	s.log.Debug("TCP server listening", "addr", s.addr)
	return s, nil
}

// Protocol returns TCP.
func (s *TCPServer) Protocol() Protocol { return TCP }

// Conns returns the number of open connections.
func (s *TCPServer) Conns() int { return len(s.conns.load()) }

// Peers returns the open connections.
func (s *TCPServer) Peers() []Peer {
	cs := s.conns.load()
	out := make([]Peer, len(cs))
	for i, c := range cs {
		out[i] = c
	}
	return out
}

// Send queues q to every open connection, encoding it once. A connection
// whose queue is full is handled by Options.SlowConsumer and does not hold
// up the others: Send waits up to SlowConsumerWait for room, then
// disconnects it or drops q for it, and still returns nil (Stats count
// SlowConsumers and Dropped; OnDisconnect is told ErrSlowConsumer). With no
// connection open, the sequence goes nowhere and Send returns nil, as in
// STK. q may be reused when Send returns.
func (s *TCPServer) Send(q *seq.Sequence) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return fanOut(s.conns.load(), q, s.opts.SlowConsumerWait, s.scratch)
}

// Close stops accepting connections, delivers what every connection has
// queued (waiting at most Options.CloseTimeout), then closes them all.
func (s *TCPServer) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *TCPServer) close() error {
	s.closed.Store(true)
	s.ln.Close()
	<-s.acceptDone
	if s.sweepStop != nil {
		close(s.sweepStop)
		<-s.sweepDone
	}
	deadline := time.Now().Add(s.opts.CloseTimeout)
	for _, c := range s.conns.load() {
		c.queue.close()
	}
	for _, c := range s.conns.load() {
		select {
		case <-c.writerDone:
		case <-time.After(time.Until(deadline)):
			c.wconn.Close() // unblock a writer stuck on a peer that does not read
			<-c.writerDone
		}
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.loops.Stop() }()
	var err error
	select {
	case <-stopped:
	case <-time.After(time.Until(deadline) + time.Second):
		err = fmt.Errorf("flow: TCP server on %s: the event loops did not stop within %v", s.addr, s.opts.CloseTimeout)
	}
	for _, c := range s.conns.load() { // connections gnet did not report closed
		c.finish(nil)
	}
	return err
}

func (s *TCPServer) addConn(c *serverConn) {
	s.conns.add(c)
	s.ctr.conns.Add(1)
}

func (s *TCPServer) removeConn(c *serverConn) bool {
	if !s.conns.remove(c) {
		return false
	}
	s.ctr.conns.Add(-1)
	return true
}

// serverEvents is the gnet event handler of a TCPServer.
type serverEvents struct {
	gnet.BuiltinEventEngine
	s *TCPServer
}

func (h *serverEvents) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := h.s
	if s.closed.Load() {
		s.slots.release(addrPortOf(gc.RemoteAddr()).Addr())
		return nil, gnet.Close
	}
	c, err := newServerConn(s, gc)
	if err != nil { // out of descriptors, typically: a burst, logged once
		s.slots.release(addrPortOf(gc.RemoteAddr()).Addr())
		s.failedConn(err)
		return nil, gnet.Close
	}
	c.act.lastFrame.Store(time.Now().UnixNano())
	gc.SetContext(c)
	s.addConn(c)
	go c.writeLoop()
	if s.opts.OnConnect != nil {
		s.opts.OnConnect(c)
	}
	return nil, gnet.None
}

func (h *serverEvents) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*serverConn)
	if c == nil {
		return gnet.Close
	}
	s := h.s
	buffered := gc.InboundBuffered()
	if !c.fr.ready(buffered) {
		if s.sweepStop != nil {
			c.act.traffic(time.Now().UnixNano(), 0, buffered)
		}
		return gnet.None
	}
	buf, _ := gc.Peek(-1)
	c.queue.received()
	n, err := c.fr.consume(buf, c.deliverFn)
	if n > 0 { // gnet's Discard(0) would discard everything
		s.ctr.bytesIn.Add(uint64(n))
		gc.Discard(n)
	}
	if s.sweepStop != nil {
		c.act.traffic(time.Now().UnixNano(), n, len(buf)-n)
	}
	if err != nil {
		s.ctr.malformed.Add(1)
		s.log.Warn("closing a connection that sent an undecodable frame", "peer", c.remote, "err", err)
		reason := err // a copy: taking err's address would move it to the heap on every call
		c.closeErr.Store(&reason)
		return gnet.Close
	}
	return gnet.None
}

// deliver hands one received sequence to the Handler (event loop only).
func (c *serverConn) deliver(q *seq.Sequence) {
	c.s.ctr.seqIn.Add(1)
	c.s.opts.Handler(c, q)
}

func (h *serverEvents) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, _ := gc.Context().(*serverConn)
	if c == nil {
		return gnet.None
	}
	if left := gc.InboundBuffered(); left > 0 && c.closeErr.Load() == nil {
		h.s.log.Debug("peer disconnected in the middle of a frame", "peer", c.remote, "bytes", left)
	}
	if p := c.closeErr.Load(); p != nil {
		err = *p
	}
	c.finish(err)
	return gnet.None
}

// serverConn is one accepted connection: a Peer.
type serverConn struct {
	servedConn
	s     *TCPServer
	gc    gnet.Conn
	wconn *sockWriter // duplicate of the socket, written by writeLoop and direct senders
	fr    framer      // event loop only
	act   activity

	deliverFn func(*seq.Sequence) // c.deliver, made once: a method value per read would allocate
}

func newServerConn(s *TCPServer, gc gnet.Conn) (*serverConn, error) {
	fd, err := gc.Dup()
	if err != nil {
		return nil, fmt.Errorf("duplicating the socket: %w", err)
	}
	wconn, err := newSockWriter(fd)
	if err != nil {
		return nil, err
	}
	c := &serverConn{
		servedConn: newServedConn(&s.listener, gc.Close, addrPortOf(gc.LocalAddr()), addrPortOf(gc.RemoteAddr())),
		s:          s,
		gc:         gc,
		wconn:      wconn,
		fr:         framer{maxSize: s.opts.MaxSequenceSize},
	}
	c.queue.attach(wconn.raw(), &s.ctr) // an idle connection's replies skip the writer
	c.deliverFn = c.deliver
	return c, nil
}

func (c *serverConn) writeLoop() {
	defer close(c.writerDone)
	lost, err := c.queue.drain(c.wconn, &c.s.ctr, nil)
	if err != nil && !c.finished.Load() {
		c.s.ctr.dropped.Add(uint64(lost))
		c.s.log.Debug("write failed, closing the connection", "peer", c.remote, "err", err)
		c.gc.Close()
	}
}

// finish releases the connection once gnet has closed it (or the server has
// stopped): the writer stops, what it still held is counted as dropped.
func (c *serverConn) finish(err error) {
	if c.finished.Swap(true) {
		return
	}
	c.queue.close()
	c.wconn.Close()
	<-c.writerDone
	if n := c.queue.discard(); n > 0 {
		c.s.ctr.dropped.Add(uint64(n))
	}
	removed := c.s.removeConn(c)
	if removed {
		c.s.slots.release(c.remote.Addr())
	}
	if removed && c.s.opts.OnDisconnect != nil {
		c.s.opts.OnDisconnect(c, err)
	}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
