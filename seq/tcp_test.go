package seq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/stk-go/stk/internal/pcap"
)

// vectorTCP06 is the worked example of docs/protocol.md §3.2 (capture 06).
const (
	vectorTCP06 = `01 00 01 00 03 00 00 00  57 95 54 6a 00 00 00 00  01 00 00 00 00 00 00 00
		11 00 70 75 62 6c 69 73 68 20 73 65 71 75 65 6e 63 65 00
		00 00 01 00 0a 00 00 00  35 01 00 00 00 00 00 00
		64 65 66 61 75 6c 74 20 de ad`
)

func TestWorkedExampleTCP(t *testing.T) {
	frame := unhex(t, vectorTCP06)
	var s Sequence
	n, need, err := DecodeTCP(&s, frame, 0)
	if err != nil || n != len(frame) || need != 0 {
		t.Fatalf("DecodeTCP = %d, %d, %v; want %d, 0, nil", n, need, err, len(frame))
	}
	if s.ID != 0x6a549557 || s.Type != TypeData || s.Name != "publish sequence" || len(s.Elements) != 1 ||
		s.Elements[0].UserType != UTExampleData || string(s.Elements[0].Data) != "default \xde\xad" {
		t.Fatalf("decoded %v %v", &s, s.Elements)
	}
	out, err := AppendTCP(nil, &s)
	if err != nil || !bytes.Equal(out, frame) {
		t.Fatalf("AppendTCP = %x, %v; want %x", out, err, frame)
	}
	for cut := range len(frame) {
		n, need, err := DecodeTCP(&s, frame[:cut], 0)
		if n != 0 || err != nil || need <= cut || need > len(frame) {
			t.Fatalf("cut %d: DecodeTCP = %d, %d, %v", cut, n, need, err)
		}
	}
}

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
		if n2, need2, err2 := DecodeTCP(&s2, b[:n], maxSize); n2 != n || need2 != 0 || err2 != nil || !s.Equal(&s2) {
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
		if !s.Equal(&back) {
			t.Fatalf("round trip changed the sequence:\n%v\n%v", &s, &back)
		}
	})
}

// tcpFrames cuts a whole TCP stream into frames with DecodeTCP and fails
// unless every byte belongs to a frame.
func tcpFrames(t testing.TB, data []byte) [][]byte {
	t.Helper()
	var frames [][]byte
	var s Sequence
	for off := 0; off < len(data); {
		n, need, err := DecodeTCP(&s, data[off:], 0)
		if err != nil || n <= 0 || need != 0 {
			t.Fatalf("stream offset %d of %d: DecodeTCP = %d, %d, %v", off, len(data), n, need, err)
		}
		frames = append(frames, data[off:off+n])
		off += n
	}
	return frames
}

// streamDecode feeds data to DecodeTCP in chunks of the given size, the way a
// connection reader would, honouring need, and returns the frames decoded.
func streamDecode(t testing.TB, data []byte, chunk int) [][]byte {
	t.Helper()
	var frames [][]byte
	var s Sequence
	buf := make([]byte, 0, 64)
	need := 0
	for off := 0; off < len(data); {
		end := min(off+chunk, len(data))
		buf = append(buf, data[off:end]...)
		off = end
		for len(buf) >= need && len(buf) > 0 {
			n, nd, err := DecodeTCP(&s, buf, 0)
			if err != nil {
				t.Fatalf("chunk %d, stream offset %d: %v", chunk, off, err)
			}
			if n == 0 {
				if nd <= len(buf) {
					t.Fatalf("chunk %d: DecodeTCP of %d bytes gave n=0 need=%d", chunk, len(buf), nd)
				}
				need = nd
				break
			}
			if n > len(buf) {
				t.Fatalf("chunk %d: n=%d beyond the %d bytes given", chunk, n, len(buf))
			}
			frames = append(frames, bytes.Clone(buf[:n]))
			buf = append(buf[:0], buf[n:]...)
			need = 0
		}
	}
	if len(buf) != 0 {
		t.Fatalf("chunk %d: %d bytes left over", chunk, len(buf))
	}
	return frames
}

