package flow

import (
	"context"
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
	"time"

	"github.com/stk-go/stk/seq"
)

// UDPConfig says what a UDP flow binds, joins and sends to.
type UDPConfig struct {
	// Raw selects raw UDP (PROTOCOL.md §5): the datagram is the sequence's
	// single element, and received datagrams are labelled by Options.RawUDP.
	// Otherwise the flow speaks STK-UDP (§4).
	Raw bool
	// Bind is the local "ip:port" to bind; "" means "0.0.0.0:0" (an
	// ephemeral port, for senders) and ":port" means "0.0.0.0:port".
	Bind string
	// Destination is the default "ip:port" of Send: a unicast address or a
	// multicast group. "" means none (Send fails with ErrNoDestination).
	Destination string
	// Group is a multicast group to join for receiving, e.g. "224.10.10.20",
	// on Options.MulticastInterface (or the interface the system picks).
	// The socket is bound with SO_REUSEADDR, so several flows (and
	// processes) of one host can receive the group on the same port.
	Group string
}

// ErrNoDestination is returned by UDPFlow.Send on a flow configured without
// a Destination.
var ErrNoDestination = errors.New("flow: UDP flow has no destination; use SendTo or set UDPConfig.Destination")

// UDPFlow is one UDP socket: it receives STK-UDP (reassembled) or raw
// datagrams and calls Options.Handler, and it sends to its Destination
// (Send) or to any peer (SendTo, or Peer.Send as a reply).
//
// Receiving runs on one goroutine that reads into a 64 KiB buffer and calls
// the Handler directly. The Peer given to the Handler is the datagram's
// source; it stays valid after the call (its Send goes to that source from
// any goroutine). Half-received STK-UDP sequences are dropped
// Options.ReassemblyTimeout after their first fragment, checked at least
// every 200 ms while any is pending, so memory is released when traffic
// stops. Malformed datagrams are counted in Stats.Malformed and logged at
// most once a second.
//
// Sending is synchronous: Send encodes into a per-flow buffer and writes the
// datagrams before it returns, under a mutex, so it is safe for concurrent
// use and the fragments of one sequence are never interleaved with another's.
// All sequences of a flow carry one random STK-UDP unique_id.
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

	ctr counters

	// Sending, under mu.
	mu       sync.Mutex
	buf      []byte         // STK-UDP scratch, grown to seq.MRU
	emitTo   netip.AddrPort // destination of the datagrams being emitted
	emitN    uint64         // bytes written for the sequence being sent
	emitFunc func([]byte) error

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed when the read goroutine has returned

	// Owned by the read goroutine.
	reasm       *seq.Reassembler
	lost        uint64 // reassembly partials expired or evicted, already counted in ctr.dropped
	lastPeer    *udpPeer
	peers       map[netip.AddrPort]*udpPeer
	lastLog     time.Time
	suppressed  int
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
	// udpLogEvery rate-limits the log lines about bad datagrams and read
	// errors.
	udpLogEvery = time.Second
)

