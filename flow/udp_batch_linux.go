//go:build linux

package flow

import (
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of sendmmsg(2) and recvmmsg(2). Go lays it out
// as C does: the struct is padded to the alignment of Msghdr's pointers.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32 // bytes sent or received
}

// newUDPBatch returns the batch senders and receivers of a socket, or nils
// for one datagram per system call.
func newUDPBatch(rc syscall.RawConn, mode udpIOMode) (*udpBatchSend, *udpBatchRecv) {
	if mode == udpIOSingle {
		return nil, nil
	}
	nosys := mode == udpIOBatchENOSYS
	s := &udpBatchSend{rc: rc, nosys: nosys}
	s.call = s.sendmmsg
	r := &udpBatchRecv{rc: rc, nosys: nosys}
	r.call = r.recvmmsg
	return s, r
}

// udpBatchSend sends datagrams with sendmmsg(2). It belongs to the writer
// goroutine. Its arrays are allocated on the first send, so that flows that
// only receive do not pay for them.
type udpBatchSend struct {
	rc    syscall.RawConn
	nosys bool   // behave as if the kernel had no sendmmsg (tests)
	calls uint64 // sendmmsg calls that sent something (tests)
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4

	// The call passed to rc.Write, bound once (a closure per call would be
	// an allocation per call), and its argument and results.
	call  func(fd uintptr) bool
	n     int
	sent  int
	errno syscall.Errno
}

// send sends a prefix of ds, at most udpSendBatch datagrams, in one
// sendmmsg call (waiting while the socket buffer is full) and returns its
// length. When ds[0] fails it returns 0 and the error; the kernel reports
// an error only for the first datagram of a call, so a failure further on
// comes back as a shorter prefix and then as the next call's error.
func (s *udpBatchSend) send(ds []udpDatagram) (int, error) {
	if s.nosys {
		return 0, errBatchUnsupported
	}
	if s.hdrs == nil {
		s.hdrs = make([]mmsghdr, udpSendBatch)
		s.iovs = make([]unix.Iovec, udpSendBatch)
		s.names = make([]unix.RawSockaddrInet4, udpSendBatch)
		for i := range s.hdrs {
			h := &s.hdrs[i].hdr
			h.Name = (*byte)(unsafe.Pointer(&s.names[i]))
			h.Namelen = unix.SizeofSockaddrInet4
			h.Iov = &s.iovs[i]
			h.SetIovlen(1)
		}
	}
	n := min(len(ds), len(s.hdrs))
	for i, d := range ds[:n] {
		putSockaddrInet4(&s.names[i], d.addr)
		iov := &s.iovs[i]
		iov.Base = nil
		if len(d.data) > 0 {
			iov.Base = &d.data[0]
		}
		iov.SetLen(len(d.data))
	}
	s.n = n
	err := s.rc.Write(s.call)
	sent, errno := s.sent, s.errno
	// Let the queue's buffers go; the next call sets what it uses.
	for i := range n {
		s.iovs[i].Base = nil
	}
	switch {
	case err != nil:
		return 0, err // the socket is closed
	case errno == unix.ENOSYS:
		return 0, errBatchUnsupported
	case errno != 0:
		return 0, os.NewSyscallError("sendmmsg", errno)
	case sent <= 0: // not documented; the writer would retry forever
		return 0, os.NewSyscallError("sendmmsg", unix.EIO)
	}
	s.calls++
	return sent, nil
}

// sendmmsg makes the system call for rc.Write; false means "wait until the
// socket is writable".
func (s *udpBatchSend) sendmmsg(fd uintptr) bool {
	for {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(s.n), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		s.sent, s.errno = int(r), e
		return true
	}
}

// udpBatchRecv reads datagrams with recvmmsg(2) into a ring of
// udpReadBuffer-byte slots, each large enough for any UDP datagram, so none
// is truncated. It belongs to the read goroutine. The ring starts with one
// slot and doubles, up to udpReadBatch, whenever a call fills it: a flow
// that sees one datagram at a time keeps the memory of a single read
// buffer.
type udpBatchRecv struct {
	rc    syscall.RawConn
	nosys bool   // behave as if the kernel had no recvmmsg (tests)
	calls uint64 // recvmmsg calls that returned datagrams (tests)
	slab  []byte
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4

	// The call passed to rc.Read, bound once, and its results.
	call  func(fd uintptr) bool
	got   int
	errno syscall.Errno
}

// grow makes a ring of n slots. The datagrams of the last call keep the old
// one alive until they are replaced.
func (r *udpBatchRecv) grow(n int) {
	r.slab = make([]byte, n*udpReadBuffer)
	r.hdrs = make([]mmsghdr, n)
	r.iovs = make([]unix.Iovec, n)
	r.names = make([]unix.RawSockaddrInet4, n)
	for i := range n {
		r.iovs[i].Base = &r.slab[i*udpReadBuffer]
		r.iovs[i].SetLen(udpReadBuffer)
		h := &r.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
	}
}

// recv reads at least one datagram (waiting for it, subject to the read
// deadline) and at most one per slot, and sets *in to them.
func (r *udpBatchRecv) recv(in *[]udpDatagram) (int, error) {
	if r.nosys {
		return 0, errBatchUnsupported
	}
	if r.hdrs == nil {
		r.grow(1)
	}
	for i := range r.hdrs {
		r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet4 // the kernel writes the source's length back
	}
	err := r.rc.Read(r.call)
	n, errno := r.got, r.errno
	switch {
	case err != nil:
		return 0, err // closed, or the read deadline passed
	case errno == unix.ENOSYS:
		return 0, errBatchUnsupported
	case errno != 0:
		return 0, os.NewSyscallError("recvmmsg", errno)
	}
	r.calls++
	ds := (*in)[:0]
	for i := range n {
		var from netip.AddrPort
		if sa := &r.names[i]; r.hdrs[i].hdr.Namelen >= unix.SizeofSockaddrInet4 && sa.Family == unix.AF_INET {
			p := (*[2]byte)(unsafe.Pointer(&sa.Port))
			from = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
		}
		off := i * udpReadBuffer
		ds = append(ds, udpDatagram{data: r.slab[off : off+int(r.hdrs[i].n) : off+udpReadBuffer], addr: from})
	}
	*in = ds
	if n == len(r.hdrs) && n < udpReadBatch {
		r.grow(2 * n) // more were probably waiting
	}
	return n, nil
}

// recvmmsg makes the system call for rc.Read; false means "wait until a
// datagram arrives".
func (r *udpBatchRecv) recvmmsg(fd uintptr) bool {
	for {
		res, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.got, r.errno = int(res), e
		return true
	}
}

// putSockaddrInet4 sets sa to ap (the port in network byte order).
func putSockaddrInet4(sa *unix.RawSockaddrInet4, ap netip.AddrPort) {
	sa.Family = unix.AF_INET
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(ap.Port()>>8), byte(ap.Port())
	sa.Addr = ap.Addr().As4()
}

// udpBatchSupported says whether this system has the batch calls.
const udpBatchSupported = true