// TestGoldenTCPStreams decodes every TCP stream of every capture, whole and
// in chunks as a connection reader would see it, and re-encodes every frame
// to the captured bytes.
func TestGoldenTCPStreams(t *testing.T) {
	for _, nn := range allCaptures {
		t.Run(nn, func(t *testing.T) {
			frames := 0
			for _, st := range captureStreams(t, nn) {
				whole := tcpFrames(t, st.Data)
				frames += len(whole)
				var s Sequence // reused, as a connection reader would
				var out []byte
				for i, f := range whole {
					n, need, err := DecodeTCP(&s, f, 0)
					if n != len(f) || need != 0 || err != nil {
						t.Fatalf("%v frame %d: DecodeTCP = %d, %d, %v", st.Src, i, n, need, err)
					}
					checkWellKnown(t, st, &s)
					if s.Generation != 0 {
						t.Errorf("TCP frame decoded with generation %d", s.Generation)
					}
					var err2 error
					out, err2 = AppendTCP(out[:0], &s)
					if len(s.Elements) > MaxElements {
						if !errors.Is(err2, ErrTooManyElements) || len(out) != 0 {
							t.Errorf("%v frame %d: AppendTCP of %d elements = %d bytes, %v; want ErrTooManyElements",
								st.Src, i, len(s.Elements), len(out), err2)
						}
						continue
					}
					if err2 != nil || !bytes.Equal(out, f) {
						t.Fatalf("%v -> %v frame %d (%v): AppendTCP = %v\n got % x\nwant % x", st.Src, st.Dst, i, &s, err2, out, f)
					}
					if TCPSize(&s) != len(f) {
						t.Errorf("TCPSize = %d, frame is %d", TCPSize(&s), len(f))
					}
				}
				if nn == "21" {
					continue // its 300-element frame only ends at the end of the stream
				}
				for _, chunk := range []int{1, 7, 1448, 1 << 20} {
					got := streamDecode(t, st.Data, chunk)
					if len(got) != len(whole) {
						t.Fatalf("chunk %d: %d frames, want %d", chunk, len(got), len(whole))
					}
					for i := range got {
						if !bytes.Equal(got[i], whole[i]) {
							t.Fatalf("chunk %d: frame %d differs", chunk, i)
						}
					}
				}
			}
			if udpOnly := []string{"05", "10", "11", "12", "14"}; frames == 0 && !slices.Contains(udpOnly, nn) {
				t.Errorf("no TCP frames")
			}
		})
	}
}

// checkWellKnown checks the sequence ids the dumps document per port: the
// name server (20002) only carries name requests and smartbeats, the web
// monitor (20001) only service notifications and smartbeats.
func checkWellKnown(t *testing.T, st pcap.Stream, s *Sequence) {
	t.Helper()
	port := st.Dst.Port()
	if st.Src.Port() == 20002 || st.Src.Port() == 20001 {
		port = st.Src.Port()
	}
	var ok bool
	switch port {
	case 20002:
		ok = s.ID == IDNameRequest && s.Name == NameNameRequest && s.Type >= TypeRequest && s.Type <= TypeSubscribe ||
			s.ID == IDSmartbeat && s.Name == NameSmartbeat && s.Type == TypeMgmt
	case 20001:
		ok = s.Type == TypeMgmt && (s.ID == IDSmartbeat && s.Name == NameSmartbeat ||
			s.ID == IDCreateNotification && s.Name == NameCreateNotification ||
			s.ID == IDDestroyNotification && s.Name == NameDestroyNotification ||
			s.ID == IDStateNotification && s.Name == NameStateNotification)
	default:
		ok = s.Type != TypeInvalid
	}
	if !ok {
		t.Errorf("%v -> %v: unexpected %v", st.Src, st.Dst, s)
	}
	if s.ID == IDSmartbeat {
		if e, found := s.Find(UTSmartbeat); !found || len(e.Data) != 32 {
			t.Errorf("smartbeat without its 32-byte 0x50000001 element: %v", s.Elements)
		}
	}
}

