//go:build linux

package flow

import (
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"
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
	offload := mode == udpIOBatch
	s := &udpBatchSend{rc: rc, nosys: nosys, gso: offload && udpGSOSupported(rc)}
	s.call = s.sendmmsg
	r := &udpBatchRecv{rc: rc, nosys: nosys, gro: offload && udpEnableGRO(rc, true), first: udpRingSlots(rc)}
	r.call = r.recvmmsg
	return s, r
}

// udpRingStart is the most slots a receive ring starts with (512 KiB).
const udpRingStart = 8

// udpRingSlots is the size of a new receive ring: as many slots as the
// socket's receive buffer holds datagrams of udpReadBuffer bytes (the
// kernel's SO_RCVBUF, which counts its own overhead), at least one and at
// most udpRingStart. A flow with the system's default buffer (208 KiB)
// starts with 3 slots, one given a large buffer (a subscription's 4 MiB)
// with 8, so that a burst meets a ring that reads 512 KiB a call while the
// full one is mapped (growLater).
func udpRingSlots(rc syscall.RawConn) int {
	n := 0
	rc.Control(func(fd uintptr) {
		n, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	return min(max(n/udpReadBuffer, 1), udpRingStart)
}

// Segmentation offload: a run of equal-size datagrams to one destination
// goes to the kernel as one message with UDP_SEGMENT set to their size
// (GSO), so the stack handles one buffer for up to udpGSOSegments
// datagrams; on loopback, and to a receiver with UDP_GRO set, it stays one
// buffer up to the receiving socket, which reads the datagrams back-to-back
// with their size in a control message. The datagrams on the wire, and what
// a receiver without GRO reads, are the same.
const (
	udpGSOSegments = 64    // UDP_MAX_SEGMENTS of the kernel
	udpGSOBytes    = 65000 // a run's payloads together: one IPv4 packet's worth
	// udpGSOMaxSegment: larger datagrams use GSO on loopback only. A
	// segment must fit the path's MTU (the kernel refuses the message
	// otherwise), which is not known here; an Ethernet MTU is assumed.
	udpGSOMaxSegment = 1500 - 20 - 8
)

// udpGSOSupported reports whether the kernel knows UDP_SEGMENT (Linux 4.18).
func udpGSOSupported(rc syscall.RawConn) bool {
	ok := false
	rc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT)
		ok = err == nil
	})
	return ok
}

// udpEnableGRO sets or clears UDP_GRO (Linux 5.0) and reports whether the
// kernel took it.
func udpEnableGRO(rc syscall.RawConn, on bool) bool {
	v, ok := 0, false
	if on {
		v = 1
	}
	rc.Control(func(fd uintptr) {
		ok = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, v) == nil
	})
	return ok
}

// noGRO clears UDP_GRO before the flow reads one datagram per call, which
// would not split coalesced ones.
func (r *udpBatchRecv) noGRO() {
	if r.gro {
		udpEnableGRO(r.rc, false)
		r.gro = false
	}
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
	gso   bool   // UDP_SEGMENT for runs of equal-size datagrams
	ctl   []byte // each message's UDP_SEGMENT control message
	runs  []int  // datagrams per message of the current call
	gsos  uint64 // messages sent with UDP_SEGMENT (tests)

	noWait bool           // trySend: sendmmsg returns EAGAIN instead of waiting
	one    [1]udpDatagram // trySend's datagram

	// The call passed to rc.Write, bound once (a closure per call would be
	// an allocation per call), and its argument and results.
	call  func(fd uintptr) bool
	n     int
	sent  int
	errno syscall.Errno
}

