//go:build linux

package flow

import (
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
)

// udpOffloadCounts returns how many messages tx sent with UDP_SEGMENT and
// how many of rx's reads held datagrams coalesced by GRO, and whether the
// kernel offered each (read after Close: the goroutines own them).
func udpOffloadCounts(tx, rx *UDPFlow) (gsos, gros uint64, gso, gro bool) {
	if b := tx.w.batch; b != nil {
		gsos, gso = b.gsos, b.gso
	}
	if b := rx.r.batch; b != nil {
		gros, gro = b.gros, b.gro
	}
	return
}

// Every pairing of a sender with and without segmentation offload (GSO,
// and the sendmmsg and one-datagram fallbacks) and a receiver with and
// without GRO delivers the same sequences, whole and once: runs of small
// equal-size sequences (which GSO sends as one message and GRO reads as
// one), mixed with sizes that end runs and sequences of several fragments.
// Where the kernel offers UDP_SEGMENT and UDP_GRO, the offload pairing
// must have used them.
func TestUDPSegmentationOffload(t *testing.T) {
	leakcheck.Check(t)
	size := func(i int) int {
		if i%100 == 99 {
			return udpBatchTestSize(i / 100)
		}
		return 16 + 16*(i/250) // runs of one size
	}
	const n = 2000
	for _, tm := range udpIOModes {
		for _, rm := range udpIOModes {
			if tm.mode == udpIOBatchENOSYS || rm.mode == udpIOBatchENOSYS {
				continue // as single, once it has fallen back
			}
			t.Run(tm.name+"-to-"+rm.name, func(t *testing.T) {
				r := newUDPReceiver(size)
				rx := newUDPFlowMode(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{Handler: r.handle, ReceiveBuffer: 4 << 20}, rm.mode)
				tx := newUDPFlowMode(t, UDPConfig{Bind: "127.0.0.1:0", Destination: rx.LocalAddr().String()}, Options{SendBuffer: 4 << 20}, tm.mode)
				udpSendPaced(t, tx, n, 500, size, r)
				udpEventually(t, 10*time.Second, func() bool { return r.n.Load() == n }, "received %d of %d", r.n.Load(), n)
				tx.Close()
				rx.Close()
				r.check(t, n)
				if st := rx.Stats(); st.SequencesIn != n || st.Dropped != 0 || st.Malformed != 0 {
					t.Fatalf("receiver stats %+v", st)
				}
				gsos, gros, gso, gro := udpOffloadCounts(tx, rx)
				t.Logf("GSO offered %v, messages with UDP_SEGMENT %d; GRO offered %v, coalesced reads %d", gso, gsos, gro, gros)
				if tm.mode != udpIOBatch && gsos != 0 || rm.mode != udpIOBatch && gros != 0 {
					t.Fatalf("offload used where it is switched off: %d GSO messages, %d GRO reads", gsos, gros)
				}
				if tm.mode == udpIOBatch && rm.mode == udpIOBatch {
					if !gso || !gro {
						t.Skipf("the kernel offers no UDP_SEGMENT (%v) or UDP_GRO (%v): only the fallback was tested", gso, gro)
					}
					if gsos == 0 || gros == 0 {
						t.Fatalf("offload offered but unused: %d GSO messages, %d GRO reads", gsos, gros)
					}
				}
			})
		}
	}
}
