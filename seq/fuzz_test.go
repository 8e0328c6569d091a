package seq

// Fuzz targets for every decoder, a round-trip target for the STK-UDP
// fragmenter, and tests that no decoder allocates what a length field
// merely claims. The seed corpora are the frames and datagrams of the C
// captures; testdata/fuzz/<Target> keeps inputs found by fuzzing.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

// seedTCPFrames returns one TCP frame of every (size, id, type) seen in the
// captures, plus a few hand-made edge cases.
func seedTCPFrames(f *testing.F) [][]byte {
	seen := map[[3]uint64]bool{}
	var out [][]byte
	for _, nn := range allCaptures {
		for _, st := range captureStreams(f, nn) {
			for _, fr := range tcpFrames(f, st.Data) {
				var s Sequence
				DecodeTCP(&s, fr, 0)
				k := [3]uint64{uint64(len(fr)), s.ID, uint64(s.Type)}
				if !seen[k] {
					seen[k] = true
					out = append(out, fr)
				}
			}
		}
	}
	return out
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

func sameSequence(a, b *Sequence) bool {
	if a.ID != b.ID || a.Name != b.Name || a.Type != b.Type || len(a.Elements) != len(b.Elements) {
		return false
	}
	for i := range a.Elements {
		if a.Elements[i].UserType != b.Elements[i].UserType || !bytes.Equal(a.Elements[i].Data, b.Elements[i].Data) {
			return false
		}
	}
	return true
}

// within reports whether sub lies inside b's memory.
func within(sub, b []byte) bool {
	if len(sub) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	s0 := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	b0 := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return s0 >= b0 && s0+uintptr(len(sub)) <= b0+uintptr(len(b))
}

func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v wraps neither ErrMalformed nor ErrTooLarge", err)
	}
}

