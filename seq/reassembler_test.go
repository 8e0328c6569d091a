package seq

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

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
		if !s.Equal(&got) || got.Generation != s.Generation {
			t.Fatalf("reverse=%v: sent %v gen %d, got %v gen %d", reverse, s, s.Generation, &got, got.Generation)
		}
		if st := r.Stats(); st.Pending != 0 || st.PendingBytes != 0 {
			t.Fatalf("stats after delivery: %+v", st)
		}
	}
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
				if err := DecodeUDP(&want, d); err != nil || !want.Equal(&s) {
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
func BenchmarkReassembler(b *testing.B) {
	for _, c := range udpBenchCases {
		b.Run(c.name, func(b *testing.B) {
			s := benchSequence(c.size)
			s.Generation = 1
			dgrams, total := udpDatagrams(b, s)
			r := NewReassembler(ReassemblerConfig{})
			from := netip.MustParseAddrPort("127.0.0.1:29312")
			now := time.Unix(1, 0)
			var got Sequence
			b.SetBytes(int64(total))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for i, d := range dgrams {
					done, err := r.Add(&got, from, d, now)
					if err != nil || done != (i == len(dgrams)-1) {
						b.Fatal(fmt.Sprint(done, err))
					}
				}
			}
			reportMsgs(b)
			if len(got.Elements) != 1 || len(got.Elements[0].Data) != c.size {
				b.Fatalf("reassembled %v", &got)
			}
		})
	}
}