// TestGoldenTCP300Elements: capture 21 carries one 300-element frame (nblks
// 44, blk_num wrapping at 256) that crashes C receivers. DecodeTCP must read
// all 300 elements when given the whole stream, and AppendTCP must refuse to
// send it.
func TestGoldenTCP300Elements(t *testing.T) {
	streams := captureStreams(t, "21")
	if len(streams) != 2 {
		t.Fatalf("%d streams, want 2", len(streams))
	}
	for i, st := range streams {
		wantID := []uint64{0x1234, 0xfedcba98}[i]
		if len(st.Data) != 5124 || binary.LittleEndian.Uint32(st.Data[4:]) != 1 {
			t.Fatalf("stream %d: %d bytes, flags % x", i, len(st.Data), st.Data[4:8])
		}
		var s Sequence
		n, need, err := DecodeTCP(&s, st.Data, 0)
		if n != len(st.Data) || need != 0 || err != nil {
			t.Fatalf("stream %d: DecodeTCP = %d, %d, %v", i, n, need, err)
		}
		if s.ID != wantID || s.Type != TypeData || s.Name != "" || len(s.Elements) != 300 {
			t.Fatalf("stream %d: %v", i, &s)
		}
		for k, e := range s.Elements {
			if e.UserType != uint64(k) || len(e.Data) != 1 || e.Data[0] != byte(k) {
				t.Fatalf("element %d: user type %d data % x", k, e.UserType, e.Data)
			}
			seg := st.Data[24+17*k:]
			if binary.LittleEndian.Uint16(seg) != uint16(k) || seg[2] != 44 || seg[3] != byte(k) {
				t.Fatalf("segment header %d: % x", k, seg[:4])
			}
		}
		out, err := AppendTCP([]byte("x"), &s)
		if !errors.Is(err, ErrTooManyElements) || string(out) != "x" {
			t.Fatalf("AppendTCP = %q, %v; want ErrTooManyElements and dst unchanged", out, err)
		}
		// The first 255 elements are sendable, with the C header fields.
		s.Elements = s.Elements[:255]
		out, err = AppendTCP(nil, &s)
		if err != nil || len(out) != 24+255*17 {
			t.Fatalf("AppendTCP of 255 elements: %d bytes, %v", len(out), err)
		}
		for k := range 255 {
			seg := out[24+17*k:]
			if binary.LittleEndian.Uint16(seg) != uint16(k) || seg[2] != 255 || seg[3] != byte(k) ||
				!bytes.Equal(seg[4:17], st.Data[24+17*k+4:24+17*k+17]) {
				t.Fatalf("segment %d: % x", k, seg[:17])
			}
		}
		// STK-UDP has no element limit: all 300 go in one datagram and back.
		s.Elements = s.Elements[:300]
		var dgrams [][]byte
		if _, err := AppendUDP(nil, &s, 1, func(d []byte) error { dgrams = append(dgrams, bytes.Clone(d)); return nil }); err != nil {
			t.Fatal(err)
		}
		var back Sequence
		if len(dgrams) != 1 || DecodeUDP(&back, dgrams[0]) != nil || len(back.Elements) != 300 {
			t.Fatalf("STK-UDP round trip of 300 elements: %d datagrams, %v", len(dgrams), &back)
		}
	}
}

var benchPayloads = []struct {
	name string
	size int
}{{"16B", 16}, {"128B", 128}, {"1KiB", 1 << 10}, {"16KiB", 16 << 10}}

func BenchmarkAppendTCP(b *testing.B) {
	for _, p := range benchPayloads {
		b.Run(p.name, func(b *testing.B) {
			s := benchSequence(p.size)
			buf := make([]byte, 0, TCPSize(s))
			b.SetBytes(int64(TCPSize(s)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				var err error
				if buf, err = AppendTCP(buf[:0], s); err != nil {
					b.Fatal(err)
				}
			}
			reportMsgs(b)
		})
	}
}
func BenchmarkDecodeTCP(b *testing.B) {
	for _, p := range benchPayloads {
		b.Run(p.name, func(b *testing.B) {
			frame, err := AppendTCP(nil, benchSequence(p.size))
			if err != nil {
				b.Fatal(err)
			}
			var s Sequence
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if n, _, err := DecodeTCP(&s, frame, 0); n != len(frame) || err != nil {
					b.Fatal(n, err)
				}
			}
			reportMsgs(b)
		})
	}
}
