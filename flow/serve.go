package flow

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/internal/ratelog"
	"github.com/stk-go/stk/seq"
)

// What TCPServer and TLSServer share: the accept loop with its back-off and
// connection limits, the copy-on-write list of connections, and the
// fan-out of Send.

// listener is the listening side of a TCP or TLS server.
type listener struct {
	opts   Options
	log    *slog.Logger
	ln     *net.TCPListener
	addr   netip.AddrPort
	ctr    counters
	acc    acceptHealth
	slots  connSlots
	closed atomic.Bool

	// One line a second of each kind, saying how many were left out.
	refuseLog, timeoutLog ratelog.Limiter
}

// LocalAddr returns the address the server listens on.
func (l *listener) LocalAddr() netip.AddrPort { return l.addr }

// Stats returns the server's counters.
func (l *listener) Stats() Stats { return l.ctr.snapshot() }

// AcceptError returns nil while the server accepts connections, and else
// why it does not: the last accept error while accepting has failed within
// the last two seconds with no success since (for example too many open
// files), or the error that ended the listener.
func (l *listener) AcceptError() error { return l.acc.err() }

// acceptLoop accepts connections until the listener is closed and hands
// each to serve, which owns the connection and its slot (released with
// l.slots.release(ip) when it ends) unless it returns an error: then the
// slot is released here, and the error counted and logged as a failed
// accept. Errors of accept itself (EMFILE, ENFILE, ENOBUFS...) are retried
// after a back-off that doubles from 5 ms to 1 s, as net/http's Serve
// does; they are logged at most once per 10 s, and so is the end of such a
// burst. A connection beyond Options.MaxConns or MaxConnsPerIP is closed at
// once and counted in Stats.Refused.
func (l *listener) acceptLoop(kind string, serve func(nc *net.TCPConn, ip netip.Addr) error) {
	var delay time.Duration
	for {
		nc, err := l.ln.AcceptTCP()
		if err != nil {
			if l.closed.Load() || errors.Is(err, net.ErrClosed) {
				if !l.closed.Load() {
					l.acc.died(err)
					l.log.Error(kind+" listener closed unexpectedly: no new connections will be accepted", "addr", l.addr, "err", err)
				}
				return
			}
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			l.ctr.acceptErrs.Add(1)
			if l.acc.failed(err) {
				l.log.Warn("cannot accept connections; retrying with back-off", "addr", l.addr, "err", err)
			}
			time.Sleep(delay)
			continue
		}
		delay = 0
		if n, since := l.acc.succeeded(); n > 0 {
			l.log.Info("accepting connections again", "addr", l.addr, "failed_accepts", n, "for", time.Since(since).Round(time.Millisecond))
		}
		ip := addrPortOf(nc.RemoteAddr()).Addr()
		if limit := l.slots.reserve(ip, l.opts.MaxConns, l.opts.MaxConnsPerIP); limit != "" {
			l.ctr.refused.Add(1) // before the close, which the peer may see at once
			nc.Close()
			l.refuseLog.Warn(l.log, "refusing a connection: limit reached", "peer", ip, "limit", limit,
				"max_conns", l.opts.MaxConns, "max_conns_per_ip", l.opts.MaxConnsPerIP)
			continue
		}
		if err := serve(nc, ip); err != nil {
			l.slots.release(ip)
			if errors.Is(err, ErrClosed) {
				continue // closing: the next accept fails and ends the loop
			}
			l.failedConn(err)
		}
	}
}

// failedConn counts and logs (rate-limited) a connection that was accepted
// but could not be served (out of descriptors, typically).
func (l *listener) failedConn(err error) {
	l.ctr.acceptErrs.Add(1)
	if l.acc.failed(err) {
		l.log.Warn("cannot serve a new connection", "addr", l.addr, "err", err)
	}
}

// connList is a server's open connections: a copy-on-write slice, so that
// Send reads it without locking.
type connList[C comparable] struct {
	mu sync.Mutex
	p  atomic.Pointer[[]C]
}

func (l *connList[C]) load() []C {
	if p := l.p.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *connList[C]) add(c C) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.load()
	cs := make([]C, len(old), len(old)+1)
	copy(cs, old)
	cs = append(cs, c)
	l.p.Store(&cs)
}

// remove reports whether c was in the list.
func (l *connList[C]) remove(c C) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.load()
	for i, x := range old {
		if x == c {
			cs := make([]C, 0, len(old)-1)
			cs = append(cs, old[:i]...)
			cs = append(cs, old[i+1:]...)
			l.p.Store(&cs)
			return true
		}
	}
	return false
}

