package flow

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stk-go/stk/internal/ratelog"
	"github.com/stk-go/stk/seq"
)

// UDPConfig says what a UDP flow binds, joins and sends to.
type UDPConfig struct {
	// Raw selects raw UDP (docs/protocol.md §5): the datagram is the sequence's
	// single element, and received datagrams are labelled by Options.RawUDP.
	// Otherwise the flow speaks STK-UDP (§4).
	Raw bool
	// Bind is the local "ip:port" to bind; "" means "0.0.0.0:0" (an
	// ephemeral port, for senders) and ":port" means "0.0.0.0:port".
	//
	// A socket bound to a fixed port gets SO_REUSEADDR, as every UDP socket
	// of the C library does: Linux lets a multicast receiver bind
	// 0.0.0.0:port beside a unicast socket on ip:port only when both set it
	// (stkd serves a name server's STK-UDP and multicast on one port). The
	// price is that a second process binding the same ip:port with
	// SO_REUSEADDR succeeds silently and one of the two gets the datagrams;
	// a program that must own its port checks first with a bind without
	// SO_REUSEADDR, which still fails on a port another socket holds (stkd
	// does). Ephemeral ports (0) never get it, so the system never hands
	// out a port already in use.
	Bind string
	// Destination is the default "ip:port" of Send: a unicast address or a
	// multicast group. "" means none (Send fails with ErrNoDestination).
	Destination string
	// Group is a multicast group to join for receiving, e.g. "224.10.10.20",
	// on Options.MulticastInterface (or the interface the system picks).
	// The socket is bound with SO_REUSEADDR, so several flows (and
	// processes) of one host can receive the group on the same port.
	Group string
	// Pacing spreads the datagrams of sequences larger than one datagram
	// over time so that a receiver with the system's default buffer keeps
	// up; the zero value paces (see UDPPacing).
	Pacing UDPPacing
}

// ErrNoDestination is returned by UDPFlow.Send on a flow configured without
// a Destination.
var ErrNoDestination = errors.New("flow: UDP flow has no destination; use SendTo or set UDPConfig.Destination")

// UDPFlow is one UDP socket: it receives STK-UDP (reassembled) or raw
// datagrams and calls Options.Handler, and it sends to its Destination
// (Send) or to any peer (SendTo, or Peer.Send as a reply).
//
// Receiving runs on one goroutine that reads a batch of datagrams per system
// call on Linux (recvmmsg, into a ring of 64 KiB slots that grows from one to
// 64 while datagrams keep arriving faster than one per call, so an idle flow
// holds 64 KiB and a busy one at most 4 MiB) and calls the Handler directly
// for each. The Peer given to the Handler is the datagram's source; it stays
// valid after the call (its Send goes to that source from any goroutine).
// Half-received STK-UDP sequences are dropped Options.ReassemblyTimeout after
// their first fragment, checked at least every 200 ms while any is pending,
// so memory is released when traffic stops. Malformed datagrams are counted
// in Stats.Malformed and logged at most once a second.
//
// Sending is asynchronous, like a TCP flow's: Send encodes the sequence's
// datagrams into the flow's outbound queue (bounded by Options.QueueBytes)
// and returns; one writer goroutine sends everything queued, many datagrams
// per system call on Linux (sendmmsg). Send is safe for concurrent use, and
// the fragments of one sequence are never interleaved with another's. All
// sequences of a flow carry one random STK-UDP unique_id. On other systems,
// and where the batch calls fail with ENOSYS, the same queue is written and
// read one datagram per system call; the datagrams are the same either way.
// Where the kernel offers segmentation offload (Linux 4.18 and 5.0), a run
// of equal-size datagrams to one destination is one message with
// UDP_SEGMENT, and a receiver with UDP_GRO reads coalesced datagrams and
// splits them: on loopback, one buffer through the stack for up to 64
// small sequences.
type UDPFlow struct {
	conn     *net.UDPConn
	id       uint64
	proto    Protocol
	raw      bool
	local    netip.AddrPort
	dest     netip.AddrPort // invalid: none
	opts     Options
	uniqueID uint32
	log      *slog.Logger
	// pacingOff: UDPPacing.Off, no datagram is marked for pacing.
	pacingOff bool

	ctr counters

	// Sending. buf, emitTo and emitFunc are used under queue.mu (between
	// reserve and the end of the push).
	queue    *outQueue
	buf      []byte         // STK-UDP scratch, grown to seq.MRU
	emitTo   netip.AddrPort // destination of the datagrams being queued
	emitLast int            // offset in queue.pending of the last datagram queued
	emitN    int            // datagrams queued for the sequence being encoded
	emitFunc func([]byte) error
	dropLog  atomic.Int64  // unix second of the last "queue full" log line
	wdone    chan struct{} // closed when the writer goroutine has returned

	rc    syscall.RawConn
	drops atomic.Uint64 // the socket's drops when Close closed it

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed when the read goroutine has returned

	// Owned by the writer goroutine.
	w udpWriter

	// Owned by the read goroutine.
	r           udpReader
	reasm       *seq.Reassembler
	lost        uint64 // reassembly partials expired or evicted, already counted in ctr.dropped
	lostFrags   uint64 // their missing fragments, already counted in ctr.lostFrags
	gens        udpGenerations
	lastPeer    *udpPeer
	peers       map[netip.AddrPort]*udpPeer
	readLog     ratelog.Limiter // bad datagrams and read errors: one line a second
	deadlineSet bool
	expireTick  time.Duration
}