func FuzzDecodeTCP(f *testing.F) {
	for _, fr := range seedTCPFrames(f) {
		f.Add(fr, 0)
	}
	f.Add([]byte{}, 0)
	f.Add(unhexString("01 00 01 00 01 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 ff ff ff ff 00 00 00 00 00 00 00 00"), 0)
	f.Add(unhexString("01 00 01 00 03 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 ff ff 61"), 100)
	// nblks 0: the frame continues while the next segment headers say so.
	f.Add(unhexString("01 00 01 00 01 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00"+
		" 00 00 00 00 01 00 00 00 07 00 00 00 00 00 00 00 aa  01 00 00 01 00 00 00 00 08 00 00 00 00 00 00 00"+
		" 01 00 01 00"), 0)

	f.Fuzz(func(t *testing.T, b []byte, maxSize int) {
		var s Sequence
		n, need, err := DecodeTCP(&s, b, maxSize)
		checkDecodeErr(t, err)
		effMax := maxSize
		if effMax <= 0 {
			effMax = DefaultMaxSize
		}
		switch {
		case n < 0 || n > len(b):
			t.Fatalf("n=%d for %d bytes", n, len(b))
		case err != nil && (n != 0 || need != 0):
			t.Fatalf("error %v with n=%d need=%d", err, n, need)
		case err == nil && n == 0 && need <= len(b):
			t.Fatalf("n=0 need=%d for %d bytes", need, len(b))
		case n > 0 && need != 0:
			t.Fatalf("n=%d and need=%d", n, need)
		case n > max(effMax, TCPHeaderLen):
			t.Fatalf("frame of %d bytes decoded with maximum %d", n, effMax)
		}
		if n == 0 {
			return
		}
		size := TCPHeaderLen
		for _, e := range s.Elements {
			if !within(e.Data, b[:n]) {
				t.Fatalf("element data outside the frame")
			}
			size += TCPSegmentLen + len(e.Data)
		}
		if size > n {
			t.Fatalf("%d element bytes in a %d-byte frame", size, n)
		}

		// The frame alone decodes the same, and a prefix of it does not
		// decode past its end.
		var s2 Sequence
		if n2, need2, err2 := DecodeTCP(&s2, b[:n], maxSize); n2 != n || need2 != 0 || err2 != nil || !sameSequence(&s, &s2) {
			t.Fatalf("frame alone: DecodeTCP = %d, %d, %v; whole input gave %d", n2, need2, err2, n)
		}
		if n3, need3, err3 := DecodeTCP(&s2, b[:n-1], maxSize); err3 != nil ||
			n3 == 0 && (need3 <= n-1 || need3 > n) || n3 > n-1 {
			t.Fatalf("frame minus its last byte: DecodeTCP = %d, %d, %v; frame is %d", n3, need3, err3, n)
		}

		// Whatever can be sent re-encodes to a frame that decodes the same.
		if s.Type == TypeInvalid || len(s.Elements) > MaxElements {
			if _, err := AppendTCP(nil, &s); err == nil {
				t.Fatalf("AppendTCP accepted type %d with %d elements", s.Type, len(s.Elements))
			}
			return
		}
		out, err := AppendTCP(nil, &s)
		if err != nil {
			if errors.Is(err, ErrNameTooLong) && len(s.Name) > MaxNameLen {
				return
			}
			t.Fatalf("AppendTCP of a decoded %v: %v", &s, err)
		}
		if len(out) != TCPSize(&s) {
			t.Fatalf("AppendTCP made %d bytes, TCPSize says %d", len(out), TCPSize(&s))
		}
		var back Sequence
		if n4, need4, err4 := DecodeTCP(&back, out, 0); n4 != len(out) || need4 != 0 || err4 != nil {
			t.Fatalf("re-encoded frame: DecodeTCP = %d, %d, %v for %d bytes", n4, need4, err4, len(out))
		}
		if !sameSequence(&s, &back) {
			t.Fatalf("round trip changed the sequence:\n%v\n%v", &s, &back)
		}
	})
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

// checkReassembles requires a Reassembler to give s back from dgrams, in
// order and in reverse order, on the last datagram and not before.
func checkReassembles(t *testing.T, s *Sequence, dgrams [][]byte) {
	t.Helper()
	from := netip.MustParseAddrPort("127.0.0.1:9")
	now := time.Unix(1, 0)
	for _, reverse := range []bool{false, true} {
		r := NewReassembler(ReassemblerConfig{MaxSize: 1 << 30})
		var got Sequence
		for k := range dgrams {
			i := k
			if reverse {
				i = len(dgrams) - 1 - k
			}
			done, err := r.Add(&got, from, dgrams[i], now)
			if err != nil {
				t.Fatalf("reverse=%v: datagram %d of %d: %v", reverse, i, len(dgrams), err)
			}
			if done != (k == len(dgrams)-1) {
				t.Fatalf("reverse=%v: datagram %d of %d: done=%v", reverse, i, len(dgrams), done)
			}
		}
		if !sameSequence(s, &got) || got.Generation != s.Generation {
			t.Fatalf("reverse=%v: sent %v gen %d, got %v gen %d", reverse, s, s.Generation, &got, got.Generation)
		}
		if st := r.Stats(); st.Pending != 0 || st.PendingBytes != 0 {
			t.Fatalf("stats after delivery: %+v", st)
		}
	}
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

// TestReassemblerCEmptyPiece: when an element ends exactly 24 bytes before
// the MRU and another follows, the C sender ends the datagram with that
// element's segment header and no data, and sends the element from offset 0
// in the next fragment. The Reassembler used to refuse that as "element cut
// short".
func TestReassemblerCEmptyPiece(t *testing.T) {
	for _, name := range []string{"", "publish sequence"} {
		s := New(0x1234, name, TypeData)
		s.Generation = 1
		head := UDPHeaderLen + UDPFirstHeaderLen
		if name != "" {
			head += len(name) + 1
		}
		s.Add(1, bytes.Repeat([]byte{1}, MRU-head-2*UDPSegmentLen))
		s.Add(2, []byte("0123456789"))
		s.Add(3, nil)
		dgrams, empty, overrun := cAppendUDP(s, 0x6b8b4567)
		if !empty || overrun || len(dgrams) != 2 || len(dgrams[0]) != MRU {
			t.Fatalf("C sender: empty piece %v, overrun %v, %d datagrams", empty, overrun, len(dgrams))
		}
		checkReassembles(t, s, dgrams)
		// AppendUDP starts the second element in a new fragment instead.
		goDgrams := udpRoundTrip(t, s, 0x6b8b4567)
		if len(goDgrams) != 2 || len(goDgrams[0]) != MRU-UDPSegmentLen {
			t.Fatalf("AppendUDP: %d datagrams, the first of %d bytes", len(goDgrams), len(goDgrams[0]))
		}
	}
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
		if !done || err != nil || !sameSequence(&s, &r2) || r2.Generation != s.Generation {
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

// smallFragments lays s out as STK-UDP datagrams of at most mtu bytes, the
// way AppendUDP does with MRU, so that fuzzing reaches multi-fragment
// sequences without 64 KiB inputs.
func smallFragments(s *Sequence, uniqueID uint32, mtu int) [][]byte {
	le := binary.LittleEndian
	nameLen := 0
	if s.Name != "" {
		nameLen = len(s.Name) + 1
	}
	cur := make([]byte, UDPHeaderLen+UDPFirstHeaderLen, mtu)
	le.PutUint16(cur[48:], uint16(s.Type))
	le.PutUint16(cur[56:], uint16(nameLen))
	if nameLen > 0 {
		cur = append(append(cur, s.Name...), 0)
	}
	var frags [][]byte
	flush := func() {
		frags = append(frags, cur)
		cur = make([]byte, UDPHeaderLen, mtu)
	}
	for _, e := range s.Elements {
		off, idx := 0, 0
		for {
			if room := mtu - len(cur) - UDPSegmentLen; room < 0 || room == 0 && len(e.Data) > off {
				flush()
			}
			n := min(mtu-len(cur)-UDPSegmentLen, len(e.Data)-off)
			var h [UDPSegmentLen]byte
			le.PutUint32(h[0:], uint32(idx))
			le.PutUint32(h[4:], uint32(len(e.Data)))
			le.PutUint32(h[8:], uint32(off))
			le.PutUint64(h[16:], e.UserType)
			cur = append(append(cur, h[:]...), e.Data[off:off+n]...)
			off += n
			if off == len(e.Data) {
				break
			}
			flush()
			idx++
		}
	}
	frags = append(frags, cur)
	for i, d := range frags {
		le.PutUint64(d[0:], s.ID)
		le.PutUint64(d[8:], uint64(len(frags)))
		le.PutUint64(d[16:], uint64(i))
		le.PutUint16(d[28:], s.Generation)
		le.PutUint32(d[32:], uniqueID)
	}
	return frags
}

// Reassembler fuzz input: records of a control byte (bits 0-1 the sender,
// bits 2-5 the time step in 100 ms, bit 6 call Expire first), a u16 length
// and that many datagram bytes (fewer if the input ends).
func encodeRecords(dgrams [][]byte, ctrl func(i int) byte) []byte {
	var b []byte
	for i, d := range dgrams {
		b = append(b, ctrl(i))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(d)))
		b = append(b, d...)
	}
	return b
}

func FuzzReassembler(f *testing.F) {
	// Capture datagrams, in order and interleaved from several senders.
	caps := seedUDPDatagrams(f)
	var small [][]byte
	for _, d := range caps {
		if len(d) < 1000 {
			small = append(small, d)
		}
	}
	f.Add(encodeRecords(small, func(int) byte { return 0 }), uint16(4096), uint16(8192))
	f.Add(encodeRecords(small, func(i int) byte { return byte(i%4) | byte(i%3)<<2 }), uint16(300), uint16(700))
	// Small multi-fragment sequences, whole, interleaved, reordered and
	// duplicated, with tight bounds.
	s := New(0x1234, "fuzz", TypeData)
	s.Generation = 3
	s.Add(1, bytes.Repeat([]byte("abcdefgh"), 20))
	s.Add(2, nil)
	s.Add(3, []byte("xyz"))
	s.Add(4, bytes.Repeat([]byte{0x5a}, 300))
	frags := smallFragments(s, 7, 128)
	f.Add(encodeRecords(frags, func(int) byte { return 0 }), uint16(2000), uint16(4000))
	f.Add(encodeRecords(frags, func(i int) byte { return byte(i%2) | 1<<2 }), uint16(2000), uint16(900))
	var mixed [][]byte
	for i := len(frags) - 1; i >= 0; i-- {
		mixed = append(mixed, frags[i], frags[i])
	}
	f.Add(encodeRecords(mixed, func(i int) byte { return byte(i%3) << 2 }), uint16(2000), uint16(1500))
	s2 := New(0x99, "", TypeMgmt)
	s2.Add(9, bytes.Repeat([]byte{1, 2, 3}, 100))
	frags2 := smallFragments(s2, 1, 100)
	var inter [][]byte
	for i := range max(len(frags), len(frags2)) {
		if i < len(frags) {
			inter = append(inter, frags[i])
		}
		if i < len(frags2) {
			inter = append(inter, frags2[i])
		}
	}
	f.Add(encodeRecords(inter, func(i int) byte { return byte(i%3) | 1<<6 }), uint16(1000), uint16(600))
	f.Add(encodeRecords(inter, func(i int) byte { return byte(i%3) << 2 }), uint16(5000), uint16(60000))

	senders := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:1000"),
		netip.MustParseAddrPort("127.0.0.1:1001"),
		netip.MustParseAddrPort("10.0.0.1:1000"),
		netip.MustParseAddrPort("[::1]:1000"),
	}
	f.Fuzz(func(t *testing.T, in []byte, maxSize, maxPending uint16) {
		cfg := ReassemblerConfig{MaxSize: 1 + int(maxSize), MaxPending: 1 + int(maxPending), Timeout: 500 * time.Millisecond}
		r := NewReassembler(cfg)
		now := time.Unix(1000, 0)
		var s Sequence
		var completed uint64
		for len(in) >= 3 {
			ctrl := in[0]
			n := min(int(binary.LittleEndian.Uint16(in[1:])), len(in)-3)
			d := in[3 : 3+n]
			in = in[3+n:]
			now = now.Add(time.Duration(ctrl>>2&0xf) * 100 * time.Millisecond)
			if ctrl&0x40 != 0 {
				r.Expire(now)
			}
			single := len(d) >= UDPHeaderLen && binary.LittleEndian.Uint64(d[8:]) == 1
			done, err := r.Add(&s, senders[ctrl&3], d, now)
			checkDecodeErr(t, err)
			if done && err != nil {
				t.Fatalf("done with error %v", err)
			}
			st := r.Stats()
			if st.PendingBytes > cfg.MaxPending || st.PendingBytes < 0 || st.Pending < 0 ||
				(st.Pending == 0) != (st.PendingBytes == 0) {
				t.Fatalf("stats %+v with MaxPending %d", st, cfg.MaxPending)
			}
			if !done {
				continue
			}
			if single {
				var want Sequence
				if err := DecodeUDP(&want, d); err != nil || !sameSequence(&want, &s) {
					t.Fatalf("single fragment: Reassembler gave %v, DecodeUDP %v, %v", &s, &want, err)
				}
				continue
			}
			completed++
			if s.Size() > cfg.MaxSize {
				t.Fatalf("reassembled %d bytes with MaxSize %d", s.Size(), cfg.MaxSize)
			}
		}
		if st := r.Stats(); st.Completed != completed {
			t.Fatalf("Completed = %d, saw %d", st.Completed, completed)
		}
		r.Expire(now.Add(time.Hour))
		if st := r.Stats(); st.Pending != 0 || st.PendingBytes != 0 {
			t.Fatalf("after expiry: %+v", st)
		}
	})
}

func FuzzDecodeRawUDP(f *testing.F) {
	for _, nn := range []string{"10", "09", "05"} {
		for _, p := range captureUDP(f, nn) {
			f.Add(p.Payload, uint64(0), uint16(0), "UDP", uint64(0))
		}
	}
	f.Add([]byte{}, uint64(math.MaxUint64), uint16(TypeMgmt), "", uint64(0x135))

	f.Fuzz(func(t *testing.T, d []byte, id uint64, typ uint16, name string, userType uint64) {
		s := Sequence{Name: "old", Elements: []Element{{1, []byte("a")}, {2, nil}}, Generation: 9}
		cfg := RawUDPConfig{ID: id, Type: Type(typ), Name: name, UserType: userType}
		DecodeRawUDP(&s, d, cfg)
		wantType := Type(typ)
		if wantType == TypeInvalid {
			wantType = TypeData
		}
		if s.ID != id || s.Type != wantType || s.Name != name || s.Generation != 0 || len(s.Elements) != 1 || len(s.Meta) != 0 {
			t.Fatalf("DecodeRawUDP(%+v) = %v gen %d", cfg, &s, s.Generation)
		}
		e := s.Elements[0]
		if e.UserType != userType || len(e.Data) != len(d) || cap(e.Data) != len(d) || !within(e.Data, d) || !bytes.Equal(e.Data, d) {
			t.Fatalf("element %#x % x (cap %d), want the %d datagram bytes", e.UserType, e.Data, cap(e.Data), len(d))
		}
		payload, ok, err := RawUDPPayload(&s)
		if !ok || err != nil || !bytes.Equal(payload, d) {
			t.Fatalf("RawUDPPayload = % x, %v, %v", payload, ok, err)
		}
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
			if err := DecodeUDP(&d, dgrams[0]); err != nil || !sameSequence(s, &d) {
				t.Fatalf("DecodeUDP: %v, %v", &d, err)
			}
		}
	})
}

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

