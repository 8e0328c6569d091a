package seq

import (
	"encoding/binary"
	"fmt"
)

// STK-UDP layout (docs/protocol.md §4).
const (
	// MRU is the largest STK-UDP datagram payload.
	MRU = 65507
	// UDPHeaderLen is the fragment header every datagram starts with.
	UDPHeaderLen = 40
	// UDPFirstHeaderLen is the extra header of fragment 0 before its name
	// (total_len, type, padding and name_len).
	UDPFirstHeaderLen = 18
	// UDPSegmentLen is the header in front of every element piece.
	UDPSegmentLen = 24
)

// AppendUDP fragments s into STK-UDP datagrams and calls emit once per
// datagram, in order. buf is scratch space reused for every datagram (it is
// grown to MRU bytes if smaller) and returned for the next call; emit must
// not keep the slice it is given.
//
// The datagrams are byte-identical to what the C library sends, including
// its miscomputed frag0 total_len (§4.4), with one deliberate difference: the
// C sender overruns its buffer when an element boundary falls within 24 bytes
// of the MRU, and this one starts a new datagram instead.
//
// The generation on the wire is s.Generation: the sender bumps it before
// each send (see Sequence.Generation). uniqueID must stay the same for all
// fragments of one sequence; any value works.
func AppendUDP(buf []byte, s *Sequence, uniqueID uint32, emit func(datagram []byte) error) ([]byte, error) {
	if s.Type == TypeInvalid {
		return buf, ErrInvalidType
	}
	if err := checkName(s.Name); err != nil {
		return buf, err
	}
	nameLen := 0
	if s.Name != "" {
		nameLen = len(s.Name) + 1
	}
	head := UDPHeaderLen + UDPFirstHeaderLen + nameLen

	// Pass 1: count fragments and compute total_len exactly as C does.
	nfrag, cur, total := 1, head, uint64(head)
	for _, e := range s.Elements {
		if uint64(len(e.Data)) > 0xffffffff {
			return buf, ErrElementTooLarge
		}
		sz := len(e.Data)
		for {
			if newFragment(cur, sz) {
				nfrag++
				cur = UDPHeaderLen
			}
			cur += UDPSegmentLen
			if sz > MRU-cur {
				part := MRU - cur
				sz -= part
				total += uint64(part)
				nfrag++
				cur = UDPHeaderLen
				continue
			}
			cur += sz
			break
		}
		total += uint64(cur)
	}

	// Pass 2: write and emit.
	if cap(buf) < MRU {
		buf = make([]byte, MRU)
	}
	buf = buf[:MRU]
	clear(buf[:head])
	binary.LittleEndian.PutUint64(buf[0:], s.ID)
	binary.LittleEndian.PutUint64(buf[8:], uint64(nfrag))
	binary.LittleEndian.PutUint16(buf[28:], s.Generation)
	binary.LittleEndian.PutUint32(buf[32:], uniqueID)
	binary.LittleEndian.PutUint64(buf[40:], total)
	binary.LittleEndian.PutUint16(buf[48:], uint16(s.Type))
	binary.LittleEndian.PutUint16(buf[56:], uint16(nameLen))
	if nameLen > 0 {
		copy(buf[58:], s.Name)
		buf[58+nameLen-1] = 0
	}
	frag := uint64(0)
	cur = head
	send := func() error {
		if err := emit(buf[:cur]); err != nil {
			return err
		}
		frag++
		binary.LittleEndian.PutUint64(buf[16:], frag)
		cur = UDPHeaderLen
		return nil
	}
	for _, e := range s.Elements {
		data := e.Data
		idx, offset := uint32(0), 0
		for {
			if newFragment(cur, len(data)-offset) {
				if err := send(); err != nil {
					return buf, err
				}
			}
			seg := buf[cur : cur+UDPSegmentLen]
			binary.LittleEndian.PutUint32(seg[0:], idx)
			binary.LittleEndian.PutUint32(seg[4:], uint32(len(data)))
			binary.LittleEndian.PutUint32(seg[8:], uint32(offset))
			binary.LittleEndian.PutUint32(seg[12:], 0)
			binary.LittleEndian.PutUint64(seg[16:], e.UserType)
			cur += UDPSegmentLen
			left := len(data) - offset
			if left > MRU-cur {
				part := MRU - cur
				copy(buf[cur:], data[offset:offset+part])
				cur = MRU
				offset += part
				idx++
				if err := send(); err != nil {
					return buf, err
				}
				continue
			}
			copy(buf[cur:], data[offset:])
			cur += left
			break
		}
	}
	if err := emit(buf[:cur]); err != nil {
		return buf, err
	}
	return buf, nil
}

