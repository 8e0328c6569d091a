package flow

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
)

// BenchmarkUDP sends STK-UDP sequences of one element 1→1 over loopback and
// counts what the receiving flow delivers, with the batch system calls
// (sendmmsg/recvmmsg, "batch") and with one system call per datagram (the
// fallback of other systems, "single"). The sender keeps at most
// udpBenchWindow sequences in flight (a credit the receiver's Handler returns),
// so the socket buffer does not overflow and the figure is a loss-free rate;
// if a datagram is lost anyway, its credit is reclaimed after 100 ms and the
// loss is reported as the "lost" metric. msgs/s and MB/s (element bytes) are
// for received sequences; tx-dgrams/call and rx-dgrams/call are the average
// datagrams per batch system call. allocs/op counts both ends.
func BenchmarkUDP(b *testing.B) {
	for _, mode := range []struct {
		name string
		io   udpIOMode
	}{{"batch", udpIOBatch}, {"single", udpIOSingle}} {
		b.Run(mode.name, func(b *testing.B) {
			for _, size := range []int{16, 128, 1 << 10, 16 << 10} {
				b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) { benchUDP(b, mode.io, size) })
			}
		})
	}
}

const udpBenchWindow = 128

func benchUDP(b *testing.B, mode udpIOMode, size int) {
	var got atomic.Int64
	credits := make(chan struct{}, udpBenchWindow)
	quiet := testutil.Discard()
	rx, err := newUDP(UDPConfig{Bind: "127.0.0.1:0"}, Options{
		ReceiveBuffer: 4 << 20,
		Logger:        quiet,
		Handler: func(_ Peer, s *seq.Sequence) {
			got.Add(1)
			select {
			case <-credits:
			default:
			}
		},
	}, mode)
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	tx, err := newUDP(UDPConfig{Bind: "127.0.0.1:0", Destination: rx.LocalAddr().String()}, Options{SendBuffer: 4 << 20, Logger: quiet}, mode)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	s := seq.New(1, "bench", seq.TypeData)
	s.Add(seq.UTExampleData, make([]byte, size))

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		select {
		case credits <- struct{}{}:
		default:
			timer.Reset(100 * time.Millisecond)
			select {
			case credits <- struct{}{}:
				timer.Stop()
			case <-timer.C:
				// Presumably lost: take one credit back.
				select {
				case <-credits:
				default:
				}
				credits <- struct{}{}
			}
		}
		if err := tx.Send(s); err != nil {
			b.Fatal(err)
		}
	}
	// Wait for the tail, until everything arrived or nothing more comes.
	last, lastChange := got.Load(), time.Now()
	for n := got.Load(); n < int64(b.N); n = got.Load() {
		if n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > 200*time.Millisecond {
			break
		}
		time.Sleep(50 * time.Microsecond) // poll
	}
	elapsed := time.Since(start)
	b.StopTimer()
	n := got.Load()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(n)*float64(size)/elapsed.Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(int64(b.N)-n), "lost")
	// After Close, the goroutines that own the batch state are gone.
	tx.Close()
	rx.Close()
	if mode == udpIOBatch && tx.w.batch != nil && tx.w.batch.calls > 0 {
		b.ReportMetric(float64(tx.Stats().SequencesOut)/float64(tx.w.batch.calls), "tx-dgrams/call")
	}
	if mode == udpIOBatch && rx.r.batch != nil && rx.r.batch.calls > 0 {
		b.ReportMetric(float64(rx.Stats().SequencesIn)/float64(rx.r.batch.calls), "rx-dgrams/call")
	}
}
