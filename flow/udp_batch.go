package flow

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/stk-go/stk/internal/ratelog"
	"github.com/stk-go/stk/seq"
)

// The UDP writer and reader move many datagrams per system call where the
// system has sendmmsg(2) and recvmmsg(2) (udp_batch_linux.go), and one per
// call elsewhere or when those calls fail with ENOSYS. This file is the part
// both ways share: the queue's datagram records and the loops.

// udpIOMode selects how a UDP flow makes its system calls.
type udpIOMode uint8

const (
	// udpIOBatch uses the batch calls where the system has them.
	udpIOBatch udpIOMode = iota
	// udpIOSingle makes one system call per datagram: the fallback path.
	udpIOSingle
	// udpIOBatchENOSYS has the batch calls fail with ENOSYS, as on a kernel
	// or sandbox without them, so that tests exercise the fallback.
	udpIOBatchENOSYS
	// udpIOBatchNoOffload uses the batch calls without segmentation
	// offload (UDP_SEGMENT, UDP_GRO), as on a kernel without it.
	udpIOBatchNoOffload
)

// errBatchUnsupported is returned by the batch calls when the system does
// not have them; the flow then falls back to one datagram per call.
var errBatchUnsupported = errors.New("flow: batch UDP system calls not supported")

// udpSendBatch is the most datagrams one sendmmsg call carries. More would
// not save much more (the kernel's per-datagram work dominates) and would
// hold a sequence's datagrams back from the receiver for longer.
const udpSendBatch = 128

// udpReadBatch is the most datagrams one recvmmsg call reads: the receive
// ring grows to this many 64 KiB slots (4 MiB) while calls keep filling it.
const udpReadBatch = 64

// udpDatagram is one datagram to send or just received: its payload and its
// destination or source.
type udpDatagram struct {
	data  []byte
	addr  netip.AddrPort
	last  bool // sending: the last datagram of its sequence
	paced bool // sending: one of several datagrams of its sequence (UDPPacing)
}

// A UDP flow's outbound queue (an outQueue) holds records: a header of
// udpRecordHeader bytes, then one datagram. The header is the datagram's
// length (little-endian u32, top bit set on the last datagram of a
// sequence, the next one on every datagram of a sequence of several, which
// UDPPacing paces), the destination's IPv4 address and its port
// (little-endian u16). A sequence's records are appended under the queue's
// lock, so its fragments are contiguous and leave in order.
const (
	udpRecordHeader = 10
	udpRecordLast   = 1 << 31
	udpRecordPaced  = 1 << 30
	udpRecordLen    = udpRecordPaced - 1
)

// appendUDPRecord appends the record of datagram d for to.
func appendUDPRecord(dst []byte, to netip.AddrPort, d []byte) []byte {
	a := to.Addr().As4()
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(d)))
	dst = append(dst, a[:]...)
	dst = binary.LittleEndian.AppendUint16(dst, to.Port())
	return append(dst, d...)
}

// setUDPRecordLast marks the record at the start of r as its sequence's last.
func setUDPRecordLast(r []byte) { setUDPRecordFlag(r, udpRecordLast) }

// setUDPRecordFlag sets flag in the header of the record at the start of r.
func setUDPRecordFlag(r []byte, flag uint32) {
	binary.LittleEndian.PutUint32(r, binary.LittleEndian.Uint32(r)|flag)
}

// nextUDPRecord parses the record at the start of buf (written by
// appendUDPRecord, so well-formed) and returns the rest of buf.
func nextUDPRecord(buf []byte) (udpDatagram, []byte) {
	h := binary.LittleEndian.Uint32(buf)
	n := udpRecordHeader + int(h&udpRecordLen)
	d := udpDatagram{
		data:  buf[udpRecordHeader:n:n],
		addr:  netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), binary.LittleEndian.Uint16(buf[8:])),
		last:  h&udpRecordLast != 0,
		paced: h&udpRecordPaced != 0,
	}
	return d, buf[n:]
}

// udpQueuedSize is about what s takes in the queue as STK-UDP records, for
// the queue's room check (the queue then counts the bytes actually
// appended): its datagrams' headers and data, plus a fragment header,
// segment header and record header per datagram after the first.
func udpQueuedSize(s *seq.Sequence) int {
	n := udpRecordHeader + seq.UDPHeaderLen + seq.UDPFirstHeaderLen + len(s.Name) + 1
	for _, e := range s.Elements {
		n += seq.UDPSegmentLen + len(e.Data)
	}
	frags := n / (seq.MRU - seq.UDPHeaderLen - seq.UDPSegmentLen)
	return n + frags*(udpRecordHeader+seq.UDPHeaderLen+seq.UDPSegmentLen)
}

// udpWriter is the state of a UDP flow's writer goroutine.
type udpWriter struct {
	batch *udpBatchSend // nil: one datagram per call
	ds    []udpDatagram // the datagrams of the current call
	pacer *udpPacer
	stop  chan struct{} // closed when Close gives up draining: stop pacing
	log   ratelog.Limiter
	stall func() // tests: called before each system call, to hold the writer up
}