// udpCtlSpace is the control buffer of one message: a UDP_SEGMENT (u16).
var udpCtlSpace = unix.CmsgSpace(2)

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
		s.ctl = make([]byte, udpSendBatch*udpCtlSpace)
		s.runs = make([]int, udpSendBatch)
	}
	for {
		n := min(len(ds), len(s.hdrs))
		for i, d := range ds[:n] {
			iov := &s.iovs[i]
			iov.Base = nil
			if len(d.data) > 0 {
				iov.Base = &d.data[0]
			}
			iov.SetLen(len(d.data))
		}
		msgs, gso := s.group(ds[:n])
		s.n = msgs
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
		case gso && (errno == unix.EIO || errno == unix.EINVAL || errno == unix.EMSGSIZE):
			// A device that cannot checksum segments refuses GSO with
			// EIO, a path MTU smaller than a segment with EINVAL: send
			// the datagrams one by one from now on.
			s.gso = false
			continue
		case errno != 0:
			return 0, os.NewSyscallError("sendmmsg", errno)
		case sent <= 0: // not documented; the writer would retry forever
			return 0, os.NewSyscallError("sendmmsg", unix.EIO)
		}
		s.calls++
		dgrams := 0
		for _, r := range s.runs[:sent] {
			dgrams += r
		}
		return dgrams, nil
	}
}

// trySend sends d with one sendmmsg call that does not wait for room in
// the socket buffer, and reports whether the kernel took it.
func (s *udpBatchSend) trySend(d udpDatagram) bool {
	s.one[0] = d
	s.noWait = true
	n, err := s.send(s.one[:])
	s.noWait = false
	s.one[0] = udpDatagram{}
	return err == nil && n == 1
}

// group fills the messages of one sendmmsg call for ds, whose iovecs are
// set: one message per datagram, or with GSO one per run of datagrams to
// one destination of one size (the run's last may be shorter, as the
// kernel allows). It returns the number of messages and whether any uses
// GSO.
func (s *udpBatchSend) group(ds []udpDatagram) (msgs int, gso bool) {
	for i := 0; i < len(ds); msgs++ {
		d := ds[i]
		run, total := 1, len(d.data)
		if s.gso && len(d.data) > 0 && (len(d.data) <= udpGSOMaxSegment || d.addr.Addr().IsLoopback()) {
			for j := i + 1; j < len(ds) && run < udpGSOSegments; j++ {
				e := ds[j]
				if e.addr != d.addr || len(e.data) > len(d.data) || len(e.data) == 0 || total+len(e.data) > udpGSOBytes {
					break
				}
				run++
				total += len(e.data)
				if len(e.data) < len(d.data) {
					break // a shorter one ends the run
				}
			}
		}
		putSockaddrInet4(&s.names[msgs], d.addr)
		h := &s.hdrs[msgs].hdr
		h.Name = (*byte)(unsafe.Pointer(&s.names[msgs]))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &s.iovs[i]
		h.SetIovlen(run)
		h.Control = nil
		h.SetControllen(0)
		if run > 1 {
			ctl := s.ctl[msgs*udpCtlSpace : (msgs+1)*udpCtlSpace]
			cm := (*unix.Cmsghdr)(unsafe.Pointer(&ctl[0]))
			cm.Level, cm.Type = unix.SOL_UDP, unix.UDP_SEGMENT
			cm.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&ctl[unix.CmsgLen(0)])) = uint16(len(d.data))
			h.Control = &ctl[0]
			h.SetControllen(udpCtlSpace)
			gso = true
			s.gsos++
		}
		s.runs[msgs] = run
		i += run
	}
	return msgs, gso
}

// sendmmsg makes the system call for rc.Write; false means "wait until the
// socket is writable".
func (s *udpBatchSend) sendmmsg(fd uintptr) bool {
	for {
		// A lone datagram sent by its sender (trySend) is a raw call (see
		// rawCallMax); the writer's batches are not.
		call := unix.Syscall6
		if s.noWait {
			call = unix.RawSyscall6
		}
		r, _, e := call(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(s.n), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if !s.noWait {
				return false
			}
		}
		s.sent, s.errno = int(r), e
		return true
	}
}

