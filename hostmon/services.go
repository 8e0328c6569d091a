package hostmon

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/stk-go/stk/step"
)

func init() {
	Register("services", true, func(cfg Config) (any, error) { return NewServicesCollector(cfg) })
}

// Timing of the services collector's searches.
const (
	// ServicesRescanEvery is the least time between two searches for the
	// processes of services not found yet. A search reads the socket
	// tables and may walk every process's open files, so it is rare; a
	// service that stays unfound is looked for less and less often, up to
	// every ServicesMaxBackoff.
	ServicesRescanEvery = 10 * time.Second
	ServicesMaxBackoff  = 5 * time.Minute
	// servicesLocalEvery is how long the host's address list is trusted.
	servicesLocalEvery = time.Minute
)

// svcKey names a service's socket: transport and local address.
type svcKey struct {
	proto string // "tcp" or "udp"
	peer  netip.AddrPort
}

// svcPeer is what the collector knows of one service's socket.
type svcPeer struct {
	pid     int32  // 0: not found (yet)
	fdPath  string // /proc/PID/fd/N holding the socket: one readlink revalidates it
	inode   uint64
	nextTry time.Time
	backoff time.Duration
	seen    uint32 // the interval that last listed it
}

// svcProc is one service process's previous sample, for its CPU rate.
type svcProc struct {
	start   uint64 // start time: tells a reused pid apart
	ticks   uint64 // utime+stime
	at      time.Time
	sampled uint32 // the interval of cur
	cur     procStat
	name    string
	fds     int // -1: unreadable
	cpu     float64
	hasCPU  bool
}

// servicesCollector reports the CPU, memory, threads and open files of
// the processes behind smartbeat-monitored services.
type servicesCollector struct {
	env         Env
	log         *slog.Logger
	proc        string
	services    func(ctx context.Context) ([]ServiceRef, error)
	rescanEvery time.Duration
	localAddrs  func() ([]netip.Addr, error)
	pageSize    int64

	local    []netip.Addr
	localAt  time.Time
	peers    map[svcKey]*svcPeer
	procs    map[int32]*svcProc
	gen      uint32
	lastScan time.Time
	scans    int // searches made, for tests

	statBuf, dirBuf, fdBuf, linkBuf, netBuf []byte
}

// NewServicesCollector returns the "services" collector: one
// service.process metric per monitored service whose process runs on this
// host. Config.Services lists the services with the address each reports
// to the monitor from; the collector finds the process holding a socket
// bound to that address (/proc/net/{tcp,tcp6,udp,udp6} give the socket's
// inode, /proc/PID/fd the process holding it), remembers it, and
// revalidates it each interval with one readlink. Services whose address
// is not one of this host's are left out. Without Config.Services the
// collector is unavailable.
func NewServicesCollector(cfg Config) (Collector, error) {
	if cfg.Services == nil {
		return nil, fmt.Errorf("services: no list of monitored services configured: %w", ErrUnavailable)
	}
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("services: reads Linux's /proc: %w", ErrUnavailable)
	}
	c := &servicesCollector{
		env:         cfg.Env,
		log:         cfg.Logger,
		proc:        procRoot(cfg.Env),
		services:    cfg.Services,
		rescanEvery: ServicesRescanEvery,
		localAddrs:  interfaceAddrs,
		pageSize:    int64(os.Getpagesize()),
		peers:       make(map[svcKey]*svcPeer),
		procs:       make(map[int32]*svcProc),
		statBuf:     make([]byte, 2048),
		dirBuf:      make([]byte, 32<<10),
		fdBuf:       make([]byte, 16<<10),
		linkBuf:     make([]byte, 128),
		netBuf:      make([]byte, 64<<10),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(filepath.Join(c.proc, "net")); err != nil {
		return nil, fmt.Errorf("services: %w: %w", ErrUnavailable, err)
	}
	return c, nil
}

func (c *servicesCollector) Name() string { return "services" }

// svcItem is one listed service and its socket's state.
type svcItem struct {
	ref ServiceRef
	key svcKey
	p   *svcPeer
}

