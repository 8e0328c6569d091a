package flow

import (
	"io"
	"runtime"
	"sync"
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
}

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
	wake := len(q.pending) == 0
	q.pending = append(q.pending, frame...)
	q.seqs++
	q.queued += len(frame)
	q.mu.Unlock()
	if wake {
		q.wake()
	}
	return pushed
}

// pushEncode encodes s straight into the queue, saving a copy when there is
// one destination. size is seq.TCPSize(s).
func (q *outQueue) pushEncode(s *seq.Sequence, size int, wait time.Duration) (pushResult, error) {
	if r := q.reserve(size, wait); r != pushed {
		return r, nil
	}
	wake := len(q.pending) == 0
	var err error
	if q.pending, err = seq.AppendTCP(q.pending, s); err != nil {
		q.mu.Unlock()
		return pushed, err
	}
	q.seqs++
	q.queued += size
	q.mu.Unlock()
	if wake {
		q.wake()
	}
	return pushed, nil
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
	q.pending, q.seqs = q.pending[:0], 0
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