// fanConn is a connection fanOut can queue to.
type fanConn interface {
	comparable
	send(q *seq.Sequence, wait time.Duration) error
	outQueue() *outQueue
	result(r pushResult) error
}

// fanOut queues q to every connection of cs, encoding it once (scratch
// holds *[]byte encode buffers). A connection whose queue is full is
// handled by its slow-consumer policy and does not hold up the others: every
// queue is pushed to without waiting first, then the full ones are waited
// for, with one deadline of wait. With no connection, the sequence goes
// nowhere and fanOut returns nil, as in STK.
func fanOut[C fanConn](cs []C, q *seq.Sequence, wait time.Duration, scratch *sync.Pool) error {
	switch len(cs) {
	case 0:
		if q.Type == seq.TypeInvalid {
			return seq.ErrInvalidType
		}
		return nil
	case 1:
		err := cs[0].send(q, wait)
		if errors.Is(err, ErrQueueFull) || errors.Is(err, ErrSlowConsumer) || errors.Is(err, ErrClosed) {
			return nil // handled per connection; the flow as a whole is fine
		}
		return err
	}
	bp := scratch.Get().(*[]byte)
	frame, err := seq.AppendTCP((*bp)[:0], q)
	if err != nil {
		scratch.Put(bp)
		return err
	}
	var full []C
	for _, c := range cs {
		if r := c.outQueue().push(frame, 0); r == pushFull {
			full = append(full, c)
		} else {
			c.result(r)
		}
	}
	if len(full) > 0 {
		deadline := time.Now().Add(wait)
		for _, c := range full {
			c.result(c.outQueue().push(frame, time.Until(deadline)))
		}
	}
	*bp = frame
	scratch.Put(bp)
	return nil
}

// newScratch returns a pool of encode buffers for fanOut.
func newScratch() *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}
}

// servedConn is what a server's connection is whatever carries it (gnet or
// TLS): a Peer with a bounded outbound queue and the slow-consumer policy.
type servedConn struct {
	l             *listener
	disconnect    func() error // closes the connection at once
	id            uint64
	local, remote netip.AddrPort
	queue         *outQueue
	writerDone    chan struct{}
	closeErr      atomic.Pointer[error] // why the server closed it, if it did
	finished      atomic.Bool
	slowLog       ratelog.Limiter // "peer too slow, dropping": one line a second
}

func newServedConn(l *listener, disconnect func() error, local, remote netip.AddrPort) servedConn {
	return servedConn{l: l, disconnect: disconnect, id: nextPeerID(), local: local, remote: remote,
		queue: newOutQueue(l.opts.QueueBytes), writerDone: make(chan struct{})}
}

func (c *servedConn) ID() uint64                 { return c.id }
func (c *servedConn) RemoteAddr() netip.AddrPort { return c.remote }
func (c *servedConn) LocalAddr() netip.AddrPort  { return c.local }
func (c *servedConn) Protocol() Protocol         { return TCP }

// Close disconnects the peer.
func (c *servedConn) Close() error { return c.disconnect() }

// Send queues q to this connection only. It does not wait for room (it is
// meant for replies from a Handler): a full queue is handled at once by
// Options.SlowConsumer.
func (c *servedConn) Send(q *seq.Sequence) error { return c.send(q, 0) }

func (c *servedConn) outQueue() *outQueue { return c.queue }

func (c *servedConn) send(q *seq.Sequence, wait time.Duration) error {
	r, err := c.queue.pushEncode(q, seq.TCPSize(q), wait)
	if err != nil {
		return err
	}
	return c.result(r)
}

// errSlowConsumer is stored as a connection's close reason (a pointer to a
// variable, for atomic.Pointer).
var errSlowConsumer = ErrSlowConsumer

// result applies the slow-consumer policy to a refused push.
func (c *servedConn) result(r pushResult) error {
	switch r {
	case pushClosed:
		c.l.ctr.dropped.Add(1)
		return ErrClosed
	case pushFull:
		c.l.ctr.dropped.Add(1)
		if c.l.opts.SlowConsumer == Drop {
			c.slowLog.Warn(c.l.log, "peer too slow, dropping sequences", "peer", c.remote, "queue_bytes", c.l.opts.QueueBytes)
			return ErrQueueFull
		}
		if c.closeErr.CompareAndSwap(nil, &errSlowConsumer) {
			c.l.ctr.slow.Add(1)
			c.l.log.Warn("peer too slow, disconnecting it", "peer", c.remote, "queue_bytes", c.l.opts.QueueBytes)
			c.disconnect()
		}
		return ErrSlowConsumer
	}
	return nil
}
