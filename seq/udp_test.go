package seq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// vectorUDP09 is the worked example of docs/protocol.md §4.3 (capture 09).
const (
	vectorUDP09 = `48 5a 52 73 00 00 00 00  01 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
		00 00 00 00 01 00 00 00  67 45 8b 6b 00 00 00 00
		b8 00 00 00 00 00 00 00  01 00 00 00 00 00 00 00
		11 00 70 75 62 6c 69 73 68 20 73 65 71 75 65 6e 63 65 00
		00 00 00 00 0a 00 00 00  00 00 00 00 00 00 00 00  35 01 00 00 00 00 00 00
		64 65 66 61 75 6c 74 20 de ad`
)

func TestWorkedExampleUDP(t *testing.T) {
	dgram := unhex(t, vectorUDP09)
	var s Sequence
	if err := DecodeUDP(&s, dgram); err != nil {
		t.Fatal(err)
	}
	if s.ID != 0x73525a48 || s.Generation != 1 || s.Type != TypeData || s.Name != "publish sequence" ||
		len(s.Elements) != 1 || string(s.Elements[0].Data) != "default \xde\xad" {
		t.Fatalf("decoded %v", &s)
	}
	var got [][]byte
	_, err := AppendUDP(nil, &s, 0x6b8b4567, func(d []byte) error {
		got = append(got, bytes.Clone(d))
		return nil
	})
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], dgram) {
		t.Fatalf("AppendUDP = %x, %v; want %x", got, err, dgram)
	}
}