// Read-side constants.
const (
	udpReadBuffer = 64 << 10
	// udpExpireTick is how often half-received sequences are checked while
	// any is pending (the C library's timer period).
	udpExpireTick = 200 * time.Millisecond
	// udpPeerCache bounds the Peer values kept per flow, one per distinct
	// datagram source, so that steady traffic allocates none.
	udpPeerCache = 1024
)

// NewUDP opens a UDP flow and starts receiving on it.
func NewUDP(cfg UDPConfig, opts Options) (*UDPFlow, error) {
	return newUDP(cfg, opts, udpIOBatch)
}

// newUDP is NewUDP with the system-call mode chosen (tests use the others).
func newUDP(cfg UDPConfig, opts Options, mode udpIOMode) (*UDPFlow, error) {
	opts = opts.withDefaults()
	bind, err := parseUDPBind(cfg.Bind)
	if err != nil {
		return nil, err
	}
	var dest netip.AddrPort
	if cfg.Destination != "" {
		if dest, err = parseIPv4AddrPort(cfg.Destination); err != nil {
			return nil, fmt.Errorf("flow: UDP destination: %w", err)
		}
		if dest.Port() == 0 {
			return nil, fmt.Errorf("flow: UDP destination %q has no port", cfg.Destination)
		}
	}
	var group netip.Addr
	if cfg.Group != "" {
		if group, err = netip.ParseAddr(cfg.Group); err != nil || !group.Unmap().Is4() || !group.Unmap().IsMulticast() {
			return nil, fmt.Errorf("flow: UDP group %q is not an IPv4 multicast address", cfg.Group)
		}
		group = group.Unmap()
	}
	iface := opts.MulticastInterface.Unmap()
	if iface.IsValid() && !iface.Is4() {
		return nil, fmt.Errorf("flow: multicast interface %v is not an IPv4 address", opts.MulticastInterface)
	}

	// SO_REUSEADDR: see UDPConfig.Bind and Group.
	lc := net.ListenConfig{Control: udpControl(group.IsValid() || bind.Port() != 0, opts.SendBuffer, opts.ReceiveBuffer)}
	pc, err := lc.ListenPacket(context.Background(), "udp4", bind.String())
	if err != nil {
		return nil, fmt.Errorf("flow: UDP bind %v: %w", bind, err)
	}
	conn := pc.(*net.UDPConn)
	rc, err := conn.SyscallConn()
	if err == nil {
		err = setupMulticast(rc, multicastConfig{group: group, iface: iface, ttl: opts.MulticastTTL, loopback: !opts.MulticastNoLoopback})
	}
	if err != nil {
		conn.Close()
		return nil, err
	}

	f := &UDPFlow{
		conn:     conn,
		rc:       rc,
		id:       nextPeerID(),
		raw:      cfg.Raw,
		dest:     dest,
		opts:     opts,
		uniqueID: rand.Uint32(),
		queue:    newOutQueue(opts.QueueBytes),
		wdone:    make(chan struct{}),
		done:     make(chan struct{}),
		peers:    make(map[netip.AddrPort]*udpPeer),
	}
	if la, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		ap := la.AddrPort()
		f.local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	switch {
	case cfg.Raw:
		f.proto = RawUDP
	case group.IsValid() || dest.Addr().IsMulticast():
		f.proto = Multicast
	default:
		f.proto = UDP
	}
	name := opts.Name
	if name == "" {
		name = f.proto.String() + ":" + f.local.String()
	}
	f.log = opts.Logger.With("flow", name)
	f.emitFunc = f.emit
	if !cfg.Raw {
		f.reasm = seq.NewReassembler(seq.ReassemblerConfig{
			MaxSize:    opts.MaxSequenceSize,
			MaxPending: 2 * opts.MaxSequenceSize,
			Timeout:    opts.ReassemblyTimeout,
		})
		f.expireTick = min(udpExpireTick, max(opts.ReassemblyTimeout/2, time.Millisecond))
	}
	f.w.batch, f.r.batch = newUDPBatch(rc, mode)
	f.queue.sendNow = f.sendNow // before the flow is shared: set once
	f.w.pacer, f.w.stop, f.pacingOff = newUDPPacer(cfg.Pacing), make(chan struct{}), cfg.Pacing.Off
	go f.writeLoop()
	go f.readLoop()
	return f, nil
}

