package smartbeat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/stk-go/stk/seq"
)

// Wire layouts of docs/protocol.md §8.3 and §8.4. Every integer is little-endian
// except the port and address of the reporting sockaddr_in.

const (
	instSize = 56 // 0x8100 SGA_SERVICE_INST
	beatSize = 32 // 0x50000001 service smartbeat
	ipSize   = 16 // 0x8103 reporting IP, a sockaddr_in

	opCreate  uint32 = 1
	opDestroy uint32 = 2

	// maxBeatsPerSequence keeps a smartbeat within the 255 elements a C
	// TCP receiver can take (one more element is the reporting IP).
	maxBeatsPerSequence = seq.MaxElements - 1
)

// errMalformed marks notifications the receivers cannot use.
var errMalformed = errors.New("smartbeat: malformed notification")

// inst is the 56-byte service instance of CREATE and DESTROY.
type inst struct {
	op         uint32
	id         uint64
	typ        ServiceType
	state      State
	sec, usec  uint64 // the sender's clock
	checkpoint uint64
	activityMS uint32
}

func (in *inst) appendTo(dst []byte) []byte {
	var b [instSize]byte
	binary.LittleEndian.PutUint32(b[0:], instSize)
	binary.LittleEndian.PutUint32(b[4:], in.op)
	binary.LittleEndian.PutUint64(b[8:], in.id)
	binary.LittleEndian.PutUint16(b[16:], uint16(in.typ))
	b[18] = byte(in.state)
	binary.LittleEndian.PutUint64(b[24:], in.sec)
	binary.LittleEndian.PutUint64(b[32:], in.usec)
	binary.LittleEndian.PutUint64(b[40:], in.checkpoint)
	binary.LittleEndian.PutUint32(b[48:], in.activityMS)
	return append(dst, b[:]...)
}

// parseInst decodes an INST. Like stkhttpd it needs sz >= 56; unlike it,
// it also checks that the element really holds that many bytes.
func parseInst(b []byte) (inst, error) {
	if len(b) < instSize {
		return inst{}, fmt.Errorf("%w: service instance of %d bytes, want %d", errMalformed, len(b), instSize)
	}
	if sz := binary.LittleEndian.Uint32(b); sz < instSize {
		return inst{}, fmt.Errorf("%w: service instance size field %d, want >= %d", errMalformed, sz, instSize)
	}
	return inst{
		op:         binary.LittleEndian.Uint32(b[4:]),
		id:         binary.LittleEndian.Uint64(b[8:]),
		typ:        ServiceType(binary.LittleEndian.Uint16(b[16:])),
		state:      State(b[18]),
		sec:        binary.LittleEndian.Uint64(b[24:]),
		usec:       binary.LittleEndian.Uint64(b[32:]),
		checkpoint: binary.LittleEndian.Uint64(b[40:]),
		activityMS: binary.LittleEndian.Uint32(b[48:]),
	}, nil
}

// beat is one 32-byte service smartbeat.
type beat struct {
	id, sec, usec, checkpoint uint64
}

func (b *beat) appendTo(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, b.id)
	dst = binary.LittleEndian.AppendUint64(dst, b.sec)
	dst = binary.LittleEndian.AppendUint64(dst, b.usec)
	return binary.LittleEndian.AppendUint64(dst, b.checkpoint)
}

func parseBeat(d []byte) (beat, bool) {
	if len(d) != beatSize {
		return beat{}, false
	}
	return beat{
		id:         binary.LittleEndian.Uint64(d),
		sec:        binary.LittleEndian.Uint64(d[8:]),
		usec:       binary.LittleEndian.Uint64(d[16:]),
		checkpoint: binary.LittleEndian.Uint64(d[24:]),
	}, true
}

// timeParts splits t as gettimeofday does.
func timeParts(t time.Time) (sec, usec uint64) {
	return uint64(t.Unix()), uint64(t.Nanosecond() / 1000)
}

// partsTime is the inverse of timeParts; absurd values (garbage from a
// peer) give the zero time rather than overflowing.
func partsTime(sec, usec uint64) time.Time {
	if sec == 0 && usec == 0 || sec > 1<<40 || usec >= 1e6 {
		return time.Time{}
	}
	return time.Unix(int64(sec), int64(usec)*1000)
}

// putReportingIP writes a as the 16-byte sockaddr_in of §8.3: family 2 in
// LE, port and IPv4 address in network order, 8 zero bytes. Addresses
// that are not IPv4 (and the zero AddrPort) give 0.0.0.0.
func putReportingIP(b []byte, a netip.AddrPort) {
	_ = b[ipSize-1]
	clear(b[:ipSize])
	b[0] = 2
	binary.BigEndian.PutUint16(b[2:], a.Port())
	if ip := a.Addr().Unmap(); ip.Is4() {
		v4 := ip.As4()
		copy(b[4:8], v4[:])
	}
}

// setReportingIP rewrites the reporting-IP element of s for a destination
// whose local address is a (the C library rewrites it per flow too).
func setReportingIP(s *seq.Sequence, a netip.AddrPort) {
	for i := range s.Elements {
		if e := &s.Elements[i]; e.UserType == seq.UTServiceIP && len(e.Data) == ipSize {
			putReportingIP(e.Data, a)
			return
		}
	}
}