// seedUDPDatagrams returns the STK-UDP datagrams of the captures, one of
// every (size, id, fragment index).
func seedUDPDatagrams(f *testing.F) [][]byte {
	seen := map[[3]uint64]bool{}
	var out [][]byte
	for _, nn := range allCaptures {
		for _, p := range captureUDP(f, nn) {
			if isRawUDP(nn, p) {
				continue
			}
			d := p.Payload
			k := [3]uint64{uint64(len(d)), binary.LittleEndian.Uint64(d), binary.LittleEndian.Uint64(d[16:])}
			if !seen[k] {
				seen[k] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// udpRoundTrip sends s with AppendUDP and requires a Reassembler to give it
// back unchanged, the datagrams in order and again in reverse order.
func udpRoundTrip(t *testing.T, s *Sequence, uniqueID uint32) [][]byte {
	t.Helper()
	var dgrams [][]byte
	_, err := AppendUDP(nil, s, uniqueID, func(d []byte) error {
		dgrams = append(dgrams, bytes.Clone(d))
		return nil
	})
	if err != nil {
		t.Fatalf("AppendUDP(%v): %v", s, err)
	}
	for i, d := range dgrams {
		if len(d) > MRU || len(d) < UDPHeaderLen {
			t.Fatalf("datagram %d of %d bytes", i, len(d))
		}
		le := binary.LittleEndian
		if le.Uint64(d) != s.ID || le.Uint64(d[8:]) != uint64(len(dgrams)) || le.Uint64(d[16:]) != uint64(i) ||
			le.Uint16(d[28:]) != s.Generation || le.Uint32(d[32:]) != uniqueID {
			t.Fatalf("datagram %d of %d: header % x", i, len(dgrams), d[:40])
		}
	}
	checkReassembles(t, s, dgrams)
	return dgrams
}

// cAppendUDP is the C library's STK-UDP sender written out literally (see
// docs/protocol.md §4.4 for where AppendUDP differs), as a reference for AppendUDP. overrun reports the case where C overruns its
// buffer (a segment header crossing the MRU; no datagrams are returned), and
// emptyPiece the case where a segment header ends exactly at the MRU and C
// sends it with no data, starting the element again in the next fragment.
// AppendUDP deliberately starts a new fragment in both cases.
func cAppendUDP(s *Sequence, uniqueID uint32) (dgrams [][]byte, emptyPiece, overrun bool) {
	le := binary.LittleEndian
	nameLen := 0
	if s.Name != "" {
		nameLen = len(s.Name) + 1
	}
	h := 40 + 16 + 2 + nameLen
	// Pass 1.
	nfrag, cur, total := 1, h, h
	for _, e := range s.Elements {
		sz := len(e.Data)
		for {
			cur += 24
			if cur > MRU {
				return nil, false, true
			}
			if sz > MRU-cur {
				part := MRU - cur
				sz -= part
				total += part
				nfrag++
				cur = 40
				continue
			}
			cur += sz
			break
		}
		total += cur
	}
	endOffset := cur
	// Pass 2.
	buf := make([]byte, MRU)
	le.PutUint64(buf[0:], s.ID)
	le.PutUint64(buf[8:], uint64(nfrag))
	le.PutUint16(buf[28:], s.Generation)
	le.PutUint32(buf[32:], uniqueID)
	le.PutUint64(buf[40:], uint64(total))
	le.PutUint16(buf[48:], uint16(s.Type))
	le.PutUint16(buf[56:], uint16(nameLen))
	copy(buf[58:], s.Name)
	send := func(d []byte) { dgrams = append(dgrams, bytes.Clone(d)) }
	frag := 0
	cur = h
	for _, e := range s.Elements {
		idx, off := 0, 0
		for {
			seg := buf[cur : cur+24]
			cur += 24
			le.PutUint32(seg[0:], uint32(idx))
			le.PutUint32(seg[4:], uint32(len(e.Data)))
			le.PutUint32(seg[8:], uint32(off))
			le.PutUint32(seg[12:], 0)
			le.PutUint64(seg[16:], e.UserType)
			left := len(e.Data) - off
			if left > MRU-cur {
				n := MRU - cur
				emptyPiece = emptyPiece || n == 0
				copy(buf[cur:], e.Data[off:off+n])
				send(buf)
				frag++
				le.PutUint64(buf[16:], uint64(frag))
				cur = 40
				idx++
				off += n
				continue
			}
			copy(buf[cur:], e.Data[off:])
			cur += left
			if frag == nfrag-1 && cur >= endOffset {
				send(buf[:cur])
			}
			break
		}
	}
	if len(s.Elements) == 0 {
		send(buf[:h])
	}
	return dgrams, emptyPiece, false
}
func FuzzDecodeUDP(f *testing.F) {
	for _, d := range seedUDPDatagrams(f) {
		f.Add(d)
	}
	f.Add(make([]byte, 40))
	f.Add(unhexString("01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00" +
		" 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00" +
		" 00 00 00 00 ff ff ff ff 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 aa"))

	f.Fuzz(func(t *testing.T, d []byte) {
		var s Sequence
		err := DecodeUDP(&s, d)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(d) < UDPHeaderLen+UDPFirstHeaderLen || binary.LittleEndian.Uint64(d[8:]) != 1 {
			t.Fatalf("decoded a %d-byte datagram that is not one whole fragment", len(d))
		}
		n := UDPHeaderLen + UDPFirstHeaderLen
		for _, e := range s.Elements {
			if !within(e.Data, d) {
				t.Fatal("element data outside the datagram")
			}
			n += UDPSegmentLen + len(e.Data)
		}
		if n > len(d) {
			t.Fatalf("%d bytes of elements in a %d-byte datagram", n, len(d))
		}
		// The same datagram through a Reassembler gives the same sequence.
		var r2 Sequence
		done, err := NewReassembler(ReassemblerConfig{}).Add(&r2, netip.AddrPort{}, d, time.Unix(0, 0))
		if !done || err != nil || !s.Equal(&r2) || r2.Generation != s.Generation {
			t.Fatalf("Reassembler: %v, %v, %v", done, err, &r2)
		}
		if s.Type == TypeInvalid {
			return
		}
		if err := checkName(s.Name); err != nil {
			if errors.Is(err, ErrNameTooLong) {
				return
			}
			t.Fatalf("decoded name %q cannot be sent: %v", s.Name, err)
		}
		udpRoundTrip(t, &s, binary.LittleEndian.Uint32(d[32:]))
	})
}

// FuzzAppendUDP builds a sequence from the fuzz input, with element sizes
// steered toward the MRU boundaries where the C sender overruns its buffer,
// fragments it with AppendUDP and requires the Reassembler to give it back.
//
// spec is read 3 bytes per element, [kind a b]: kind%4 == 0 a small element
// of a bytes; 1 an element ending a%64 bytes short of the end of the current
// datagram (a segment header needs 24); 2 an element of a*256+b bytes; 3 an
// element of (a%3+1) MRUs plus or minus b bytes. The user type is kind>>2.
func FuzzAppendUDP(f *testing.F) {
	f.Add([]byte{0, 10, 0}, "publish sequence", uint64(0x73525a48), uint16(1), uint16(1))
	f.Add([]byte{2, 0x11, 0x70}, "publish sequence", uint64(0xffffffffdf8e2087), uint16(1), uint16(1)) // 70000 bytes: capture 11
	f.Add([]byte{}, "", uint64(1), uint16(0), uint16(3))
	for gap := range byte(30) {
		f.Add([]byte{1, gap, 0, 0, 5, 0}, "n", uint64(gap), uint16(gap), uint16(1))
		f.Add([]byte{1, gap, 0, 0, 0, 0, 1, gap, 0, 2, 1, 0}, "", uint64(gap), uint16(2), uint16(1))
	}
	f.Add([]byte{3, 0, 0, 1, 24, 0, 1, 0, 0, 3, 1, 24}, "x", uint64(5), uint16(9), uint16(1))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1, 23, 0, 0, 0, 0}, "empty elements", uint64(6), uint16(0), uint16(1))

	f.Fuzz(func(t *testing.T, spec []byte, name string, id uint64, gen uint16, typ uint16) {
		s := New(id, name, Type(typ))
		s.Generation = gen
		nameLen := 0
		if name != "" {
			nameLen = len(name) + 1
		}
		cur := UDPHeaderLen + UDPFirstHeaderLen + nameLen // where the next segment header would go
		total := 0
		for i := 0; i+3 <= len(spec) && len(s.Elements) < 400; i += 3 {
			kind, a, b := spec[i], int(spec[i+1]), int(spec[i+2])
			var size int
			switch kind % 4 {
			case 0:
				size = a
			case 1:
				size = MRU - cur - UDPSegmentLen - a%64
			case 2:
				size = a<<8 | b
			case 3:
				size = (a%3+1)*MRU + b - 128
			}
			size = max(size, 0)
			if total+size > 400<<10 {
				break
			}
			total += size
			data := make([]byte, size)
			for k := range data {
				data[k] = byte(k*7 + i)
			}
			s.Add(uint64(kind>>2), data)
			// Follow AppendUDP's layout to steer the next kind-1 element.
			left := size
			for {
				if newFragment(cur, left) {
					cur = UDPHeaderLen
				}
				cur += UDPSegmentLen
				if left > MRU-cur {
					left -= MRU - cur
					cur = UDPHeaderLen
					continue
				}
				cur += left
				break
			}
		}
		if s.Type == TypeInvalid {
			if _, err := AppendUDP(nil, s, 1, func([]byte) error { return nil }); !errors.Is(err, ErrInvalidType) {
				t.Fatalf("AppendUDP of type 0: %v", err)
			}
			s.Type = TypeData
		}
		if err := checkName(name); err != nil {
			if _, err2 := AppendUDP(nil, s, 1, func([]byte) error { return nil }); !errors.Is(err2, err) {
				t.Fatalf("AppendUDP with name %q: %v, want %v", name, err2, err)
			}
			return
		}
		dgrams := udpRoundTrip(t, s, uint32(id))
		// Byte for byte what the C sender sends, where C sends anything
		// sane; otherwise C's datagrams must still reassemble.
		cDgrams, empty, overrun := cAppendUDP(s, uint32(id))
		if !overrun && !empty {
			if len(cDgrams) != len(dgrams) {
				t.Fatalf("AppendUDP made %d datagrams, C %d", len(dgrams), len(cDgrams))
			}
			for i := range dgrams {
				if !bytes.Equal(dgrams[i], cDgrams[i]) {
					t.Fatalf("datagram %d differs from C's:\n got % x\nwant % x", i, head(dgrams[i]), head(cDgrams[i]))
				}
			}
		}
		if !overrun {
			checkReassembles(t, s, cDgrams)
		}
		if len(dgrams) == 1 {
			var d Sequence
			if err := DecodeUDP(&d, dgrams[0]); err != nil || !s.Equal(&d) {
				t.Fatalf("DecodeUDP: %v, %v", &d, err)
			}
		}
	})
}

// udpInfo is what the dumps show of one STK-UDP datagram, read straight from
// the bytes with the layout of docs/protocol.md §4 (independently of the codec).
type udpInfo struct {
	id           uint64
	nfrag, idx   uint64
	gen          uint16
	uniqueID     uint32
	typ          int // -1 unless fragment 0
	name         string
	hasName      bool
	totalLen     uint64
	nseg         int // segment headers in this datagram
	segTypes     []uint64
	segLens      []uint32
	segOffsets   []uint32
	trailingJunk int
}

func parseUDPInfo(t testing.TB, d []byte) udpInfo {
	t.Helper()
	le := binary.LittleEndian
	if len(d) < 40 {
		t.Fatalf("datagram of %d bytes", len(d))
	}
	in := udpInfo{
		id: le.Uint64(d[0:]), nfrag: le.Uint64(d[8:]), idx: le.Uint64(d[16:]),
		gen: le.Uint16(d[28:]), uniqueID: le.Uint32(d[32:]), typ: -1,
	}
	if le.Uint32(d[24:]) != 0 || le.Uint16(d[30:]) != 0 || le.Uint32(d[36:]) != 0 {
		t.Fatalf("non-zero flags or padding in % x", d[:40])
	}
	off := 40
	if in.idx == 0 {
		in.totalLen = le.Uint64(d[40:])
		in.typ = int(le.Uint16(d[48:]))
		nl := int(le.Uint16(d[56:]))
		in.hasName = nl > 0
		if nl > 0 {
			in.name = string(d[58 : 58+nl-1])
			if d[58+nl-1] != 0 {
				t.Fatalf("name %q without NUL", d[58:58+nl])
			}
		}
		off = 58 + nl
	}
	for off+24 <= len(d) {
		total, offset := le.Uint32(d[off+4:]), le.Uint32(d[off+8:])
		in.segTypes = append(in.segTypes, le.Uint64(d[off+16:]))
		in.segLens = append(in.segLens, total)
		in.segOffsets = append(in.segOffsets, offset)
		off += 24 + min(int(total-offset), len(d)-off-24)
		in.nseg++
	}
	in.trailingJunk = len(d) - off
	return in
}
func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestGoldenUDPDatagrams puts every STK-UDP datagram of every capture
// through a Reassembler and re-encodes each sequence with the captured
// unique_id and generation: AppendUDP must give the captured datagrams, and
// the raw UDP datagrams of capture 10 must come back from RawUDPPayload.
func TestGoldenUDPDatagrams(t *testing.T) {
	for _, nn := range allCaptures {
		t.Run(nn, func(t *testing.T) {
			r := NewReassembler(ReassemblerConfig{})
			pending := map[string][][]byte{}
			var s Sequence
			var buf []byte
			delivered := 0
			for i, p := range captureUDP(t, nn) {
				if isRawUDP(nn, p) {
					DecodeRawUDP(&s, p.Payload, DefaultRawUDPConfig)
					got, ok, err := RawUDPPayload(&s)
					if !ok || err != nil || !bytes.Equal(got, p.Payload) {
						t.Fatalf("datagram %d: RawUDPPayload = %x, %v, %v", i, got, ok, err)
					}
					delivered++
					continue
				}
				info := parseUDPInfo(t, p.Payload)
				if info.trailingJunk != 0 {
					t.Fatalf("datagram %d: %d bytes after the last segment", i, info.trailingJunk)
				}
				key := fmt.Sprintf("%v/%x/%d/%x", p.Src, info.id, info.gen, info.uniqueID)
				pending[key] = append(pending[key], p.Payload)
				done, err := r.Add(&s, p.Src, p.Payload, p.Time)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if !done {
					continue
				}
				delivered++
				want := pending[key]
				delete(pending, key)
				if s.ID != info.id || s.Generation != info.gen {
					t.Errorf("datagram %d: decoded id %#x gen %d, header says %#x gen %d", i, s.ID, s.Generation, info.id, info.gen)
				}
				var got [][]byte
				buf, err = AppendUDP(buf, &s, info.uniqueID, func(d []byte) error {
					got = append(got, bytes.Clone(d))
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("datagram %d: AppendUDP made %d datagrams, C sent %d", i, len(got), len(want))
				}
				for k := range got {
					if !bytes.Equal(got[k], want[k]) {
						t.Fatalf("datagram %d (%v), fragment %d:\n got % x\nwant % x", i, &s, k, head(got[k]), head(want[k]))
					}
				}
			}
			if len(pending) != 0 {
				t.Errorf("incomplete sequences left: %v", slices.Collect(mapKeys(pending)))
			}
			if st := r.Stats(); st.Pending != 0 || st.PendingBytes != 0 || st.Malformed != 0 {
				t.Errorf("reassembler stats %+v", st)
			}
			t.Logf("%d UDP sequences", delivered)
		})
	}
}

// udpBenchCases: one datagram, and a 200 KiB element over four fragments.
var udpBenchCases = []struct {
	name string
	size int
}{{"single-1KiB", 1 << 10}, {"fragmented-200KiB", 200 << 10}}

func udpDatagrams(b *testing.B, s *Sequence) (dgrams [][]byte, total int) {
	_, err := AppendUDP(nil, s, 0x6b8b4567, func(d []byte) error {
		dgrams = append(dgrams, append([]byte(nil), d...))
		total += len(d)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return dgrams, total
}
func BenchmarkAppendUDP(b *testing.B) {
	for _, c := range udpBenchCases {
		b.Run(c.name, func(b *testing.B) {
			s := benchSequence(c.size)
			s.Generation = 1
			_, total := udpDatagrams(b, s)
			buf := make([]byte, MRU)
			emit := func([]byte) error { return nil }
			b.SetBytes(int64(total))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				var err error
				if buf, err = AppendUDP(buf, s, 0x6b8b4567, emit); err != nil {
					b.Fatal(err)
				}
			}
			reportMsgs(b)
		})
	}
}
