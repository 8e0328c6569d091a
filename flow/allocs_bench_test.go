package flow

import "testing"

// BenchmarkSendRecvAllocs sends sequences of 16 bytes over each flow path of
// allocPaths, in this process, and waits for them to be received: idle
// sends one and waits for it (a lone sequence, written directly on TCP),
// busy sends bursts of 100 (batched by the writer). allocs/op counts both
// ends per sequence and must be 0 (TestFlowsDoNotAllocatePerSequence
// fails otherwise). Run with -benchmem.
func BenchmarkSendRecvAllocs(b *testing.B) {
	for _, mode := range []struct {
		name  string
		burst int
	}{{"idle", 1}, {"busy", 100}} {
		for _, p := range allocPaths() {
			b.Run(mode.name+"/"+p.name, func(b *testing.B) {
				fan := int64(1)
				if p.name == "tcp/server-to-2" {
					fan = 2
				}
				cnt := newAllocCounter()
				send := p.setup(b, cnt.handle)
				var sent int64
				cnt.sendAndWait(b, send, mode.burst, int64(mode.burst)*fan) // warm up
				sent = int64(mode.burst)
				b.ReportAllocs()
				b.ResetTimer()
				for left := b.N; left > 0; left -= mode.burst {
					n := min(left, mode.burst)
					sent += int64(n)
					cnt.sendAndWait(b, send, n, sent*fan)
				}
			})
		}
	}
}
