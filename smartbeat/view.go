package smartbeat

import (
	"net/netip"
	"time"
)

// This file holds the read-only views the monitor hands out (to the HTTP UI
// in particular). Views are copies: holding one never blocks the monitor,
// and the monitor never changes one after handing it out.

// ServiceView is what the monitor knows about one service record. A record
// is identified the way stkhttpd does it (docs/protocol.md §9.1): by the address
// of the connection or datagram source it reported from, plus its id and
// type. A service that reconnects from a new port is a new record.
type ServiceView struct {
	// UID is unique among the records of one Monitor and never reused: a
	// record keeps it when it is resurrected, a displacing record gets a
	// new one. Good for DOM ids and for following one record in Events.
	UID uint64
	// Key is a printable form of the identity: "tcp/127.0.0.1:59356/0x3c90548/2".
	Key string
	// Node is the cluster node whose monitor holds the record: "" for a
	// Monitor's own records; set on the other nodes' records that a
	// clustered stkd shows (package cluster). UIDs are unique per node.
	Node string

	ID        uint64
	Name      string
	Type      ServiceType
	State     State
	StateName string // the name reported with the state, or the default name
	GroupName string // set when a service group reports the service (0x8110)

	Checkpoint      uint64
	ActivityTimeout time.Duration

	// Peer is where the service reported from, with the real port (the C
	// web monitor prints it byte-swapped, docs/differences.md B5). Protocol is "tcp",
	// "udp" or "multicast" (the C web monitor says "udp" for multicast).
	Peer     netip.AddrPort
	Protocol string

	// Created is when the monitor received the CREATE (its own clock).
	Created time.Time
	// LastBeat is the sender's own time of its latest smartbeat, CREATE or
	// DESTROY (C: tv_sec/tv_msec). It comes from the sender's clock.
	LastBeat time.Time
	// LastReceived is when the monitor last received the CREATE or a
	// smartbeat for this record, on its own clock (C: rcv_tv_sec/msec).
	LastReceived time.Time
	// Beats counts the smartbeats received for this record.
	Beats uint64
	// Interval is the mean and StdDev the standard deviation of the
	// observed smartbeat intervals (zero before two beats).
	Interval, StdDev time.Duration
	// Phi is the φ-accrual suspicion level when the view was made (0 while
	// the detector has too few samples, or for records in history).
	Phi float64

	// Current is true for records in the current list, false in history.
	Current bool
	// Ended is when the record left the current list (zero while current).
	Ended time.Time
	// EndReason says why it left: destroyed, displaced or timed out.
	EndReason EndReason
	// Displaced: a new CREATE with the same identity replaced this record
	// (C: displaced = 1).
	Displaced bool
	// Inactive: the record timed out, or was destroyed with state TimedOut
	// (C: inactivity = 1). A smartbeat for it resurrects it.
	Inactive bool
	// Destroyed: a DESTROY arrived for the record.
	Destroyed bool
	// Verdict says why a timed-out record was declared failed; nil otherwise.
	Verdict *Verdict
	// Resurrections counts how often a smartbeat brought the record back
	// from history after a timeout.
	Resurrections int

	// States is the record's recent state history, oldest first, bounded by
	// MonitorConfig.MaxStateHistory.
	States []StateChange
}

// StateChange is one entry of a record's state history.
type StateChange struct {
	At    time.Time // the monitor's clock
	State State
	Name  string
}

// EndReason says why a record left the current list.
type EndReason uint8

// Reasons a record is in history.
const (
	EndNone      EndReason = iota // still current
	EndDestroyed                  // a DESTROY notification
	EndDisplaced                  // a newer CREATE with the same identity
	EndTimedOut                   // a failure detector fired
)

// String returns "", "destroyed", "displaced" or "timed out".
func (r EndReason) String() string {
	switch r {
	case EndDestroyed:
		return "destroyed"
	case EndDisplaced:
		return "displaced"
	case EndTimedOut:
		return "timed out"
	}
	return ""
}

// Detector names used in Verdict.Detector.
const (
	DetectorActivityTimeout = "activity-timeout" // STK's fixed per-service timeout
	DetectorPhiAccrual      = "phi-accrual"      // the adaptive detector
)

