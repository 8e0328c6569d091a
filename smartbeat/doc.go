// Package smartbeat is STK's service liveness layer: services that report
// their state and smartbeats (heartbeats), service groups that mirror the
// services of their peers, and the monitor that tracks them all and decides
// when one has failed. It is wire-compatible with the C Sequence Toolkit
// (docs/protocol.md §8, §9.1): C services can report to a Go monitor, Go
// services to the C stkhttpd, and either to a service group of the other.
//
// # Services (the sending side)
//
// A Service has a name, a u64 id, a type (IO, Data, Mgmt, Net or an
// application value), a State, a checkpoint and an activity timeout. It
// sends CREATE, STATE and DESTROY notifications to its monitoring flow (the
// monitor) and to its notification flow (a service group), and a Sender
// sends one Smartbeat sequence per period for every service of the process,
// on its own goroutine, so that application work cannot delay it. Monitoring
// a Go service takes three lines:
//
//	svc, err := smartbeat.NewService("billing", smartbeat.Options{Monitor: "tcp:127.0.0.1:20001"})
//	svc.SetState(smartbeat.Running)
//	svc.SetCheckpoint(n) // as work progresses; travels in every smartbeat
//	svc.Close()          // DESTROY with the last state
//
// The monitor address may be "lookup:monitor": the name is looked up with
// the name service (package namesvc) and the address taken from the
// monitor's registration meta-data (0x1000 tcp, 0x1001 udp, 0x1002
// multicast). This package prefers TCP; the C library takes whichever string
// comes last, which is UDP with the shipped stkd.cfg (docs/differences.md B27).
//
// # Service groups
//
// A Group is an application-side registry of remote services. Handing every
// non-data sequence received on a data flow to Group.Invoke (the C
// stk_sga_invoke) creates, updates and destroys local mirror services, one
// per (peer address, service id), calls the group's callbacks, and lets the
// mirrors report to the group's own monitor with the group name attached.
// Members whose smartbeats stop for their activity timeout are timed out,
// measured on this process's receive clock (the C library compares the
// sender's timestamp with the local clock, docs/differences.md B26).
//
// # The monitor
//
// A Monitor is the receiving end, what stkd runs in place of stkhttpd: it
// ingests notifications and smartbeats over TCP, STK-UDP and multicast,
// registers itself with the name service as "monitor", and keeps the
// current services, a bounded history (destroyed, displaced, timed out) and
// per service a bounded state history. Failure detection combines STK's
// fixed activity timeout with an adaptive φ-accrual detector per service
// (PhiDetector), and compensates for the monitor's own stalls so that a
// paused daemon does not time everybody out. Services, History, Groups,
// Stats, Subscribe and EventsSince form the read-only API of the HTTP UI.
//
// Imports: seq (wire format), flow (transports), namesvc (lookup:monitor
// and the monitor's registration) and the standard library only.
package smartbeat