// parseUDPBind parses UDPConfig.Bind.
func parseUDPBind(s string) (netip.AddrPort, error) {
	switch {
	case s == "":
		return netip.AddrPortFrom(netip.IPv4Unspecified(), 0), nil
	case strings.HasPrefix(s, ":"):
		port, err := strconv.ParseUint(s[1:], 10, 16)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("flow: UDP bind %q: bad port", s)
		}
		return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port)), nil
	}
	ap, err := parseIPv4AddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("flow: UDP bind: %w", err)
	}
	return ap, nil
}

func parseIPv4AddrPort(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not an ip:port", s)
	}
	a := ap.Addr().Unmap()
	if !a.Is4() {
		return netip.AddrPort{}, fmt.Errorf("%q is not an IPv4 address (STK data flows are IPv4)", s)
	}
	return netip.AddrPortFrom(a, ap.Port()), nil
}

// Send queues s for the flow's Destination; see SendTo.
func (f *UDPFlow) Send(s *seq.Sequence) error {
	if !f.dest.IsValid() {
		if f.closed.Load() {
			return ErrClosed
		}
		return ErrNoDestination
	}
	return f.send(s, f.dest, f.opts.SlowConsumerWait)
}

// SendTo queues s for one address, unicast or multicast, and returns when its
// datagrams are in the flow's queue; the writer goroutine hands them to the
// kernel (and a UDP send is not a delivery anyway). s may be reused as soon
// as SendTo returns. A datagram the system refuses (no route, a firewall)
// loses the rest of its sequence; that is counted in Stats.Dropped and
// logged at most once a second, as SendTo has already returned.
//
// When the queue is full, SendTo waits up to Options.SlowConsumerWait for
// room and then returns ErrQueueFull (counted in Stats.Dropped); a queue
// that stayed full that long refuses at once until the writer has drained
// half of it. A UDP flow has no connection to drop, so it always drops, as
// under Options.SlowConsumer Drop. Peer.Send, the reply path of a Handler,
// does not wait.
//
// Like the C library, SendTo bumps s.Generation before encoding (the first
// send of a new sequence carries generation 1): the generation belongs to
// the sequence, and STK-UDP receivers tell resends apart by it. So s is
// modified, and sending one Sequence from several goroutines at once is a
// data race; sending different sequences concurrently is safe.
//
// On a raw flow the datagram is s's single element: a sequence without
// elements sends nothing (and keeps its generation, as in C), one with
// several fails with seq.ErrRawUDPElements, and one longer than seq.MRU (the
// largest UDP payload) is refused and counted as dropped.
func (f *UDPFlow) SendTo(s *seq.Sequence, to netip.AddrPort) error {
	return f.send(s, to, f.opts.SlowConsumerWait)
}