// Collect returns one service.process STEP per listed service whose
// process is known, in the order listed.
func (c *servicesCollector) Collect(ctx context.Context, now time.Time) ([]*step.Step, error) {
	refs, err := c.services(ctx)
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	c.gen++
	var items []svcItem
	var pending []*svcPeer
	pendingKeys := map[svcKey]*svcPeer{}
	for _, ref := range refs {
		proto := svcProto(ref.Protocol)
		peer := netip.AddrPortFrom(ref.Peer.Addr().Unmap(), ref.Peer.Port())
		if proto == "" || !peer.IsValid() || peer.Port() == 0 || !c.isLocal(peer.Addr(), now) {
			continue
		}
		k := svcKey{proto, peer}
		p := c.peers[k]
		if p == nil {
			p = &svcPeer{}
			c.peers[k] = p
		}
		if p.seen != c.gen {
			p.seen = c.gen
			if p.pid != 0 && !c.stillHolds(p) {
				// Closed, or its process ended: look again (once, then with
				// back-off), though a reconnected service usually shows up
				// under a new address instead.
				*p = svcPeer{seen: c.gen, nextTry: now}
			}
			if p.pid == 0 && !now.Before(p.nextTry) {
				pending = append(pending, p)
				pendingKeys[k] = p
			}
		}
		items = append(items, svcItem{ref, k, p})
	}
	for k, p := range c.peers {
		if p.seen != c.gen {
			delete(c.peers, k)
		}
	}
	var errs []error
	if len(pending) > 0 && (c.lastScan.IsZero() || now.Sub(c.lastScan) >= c.rescanEvery || now.Before(c.lastScan)) {
		c.lastScan = now
		c.scans++
		if err := c.resolve(pendingKeys); err != nil {
			errs = append(errs, err)
		}
		for _, p := range pending {
			if p.pid != 0 {
				p.backoff = 0
				continue
			}
			p.backoff = min(max(2*p.backoff, c.rescanEvery), ServicesMaxBackoff)
			p.nextTry = now.Add(p.backoff)
		}
	}

	var steps []*step.Step
	for _, it := range items {
		if it.p.pid == 0 {
			continue
		}
		pr := c.sample(it.p.pid, now)
		if pr == nil {
			*it.p = svcPeer{seen: c.gen, nextTry: now} // gone between the check and the read
			continue
		}
		steps = append(steps, c.step(it, pr, now))
	}
	for pid, pr := range c.procs {
		if pr.sampled != c.gen {
			delete(c.procs, pid)
		}
	}
	return steps, errors.Join(errs...)
}

// step makes the service.process STEP of one service.
func (c *servicesCollector) step(it svcItem, pr *svcProc, now time.Time) *step.Step {
	rss := pr.cur.rss * c.pageSize
	var desc strings.Builder
	fmt.Fprintf(&desc, "service %s: pid %d (%s)", it.ref.Name, it.p.pid, pr.name)
	if pr.hasCPU {
		fmt.Fprintf(&desc, ", %.1f%% CPU", pr.cpu)
	}
	fmt.Fprintf(&desc, ", %s RSS, %d threads", svcSize(uint64(rss)), pr.cur.threads)
	if pr.fds >= 0 {
		fmt.Fprintf(&desc, ", %d fds", pr.fds)
	}
	s := c.env.NewMetric("service.process", desc.String(), now)
	s.Set("service", it.ref.Name)
	s.Set("protocol", it.ref.Protocol)
	s.Set("peer", it.key.peer.String())
	s.Set("pid", int64(it.p.pid))
	s.Set("process", pr.name)
	if pr.hasCPU {
		s.Set("cpu_percent", pr.cpu)
	}
	s.Set("rss_bytes", rss)
	s.Set("threads", pr.cur.threads)
	if pr.fds >= 0 {
		s.Set("fds", int64(pr.fds))
	}
	return s
}