// udpBatchRecv reads datagrams with recvmmsg(2) into a ring of
// udpReadBuffer-byte slots, each large enough for any UDP datagram, so none
// is truncated. It belongs to the read goroutine. The ring starts with as
// many slots as the socket buffer holds, up to udpRingStart
// (udpRingSlots), and grows eightfold, up to udpReadBatch, whenever a call
// fills it: a flow that sees one datagram at a time keeps the memory of a
// few read buffers, and one that meets a burst reaches the full ring in
// one or two steps. The larger ring is made ready (mapSlab) by another
// goroutine while this one goes on reading with the old (growLater): that
// takes 6-17 ms for 4 MiB on the 2-core test VM, and a reader that waited
// for it, right when a burst had filled its ring, let the socket buffer of
// a fast stream overflow at its start (bench/README.md, "UDP").
type udpBatchRecv struct {
	rc    syscall.RawConn
	nosys bool         // behave as if the kernel had no recvmmsg (tests)
	first int          // slots of the ring mapped at the first call
	slots atomic.Int32 // slots of the ring installed last (tests)
	// A larger ring being mapped by growLater's goroutine, received here.
	grown   chan udpRing
	growing bool
	calls   uint64 // recvmmsg calls that returned datagrams (tests)
	slab    []byte
	// The slab when it was mapped (mapSlab), and the one it replaced,
	// which the datagrams of the last call still point into: unmapped at
	// the next call, or by release.
	mapped, retired []byte
	hdrs            []mmsghdr
	iovs            []unix.Iovec
	names           []unix.RawSockaddrInet4
	gro             bool   // UDP_GRO is set: a slot may hold several datagrams
	ctl             []byte // each slot's control buffer (the UDP_GRO segment size)
	gros            uint64 // slots that held coalesced datagrams (tests)

	// The call passed to rc.Read, bound once, and its results.
	call  func(fd uintptr) bool
	got   int
	errno syscall.Errno
}

// udpRing is the memory of a receive ring of n slots (see mapSlab).
type udpRing struct {
	slab, mapped []byte
	n            int
}

// newUDPRing maps a ring of n slots; background says it is mapped by
// growLater, while the read goroutine reads on.
func newUDPRing(n int, background bool) udpRing {
	slab, mapped := mapSlab(n*udpReadBuffer, background)
	return udpRing{slab: slab, mapped: mapped, n: n}
}

// install makes ring the one recv reads into. The datagrams of the last
// call keep the old one alive until they are replaced (retired, if it was
// mapped).
func (r *udpBatchRecv) install(ring udpRing) {
	r.unmapRetired()
	r.retired = r.mapped
	r.slab, r.mapped = ring.slab, ring.mapped
	r.slots.Store(int32(ring.n))
	n := ring.n
	r.hdrs = make([]mmsghdr, n)
	r.iovs = make([]unix.Iovec, n)
	r.names = make([]unix.RawSockaddrInet4, n)
	r.ctl = make([]byte, n*udpGROCtlSpace)
	for i := range n {
		r.iovs[i].Base = &r.slab[i*udpReadBuffer]
		r.iovs[i].SetLen(udpReadBuffer)
		h := &r.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
	}
}

// growLater starts mapping a ring of n slots on another goroutine, unless
// one is being mapped already; recv installs it once it is ready.
func (r *udpBatchRecv) growLater(n int) {
	if r.growing {
		return
	}
	if r.grown == nil {
		r.grown = make(chan udpRing, 1)
	}
	r.growing = true
	go func() { r.grown <- mapRingLater(n, true) }()
}

// mapRingLater is newUDPRing, for growLater (a test makes it slow).
var mapRingLater = newUDPRing

// takeGrown installs the ring growLater mapped, if it is ready.
func (r *udpBatchRecv) takeGrown() {
	if !r.growing {
		return
	}
	select {
	case ring := <-r.grown:
		r.growing = false
		r.install(ring)
	default:
	}
}