// Verdict records why the monitor declared a service failed.
type Verdict struct {
	// Detector is DetectorActivityTimeout or DetectorPhiAccrual.
	Detector string
	// At is when the verdict was reached (monitor clock).
	At time.Time
	// Silence is how long the record had been silent, on the monitor's
	// receive clock, minus the time the monitor itself was stalled.
	Silence time.Duration
	// ActivityTimeout is the record's fixed timeout.
	ActivityTimeout time.Duration
	// Phi, PhiThreshold, Interval and StdDev are the φ-accrual values at
	// the verdict (Phi is 0 when the detector had too few samples).
	Phi, PhiThreshold float64
	Interval, StdDev  time.Duration
	Samples           int
	// StallCredit is how much the record's deadline was extended because
	// the monitor was stalled while waiting for it.
	StallCredit time.Duration
	// Reason is a one-line human explanation.
	Reason string
}

// GroupView is one service group as seen by the monitor: the records that
// carry the group name (services mirrored and reported by a service group).
type GroupView struct {
	Name    string
	Current []ServiceView // current records of the group
	History int           // records of the group in history
}

// MonitorStats are the monitor's counters since it started.
type MonitorStats struct {
	Started time.Time
	// Current and History are the sizes of the two lists now.
	Current, History int
	// What was received.
	Sequences     uint64 // every sequence handed to the monitor
	Notifications uint64 // CREATE, STATE and DESTROY
	Smartbeats    uint64 // smartbeat sequences
	Beats         uint64 // 0x50000001 elements matched to a record
	UnknownBeats  uint64 // 0x50000001 elements matching no record
	Ignored       uint64 // sequences of another type or id
	Malformed     uint64 // notifications the monitor could not use
	// Refused counts the notifications refused for a limit, by reason
	// (see RefuseReason): over-long strings, and CREATEs beyond
	// MonitorConfig.MaxRecordsPerSource or MaxRecords.
	Refused [NumRefuseReasons]uint64
	// What happened to records.
	Created, Destroyed, Displaced, TimedOut, Resurrected uint64
	TimedOutByPhi                                        uint64 // part of TimedOut
	Evicted                                              uint64 // oldest history records dropped for the bound
	// The monitor's own health.
	Stalls    uint64        // check ticks that came late by more than the stall threshold
	StallTime time.Duration // total time credited for stalls
	// Events.
	LastEvent     uint64 // sequence number of the latest event (0: none yet)
	EventsDropped uint64 // events a slow subscriber missed (it can catch up with EventsSince)
	// Name-service registration of the monitor's name.
	Registered      bool   // the name server confirmed the latest registration
	RegistrationErr string // why the latest attempt failed, "" if it did not
	// Listeners are the addresses the monitor serves, as "tcp:ip:port".
	Listeners []string
}

// EventKind says what changed.
type EventKind uint8

// Kinds of Event.
const (
	EventCreated     EventKind = iota + 1 // a CREATE made a new current record
	EventState                            // a STATE changed state or state name
	EventBeat                             // a smartbeat arrived (checkpoint and times updated)
	EventTimedOut                         // a detector fired; see ServiceView.Verdict
	EventDestroyed                        // a DESTROY arrived
	EventDisplaced                        // a newer CREATE replaced the record
	EventResurrected                      // a smartbeat brought a timed-out record back
)

var eventKindNames = [...]string{"", "created", "state", "beat", "timed_out", "destroyed", "displaced", "resurrected"}

// String returns "created", "state", "beat", "timed_out", "destroyed",
// "displaced" or "resurrected": usable as SSE event names.
func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && k > 0 {
		return eventKindNames[k]
	}
	return "unknown"
}

// Event is one change in the monitor. Seq increases by one for every event
// of a Monitor, so a consumer that saw Seq n and then n+2 missed one and
// can fetch it with EventsSince(n) while the ring still holds it.
type Event struct {
	Seq     uint64
	Kind    EventKind
	At      time.Time   // monitor clock
	Service ServiceView // the record after the change
}

// Snapshot is a consistent picture of the monitor: lists, statistics and
// the sequence number of the latest event included in it. A UI that shows
// a Snapshot and then follows EventsSince(Snapshot.Seq) misses nothing; a
// UI that pushes events (SSE) subscribes first, then takes the Snapshot,
// and skips the events with Seq <= Snapshot.Seq. A client that reconnects
// with the last Seq it saw (Last-Event-ID) resumes with EventsSince, or
// takes a new Snapshot when EventsSince says the ring has moved on.
type Snapshot struct {
	Seq      uint64
	Services []ServiceView // current records, oldest first
	History  []ServiceView // history, oldest first
	Stats    MonitorStats
}
