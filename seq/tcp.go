package seq

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// TCP frame layout (docs/protocol.md §3.2).
const (
	TCPHeaderLen  = 24 // basic header
	TCPSegmentLen = 16 // per-element segment header

	tcpWireVersion = 1
	tcpWireCompat  = 1

	tcpFlagSegments = 1 << 0 // SEGMENTS_FOLLOW
	tcpFlagName     = 1 << 1 // NAME_FOLLOWS
)

// TCPSize returns the encoded TCP frame size of s.
func TCPSize(s *Sequence) int {
	n := TCPHeaderLen
	if s.Name != "" {
		n += 2 + len(s.Name) + 1
	}
	for _, e := range s.Elements {
		n += TCPSegmentLen + len(e.Data)
	}
	return n
}

// AppendTCP appends the TCP frame of s to dst and returns the extended
// buffer. It refuses type 0, more than MaxElements elements and names that
// cannot be encoded, because C receivers crash on them; dst is then returned
// unchanged.
func AppendTCP(dst []byte, s *Sequence) ([]byte, error) {
	if s.Type == TypeInvalid {
		return dst, ErrInvalidType
	}
	if len(s.Elements) > MaxElements {
		return dst, ErrTooManyElements
	}
	if err := checkName(s.Name); err != nil {
		return dst, err
	}
	var flags uint32
	if s.Name != "" {
		flags |= tcpFlagName
	}
	n := len(s.Elements)
	if n > 0 {
		flags |= tcpFlagSegments
	}
	for _, e := range s.Elements {
		if uint64(len(e.Data)) > 0xffffffff {
			return dst, ErrElementTooLarge
		}
	}
	dst = slices.Grow(dst, TCPSize(s)) // amortised: callers append many frames to one buffer
	var h [TCPHeaderLen]byte
	binary.LittleEndian.PutUint16(h[0:], tcpWireVersion)
	binary.LittleEndian.PutUint16(h[2:], tcpWireCompat)
	binary.LittleEndian.PutUint32(h[4:], flags)
	binary.LittleEndian.PutUint64(h[8:], s.ID)
	binary.LittleEndian.PutUint16(h[16:], uint16(s.Type))
	dst = append(dst, h[:]...)
	if s.Name != "" {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(s.Name)+1))
		dst = append(dst, s.Name...)
		dst = append(dst, 0)
	}
	for i, e := range s.Elements {
		var sh [TCPSegmentLen]byte
		binary.LittleEndian.PutUint16(sh[0:], uint16(i))
		sh[2] = byte(n)
		sh[3] = byte(i)
		binary.LittleEndian.PutUint32(sh[4:], uint32(len(e.Data)))
		binary.LittleEndian.PutUint64(sh[8:], e.UserType)
		dst = append(dst, sh[:]...)
		dst = append(dst, e.Data...)
	}
	return dst, nil
}

// DecodeTCP decodes the first TCP frame in b into dst.
//
// When b holds a whole frame, DecodeTCP returns its length n > 0. When b
// holds only the start of a frame, it returns n == 0 and need, the length b
// must reach before another attempt can make progress: a stream reader waits
// for that many bytes instead of decoding again after every read. A frame
// larger than maxSize (DefaultMaxSize when maxSize <= 0) is refused with an
// error wrapping ErrTooLarge as soon as its header claims it, before any of
// it is buffered; a frame that cannot be valid gives an error wrapping
// ErrMalformed. After an error the stream cannot be resynchronised.
//
// Element data alias b. Decoding into a reused dst does not allocate once
// dst.Elements has grown to the stream's element count and the name repeats.
//
// How the end of the frame is found (docs/protocol.md §3.4): TCP frames carry no
// length, and each segment header repeats nblks, the element count modulo
// 256. Segments follow while nblks is larger than the count read so far.
// Otherwise the next four bytes decide: they continue the frame only if they
// read as the next segment header of this frame (segment_id == count,
// nblks unchanged, blk_num == count mod 256), which a new frame's header
// (01 00 01 00) never does. That recovers frames of 256 elements or more
// from foreign senders; when those four bytes have not arrived yet, the frame
// ends there, which only matters for such oversized frames.
func DecodeTCP(dst *Sequence, b []byte, maxSize int) (n, need int, err error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if len(b) < TCPHeaderLen {
		return 0, TCPHeaderLen, nil
	}
	dst.resetForDecode()
	flags := binary.LittleEndian.Uint32(b[4:])
	dst.ID = binary.LittleEndian.Uint64(b[8:])
	dst.Type = Type(binary.LittleEndian.Uint16(b[16:]))
	off := TCPHeaderLen
	if flags&tcpFlagName != 0 {
		if len(b) < off+2 {
			return 0, off + 2, nil
		}
		nl := int(binary.LittleEndian.Uint16(b[off:]))
		off += 2
		if off+nl > maxSize {
			return 0, 0, fmt.Errorf("%w: name of %d bytes", ErrTooLarge, nl)
		}
		if len(b) < off+nl {
			return 0, off + nl, nil
		}
		dst.setName(b[off : off+nl])
		off += nl
	} else if dst.Name != "" {
		dst.Name = ""
	}
	if flags&tcpFlagSegments == 0 {
		return off, 0, nil
	}
	count := 0
	for {
		if len(b) < off+TCPSegmentLen {
			return 0, off + TCPSegmentLen, nil
		}
		sh := b[off : off+TCPSegmentLen]
		nblks := int(sh[2])
		size := uint64(binary.LittleEndian.Uint32(sh[4:]))
		end := uint64(off) + TCPSegmentLen + size
		if end > uint64(maxSize) {
			return 0, 0, fmt.Errorf("%w: frame reaches %d bytes, maximum %d", ErrTooLarge, end, maxSize)
		}
		if uint64(len(b)) < end {
			return 0, int(end), nil
		}
		data := b[off+TCPSegmentLen : end : end]
		dst.Elements = append(dst.Elements, Element{UserType: binary.LittleEndian.Uint64(sh[8:]), Data: data})
		off = int(end)
		count++
		if nblks > count {
			continue
		}
		if len(b) < off+4 || !continuesFrame(b[off:off+4], count, nblks) {
			return off, 0, nil
		}
	}
}

// continuesFrame reports whether h, the next four bytes after count segments
// of a frame whose nblks is nblks, is that frame's next segment header.
func continuesFrame(h []byte, count, nblks int) bool {
	return binary.LittleEndian.Uint16(h) == uint16(count) &&
		int(h[2]) == nblks && h[3] == byte(count)
}