// recv reads at least one datagram (waiting for it, subject to the read
// deadline), one per slot or, with GRO, several, sets *in to them and
// returns how many.
func (r *udpBatchRecv) recv(in *[]udpDatagram) (int, error) {
	if r.nosys {
		return 0, errBatchUnsupported
	}
	r.unmapRetired() // the datagrams of the last call are done with
	if r.hdrs == nil {
		r.install(newUDPRing(max(r.first, 1), false))
	}
	r.takeGrown()
	for i := range r.hdrs {
		h := &r.hdrs[i].hdr
		h.Namelen = unix.SizeofSockaddrInet4 // the kernel writes the source's length back
		if r.gro {
			h.Control = &r.ctl[i*udpGROCtlSpace]
			h.SetControllen(udpGROCtlSpace)
		}
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
		data := r.slab[off : off+int(r.hdrs[i].n) : off+udpReadBuffer]
		if seg := r.segment(i); seg > 0 && seg < len(data) {
			r.gros++
			for len(data) > seg { // coalesced by GRO: split at the sender's datagram size
				ds = append(ds, udpDatagram{data: data[:seg:seg], addr: from})
				data = data[seg:]
			}
		}
		ds = append(ds, udpDatagram{data: data, addr: from})
	}
	*in = ds
	if n == len(r.hdrs) && n < udpReadBatch {
		r.growLater(min(8*n, udpReadBatch)) // more were probably waiting
	}
	return len(ds), nil
}

// mapSlab returns size bytes for the receive ring, mapped with their pages
// already present (MAP_POPULATE) and touched once from here (touchPages),
// and the same slice as mapped (nil if the mapping failed and the memory
// is Go's, from make, touched all the same). In the background (growLater)
// it pauses between runs of pages, so that the read goroutine keeps
// reading meanwhile even with one P.
//
// Memory fresh from the kernel is faulted in a page at a time at its first
// use, by the recvmmsg copying into it: about 17 µs a page on the 2-core
// test VM, 17 ms for a 4 MiB ring, during which the socket buffer
// overflowed at the start of every fast UDP stream (bench/README.md,
// "UDP"). MAP_POPULATE makes the pages present in 0.6-2 ms for the same
// 4 MiB, but under a hypervisor that keeps shadow page tables (that VM's
// PVM), the first access through the process's own addresses still traps,
// 5-6 ms for 4 MiB: touching each page pays that before the ring is used,
// not in the middle of a burst (a second pass takes 10 µs).
func mapSlab(size int, background bool) (slab, mapped []byte) {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		b = make([]byte, size)
	} else {
		mapped = b
	}
	touchPages(b, background)
	return b, mapped
}

// touchRun is how many pages touchPages touches between pauses: 64 KiB,
// 0.1-0.3 ms where each first access traps.
const touchRun = 16

// touchPages writes a zero to each page of b (a write, so that the page is
// mapped writable), pausing after every touchRun pages if pause is set.
// The pause is a timer sleep: runtime.Gosched would not let the read
// goroutine in with one P, as the scheduler takes a yielded goroutine from
// its global queue before it polls the network.
func touchPages(b []byte, pause bool) {
	page := os.Getpagesize()
	for i := 0; i < len(b); i += page {
		b[i] = 0
		if pause && (i/page)%touchRun == touchRun-1 {
			time.Sleep(time.Microsecond)
		}
	}
}

// unmapRetired unmaps the slab install replaced, once nothing points into it.
func (r *udpBatchRecv) unmapRetired() {
	if r.retired != nil {
		unix.Munmap(r.retired)
		r.retired = nil
	}
}

