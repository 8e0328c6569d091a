package seq

// Encode and decode benchmarks, codec only (no sockets). Sequences look like
// the C publish example's: named "publish sequence", one data element.
// b.SetBytes counts wire bytes (the TCP frame, or all datagrams).
//
//	go test ./seq -run XXX -bench . -benchtime 1s

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var benchPayloads = []struct {
	name string
	size int
}{{"16B", 16}, {"128B", 128}, {"1KiB", 1 << 10}, {"16KiB", 16 << 10}}

func benchSequence(size int) *Sequence {
	s := New(0x6a549557, "publish sequence", TypeData)
	s.Add(UTExampleData, publishPayload(size))
	return s
}

func reportMsgs(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

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