// liveHeapGrowth returns how much the live heap grew while f ran, keeping
// keep reachable.
func liveHeapGrowth(f func(), keep any) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// TestReassemblerMemoryBounded: what a Reassembler holds stays within a small
// multiple of MaxPending. Two ways used to defeat the bound: datagrams of 40
// bytes claiming a thousand fragments each made a fragment table of 24 KiB
// that PendingBytes did not count, and sequences completed behind an
// incomplete one kept their datagrams until that one expired.
func TestReassemblerMemoryBounded(t *testing.T) {
	const maxPending = 1 << 20
	from := netip.MustParseAddrPort("127.0.0.1:1")
	now := time.Unix(0, 0)
	var s Sequence

	t.Run("claimed fragment tables", func(t *testing.T) {
		r := NewReassembler(ReassemblerConfig{MaxPending: maxPending})
		d := make([]byte, UDPHeaderLen)
		grew := liveHeapGrowth(func() {
			for i := range 2000 {
				binary.LittleEndian.PutUint64(d[0:], uint64(i))
				binary.LittleEndian.PutUint64(d[8:], 1000) // fragments claimed
				binary.LittleEndian.PutUint64(d[16:], 1)
				if _, err := r.Add(&s, from, d, now); err != nil {
					t.Fatal(err)
				}
			}
		}, r)
		if st := r.Stats(); grew > 3*maxPending || st.PendingBytes > maxPending {
			t.Errorf("live heap grew %d bytes with MaxPending %d; stats %+v", grew, maxPending, st)
		}
	})

	t.Run("completed behind an incomplete one", func(t *testing.T) {
		r := NewReassembler(ReassemblerConfig{MaxPending: maxPending})
		stuck := New(1, "", TypeData)
		stuck.Add(1, make([]byte, 100))
		if _, err := r.Add(&s, from, smallFragments(stuck, 1, 100)[0], now); err != nil {
			t.Fatal(err)
		}
		grew := liveHeapGrowth(func() {
			for i := range 300 {
				big := New(uint64(100+i), "", TypeData)
				big.Add(1, make([]byte, 32<<10))
				frags := smallFragments(big, 1, 17<<10)
				for k, d := range frags {
					done, err := r.Add(&s, from, d, now)
					if err != nil || done != (k == len(frags)-1) {
						t.Fatalf("sequence %d fragment %d: %v, %v", i, k, done, err)
					}
				}
			}
			s.Reset()
		}, r)
		if st := r.Stats(); grew > 3*maxPending || st.Pending != 1 || st.Completed != 300 {
			t.Errorf("live heap grew %d bytes with MaxPending %d; stats %+v", grew, maxPending, st)
		}
	})
}