// writeLoop sends what the queue holds until the queue is closed and empty,
// or the socket is closed.
func (f *UDPFlow) writeLoop() {
	defer close(f.wdone)
	for {
		buf, _, ok := f.queue.take(nil)
		if !ok {
			return
		}
		err := f.writeRecords(buf)
		f.queue.written(buf)
		if err != nil {
			return // the socket is closed
		}
	}
}

// writeRecords sends the datagrams of buf, a batch taken from the queue, at
// most udpSendBatch per system call. A datagram the system refuses drops the
// rest of its sequence. The datagrams of sequences of several go out as
// UDPPacing allows: a call ends before the first the pacer holds back, and
// the writer waits for it. It returns an error only when the socket is
// closed, after counting the sequences not sent as dropped.
func (f *UDPFlow) writeRecords(buf []byte) error {
	w := &f.w
	skip := false // dropping the rest of a sequence whose datagram failed
	for len(buf) > 0 {
		ds := w.ds[:0]
		var now time.Time // read once per call, when a paced datagram comes
		for len(buf) > 0 && len(ds) < udpSendBatch {
			d, rest := nextUDPRecord(buf)
			if skip {
				skip, buf = !d.last, rest
				continue
			}
			if d.paced {
				if now.IsZero() {
					now = time.Now()
				}
				if !w.pacer.take(len(d.data), now) {
					if len(ds) == 0 {
						if w.pacer.wait(len(d.data), w.stop) {
							f.ctr.paced.Add(1)
						}
						now = time.Time{}
						continue
					}
					break // send what is ready, then wait for this one
				}
			}
			ds, buf = append(ds, d), rest
		}
		w.ds = ds
		for len(ds) > 0 {
			if w.stall != nil {
				w.stall()
			}
			n, err := f.sendDatagrams(ds)
			f.countSent(ds[:n])
			ds = ds[n:]
			if err == nil {
				continue // all sent, or a part and the rest goes next
			}
			if errors.Is(err, net.ErrClosed) {
				f.ctr.dropped.Add(uint64(countUDPSequences(ds, buf)))
				return err
			}
			f.ctr.dropped.Add(1)
			w.log.Warn(f.log, "flow: UDP send failed, sequence dropped", "to", ds[0].addr, "err", err)
			for len(ds) > 0 && !ds[0].last {
				ds = ds[1:]
			}
			if len(ds) == 0 {
				skip = true // its last datagram is in the next part of buf
			} else {
				ds = ds[1:]
			}
		}
	}
	return nil
}

// sendDatagrams sends a prefix of ds (at least one datagram unless it
// fails) and returns its length; the error is that of ds[n].
func (f *UDPFlow) sendDatagrams(ds []udpDatagram) (int, error) {
	if b := f.w.batch; b != nil {
		n, err := b.send(ds)
		if !errors.Is(err, errBatchUnsupported) {
			return n, err
		}
		f.log.Debug("flow: sendmmsg not supported, sending one datagram per system call")
		f.w.batch = nil
	}
	if _, err := f.conn.WriteToUDPAddrPort(ds[0].data, ds[0].addr); err != nil {
		return 0, err
	}
	return 1, nil
}

// countSent counts datagrams handed to the kernel.
func (f *UDPFlow) countSent(ds []udpDatagram) {
	var bytes, seqs uint64
	for _, d := range ds {
		bytes += uint64(len(d.data))
		if d.last {
			seqs++
		}
	}
	if bytes > 0 {
		f.ctr.bytesOut.Add(bytes)
	}
	if seqs > 0 {
		f.ctr.seqOut.Add(seqs)
	}
}

// countUDPSequences counts the sequences that end in ds or in the records
// of buf.
func countUDPSequences(ds []udpDatagram, buf []byte) int {
	n := 0
	for _, d := range ds {
		if d.last {
			n++
		}
	}
	for len(buf) > 0 {
		var d udpDatagram
		d, buf = nextUDPRecord(buf)
		if d.last {
			n++
		}
	}
	return n
}

// udpReader is the state of a UDP flow's read goroutine.
type udpReader struct {
	batch *udpBatchRecv // nil: one datagram per call
	buf   []byte        // the one-datagram path's buffer
	in    []udpDatagram // the datagrams of the last call
}

// receive reads the next datagrams into f.r.in and returns how many; their
// data stay valid until the next call.
func (f *UDPFlow) receive() (int, error) {
	if b := f.r.batch; b != nil {
		n, err := b.recv(&f.r.in)
		if !errors.Is(err, errBatchUnsupported) {
			return n, err
		}
		f.log.Debug("flow: recvmmsg not supported, reading one datagram per system call")
		b.noGRO()
		b.release()
		f.r.batch = nil
	}
	if f.r.buf == nil {
		f.r.buf = make([]byte, udpReadBuffer)
	}
	n, from, err := f.conn.ReadFromUDPAddrPort(f.r.buf)
	if err != nil {
		return 0, err
	}
	f.r.in = append(f.r.in[:0], udpDatagram{data: f.r.buf[:n], addr: netip.AddrPortFrom(from.Addr().Unmap(), from.Port())})
	return 1, nil
}
