package flow

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
)

// BenchmarkTLS measures 1->1 delivery over loopback through TLS (TLSServer
// to a TLS TCPClient) beside plain TCP (TCPServer, gnet) in the same run,
// so that the cost of TLS reads from one go test -bench BenchmarkTLS
// -count 3: compare tls/N with tcp/N.
func BenchmarkTLS(b *testing.B) {
	ts := newTLSSetup(b)
	for _, size := range []int{16, 1024, 16384} {
		b.Run(fmt.Sprintf("tcp/%dB", size), func(b *testing.B) {
			srv := listen(b, Options{})
			benchOneToOne(b, srv, srv.Conns, Options{}, size)
		})
		b.Run(fmt.Sprintf("tls/%dB", size), func(b *testing.B) {
			srv := listenTLS(b, Options{TLS: ts.serverTLS(b, false)})
			benchOneToOne(b, srv, srv.Conns, Options{TLS: clientTLS(b, ts.ca, nil)}, size)
		})
	}
}

// benchOneToOne sends b.N sequences of size bytes from srv to one client.
func benchOneToOne(b *testing.B, srv Flow, conns func() int, copts Options, size int) {
	var got atomic.Int64
	copts.Handler = func(p Peer, s *seq.Sequence) {
		if len(s.Elements) == 1 && len(s.Elements[0].Data) == size {
			got.Add(1)
		}
	}
	c := dial(b, srv.LocalAddr().String(), copts)
	waitConnected(b, c)
	testutil.WaitFor(b, 5*time.Second, "the subscriber", func() bool { return conns() == 1 })
	s := seq.New(1, "", seq.TypeData)
	s.Add(seq.UTExampleData, make([]byte, size))
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := srv.Send(s); err != nil {
			b.Fatal(err)
		}
	}
	for got.Load() < int64(b.N) {
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if st := srv.Stats(); st.Dropped != 0 {
		b.Fatalf("%d sequences dropped", st.Dropped)
	}
}
