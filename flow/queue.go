package flow

import (
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/seq"
)

// outQueue holds the encoded frames waiting for one connection's writer.
//
// Senders append under a mutex; the writer takes everything queued in one
// swap and writes it with one call, so a busy sender's frames leave in large
// batches (one syscall for many sequences) and an idle one's leave at once.
// queued counts the bytes appended and not yet written, in flight included,
// which is what Options.QueueBytes bounds.
//
// A sender that finds the queue idle (nothing pending, no write in flight,
// and no push for directGap) writes its frame to the socket itself, under
// the lock, with one non-blocking write: a lone sequence leaves without
// waking the writer goroutine, which costs two scheduler hand-offs on each
// side of a round trip. Whatever the socket does not take goes into
// pending for the writer as before, so ordering, the bound and the
// slow-consumer policy do not change. A sender that pushes again within
// directGap is busy: its frames go through the writer and are batched,
// unless the connection received something since its last direct send
// (heard): that push is an answer, and answers go out at once however
// quickly the peer asked again.
type outQueue struct {
	mu      sync.Mutex
	pending []byte // frames not yet taken by the writer
	seqs    int    // sequences in pending
	spare   []byte // the writer's last buffer, reused for pending
	queued  int    // bytes in pending and in flight
	limit   int
	closed  bool          // no more pushes; the writer drains and stops
	lagging bool          // stayed full for a whole wait; pushes fail until half drained
	notify  chan struct{} // cap 1: pending became non-empty, or closed
	space   chan struct{} // cap 1: the writer freed room

	// Direct writes (see above); all under mu.
	inFlight bool    // the writer holds a batch it is writing
	direct   rawConn // the connection's socket; nil: always queue
	// sendNow sends a datagram flow's lone pending sequence itself and
	// counts it, reporting false when it must go to the writer (see
	// UDPFlow.sendNow); nil for stream flows, which use direct.
	sendNow  func(records []byte) bool
	ctr      *counters // counts direct writes
	partial  int       // bytes at the start of pending that end a frame written in part directly
	lastPush int64     // nanotime at the end of the last push (see toWriter)
	toWriter bool      // the last push went to the writer: lastPush is set when it is written
	dbuf     []byte    // the frame being written directly
	dn       int       // result of the direct write
	dfn      func(fd uintptr) bool
	directs  uint64 // frames written directly, in whole or in part (tests)
	partials uint64 // of which in part (tests)

	// heard is set by the connection's reader when data arrives and
	// cleared by the next direct send. A peer that asks again within
	// directGap of our last answer is not a busy sender of ours: on
	// loopback the next request often arrives while the write of the
	// previous answer is still returning (the write wakes the peer), and
	// an echo server sent a tenth to two fifths of its answers through
	// the writer, a hand-off each. Each read grants at most one direct
	// send, so a connection that is busy both ways still batches.
	heard atomic.Bool
}

// directGap is how long a queue must have seen no push for a sender to
// write directly: pushes closer together than this are a busy sender's,
// and batching them through the writer costs fewer system calls. It is
// short of the writer's own cycle (a wake-up, a yield, a write: 10 µs or
// more): a sender pushing every 10 µs (100 k/s) would have the writer take
// one frame per batch anyway, so it saves no system call there and costs
// a hand-off per sequence. An answer to data just received is sent
// directly within directGap too (see heard).
const directGap = 5 * time.Microsecond

func newOutQueue(limit int) *outQueue {
	return &outQueue{limit: limit, notify: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// smallBatch is the batch size below which the writer yields once before
// taking it (see take).
const smallBatch = 4096

// pushResult tells a sender what became of its sequence.
type pushResult uint8

const (
	pushed pushResult = iota
	pushFull
	pushClosed
)

// fits reports whether size more bytes may be queued. A frame larger than
// the limit still goes into an empty queue, so that any sequence can be sent.
func (q *outQueue) fits(size int) bool {
	return q.queued == 0 || q.queued+size <= q.limit
}

// reserve locks q and returns pushed with q.mu held once size bytes fit. A
// full queue is waited on for at most wait: a consumer that is only a little
// behind slows the sender down (backpressure) instead of losing data. A
// queue that stays full that long is marked lagging, and later pushes fail
// at once until the writer has drained it to half the limit.
func (q *outQueue) reserve(size int, wait time.Duration) pushResult {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return pushClosed
	}
	if q.fits(size) {
		return pushed
	}
	if q.lagging || wait <= 0 {
		q.mu.Unlock()
		return pushFull
	}
	timer := time.NewTimer(wait) // slow path only
	defer timer.Stop()
	for {
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-timer.C:
			q.mu.Lock()
			q.lagging = true
			q.mu.Unlock()
			return pushFull
		}
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return pushClosed
		}
		if q.fits(size) {
			select { // pass the wake-up on to another waiting sender
			case q.space <- struct{}{}:
			default:
			}
			return pushed
		}
	}
}

