//go:build !linux

package flow

import "syscall"

// Systems other than Linux have no sendmmsg and recvmmsg (or Go cannot reach
// them portably): a UDP flow there sends and reads one datagram per system
// call.

type udpBatchSend struct{ calls uint64 }

type udpBatchRecv struct{ calls uint64 }

func newUDPBatch(syscall.RawConn, udpIOMode) (*udpBatchSend, *udpBatchRecv) { return nil, nil }

func (*udpBatchSend) send([]udpDatagram) (int, error) { return 0, errBatchUnsupported }

func (*udpBatchSend) trySend(udpDatagram) bool { return false }

func (*udpBatchRecv) recv(*[]udpDatagram) (int, error) { return 0, errBatchUnsupported }

func (*udpBatchRecv) noGRO() {}

func (*udpBatchRecv) release() {}

func (*udpBatchRecv) mappedBytes() int { return 0 }

// udpBatchSupported says whether this system has the batch calls.
const udpBatchSupported = false

// udpSocketDrops: other systems do not say what a socket dropped.
func udpSocketDrops(syscall.RawConn) (uint64, bool) { return 0, false }