// send queues s for to, waiting at most wait for room in the queue.
func (f *UDPFlow) send(s *seq.Sequence, to netip.AddrPort, wait time.Duration) error {
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	if !to.Addr().Is4() {
		return fmt.Errorf("flow: UDP send to %v: not an IPv4 address", to)
	}
	if f.closed.Load() {
		return ErrClosed
	}
	var payload []byte
	var size int
	if f.raw {
		p, ok, err := seq.RawUDPPayload(s)
		if err != nil || !ok {
			return err
		}
		if len(p) > seq.MRU {
			f.ctr.dropped.Add(1)
			return fmt.Errorf("flow: UDP send to %v: raw datagram of %d bytes is longer than the UDP maximum of %d", to, len(p), seq.MRU)
		}
		payload, size = p, udpRecordHeader+len(p)
	} else {
		size = udpQueuedSize(s)
	}
	q := f.queue
	switch q.reserve(size, wait) {
	case pushClosed:
		return ErrClosed
	case pushFull:
		return f.queueFull()
	}
	// q.mu is held from here on.
	start := len(q.pending)
	s.Generation++
	if f.raw {
		q.pending = appendUDPRecord(q.pending, to, payload)
		setUDPRecordLast(q.pending[start:])
	} else {
		f.emitTo, f.emitN = to, 0
		var err error
		f.buf, err = seq.AppendUDP(f.buf, s, f.uniqueID, f.emitFunc)
		if err != nil { // refused by the encoder before it emitted anything
			q.pending = q.pending[:start]
			q.mu.Unlock()
			return err
		}
		setUDPRecordLast(q.pending[f.emitLast:])
		if f.emitN > 1 && !f.pacingOff {
			for r := q.pending[start:]; len(r) > 0; {
				setUDPRecordFlag(r, udpRecordPaced)
				_, r = nextUDPRecord(r)
			}
		}
	}
	q.pushed(start) // sends it at once when the flow is idle (sendNow)
	return nil
}

// sendNow is the queue's sendNow: a sequence of one datagram, pushed to an
// idle queue, is sent by its sender with one non-blocking sendmmsg call
// instead of waking the writer goroutine, which costs a scheduler hand-off
// on each side of a round trip; as on TCP (outQueue.pushed), a busy sender
// still batches through the writer. It runs under the queue's lock with no
// batch in flight, so the writer is not using its send state. A socket
// buffer that is full, or any error, leaves the sequence to the writer,
// which waits for room or counts and logs the failure as before.
func (f *UDPFlow) sendNow(records []byte) bool {
	b := f.w.batch
	if b == nil || f.w.stall != nil { // tests holding the writer up hold every send
		return false
	}
	d, rest := nextUDPRecord(records)
	if len(rest) > 0 || !d.last || d.paced {
		return false
	}
	if !b.trySend(d) {
		return false
	}
	f.ctr.bytesOut.Add(uint64(len(d.data)))
	f.ctr.seqOut.Add(1)
	return true
}

// emit queues one STK-UDP datagram for f.emitTo; it runs under queue.mu.
func (f *UDPFlow) emit(d []byte) error {
	f.emitLast = len(f.queue.pending)
	f.queue.pending = appendUDPRecord(f.queue.pending, f.emitTo, d)
	f.emitN++
	return nil
}

// queueFull counts and reports a sequence refused by a full queue.
func (f *UDPFlow) queueFull() error {
	f.ctr.dropped.Add(1)
	if now := time.Now().Unix(); f.dropLog.Swap(now) != now {
		f.log.Warn("flow: UDP outbound queue full, dropping sequences", "queue_bytes", f.opts.QueueBytes)
	}
	return ErrQueueFull
}

// LocalAddr is the address the socket is bound to.
func (f *UDPFlow) LocalAddr() netip.AddrPort { return f.local }

// Protocol is UDP, RawUDP, or Multicast when the flow joins a group or sends
// to one (a raw flow reports RawUDP either way).
func (f *UDPFlow) Protocol() Protocol { return f.proto }

// Stats returns the flow's counters. BytesIn and BytesOut count UDP
// payload bytes (STK-UDP headers included); SequencesOut and BytesOut count
// what the writer has handed to the kernel. Dropped counts sequences refused
// by a full queue or by the system, left queued when Close gave up, and
// half-received sequences given up by reassembly. LostSequences,
// LostFragments and ReceiveDrops report what the receiving side lost;
// Paced, the writer's pauses for UDPPacing.
func (f *UDPFlow) Stats() Stats {
	st := f.ctr.snapshot()
	st.ReceiveDrops = f.drops.Load() // kept by Close
	if n, ok := udpSocketDrops(f.rc); ok {
		st.ReceiveDrops = n
	}
	return st
}

