package stk

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
)

// BenchmarkSubscribeTCP measures a subscription's per-sequence path: one
// publisher sends small sequences over loopback TCP to one subscriber
// whose handler only counts them. ns/op is per sequence received.
func BenchmarkSubscribeTCP(b *testing.B) {
	_, ns := startNames(b)
	env := connect(b, ns)
	pub, err := env.Publish("bench", PublishOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	sub, err := env.Subscribe("bench", func(*seq.Sequence) { n.Add(1) }, SubscribeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	if err := pub.WaitSubscribers(ctxT(b, 10*time.Second), 1); err != nil {
		b.Fatal(err)
	}
	q := seq.New(1, "bench", seq.TypeData)
	q.Add(0x100, make([]byte, 64))
	batch := make([]*seq.Sequence, 256)
	for i := range batch {
		batch[i] = q
	}
	b.SetBytes(int64(len(q.Elements[0].Data)))
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		k := min(len(batch), b.N-sent)
		if _, err := pub.SendBatch(batch[:k]); err != nil {
			b.Fatal(err)
		}
		sent += k
	}
	testutil.WaitFor(b, 60*time.Second, "all sequences received", func() bool { return n.Load() == int64(b.N) })
	b.StopTimer()
}