// push appends an encoded frame, waiting at most wait for room.
func (q *outQueue) push(frame []byte, wait time.Duration) pushResult {
	if r := q.reserve(len(frame), wait); r != pushed {
		return r
	}
	start := len(q.pending)
	q.pending = append(q.pending, frame...)
	q.pushed(start)
	return pushed
}

// pushEncode encodes s straight into the queue, saving a copy when there is
// one destination. size is seq.TCPSize(s).
func (q *outQueue) pushEncode(s *seq.Sequence, size int, wait time.Duration) (pushResult, error) {
	if r := q.reserve(size, wait); r != pushed {
		return r, nil
	}
	start := len(q.pending)
	var err error
	if q.pending, err = seq.AppendTCP(q.pending, s); err != nil {
		q.pending = q.pending[:start]
		q.mu.Unlock()
		return pushed, err
	}
	q.pushed(start)
	return pushed, nil
}

// pushed ends a push whose frame is pending[start:]: it writes the frame
// directly when the queue is idle, else leaves it to the writer, and
// unlocks q.
//
// The clock is read only when the queue may be idle: a busy sender's
// pushes find a frame pending or a write in flight, or follow one that went
// to the writer, and pay nothing. (nanotime costs tens of nanoseconds on
// some virtual machines: read on every push, it was a sixth of the cost of
// sending a 16-byte sequence.) The time of a push that went to the writer is
// taken when the writer has written it (written), once per batch.
func (q *outQueue) pushed(start int) {
	idle := start == 0 && !q.inFlight && !q.toWriter && (q.sendNow != nil || q.direct != nil)
	if answer := idle && q.heard.Load(); answer || idle && nanotime()-q.lastPush >= int64(directGap) {
		if answer {
			q.heard.Store(false) // this push is the answer
		}
		if q.sendDirect() {
			q.pending = q.pending[:0]
			q.lastPush = nanotime()
			q.mu.Unlock()
			return
		}
	}
	q.seqs++
	q.queued += len(q.pending) - start
	q.toWriter = true
	q.mu.Unlock()
	if start == 0 {
		q.wake()
	}
}

// sendDirect sends the lone frame pending in an idle queue itself (q.mu
// held): a datagram flow's through sendNow, a stream's with one
// non-blocking write. It reports whether all of it left; what a stream's
// socket did not take stays pending, the end of a frame (see detach).
func (q *outQueue) sendDirect() bool {
	if q.sendNow != nil {
		if !q.sendNow(q.pending) {
			return false
		}
		q.directs++
		return true
	}
	n := q.writeDirect(q.pending)
	q.ctr.bytesOut.Add(uint64(n))
	if n > 0 {
		q.directs++
	}
	if n == len(q.pending) {
		q.ctr.seqOut.Add(1)
		return true
	}
	if n > 0 { // the rest must follow on this connection (see detach)
		q.pending = q.pending[:copy(q.pending, q.pending[n:])]
		q.partial = len(q.pending)
		q.partials++
	}
	return false
}

// received records that data arrived on the connection: the next push
// may be its answer (see heard). Readers call it once per read.
func (q *outQueue) received() {
	if !q.heard.Load() { // a busy reader does not write the line each read
		q.heard.Store(true)
	}
}

// monoEpoch makes nanotime monotonic and cheap to compare.
var monoEpoch = time.Now()

// nanotime is a monotonic clock in nanoseconds.
func nanotime() int64 { return int64(time.Since(monoEpoch)) }

// writeDirect writes b to the socket with one non-blocking write (q.mu
// held) and returns the bytes written: 0 when the socket buffer is full
// or the connection failed, which the writer will then find out.
func (q *outQueue) writeDirect(b []byte) int {
	q.dbuf, q.dn = b, 0
	if q.direct.Write(q.dfn) != nil {
		q.dn = 0
	}
	q.dbuf = nil
	return q.dn
}

// writeFD is q.dfn: the write of writeDirect, on the socket's descriptor.
// It returns true so that RawConn.Write never waits for the socket to be
// writable.
func (q *outQueue) writeFD(fd uintptr) bool {
	q.dn = rawWrite(fd, q.dbuf)
	return true
}

