// Package pcap reads the loopback captures under testdata/captures for tests:
// classic pcap files with Ethernet framing, IPv4, TCP and UDP. It returns UDP
// datagrams and reassembled TCP byte streams per direction, which is what the
// golden and conformance tests replay. It is test plumbing, not a general
// pcap library: anything else in a file is skipped.
package pcap

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"time"
)

// Packet is one TCP or UDP packet with a payload or TCP flags of interest.
type Packet struct {
	Time     time.Time
	Proto    string // "tcp" or "udp"
	Src, Dst netip.AddrPort
	Seq      uint32 // TCP sequence number
	Flags    uint8  // TCP flags (FIN 0x01, SYN 0x02, RST 0x04)
	Payload  []byte
}

// Read returns the TCP and UDP packets of a capture in file order.
func Read(path string) ([]Packet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, fmt.Errorf("pcap %s: too short", path)
	}
	var order binary.ByteOrder = binary.LittleEndian
	nano := false
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4:
	case 0xa1b23c4d:
		nano = true
	default:
		switch binary.BigEndian.Uint32(b) {
		case 0xa1b2c3d4:
			order = binary.BigEndian
		case 0xa1b23c4d:
			order, nano = binary.BigEndian, true
		default:
			return nil, fmt.Errorf("pcap %s: not a pcap file", path)
		}
	}
	if lt := order.Uint32(b[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap %s: link type %d, want Ethernet (1)", path, lt)
	}
	var out []Packet
	for off := 24; off+16 <= len(b); {
		sec, frac := order.Uint32(b[off:]), order.Uint32(b[off+4:])
		incl := int(order.Uint32(b[off+8:]))
		off += 16
		if off+incl > len(b) {
			return nil, fmt.Errorf("pcap %s: truncated record", path)
		}
		data := b[off : off+incl]
		off += incl
		ns := int64(frac) * 1000
		if nano {
			ns = int64(frac)
		}
		if p, ok := parseEthernet(data); ok {
			p.Time = time.Unix(int64(sec), ns)
			out = append(out, p)
		}
	}
	return out, nil
}

func parseEthernet(d []byte) (Packet, bool) {
	if len(d) < 14+20 || binary.BigEndian.Uint16(d[12:]) != 0x0800 {
		return Packet{}, false
	}
	ip := d[14:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ip[0]>>4 != 4 || total > len(ip) || ihl < 20 || total < ihl {
		return Packet{}, false
	}
	src := netip.AddrFrom4([4]byte(ip[12:16]))
	dst := netip.AddrFrom4([4]byte(ip[16:20]))
	l4 := ip[ihl:total]
	switch ip[9] {
	case 6:
		if len(l4) < 20 {
			return Packet{}, false
		}
		doff := int(l4[12]>>4) * 4
		if doff > len(l4) {
			return Packet{}, false
		}
		return Packet{
			Proto:   "tcp",
			Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(l4[0:])),
			Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(l4[2:])),
			Seq:     binary.BigEndian.Uint32(l4[4:]),
			Flags:   l4[13],
			Payload: l4[doff:],
		}, true
	case 17:
		if len(l4) < 8 {
			return Packet{}, false
		}
		return Packet{
			Proto:   "udp",
			Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(l4[0:])),
			Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(l4[2:])),
			Payload: l4[8:],
		}, true
	}
	return Packet{}, false
}

// Stream is the bytes one side of a TCP connection sent, in order.
type Stream struct {
	Src, Dst netip.AddrPort
	Start    time.Time // first packet of the stream
	Data     []byte
}

// Streams reassembles the TCP payloads of packets per direction, ordered by
// sequence number, dropping retransmitted bytes. A new SYN from the same
// address pair starts a new stream. Streams come in the order of their first
// packet.
func Streams(packets []Packet) []Stream {
	type key struct{ src, dst netip.AddrPort }
	type acc struct {
		stream  Stream
		isn     uint32
		pieces  map[uint32][]byte
		started bool
	}
	var all []*acc
	open := map[key]*acc{}
	for _, p := range packets {
		if p.Proto != "tcp" {
			continue
		}
		k := key{p.Src, p.Dst}
		a := open[k]
		if a == nil || p.Flags&0x02 != 0 {
			a = &acc{stream: Stream{Src: p.Src, Dst: p.Dst, Start: p.Time}, pieces: map[uint32][]byte{}}
			open[k] = a
			all = append(all, a)
		}
		if p.Flags&0x02 != 0 {
			a.isn, a.started = p.Seq+1, true
			continue
		}
		if !a.started {
			a.isn, a.started = p.Seq, true
		}
		if len(p.Payload) > 0 {
			a.pieces[p.Seq-a.isn] = p.Payload
		}
	}
	out := make([]Stream, 0, len(all))
	for _, a := range all {
		offs := make([]uint32, 0, len(a.pieces))
		for o := range a.pieces {
			offs = append(offs, o)
		}
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		for _, o := range offs {
			p := a.pieces[o]
			have := uint32(len(a.stream.Data))
			if o > have {
				break // a hole: the capture lost bytes; stop here
			}
			if end := o + uint32(len(p)); end > have {
				a.stream.Data = append(a.stream.Data, p[have-o:]...)
			}
		}
		if len(a.stream.Data) > 0 {
			out = append(out, a.stream)
		}
	}
	return out
}

// UDP returns the UDP packets of packets.
func UDP(packets []Packet) []Packet {
	var out []Packet
	for _, p := range packets {
		if p.Proto == "udp" {
			out = append(out, p)
		}
	}
	return out
}
