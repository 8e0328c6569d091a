package smartbeat

import (
	"bytes"
	"fmt"
	"net/netip"
)

// What the monitor accepts from the wire. A peer is anyone who can reach
// its ports, so every string and every record it stores is bounded, and
// whatever goes beyond is refused (counted in MonitorStats.Refused, logged
// at most once a second per reason, with a short prefix of the string).
const (
	// MaxServiceNameLen is the longest service name (0x8101) the monitor
	// stores, in bytes without the NUL. The C receivers have no buffer for
	// it (they strdup it), but a service's name is a name of the name
	// service (NS_NAME, 96-byte C buffers, docs/protocol.md §7.2: at most 95
	// characters; docs/differences.md B21), and a service group registers
	// its name there: a longer name cannot be used across STK.
	MaxServiceNameLen = 95
	// MaxGroupNameLen is the longest service-group name (0x8110): a group
	// registers it as an NS_NAME (stk_sga_register_group_name), so the
	// same 95.
	MaxGroupNameLen = 95
	// MaxStateNameLen is the longest state name (0x8104). C has no buffer
	// for it either (strdup); it gets the same bound as names: the
	// longest of STK's own is 9 bytes ("timed out").
	MaxStateNameLen = 95

	// DefaultMaxRecordsPerSource bounds the current records of one source
	// (a TCP connection, or a UDP peer ip:port) unless
	// MonitorConfig.MaxRecordsPerSource says otherwise. A C environment
	// sends at most 254 smartbeats per sequence; a service group's
	// server reports each of its members from one connection.
	DefaultMaxRecordsPerSource = 1024
	// DefaultMaxRecords bounds the current records of all sources unless
	// MonitorConfig.MaxRecords says otherwise. A record with its state
	// history takes a few KiB.
	DefaultMaxRecords = 10000

	// logPrefixLen is how much of a refused string a log line quotes.
	logPrefixLen = 32
)

// RefuseReason says why the monitor refused a notification.
type RefuseReason uint8

// Reasons of refusal, the index of MonitorStats.Refused.
const (
	RefusedServiceName   RefuseReason = iota // service name longer than MaxServiceNameLen
	RefusedStateName                         // state name longer than MaxStateNameLen
	RefusedGroupName                         // group name longer than MaxGroupNameLen
	RefusedSourceRecords                     // CREATE beyond MaxRecordsPerSource of its source
	RefusedTotalRecords                      // CREATE beyond MaxRecords
	NumRefuseReasons
)

var refuseReasonNames = [NumRefuseReasons]string{"service_name", "state_name", "group_name", "source_records", "total_records"}

// String returns "service_name", "state_name", "group_name",
// "source_records" or "total_records" (the reason label of the metric).
func (r RefuseReason) String() string {
	if r < NumRefuseReasons {
		return refuseReasonNames[r]
	}
	return "unknown"
}

// sourceKey is where records come from: a connection, or a datagram
// source.
type sourceKey struct {
	proto string
	peer  netip.AddrPort
}

func (k recordKey) source() sourceKey { return sourceKey{k.proto, k.peer} }

// boundedCString reads a C string of at most max bytes from b without
// copying a longer one: ok false gives its length and a short prefix to
// quote in the log.
func boundedCString(b []byte, max int) (s string, n int, ok bool) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if len(b) > max {
		return string(b[:min(len(b), logPrefixLen)]), len(b), false
	}
	return string(b), len(b), true
}

// refusal is a string of a notification that went over its bound.
type refusal struct {
	reason RefuseReason
	prefix string // the first logPrefixLen bytes
	size   int    // its length in bytes
}

// refuse counts a refused notification and logs it, at most once a
// second per reason (the line says how many were not logged
// since); under mu. detail are more slog attributes. The limiters run on
// the wall clock: an injected Now may stand still.
func (m *Monitor) refuse(reason RefuseReason, proto string, peer netip.AddrPort, msg string, detail ...any) {
	m.stats.Refused[reason]++
	ok, quiet := m.refuseLog[reason].Allow()
	if !ok {
		return
	}
	args := append([]any{"reason", reason.String(), "proto", proto, "peer", peer}, detail...)
	m.log.Warn(msg, append(args, "suppressed", quiet)...)
}

// What each string refusal is about, and its bound.
var (
	refusedWhat  = [NumRefuseReasons]string{"service name", "state name", "group name"}
	refusedLimit = [NumRefuseReasons]int{MaxServiceNameLen, MaxStateNameLen, MaxGroupNameLen}
)

// refuseString refuses a notification carrying an over-long string.
func (m *Monitor) refuseString(proto string, peer netip.AddrPort, r *refusal) {
	m.refuse(r.reason, proto, peer,
		fmt.Sprintf("monitor: refusing a notification whose %s is longer than %d bytes; the sender must use a shorter one", refusedWhat[r.reason], refusedLimit[r.reason]),
		"bytes", r.size, "prefix", r.prefix)
}

// roomFor reports whether one more current record from src fits the
// limits, and refuses (counts and logs) when it does not; under mu. name
// is for the log.
func (m *Monitor) roomFor(src sourceKey, name string) bool {
	switch {
	case m.t.perSource[src] >= m.cfg.MaxRecordsPerSource:
		m.refuse(RefusedSourceRecords, src.proto, src.peer,
			fmt.Sprintf("monitor: refusing a service: its source already has %d current records (MonitorConfig.MaxRecordsPerSource)", m.cfg.MaxRecordsPerSource),
			"service", name)
		return false
	case len(m.t.current) >= m.cfg.MaxRecords:
		m.refuse(RefusedTotalRecords, src.proto, src.peer,
			fmt.Sprintf("monitor: refusing a service: the monitor already has %d current records (MonitorConfig.MaxRecords)", m.cfg.MaxRecords),
			"service", name)
		return false
	}
	return true
}
