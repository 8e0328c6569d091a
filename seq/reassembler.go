package seq

import (
	"fmt"
	"net/netip"
	"time"
)

// DefaultReassemblyTimeout is how long a half-received STK-UDP sequence is
// kept, as in the C library (option sequence_expiration_interval).
const DefaultReassemblyTimeout = time.Second

// ReassemblerConfig bounds a Reassembler. Zero fields take the defaults.
type ReassemblerConfig struct {
	// MaxSize bounds one reassembled sequence in datagram bytes (plus a
	// small bookkeeping charge per fragment). Default DefaultMaxSize.
	MaxSize int
	// MaxPending bounds the bytes held by all half-received sequences
	// together; the oldest are dropped to make room. Default 2 × MaxSize,
	// so one maximal sequence can complete while another is arriving.
	MaxPending int
	// Timeout drops a half-received sequence this long after its first
	// fragment arrived. Default DefaultReassemblyTimeout.
	Timeout time.Duration
}

// ReassemblyStats counts what a Reassembler did.
type ReassemblyStats struct {
	Pending      int    // half-received sequences held now
	PendingBytes int    // bytes they hold, bookkeeping included
	Completed    uint64 // multi-fragment sequences delivered
	Expired      uint64 // dropped by Timeout
	Evicted      uint64 // dropped to respect MaxPending
	Malformed    uint64 // datagrams or sequences rejected as malformed or too large
	// FragmentsLost counts the fragments that the sequences dropped by
	// Timeout or MaxPending were still missing.
	FragmentsLost uint64
}

type partialKey struct {
	from       netip.AddrPort
	id         uint64
	uniqueID   uint32
	generation uint16
}

type partial struct {
	key     partialKey
	created time.Time
	frags   [][]byte // by fragment index; nil until received
	got     int
	bytes   int // datagram bytes held plus partialCost
}

// partialCost is what a half-received sequence of nfrag fragments costs
// before any datagram is stored: the partial and its fragment table (a slice
// header per fragment). It is charged to MaxSize and MaxPending like datagram
// bytes, so that tiny datagrams claiming many fragments cannot make the
// Reassembler hold far more memory than its bounds.
func partialCost(nfrag uint64) int {
	return 128 + 24*int(nfrag)
}

// Reassembler puts fragmented STK-UDP sequences back together.
//
// Unlike the C receiver it keys pieces by element and fragments by index, so
// duplicated or reordered fragments cannot corrupt a sequence, and it includes
// the sender's address in the key (C uses only id, generation and the
// sender's unique_id, which C clients all set to the same value). Memory is
// bounded by ReassemblerConfig. A Reassembler is not safe for concurrent use;
// a UDP listener owns one.
type Reassembler struct {
	cfg     ReassemblerConfig
	pending map[partialKey]*partial
	order   []*partial // by creation, oldest first; may hold finished ones
	stats   ReassemblyStats
}

// NewReassembler returns a Reassembler with cfg's bounds.
func NewReassembler(cfg ReassemblerConfig) *Reassembler {
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 2 * cfg.MaxSize
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultReassemblyTimeout
	}
	return &Reassembler{cfg: cfg, pending: make(map[partialKey]*partial)}
}

// Stats returns the Reassembler's counters.
func (r *Reassembler) Stats() ReassemblyStats {
	st := r.stats
	st.Pending = len(r.pending)
	return st
}

// Add takes one datagram received from from at time now. When the datagram
// completes a sequence, Add decodes it into dst and returns true. A
// single-fragment sequence is decoded in place (its element data alias d);
// a reassembled one owns fresh memory. A malformed datagram gives an error
// wrapping ErrMalformed or ErrTooLarge and leaves other sequences alone.
func (r *Reassembler) Add(dst *Sequence, from netip.AddrPort, d []byte, now time.Time) (bool, error) {
	h, err := parseUDPHeader(d)
	if err != nil {
		r.stats.Malformed++
		return false, err
	}
	if h.nfrag == 1 {
		if err := DecodeUDP(dst, d); err != nil {
			r.stats.Malformed++
			return false, err
		}
		return true, nil
	}
	// Every fragment but the last is a full datagram, so a sequence of
	// MaxSize bytes needs at most this many.
	if maxFrags := uint64(r.cfg.MaxSize/(MRU-UDPHeaderLen-UDPSegmentLen) + 2); h.nfrag > maxFrags {
		r.stats.Malformed++
		return false, fmt.Errorf("%w: STK-UDP sequence of %d fragments", ErrTooLarge, h.nfrag)
	}
	r.Expire(now)
	key := partialKey{from: from, id: h.id, uniqueID: h.uniqueID, generation: h.generation}
	p := r.pending[key]
	if p == nil {
		p = &partial{key: key, created: now, frags: make([][]byte, h.nfrag), bytes: partialCost(h.nfrag)}
		r.pending[key] = p
		r.order = append(r.order, p)
		r.stats.PendingBytes += p.bytes
	}
	if uint64(len(p.frags)) != h.nfrag {
		r.drop(p)
		r.stats.Malformed++
		return false, fmt.Errorf("%w: STK-UDP fragments of one sequence disagree on their count", ErrMalformed)
	}
	if p.frags[h.fragIdx] != nil {
		return false, nil // duplicate
	}
	if p.bytes+len(d) > r.cfg.MaxSize {
		r.drop(p)
		r.stats.Malformed++
		return false, fmt.Errorf("%w: STK-UDP sequence exceeds %d bytes", ErrTooLarge, r.cfg.MaxSize)
	}
	r.makeRoom(len(d), p)
	if r.pending[key] == nil { // evicted itself: nothing else was left to drop
		return false, nil
	}
	p.frags[h.fragIdx] = append([]byte(nil), d...)
	p.got++
	p.bytes += len(d)
	r.stats.PendingBytes += len(d)
	if p.got < len(p.frags) {
		return false, nil
	}
	err = assemble(dst, p)
	r.drop(p)
	if err != nil {
		r.stats.Malformed++
		return false, err
	}
	r.stats.Completed++
	return true, nil
}