// release unmaps the ring when the flow stops reading with recvmmsg (its
// read goroutine has returned, or it falls back to one datagram per call):
// the datagrams of the last call must be done with. A ring still being
// mapped is waited for and unmapped too.
func (r *udpBatchRecv) release() {
	r.unmapRetired()
	if r.growing {
		if ring := <-r.grown; ring.mapped != nil {
			unix.Munmap(ring.mapped)
		}
		r.growing = false
	}
	if r.mapped != nil {
		unix.Munmap(r.mapped)
		r.mapped, r.slab, r.hdrs, r.iovs = nil, nil, nil, nil
	}
}

// mappedBytes returns how much of the ring is mapped (tests).
func (r *udpBatchRecv) mappedBytes() int { return len(r.mapped) + len(r.retired) }

// udpGROCtlSpace is a slot's control buffer: a UDP_GRO (int), with room
// for another control message the kernel might add.
var udpGROCtlSpace = 2 * unix.CmsgSpace(4)

// segment returns the datagram size of slot i's UDP_GRO control message,
// or 0 when the slot holds one datagram.
func (r *udpBatchRecv) segment(i int) int {
	if !r.gro {
		return 0
	}
	h := &r.hdrs[i].hdr
	ctl := r.ctl[i*udpGROCtlSpace : i*udpGROCtlSpace+int(h.Controllen)]
	for len(ctl) >= unix.CmsgLen(0) {
		cm := (*unix.Cmsghdr)(unsafe.Pointer(&ctl[0]))
		if int(cm.Len) < unix.CmsgLen(0) || int(cm.Len) > len(ctl) {
			return 0
		}
		if cm.Level == unix.SOL_UDP && cm.Type == unix.UDP_GRO && int(cm.Len) >= unix.CmsgLen(4) {
			return int(*(*int32)(unsafe.Pointer(&ctl[unix.CmsgLen(0)])))
		}
		ctl = ctl[min(len(ctl), unix.CmsgSpace(int(cm.Len)-unix.CmsgLen(0))):]
	}
	return 0
}

// rawCallMax bounds the bytes a recvmmsg or sendmmsg may move when it is
// made without telling Go's scheduler (unix.RawSyscall6): on a
// non-blocking socket the call never sleeps, and copying this much takes
// tens of microseconds. A call the scheduler is told of (unix.Syscall6)
// first wakes the runtime's monitor thread (sysmon) when every P was
// idle, as they are between the datagrams of a quiet flow: an STK-UDP echo
// paid a futex wake-up, a context switch and sysmon's 20 µs polling after
// it on every round trip, 2.1 context switches and 34 µs of CPU per round
// trip, against 1.0 and 29 µs with raw calls (bench/README.md). Larger
// calls are made the usual way, so that a long copy does not hold up a
// stop-the-world.
const rawCallMax = 512 << 10

// recvmmsg makes the system call for rc.Read; false means "wait until a
// datagram arrives".
func (r *udpBatchRecv) recvmmsg(fd uintptr) bool {
	for {
		// A small ring's call is raw (see rawCallMax): a flow woken for a
		// lone datagram then does not wake sysmon as well.
		call := unix.Syscall6
		if len(r.hdrs)*udpReadBuffer <= rawCallMax {
			call = unix.RawSyscall6
		}
		res, _, e := call(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), 0, 0, 0)
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

// skMeminfoDrops is SK_MEMINFO_DROPS: the index in SO_MEMINFO's array of
// the datagrams the socket dropped (Linux 4.6).
const skMeminfoDrops = 8

// udpSocketDrops returns how many datagrams the system dropped at the
// socket (its receive buffer full, mostly), or false where it cannot tell.
func udpSocketDrops(rc syscall.RawConn) (uint64, bool) {
	var info [skMeminfoDrops + 1]uint32
	l := uint32(unsafe.Sizeof(info))
	var errno syscall.Errno
	err := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&l)), 0)
	})
	if err != nil || errno != 0 || l < uint32(unsafe.Sizeof(info)) {
		return 0, false
	}
	return uint64(info[skMeminfoDrops]), true
}