// Close stops the flow: later sends fail with ErrClosed, what was queued is
// sent first (waiting at most Options.CloseTimeout; what is left then is
// counted in Stats.Dropped), then the socket is closed and Close waits for
// the writer and read goroutines to return. Close is idempotent. It must not
// be called from the flow's own Handler, which runs on a goroutine Close
// waits for.
func (f *UDPFlow) Close() error {
	f.closeOnce.Do(func() {
		f.closed.Store(true)
		f.queue.close()
		timer := time.NewTimer(f.opts.CloseTimeout)
		select {
		case <-f.wdone: // everything queued was sent
		case <-timer.C:
			f.log.Warn("flow: UDP close: queue not drained in time, dropping the rest", "timeout", f.opts.CloseTimeout)
		}
		timer.Stop()
		close(f.w.stop) // a pacing writer must not hold Close up
		if n, ok := udpSocketDrops(f.rc); ok {
			f.drops.Store(n)
		}
		f.closeErr = f.conn.Close() // also stops a writer that did not finish
		<-f.wdone
		<-f.done
		if n := f.queue.discard(); n > 0 {
			f.ctr.dropped.Add(uint64(n))
		}
	})
	return f.closeErr
}

// readLoop receives datagrams until the socket is closed.
func (f *UDPFlow) readLoop() {
	defer close(f.done)
	defer func() {
		if f.r.batch != nil {
			f.r.batch.release()
		}
	}()
	var s seq.Sequence
	rawCfg := *f.opts.RawUDP
	handler := f.opts.Handler
	for {
		if f.reasm != nil && !f.deadlineSet && f.reasm.Stats().Pending > 0 {
			// Wake up to expire half-received sequences even if no more
			// datagrams come.
			f.deadlineSet = true
			_ = f.conn.SetReadDeadline(time.Now().Add(f.expireTick))
		}
		n, err := f.receive()
		if err != nil {
			switch {
			case f.closed.Load() || errors.Is(err, net.ErrClosed):
				return
			case errors.Is(err, os.ErrDeadlineExceeded):
				f.expire()
			default:
				// Unexpected (an unconnected UDP socket reports no ICMP
				// errors); do not spin on one that persists.
				f.readLog.Warn(f.log, "flow: UDP read failed", "err", err)
				time.Sleep(time.Millisecond)
			}
			continue
		}
		in := f.r.in[:n]
		f.queue.received()
		var bytes uint64
		for _, d := range in {
			bytes += uint64(len(d.data))
		}
		f.ctr.bytesIn.Add(bytes)
		var now time.Time // one reading per batch: a batch takes microseconds
		if f.reasm != nil {
			now = time.Now()
		}
		for _, d := range in {
			if f.raw {
				if len(d.data) > f.opts.MaxSequenceSize {
					f.malformed(d.addr, fmt.Errorf("%w: raw datagram of %d bytes", seq.ErrTooLarge, len(d.data)))
					continue
				}
				seq.DecodeRawUDP(&s, d.data, rawCfg)
			} else {
				if gap := f.gens.see(d.addr, d.data); gap > 0 {
					f.ctr.lostSeqs.Add(gap)
				}
				ok, err := f.reasm.Add(&s, d.addr, d.data, now)
				f.countLost()
				if err != nil {
					f.malformed(d.addr, err)
					continue
				}
				if !ok {
					continue
				}
			}
			f.ctr.seqIn.Add(1)
			handler(f.peer(d.addr), &s)
		}
	}
}

// expire runs when the read deadline fires: it drops overdue partial
// sequences and re-arms or clears the deadline.
func (f *UDPFlow) expire() {
	f.deadlineSet = false
	if f.reasm == nil {
		_ = f.conn.SetReadDeadline(time.Time{})
		return
	}
	f.reasm.Expire(time.Now())
	f.countLost()
	if f.reasm.Stats().Pending == 0 {
		_ = f.conn.SetReadDeadline(time.Time{})
	} // else the loop re-arms it
}

// countLost adds the partial sequences reassembly gave up since the last
// call to Stats.Dropped and Stats.LostSequences, and their missing
// fragments to Stats.LostFragments.
func (f *UDPFlow) countLost() {
	st := f.reasm.Stats()
	if lost := st.Expired + st.Evicted; lost != f.lost {
		f.ctr.dropped.Add(lost - f.lost)
		f.ctr.lostSeqs.Add(lost - f.lost)
		f.ctr.lostFrags.Add(st.FragmentsLost - f.lostFrags)
		f.lost, f.lostFrags = lost, st.FragmentsLost
	}
}