func cString(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

// createSequence builds a CREATE (0xe00): reporting IP, INST, name, and the
// group name when group is set (only in the copy a service group's mirror
// sends to its monitor).
func createSequence(in inst, name, group string) *seq.Sequence {
	s := seq.New(seq.IDCreateNotification, seq.NameCreateNotification, seq.TypeMgmt)
	s.Elements = make([]seq.Element, 0, 4)
	s.Add(seq.UTServiceIP, make([]byte, ipSize))
	s.Add(seq.UTServiceInst, in.appendTo(make([]byte, 0, instSize)))
	s.Add(seq.UTServiceName, cString(name))
	if group != "" {
		s.Add(seq.UTServiceGroupName, cString(group))
	}
	return s
}

// stateSequence builds a STATE (0xe02): name, reporting IP, state, state
// name.
func stateSequence(name string, st State, stateName string) *seq.Sequence {
	s := seq.New(seq.IDStateNotification, seq.NameStateNotification, seq.TypeMgmt)
	s.Elements = make([]seq.Element, 0, 4)
	s.Add(seq.UTServiceName, cString(name))
	s.Add(seq.UTServiceIP, make([]byte, ipSize))
	s.Add(seq.UTServiceState, []byte{byte(st)})
	s.Add(seq.UTServiceStateName, cString(stateName))
	return s
}

// destroySequence builds a DESTROY (0xe01): the final state's name,
// reporting IP, INST (op DESTROY), name.
func destroySequence(stateName string, in inst, name string) *seq.Sequence {
	s := seq.New(seq.IDDestroyNotification, seq.NameDestroyNotification, seq.TypeMgmt)
	s.Elements = make([]seq.Element, 0, 4)
	s.Add(seq.UTServiceStateName, cString(stateName))
	s.Add(seq.UTServiceIP, make([]byte, ipSize))
	s.Add(seq.UTServiceInst, in.appendTo(make([]byte, 0, instSize)))
	s.Add(seq.UTServiceName, cString(name))
	return s
}

// smartbeatSequence builds a Smartbeat (0x3000000): the reporting IP, then
// one 0x50000001 element per service (the order of the C controller, which
// adds the IP with the first service).
func smartbeatSequence(beats []beat) *seq.Sequence {
	s := seq.New(seq.IDSmartbeat, seq.NameSmartbeat, seq.TypeMgmt)
	s.Elements = make([]seq.Element, 0, 1+len(beats))
	buf := make([]byte, ipSize, ipSize+beatSize*len(beats))
	s.Add(seq.UTServiceIP, buf[:ipSize:ipSize])
	for i := range beats {
		start := len(buf)
		buf = beats[i].appendTo(buf)
		s.Add(seq.UTSmartbeat, buf[start:len(buf):len(buf)])
	}
	return s
}

// notice is a decoded CREATE, STATE, DESTROY or SMARTBEAT: the elements
// receivers use (§9.1). 0x8103 is ignored, as receivers must (docs/differences.md B15).
type notice struct {
	id           uint64 // sequence id
	inst         inst
	hasInst      bool
	name         string
	hasName      bool
	state        State
	hasState     bool
	stateName    string
	hasStateName bool
	group        string
	beats        []beat
	badBeats     int // 0x50000001 elements of the wrong size, skipped
	// tooLong is set when a string is over its bound (see limits.go):
	// that string is not copied, and the notification is refused.
	tooLong bool
	refused refusal // the first string over its bound, when tooLong
}

// isServiceSequence reports whether s is one of the sequences of this
// package (by id, as every STK receiver tells them apart).
func isServiceSequence(s *seq.Sequence) bool {
	switch s.ID {
	case seq.IDCreateNotification, seq.IDStateNotification, seq.IDDestroyNotification, seq.IDSmartbeat:
		return true
	}
	return false
}

// bounded reads a C string of at most max bytes; a longer one sets
// n.tooLong (the first found) and gives "".
func (n *notice) bounded(b []byte, max int, why RefuseReason) string {
	s, size, ok := boundedCString(b, max)
	if ok {
		return s
	}
	if !n.tooLong {
		n.refused, n.tooLong = refusal{reason: why, prefix: s, size: size}, true
	}
	return ""
}

// parseNotice decodes s into n, reusing n.beats. Strings are copied: n stays
// valid after s's buffer is reused.
func parseNotice(s *seq.Sequence, n *notice) error {
	beats := n.beats[:0]
	*n = notice{id: s.ID}
	n.beats = beats
	for _, e := range s.Elements {
		switch e.UserType {
		case seq.UTServiceInst:
			if s.ID == seq.IDSmartbeat {
				continue
			}
			in, err := parseInst(e.Data)
			if err != nil {
				return err
			}
			n.inst, n.hasInst = in, true
		case seq.UTServiceName:
			n.name, n.hasName = n.bounded(e.Data, MaxServiceNameLen, RefusedServiceName), true
		case seq.UTServiceState:
			if len(e.Data) != 1 {
				return fmt.Errorf("%w: state element of %d bytes, want 1", errMalformed, len(e.Data))
			}
			n.state, n.hasState = State(e.Data[0]), true
		case seq.UTServiceStateName:
			n.stateName, n.hasStateName = n.bounded(e.Data, MaxStateNameLen, RefusedStateName), true
		case seq.UTServiceGroupName:
			if s.ID != seq.IDSmartbeat {
				n.group = n.bounded(e.Data, MaxGroupNameLen, RefusedGroupName)
			}
		case seq.UTSmartbeat:
			if b, ok := parseBeat(e.Data); ok {
				n.beats = append(n.beats, b)
			} else {
				n.badBeats++
			}
		}
	}
	switch s.ID {
	case seq.IDCreateNotification, seq.IDDestroyNotification:
		if !n.hasInst {
			return fmt.Errorf("%w: %#x without a service instance", errMalformed, s.ID)
		}
	case seq.IDStateNotification:
		if !n.hasName || !n.hasState {
			return fmt.Errorf("%w: state notification without name or state", errMalformed)
		}
	}
	return nil
}