// sample reads a process's stat and open file count, once per interval
// however many services it serves. nil means it is gone.
func (c *servicesCollector) sample(pid int32, now time.Time) *svcProc {
	pr := c.procs[pid]
	if pr != nil && pr.sampled == c.gen {
		return pr
	}
	b, err := procReadFile(procPidPath(c.proc, pid, "stat"), c.statBuf)
	if err != nil {
		return nil
	}
	st, comm, err := parseProcStat(b)
	if err != nil {
		return nil
	}
	if pr == nil || pr.start != st.start {
		pr = &svcProc{start: st.start, name: procText(comm)}
		c.procs[pid] = pr
	}
	ticks := st.utime + st.stime
	pr.hasCPU = false
	if !pr.at.IsZero() && now.After(pr.at) && ticks >= pr.ticks {
		// Percent of one core, as top shows it: over 100 for a process
		// busy on several.
		sec := float64(ticks-pr.ticks) / procClockTicks
		pr.cpu = math.Round(sec/now.Sub(pr.at).Seconds()*100*100) / 100
		pr.hasCPU = true
	}
	pr.ticks, pr.at, pr.cur, pr.sampled = ticks, now, st, c.gen
	pr.fds = 0
	if err := procReadDir(procPidPath(c.proc, pid, "fd"), c.fdBuf, func(name []byte, _ uint64) {
		if name[0] != '.' {
			pr.fds++
		}
	}); err != nil {
		pr.fds = -1 // another user's process, without the rights to look
	}
	return pr
}

// stillHolds reports whether p's process still holds its socket.
func (c *servicesCollector) stillHolds(p *svcPeer) bool {
	inode, ok := c.socketInode(p.fdPath)
	return ok && inode == p.inode
}

// socketInode reads the fd link at path ("socket:[12345]").
func (c *servicesCollector) socketInode(path string) (uint64, bool) {
	n, err := syscall.Readlink(path, c.linkBuf)
	if err != nil || n >= len(c.linkBuf) {
		return 0, false
	}
	b, ok := bytes.CutPrefix(c.linkBuf[:n], []byte("socket:["))
	if !ok || len(b) < 2 || b[len(b)-1] != ']' {
		return 0, false
	}
	return procUint(b[:len(b)-1])
}