// Expire drops half-received sequences older than the timeout and returns
// how many it dropped. Add calls it; a listener also calls it from a timer so
// that memory is released when traffic stops.
func (r *Reassembler) Expire(now time.Time) int {
	n := 0
	for len(r.order) > 0 {
		p := r.order[0]
		if r.pending[p.key] == p && now.Sub(p.created) < r.cfg.Timeout {
			break
		}
		if r.pending[p.key] == p {
			r.stats.FragmentsLost += uint64(len(p.frags) - p.got)
			r.drop(p)
			r.stats.Expired++
			n++
		}
		r.order[0] = nil
		r.order = r.order[1:]
	}
	return n
}

// makeRoom drops the oldest partial sequences until size more bytes fit.
func (r *Reassembler) makeRoom(size int, keep *partial) {
	for r.stats.PendingBytes+size > r.cfg.MaxPending && len(r.order) > 0 {
		p := r.order[0]
		r.order[0] = nil
		r.order = r.order[1:]
		if r.pending[p.key] != p {
			continue
		}
		r.stats.FragmentsLost += uint64(len(p.frags) - p.got)
		r.drop(p)
		r.stats.Evicted++
		if p == keep {
			return
		}
	}
}

// drop forgets p and releases its datagrams: r.order may keep p until it
// reaches the front, and must not keep its memory with it.
func (r *Reassembler) drop(p *partial) {
	if r.pending[p.key] == p {
		delete(r.pending, p.key)
		r.stats.PendingBytes -= p.bytes
	}
	p.frags = nil
}

// assemble decodes the complete fragment set of p into dst.
func assemble(dst *Sequence, p *partial) error {
	dst.resetForDecode()
	dst.ID, dst.Generation = p.key.id, p.key.generation
	off, err := parseFirst(dst, p.frags[0])
	if err != nil {
		return err
	}
	var cur []byte // element being assembled from pieces
	var curType uint64
	for i, d := range p.frags {
		if i > 0 {
			off = UDPHeaderLen
		}
		for off < len(d) {
			var s udpSegment
			if s, off, err = nextSegment(d, off); err != nil {
				return err
			}
			switch {
			case s.offset == 0 && cur != nil && len(cur) == 0 && int(s.total) == cap(cur) && s.userType == curType:
				// A C sender whose segment header ends exactly at the MRU
				// sends it with no data and starts the element again at
				// offset 0 in the next fragment (docs/protocol.md §4.4).
				cur = append(cur, s.data...)
			case s.offset == 0 && cur != nil:
				return fmt.Errorf("%w: STK-UDP element cut short at %d of %d bytes", ErrMalformed, len(cur), cap(cur))
			case s.offset == 0 && len(s.data) == int(s.total):
				dst.Elements = append(dst.Elements, Element{UserType: s.userType, Data: s.data})
			case s.offset == 0:
				// The element's length is bounded by the bytes actually
				// received, which Add bounded by MaxSize.
				if int(s.total) > p.bytes {
					return fmt.Errorf("%w: STK-UDP element claims %d bytes, the sequence holds %d", ErrMalformed, s.total, p.bytes)
				}
				cur = append(make([]byte, 0, s.total), s.data...)
				curType = s.userType
			case cur == nil || int(s.offset) != len(cur) || int(s.total) != cap(cur) || s.userType != curType:
				return fmt.Errorf("%w: STK-UDP piece at %d of %d does not continue its element", ErrMalformed, s.offset, s.total)
			default:
				cur = append(cur, s.data...)
			}
			if cur != nil && len(cur) == cap(cur) {
				dst.Elements = append(dst.Elements, Element{UserType: curType, Data: cur})
				cur = nil
			}
		}
	}
	if cur != nil {
		return fmt.Errorf("%w: STK-UDP element incomplete at %d of %d bytes", ErrMalformed, len(cur), cap(cur))
	}
	return nil
}