// newFragment reports whether a piece of an element with left bytes to go
// must start a new datagram because the segment header (and at least one data
// byte, if any remain) would not fit at cur. This is where the C sender
// overruns its buffer instead (docs/protocol.md §4.4, docs/differences.md B16).
func newFragment(cur, left int) bool {
	room := MRU - cur - UDPSegmentLen
	return room < 0 || (room == 0 && left > 0)
}

// udpHeader is the fragment header of one STK-UDP datagram.
type udpHeader struct {
	id         uint64
	nfrag      uint64
	fragIdx    uint64
	generation uint16
	uniqueID   uint32
}

func parseUDPHeader(d []byte) (udpHeader, error) {
	if len(d) < UDPHeaderLen {
		return udpHeader{}, fmt.Errorf("%w: STK-UDP datagram of %d bytes, shorter than its 40-byte header", ErrMalformed, len(d))
	}
	h := udpHeader{
		id:         binary.LittleEndian.Uint64(d[0:]),
		nfrag:      binary.LittleEndian.Uint64(d[8:]),
		fragIdx:    binary.LittleEndian.Uint64(d[16:]),
		generation: binary.LittleEndian.Uint16(d[28:]),
		uniqueID:   binary.LittleEndian.Uint32(d[32:]),
	}
	if h.nfrag == 0 || h.fragIdx >= h.nfrag {
		return h, fmt.Errorf("%w: STK-UDP fragment %d of %d", ErrMalformed, h.fragIdx, h.nfrag)
	}
	return h, nil
}

// parseFirst reads fragment 0's type and name into dst and returns the
// offset of its first segment header.
func parseFirst(dst *Sequence, d []byte) (int, error) {
	if len(d) < UDPHeaderLen+UDPFirstHeaderLen {
		return 0, fmt.Errorf("%w: first STK-UDP fragment of %d bytes, shorter than its 58-byte headers", ErrMalformed, len(d))
	}
	dst.Type = Type(binary.LittleEndian.Uint16(d[48:]))
	nl := int(binary.LittleEndian.Uint16(d[56:]))
	off := UDPHeaderLen + UDPFirstHeaderLen
	if off+nl > len(d) {
		return 0, fmt.Errorf("%w: STK-UDP name of %d bytes overruns the datagram", ErrMalformed, nl)
	}
	if nl > 0 {
		dst.setName(d[off : off+nl])
	} else if dst.Name != "" {
		dst.Name = ""
	}
	return off + nl, nil
}

// udpSegment is one element piece inside a datagram.
type udpSegment struct {
	idx      uint32
	total    uint32 // whole element length
	offset   uint32 // of this piece within the element
	userType uint64
	data     []byte // this piece
}

// nextSegment parses the segment header at d[off:] and returns the piece and
// the offset after it.
func nextSegment(d []byte, off int) (udpSegment, int, error) {
	if len(d)-off < UDPSegmentLen {
		return udpSegment{}, 0, fmt.Errorf("%w: %d stray bytes at the end of an STK-UDP datagram", ErrMalformed, len(d)-off)
	}
	h := d[off : off+UDPSegmentLen]
	s := udpSegment{
		idx:      binary.LittleEndian.Uint32(h[0:]),
		total:    binary.LittleEndian.Uint32(h[4:]),
		offset:   binary.LittleEndian.Uint32(h[8:]),
		userType: binary.LittleEndian.Uint64(h[16:]),
	}
	if s.offset > s.total {
		return s, 0, fmt.Errorf("%w: STK-UDP piece offset %d beyond its element length %d", ErrMalformed, s.offset, s.total)
	}
	off += UDPSegmentLen
	n := min(int(s.total-s.offset), len(d)-off)
	s.data = d[off : off+n : off+n]
	return s, off + n, nil
}

// DecodeUDP decodes a single-fragment STK-UDP datagram into dst; element data
// alias d. It returns an error wrapping ErrMalformed if d is not a complete
// one-fragment sequence; use a Reassembler for traffic that may be
// fragmented.
func DecodeUDP(dst *Sequence, d []byte) error {
	h, err := parseUDPHeader(d)
	if err != nil {
		return err
	}
	if h.nfrag != 1 {
		return fmt.Errorf("%w: STK-UDP fragment %d of %d needs reassembly", ErrMalformed, h.fragIdx, h.nfrag)
	}
	dst.resetForDecode()
	dst.ID, dst.Generation = h.id, h.generation
	off, err := parseFirst(dst, d)
	if err != nil {
		return err
	}
	for off < len(d) {
		var s udpSegment
		if s, off, err = nextSegment(d, off); err != nil {
			return err
		}
		if s.offset != 0 || len(s.data) != int(s.total) {
			return fmt.Errorf("%w: element piece at %d of %d in a one-fragment STK-UDP sequence", ErrMalformed, s.offset, s.total)
		}
		dst.Elements = append(dst.Elements, Element{UserType: s.userType, Data: s.data})
	}
	return nil
}