// resolve finds the processes of the pending sockets: their inodes from
// the socket tables, then the processes holding those inodes.
func (c *servicesCollector) resolve(pending map[svcKey]*svcPeer) error {
	want := map[uint64]*svcPeer{}
	var errs []error
	for _, proto := range []string{"tcp", "udp"} {
		exact := map[svcKey]uint64{}
		wild := map[uint16]uint64{} // udp: sockets bound to 0.0.0.0 or [::], by port
		need := false
		for k := range pending {
			need = need || k.proto == proto
		}
		if !need {
			continue
		}
		for _, table := range []string{proto, proto + "6"} {
			if table != proto && svcAllFound(pending, exact, proto) {
				break // reading a table walks the kernel's whole socket hash: skip what is not needed
			}
			path := filepath.Join(c.proc, "net", table)
			b, err := procReadAll(path, &c.netBuf)
			if err != nil {
				if !errors.Is(err, os.ErrNotExist) { // no IPv6: no tcp6
					errs = append(errs, fmt.Errorf("services: %w", err))
				}
				continue
			}
			parseNetTable(b, func(local netip.AddrPort, state byte, inode uint64) {
				k := svcKey{proto, local}
				if _, ok := pending[k]; ok {
					// TCP: prefer the established connection to a listener
					// or a closing one on the same address.
					if _, have := exact[k]; !have || (proto == "tcp" && state == 0x01) {
						exact[k] = inode
					}
				}
				if proto == "udp" && local.Addr().IsUnspecified() {
					if _, have := wild[local.Port()]; !have {
						wild[local.Port()] = inode
					}
				}
			})
		}
		for k, p := range pending {
			if k.proto != proto {
				continue
			}
			inode, ok := exact[k]
			if !ok && proto == "udp" {
				inode, ok = wild[k.peer.Port()]
			}
			if ok {
				p.inode = inode
				want[inode] = p
			}
		}
	}
	if len(want) > 0 {
		if err := c.findHolders(want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// svcAllFound reports whether every pending socket of proto has its
// inode in exact.
func svcAllFound(pending map[svcKey]*svcPeer, exact map[svcKey]uint64, proto string) bool {
	for k := range pending {
		if _, ok := exact[k]; k.proto == proto && !ok {
			return false
		}
	}
	return true
}

// findHolders walks /proc/*/fd for the socket inodes in want, until all
// are found, and fills in their peers' pid and fd.
func (c *servicesCollector) findHolders(want map[uint64]*svcPeer) error {
	var pids []int32
	err := procReadDir(c.proc, c.dirBuf, func(name []byte, _ uint64) {
		if pid, ok := procPid(name); ok {
			pids = append(pids, pid)
		}
	})
	if err != nil {
		return fmt.Errorf("services: %w", err)
	}
	var fds []string
	for _, pid := range pids {
		dir := procPidPath(c.proc, pid, "fd")
		fds = fds[:0]
		if procReadDir(dir, c.fdBuf, func(name []byte, _ uint64) {
			if name[0] != '.' {
				fds = append(fds, string(name))
			}
		}) != nil {
			continue // gone, or not ours to look at
		}
		for _, fd := range fds {
			path := dir + "/" + fd
			inode, ok := c.socketInode(path)
			if !ok {
				continue
			}
			if p := want[inode]; p != nil {
				p.pid, p.fdPath = pid, path
				delete(want, inode)
				if len(want) == 0 {
					return nil
				}
			}
		}
	}
	return nil
}

// parseNetTable calls fn with the local address, state and inode of each
// socket of /proc/net/{tcp,tcp6,udp,udp6}.
func parseNetTable(b []byte, fn func(local netip.AddrPort, state byte, inode uint64)) {
	first := true
	for line := range bytes.Lines(b) {
		line = bytes.TrimSuffix(line, []byte{'\n'})
		if first { // the header
			first = false
			continue
		}
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		var f [10][]byte
		n := 0
		for rest := line; n < len(f); n++ {
			rest = bytes.TrimLeft(rest, " ")
			if len(rest) == 0 {
				break
			}
			i := bytes.IndexByte(rest, ' ')
			if i < 0 {
				i = len(rest)
			}
			f[n], rest = rest[:i], rest[i:]
		}
		if n < len(f) {
			continue
		}
		local, ok := parseNetAddr(f[1])
		if !ok {
			continue
		}
		state, ok := parseHexUint(f[3])
		if !ok || state > 0xff {
			continue
		}
		inode, ok := procUint(f[9])
		if !ok || inode == 0 { // 0: TIME_WAIT and the like, held by no process
			continue
		}
		fn(local, byte(state), inode)
	}
}

// parseNetAddr parses a /proc/net address, "0100007F:1F90" or 32 hex
// digits and a port for IPv6. The kernel prints each 32-bit word of the
// address as the host's integer, so its bytes are in host order.
func parseNetAddr(b []byte) (netip.AddrPort, bool) {
	hexIP, hexPort, ok := bytes.Cut(b, []byte{':'})
	if !ok || (len(hexIP) != 8 && len(hexIP) != 32) {
		return netip.AddrPort{}, false
	}
	port, ok := parseHexUint(hexPort)
	if !ok || port > 0xffff {
		return netip.AddrPort{}, false
	}
	var ip [16]byte
	for i := 0; i < len(hexIP)/8; i++ {
		w, ok := parseHexUint(hexIP[i*8 : i*8+8])
		if !ok {
			return netip.AddrPort{}, false
		}
		binary.NativeEndian.PutUint32(ip[i*4:], uint32(w))
	}
	var addr netip.Addr
	if len(hexIP) == 8 {
		addr = netip.AddrFrom4([4]byte(ip[:4]))
	} else {
		addr = netip.AddrFrom16(ip).Unmap()
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}

// parseHexUint parses up to 16 hex digits.
func parseHexUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, ch := range b {
		var d byte
		switch {
		case ch >= '0' && ch <= '9':
			d = ch - '0'
		case ch >= 'A' && ch <= 'F':
			d = ch - 'A' + 10
		case ch >= 'a' && ch <= 'f':
			d = ch - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}

// svcProto maps a service's protocol to the socket tables that hold it.
func svcProto(p string) string {
	switch p {
	case "tcp":
		return "tcp"
	case "udp", "multicast":
		return "udp"
	}
	return ""
}

// isLocal reports whether a is loopback or one of this host's addresses.
func (c *servicesCollector) isLocal(a netip.Addr, now time.Time) bool {
	if a.IsLoopback() {
		return true
	}
	if c.localAt.IsZero() || now.Sub(c.localAt) >= servicesLocalEvery || now.Before(c.localAt) {
		c.localAt = now
		addrs, err := c.localAddrs()
		if err != nil {
			c.log.Warn("services: cannot list this host's addresses", "err", err)
		} else {
			c.local = addrs
		}
	}
	return slices.Contains(c.local, a)
}

// interfaceAddrs lists the addresses of this host's interfaces.
func interfaceAddrs() ([]netip.Addr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}

// svcSize writes a byte count in binary units ("12.0 MiB").
func svcSize(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}
