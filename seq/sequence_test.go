package seq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// allocBytes returns the bytes f allocates per call, on average.
func allocBytes(runs int, f func()) float64 {
	f()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(runs)
}

// TestDecodeClaimedLengthsDoNotAllocate: a length field is not a reason to
// allocate. A TCP header claiming a 4 GiB element with 30 bytes present
// only says how many bytes are needed, or is refused as too large; an
// STK-UDP segment or fragment count claiming the same is refused.
func TestDecodeClaimedLengthsDoNotAllocate(t *testing.T) {
	le := binary.LittleEndian
	hdr := func(flags uint32) []byte {
		b := make([]byte, TCPHeaderLen)
		le.PutUint16(b, 1)
		le.PutUint16(b[2:], 1)
		le.PutUint32(b[4:], flags)
		le.PutUint64(b[8:], 0x42)
		le.PutUint16(b[16:], 1)
		return b
	}
	// Segment header: id 0, nblks 1, blk 0, length 0xffffffff, user type 7.
	seg := unhexString("00 00 01 00 ff ff ff ff 07 00 00 00 00 00 00 00")
	huge := append(append(hdr(1), seg...), "abcdefghijklmnopqrstuvwxyz0123"...)
	named := append(hdr(3), 0xff, 0xff, 'a', 'b', 'c', 'd') // a 65535-byte name, 4 bytes present

	cases := []struct {
		name    string
		b       []byte
		maxSize int
		need    int
		tooBig  bool
	}{
		{"30 bytes of a 4 GiB frame", huge[:30], 0, TCPHeaderLen + TCPSegmentLen, false},
		{"4 GiB element, maximum 1 TiB", huge, 1 << 40, TCPHeaderLen + TCPSegmentLen + math.MaxUint32, false},
		{"4 GiB element, default maximum", huge, 0, 0, true},
		{"4 GiB element, maximum 1 MiB", huge, 1 << 20, 0, true},
		{"64 KiB name", named, 0, TCPHeaderLen + 2 + 0xffff, false},
		{"64 KiB name, maximum 1000", named, 1000, 0, true},
	}
	var s Sequence
	s.Elements = make([]Element, 0, 4)
	for _, c := range cases {
		n, need, err := DecodeTCP(&s, c.b, c.maxSize)
		if n != 0 || need != c.need || errors.Is(err, ErrTooLarge) != c.tooBig || (err != nil) != c.tooBig {
			t.Errorf("%s: DecodeTCP = %d, %d, %v; want 0, %d, too large %v", c.name, n, need, err, c.need, c.tooBig)
		}
		if c.tooBig {
			// The error itself is a few small allocations.
			if got := allocBytes(100, func() { DecodeTCP(&s, c.b, c.maxSize) }); got > 512 {
				t.Errorf("%s: %.0f bytes allocated per call", c.name, got)
			}
			continue
		}
		if allocs := testing.AllocsPerRun(100, func() { DecodeTCP(&s, c.b, c.maxSize) }); allocs != 0 {
			t.Errorf("%s: %v allocations per call", c.name, allocs)
		}
	}

	// STK-UDP: a one-fragment datagram whose segment claims 4 GiB.
	d := make([]byte, UDPHeaderLen+UDPFirstHeaderLen, 200)
	le.PutUint64(d[8:], 1)
	le.PutUint16(d[48:], 1)
	d = append(d, unhexString("00 00 00 00 ff ff ff ff 00 00 00 00 00 00 00 00 07 00 00 00 00 00 00 00 61 62 63")...)
	if err := DecodeUDP(&s, d); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeUDP of a 4 GiB claim: %v", err)
	}
	if got := allocBytes(100, func() { DecodeUDP(&s, d) }); got > 512 {
		t.Errorf("DecodeUDP: %.0f bytes allocated per call", got)
	}

	// The same as fragment 0 of 2, then fragment 1: assembly must refuse
	// the claim rather than allocate it.
	from := netip.MustParseAddrPort("127.0.0.1:1")
	f0 := bytes.Clone(d)
	le.PutUint64(f0[8:], 2)
	f1 := make([]byte, UDPHeaderLen, 100)
	copy(f1, f0[:UDPHeaderLen])
	le.PutUint64(f1[16:], 1)
	f1 = append(f1, unhexString("01 00 00 00 ff ff ff ff 03 00 00 00 00 00 00 00 07 00 00 00 00 00 00 00 64")...)
	now := time.Unix(0, 0)
	reassemble := func() (bool, error) {
		r := NewReassembler(ReassemblerConfig{})
		r.Add(&s, from, f0, now)
		return r.Add(&s, from, f1, now)
	}
	if done, err := reassemble(); done || !errors.Is(err, ErrMalformed) {
		t.Errorf("Reassembler with a 4 GiB claim: %v, %v", done, err)
	}
	if got := allocBytes(20, func() { reassemble() }); got > 64<<10 {
		t.Errorf("Reassembler with a 4 GiB claim: %.0f bytes allocated per sequence", got)
	}

	// A fragment claiming 2^64-1 fragments is refused before any table is made.
	big := bytes.Clone(f1)
	le.PutUint64(big[8:], math.MaxUint64)
	r := NewReassembler(ReassemblerConfig{})
	if done, err := r.Add(&s, from, big, now); done || !errors.Is(err, ErrTooLarge) {
		t.Errorf("2^64-1 fragments: %v, %v", done, err)
	}
	if got := allocBytes(100, func() { r.Add(&s, from, big, now) }); got > 512 {
		t.Errorf("2^64-1 fragments: %.0f bytes allocated per datagram", got)
	}
}