// udpGenerations follows the generations of each sender's STK-UDP
// sequences (by source, unique_id and sequence id) to count the ones that
// never arrived: a sender that resends one Sequence bumps its generation
// by one each time. Only a sender seen sending consecutive generations is
// judged, so one that sends a sequence to several destinations in turn
// (each sees every n-th generation) is never counted as losing anything.
// Generations older than the last one (reordered) and jumps of more than
// udpGenWindow (a sender that restarted a sequence) count nothing. It
// belongs to the read goroutine; the last sender is kept aside, so a
// steady stream from one costs no map access.
type udpGenerations struct {
	valid bool
	key   udpGenKey
	cur   udpGenState
	m     map[udpGenKey]udpGenState // the other senders, bounded by udpPeerCache
}

type udpGenKey struct {
	from     netip.AddrPort
	uniqueID uint32
	id       uint64
}

type udpGenState struct {
	gen         uint16
	consecutive bool // seen sending consecutive generations
}

// udpGenWindow is the largest jump in generations taken as loss.
const udpGenWindow = 1024

// see takes the header of a datagram from from and returns how many
// sequences of its sender are newly known to be lost.
func (g *udpGenerations) see(from netip.AddrPort, d []byte) uint64 {
	if len(d) < seq.UDPHeaderLen {
		return 0 // malformed: reassembly says so
	}
	key := udpGenKey{from: from, uniqueID: binary.LittleEndian.Uint32(d[32:]), id: binary.LittleEndian.Uint64(d)}
	gen := binary.LittleEndian.Uint16(d[28:])
	if !g.valid || key != g.key {
		if g.m == nil {
			g.m = make(map[udpGenKey]udpGenState)
		}
		if g.valid {
			if len(g.m) >= udpPeerCache {
				clear(g.m)
			}
			g.m[g.key] = g.cur
		}
		st, ok := g.m[key]
		g.valid, g.key, g.cur = true, key, st
		if !ok {
			g.cur = udpGenState{gen: gen}
			return 0
		}
	}
	step := gen - g.cur.gen
	switch {
	case step == 0 || step >= 1<<15: // the same sequence, or an older one
		return 0
	case step == 1:
		g.cur.gen, g.cur.consecutive = gen, true
		return 0
	case step > udpGenWindow:
		g.cur = udpGenState{gen: gen}
		return 0
	}
	g.cur.gen = gen
	if !g.cur.consecutive {
		return 0
	}
	return uint64(step - 1)
}

// peer returns the Peer for a datagram source. Peers are cached per source
// (the last one, then a map bounded by udpPeerCache that is emptied when
// full), so a steady stream from known sources allocates nothing; each
// Peer carries its own address, so a Peer kept past the Handler still
// replies to the right source.
func (f *UDPFlow) peer(from netip.AddrPort) *udpPeer {
	if p := f.lastPeer; p != nil && p.addr == from {
		return p
	}
	p := f.peers[from]
	if p == nil {
		if len(f.peers) >= udpPeerCache {
			clear(f.peers)
		}
		p = &udpPeer{f: f, addr: from}
		f.peers[from] = p
	}
	f.lastPeer = p
	return p
}

func (f *UDPFlow) malformed(from netip.AddrPort, err error) {
	f.ctr.malformed.Add(1)
	f.readLog.Warn(f.log, "flow: dropped malformed datagram", "from", from, "err", err)
}

// udpPeer is the source of datagrams on a UDP flow.
type udpPeer struct {
	f    *UDPFlow
	addr netip.AddrPort
}

func (p *udpPeer) ID() uint64                 { return p.f.id }
func (p *udpPeer) RemoteAddr() netip.AddrPort { return p.addr }
func (p *udpPeer) LocalAddr() netip.AddrPort  { return p.f.local }
func (p *udpPeer) Protocol() Protocol         { return p.f.proto }
func (p *udpPeer) Close() error               { return nil }
func (p *udpPeer) String() string             { return p.f.proto.String() + ":" + p.addr.String() }

// Send queues a reply to the peer. Unlike SendTo it does not wait for room
// in a full queue: it is meant for the Handler, whose wait would stall the
// read loop.
func (p *udpPeer) Send(s *seq.Sequence) error { return p.f.send(s, p.addr, 0) }

var _ Flow = (*UDPFlow)(nil)
