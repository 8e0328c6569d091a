package flow

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
)

// BenchmarkTCP measures end-to-end delivery over loopback: the server flow
// encodes and fans out every sequence, each client decodes every one in its
// read loop. msgs/s counts sequences delivered to all subscribers together.
func BenchmarkTCP(b *testing.B) {
	for _, subs := range []int{1, 4} {
		for _, size := range []int{16, 128, 1024, 16384} {
			b.Run(fmt.Sprintf("1to%d/%dB", subs, size), func(b *testing.B) { benchTCP(b, subs, size) })
		}
	}
}

func benchTCP(b *testing.B, subs, size int) {
	srv := listen(b, Options{})
	var got atomic.Int64
	for range subs {
		c := dial(b, srv.LocalAddr().String(), Options{Handler: func(p Peer, s *seq.Sequence) {
			if len(s.Elements) == 1 && len(s.Elements[0].Data) == size {
				got.Add(1)
			}
		}})
		waitConnected(b, c)
	}
	testutil.WaitFor(b, 5*time.Second, "subscribers", func() bool { return srv.Conns() == subs })
	s := seq.New(1, "", seq.TypeData)
	s.Add(seq.UTExampleData, make([]byte, size))
	b.SetBytes(int64(size * subs))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := srv.Send(s); err != nil {
			b.Fatal(err)
		}
	}
	want := int64(b.N * subs)
	for got.Load() < want {
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "msgs/s")
	if st := srv.Stats(); st.Dropped != 0 {
		b.Fatalf("%d sequences dropped", st.Dropped)
	}
}