// TestDecodeSteadyStateNoAlloc: decoding into a reused Sequence allocates
// nothing once it has grown, for TCP frames and single-fragment STK-UDP.
func TestDecodeSteadyStateNoAlloc(t *testing.T) {
	frames := tcpFrames(t, captureStreams(t, "16")[0].Data)
	var s Sequence
	if a := testing.AllocsPerRun(100, func() {
		for _, f := range frames {
			DecodeTCP(&s, f, 0)
		}
	}); a != 0 {
		t.Errorf("DecodeTCP: %v allocations", a)
	}
	d := captureUDP(t, "16")[1].Payload
	r := NewReassembler(ReassemblerConfig{})
	from := netip.MustParseAddrPort("127.0.0.1:1")
	now := time.Unix(0, 0)
	if a := testing.AllocsPerRun(100, func() {
		DecodeUDP(&s, d)
		r.Add(&s, from, d, now)
	}); a != 0 {
		t.Errorf("DecodeUDP / Reassembler.Add: %v allocations", a)
	}
	var out []byte
	var err error
	if a := testing.AllocsPerRun(100, func() { out, err = AppendTCP(out[:0], &s) }); a != 0 || err != nil {
		t.Errorf("AppendTCP into a reused buffer: %v allocations, %v", a, err)
	}
	buf := make([]byte, MRU)
	emit := func([]byte) error { return nil }
	if a := testing.AllocsPerRun(100, func() { buf, err = AppendUDP(buf, &s, 1, emit) }); a != 0 || err != nil {
		t.Errorf("AppendUDP: %v allocations, %v", a, err)
	}
}

// TestDecodeNameStopsAtNUL (found by FuzzDecodeTCP): a name field with a NUL
// inside is read as a C receiver reads it, up to the first NUL, so that the
// decoded sequence can be sent again.
func TestDecodeNameStopsAtNUL(t *testing.T) {
	frame := unhexString("01 00 01 00 02 00 00 00 05 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 06 00 61 62 00 63 64 00")
	var s Sequence
	if n, _, err := DecodeTCP(&s, frame, 0); n != len(frame) || err != nil || s.Name != "ab" {
		t.Fatalf("DecodeTCP = %d, %v, name %q; want name \"ab\"", n, err, s.Name)
	}
	if _, err := AppendTCP(nil, &s); err != nil {
		t.Fatalf("AppendTCP of the decoded sequence: %v", err)
	}
	d := make([]byte, UDPHeaderLen+UDPFirstHeaderLen)
	binary.LittleEndian.PutUint64(d[8:], 1)
	binary.LittleEndian.PutUint16(d[48:], 1)
	binary.LittleEndian.PutUint16(d[56:], 4)
	d = append(d, 'x', 0, 'y', 0)
	if err := DecodeUDP(&s, d); err != nil || s.Name != "x" {
		t.Fatalf("DecodeUDP = %v, name %q; want name \"x\"", err, s.Name)
	}
	udpRoundTrip(t, &s, 1)
}

// TestEqual: content decides; Generation and Meta do not.
func TestEqual(t *testing.T) {
	mk := func() *Sequence {
		s := New(7, "n", TypeData)
		s.Add(1, []byte("a"))
		s.Add(2, nil)
		return s
	}
	a, b := mk(), mk()
	b.Generation, b.Meta = 9, []Element{{UserType: 3}}
	if !a.Equal(b) {
		t.Error("sequences differing only in Generation and Meta are not Equal")
	}
	for what, change := range map[string]func(*Sequence){
		"id":           func(s *Sequence) { s.ID++ },
		"name":         func(s *Sequence) { s.Name = "m" },
		"type":         func(s *Sequence) { s.Type = TypeMgmt },
		"element data": func(s *Sequence) { s.Elements[0].Data = []byte("b") },
		"user type":    func(s *Sequence) { s.Elements[1].UserType = 5 },
		"one more":     func(s *Sequence) { s.Add(1, nil) },
	} {
		c := mk()
		change(c)
		if a.Equal(c) || c.Equal(a) {
			t.Errorf("sequences of another %s are Equal", what)
		}
	}
}