// rawConn is the part of syscall.RawConn that direct writes use.
type rawConn interface {
	Write(f func(fd uintptr) (done bool)) error
}

// attach lets senders write directly to rc, counting in ctr, once the
// queue is idle; rc is the connection's socket, which the writer writes
// too. An rc that is not a plain socket (TLS) must not be attached.
func (q *outQueue) attach(rc rawConn, ctr *counters) {
	if !rawWriteSupported || rc == nil {
		return
	}
	q.mu.Lock()
	q.direct, q.ctr = rc, ctr
	if q.dfn == nil {
		q.dfn = q.writeFD
	}
	q.mu.Unlock()
}

// attachConn attaches conn when it is a plain TCP connection (not TLS,
// whose records only the writer can make).
func (q *outQueue) attachConn(conn net.Conn, ctr *counters) {
	if tc, ok := conn.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			q.attach(rc, ctr)
		}
	}
}

// directWrites returns how many frames senders wrote themselves.
func (q *outQueue) directWrites() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.directs
}

// detach stops direct writes when the connection is gone (a client
// reconnects with the same queue). The end of a frame that was written in
// part to the old connection cannot go to the next one: it is dropped and
// returned as one lost sequence.
func (q *outQueue) detach() (lost int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.direct = nil
	if q.partial > 0 {
		q.queued -= q.partial
		q.pending = q.pending[:copy(q.pending, q.pending[q.partial:])]
		q.partial = 0
		q.seqs--
		return 1
	}
	return 0
}

func (q *outQueue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// take swaps out everything pending. It returns ok == false once the queue is
// closed and empty, or when stop is closed (a connection going down).
func (q *outQueue) take(stop <-chan struct{}) (buf []byte, seqs int, ok bool) {
	for {
		q.mu.Lock()
		if len(q.pending) > 0 {
			buf, seqs = q.pending, q.seqs
			q.pending, q.seqs = q.spare[:0], 0
			q.spare = nil
			q.partial = 0 // the writer finishes it on this connection
			q.inFlight = true
			q.mu.Unlock()
			return buf, seqs, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, 0, false
		}
		select {
		case <-q.notify:
			// A small batch: let the sender that woke us, and any others
			// that are running, queue more before we take it, so that
			// concurrent requests share one write instead of one each.
			// Large batches are already worth their system call.
			q.mu.Lock()
			small := len(q.pending) < smallBatch
			q.mu.Unlock()
			if small {
				runtime.Gosched()
			}
		case <-stop:
			return nil, 0, false
		}
	}
}

// written returns the writer's buffer after a write of buf.
func (q *outQueue) written(buf []byte) {
	q.mu.Lock()
	q.queued -= len(buf)
	q.inFlight = false
	if q.toWriter && len(q.pending) == 0 { // the last push is on the wire: time it from now
		q.lastPush, q.toWriter = nanotime(), false
	}
	if q.spare == nil || cap(buf) > cap(q.spare) {
		q.spare = buf[:0]
	}
	if q.lagging && q.queued <= q.limit/2 {
		q.lagging = false
	}
	q.mu.Unlock()
	select {
	case q.space <- struct{}{}:
	default:
	}
}

// close stops pushes; the writer drains what is pending, then take reports
// the end.
func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
}

// discard empties the queue and returns how many sequences were dropped.
func (q *outQueue) discard() int {
	q.mu.Lock()
	n := q.seqs
	q.queued -= len(q.pending)
	q.pending, q.seqs, q.partial = q.pending[:0], 0, 0
	q.mu.Unlock()
	return n
}

// reopen makes a closed queue accept pushes again (a client reconnecting).
func (q *outQueue) reopen() {
	q.mu.Lock()
	q.closed = false
	q.mu.Unlock()
}

// drain writes batches from q to w until q is closed and empty, stop is
// closed, or a write fails. It returns the write error (nil after a clean drain) and the
// sequences lost with a failed batch.
func (q *outQueue) drain(w io.Writer, c *counters, stop <-chan struct{}) (lost int, err error) {
	for {
		buf, seqs, ok := q.take(stop)
		if !ok {
			return 0, nil
		}
		n, err := w.Write(buf)
		q.written(buf)
		c.bytesOut.Add(uint64(n))
		if err != nil {
			return seqs, err
		}
		c.seqOut.Add(uint64(seqs))
	}
}

// finished reports whether the queue is closed and empty: a writer that
// stops now has delivered everything.
func (q *outQueue) finished() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed && len(q.pending) == 0
}