// NewUDP opens a UDP flow and starts receiving on it.
func NewUDP(cfg UDPConfig, opts Options) (*UDPFlow, error) {
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

	lc := net.ListenConfig{Control: udpControl(group.IsValid(), opts.SendBuffer, opts.ReceiveBuffer)}
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
		id:       nextPeerID(),
		raw:      cfg.Raw,
		dest:     dest,
		opts:     opts,
		uniqueID: rand.Uint32(),
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

// Send sends s to the flow's Destination; see SendTo.
func (f *UDPFlow) Send(s *seq.Sequence) error {
	if !f.dest.IsValid() {
		if f.closed.Load() {
			return ErrClosed
		}
		return ErrNoDestination
	}
	return f.SendTo(s, f.dest)
}

// SendTo sends s to one address, unicast or multicast, and returns when its
// datagrams have been handed to the kernel (a UDP send is not a delivery).
//
// Like the C library, SendTo bumps s.Generation before encoding (the first
// send of a new sequence carries generation 1): the generation belongs to
// the sequence, and STK-UDP receivers tell resends apart by it. So s is
// modified, and sending one Sequence from several goroutines at once is a
// data race; sending different sequences concurrently is safe.
//
// On a raw flow the datagram is s's single element: a sequence without
// elements sends nothing (and keeps its generation, as in C), one with
// several fails with seq.ErrRawUDPElements.
func (f *UDPFlow) SendTo(s *seq.Sequence, to netip.AddrPort) error {
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	if !to.Addr().Is4() {
		return fmt.Errorf("flow: UDP send to %v: not an IPv4 address", to)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed.Load() {
		return ErrClosed
	}
	if f.raw {
		payload, ok, err := seq.RawUDPPayload(s)
		if err != nil || !ok {
			return err
		}
		s.Generation++
		if _, err := f.conn.WriteToUDPAddrPort(payload, to); err != nil {
			return f.sendFailed(to, err)
		}
		f.ctr.seqOut.Add(1)
		f.ctr.bytesOut.Add(uint64(len(payload)))
		return nil
	}
	s.Generation++
	f.emitTo, f.emitN = to, 0
	var err error
	f.buf, err = seq.AppendUDP(f.buf, s, f.uniqueID, f.emitFunc)
	if f.emitN > 0 {
		f.ctr.bytesOut.Add(f.emitN)
	}
	if err != nil {
		if f.emitN == 0 && !isWriteError(err) {
			return err // refused by the encoder: nothing was sent
		}
		return f.sendFailed(to, err)
	}
	f.ctr.seqOut.Add(1)
	return nil
}

// writeError marks errors from the socket, as opposed to the encoder's.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

func isWriteError(err error) bool {
	var we *writeError
	return errors.As(err, &we)
}

// emit writes one STK-UDP datagram; it runs under f.mu.
func (f *UDPFlow) emit(d []byte) error {
	n, err := f.conn.WriteToUDPAddrPort(d, f.emitTo)
	f.emitN += uint64(n)
	if err != nil {
		return &writeError{err}
	}
	return nil
}

func (f *UDPFlow) sendFailed(to netip.AddrPort, err error) error {
	if errors.Is(err, net.ErrClosed) || f.closed.Load() {
		return ErrClosed
	}
	f.ctr.dropped.Add(1)
	var we *writeError
	if errors.As(err, &we) {
		err = we.err
	}
	return fmt.Errorf("flow: UDP send to %v: %w", to, err)
}

// LocalAddr is the address the socket is bound to.
func (f *UDPFlow) LocalAddr() netip.AddrPort { return f.local }

// Protocol is UDP, RawUDP, or Multicast when the flow joins a group or sends
// to one (a raw flow reports RawUDP either way).
func (f *UDPFlow) Protocol() Protocol { return f.proto }

// Stats returns the flow's counters. BytesIn and BytesOut count UDP
// payload bytes (STK-UDP headers included); Dropped counts sequences whose
// send failed and half-received sequences given up by reassembly.
func (f *UDPFlow) Stats() Stats { return f.ctr.snapshot() }

// Close closes the socket and waits for the read goroutine to return. Sends
// are synchronous, so nothing is left to deliver. Close is idempotent; later
// sends fail with ErrClosed. It must not be called from the flow's own
// Handler, which runs on the goroutine Close waits for.
func (f *UDPFlow) Close() error {
	f.closeOnce.Do(func() {
		f.closed.Store(true)
		f.closeErr = f.conn.Close()
		<-f.done
	})
	return f.closeErr
}

// readLoop receives datagrams until the socket is closed.
func (f *UDPFlow) readLoop() {
	defer close(f.done)
	buf := make([]byte, udpReadBuffer)
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
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			switch {
			case f.closed.Load() || errors.Is(err, net.ErrClosed):
				return
			case errors.Is(err, os.ErrDeadlineExceeded):
				f.expire()
			default:
				// Unexpected (an unconnected UDP socket reports no ICMP
				// errors); do not spin on one that persists.
				f.logLimited("UDP read failed", "err", err)
				time.Sleep(time.Millisecond)
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		d := buf[:n]
		f.ctr.bytesIn.Add(uint64(n))
		if f.raw {
			if n > f.opts.MaxSequenceSize {
				f.malformed(from, fmt.Errorf("%w: raw datagram of %d bytes", seq.ErrTooLarge, n))
				continue
			}
			seq.DecodeRawUDP(&s, d, rawCfg)
		} else {
			ok, err := f.reasm.Add(&s, from, d, time.Now())
			f.countLost()
			if err != nil {
				f.malformed(from, err)
				continue
			}
			if !ok {
				continue
			}
		}
		f.ctr.seqIn.Add(1)
		handler(f.peer(from), &s)
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
// call to Stats.Dropped.
func (f *UDPFlow) countLost() {
	st := f.reasm.Stats()
	if lost := st.Expired + st.Evicted; lost != f.lost {
		f.ctr.dropped.Add(lost - f.lost)
		f.lost = lost
	}
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
	f.logLimited("dropped malformed datagram", "from", from, "err", err)
}

// logLimited logs a warning at most once per udpLogEvery; the line says how
// many were suppressed since the previous one. Read goroutine only.
func (f *UDPFlow) logLimited(msg string, args ...any) {
	now := time.Now()
	if !f.lastLog.IsZero() && now.Sub(f.lastLog) < udpLogEvery {
		f.suppressed++
		return
	}
	if f.suppressed > 0 {
		args = append(args, "suppressed", f.suppressed)
	}
	f.log.Warn("flow: "+msg, args...)
	f.lastLog, f.suppressed = now, 0
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
func (p *udpPeer) Send(s *seq.Sequence) error { return p.f.SendTo(s, p.addr) }
func (p *udpPeer) Close() error               { return nil }
func (p *udpPeer) String() string             { return p.f.proto.String() + ":" + p.addr.String() }

var _ Flow = (*UDPFlow)(nil)
