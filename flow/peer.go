package flow

import (
	"errors"
	"net/netip"
	"sync/atomic"

	"github.com/stk-go/stk/seq"
)

// Peer is the other end of a connection, or the sender of a datagram.
type Peer interface {
	// ID is unique among the peers of this process for its lifetime; a
	// reconnecting client gets a new one. Datagram peers of one UDP flow
	// share the flow's id.
	ID() uint64
	// RemoteAddr is the peer's address: for TCP the connection's far end,
	// for UDP the datagram's source.
	RemoteAddr() netip.AddrPort
	// LocalAddr is this end's address.
	LocalAddr() netip.AddrPort
	// Protocol is the flow's transport.
	Protocol() Protocol
	// Send queues s to this peer only (a reply). It is safe to call from
	// any goroutine, including the Handler.
	Send(s *seq.Sequence) error
	// Close closes a connection peer; on a datagram peer it does nothing.
	Close() error
}

// Errors returned by Send.
var (
	// ErrClosed: the flow or connection is closed.
	ErrClosed = errors.New("flow: closed")
	// ErrQueueFull: the peer's outbound queue is full and the policy is
	// Drop; the sequence was not sent. Under Disconnect the peer is
	// disconnected and the error is ErrSlowConsumer.
	ErrQueueFull = errors.New("flow: outbound queue full, sequence dropped")
	// ErrSlowConsumer: the peer's outbound queue is full and it was
	// disconnected (policy Disconnect).
	ErrSlowConsumer = errors.New("flow: peer too slow, disconnected")
	// ErrNotConnected: a client flow has no connection and its queue is full.
	ErrNotConnected = errors.New("flow: not connected")
	// ErrTimedOut is the reason given to OnDisconnect for a connection a
	// server closed for Options.IdleTimeout or FrameTimeout.
	ErrTimedOut = errors.New("flow: connection timed out: no complete frame in time")
)

var errTimedOut = ErrTimedOut

var lastPeerID atomic.Uint64

func nextPeerID() uint64 { return lastPeerID.Add(1) }

// Flow is what every data flow can do.
type Flow interface {
	// Send queues s to the flow's destination: every connection of a
	// server, the connection of a client, the destination of a UDP flow.
	// s may be changed or reused as soon as Send returns.
	Send(s *seq.Sequence) error
	// LocalAddr is the address the flow is bound to.
	LocalAddr() netip.AddrPort
	// Protocol is the flow's transport.
	Protocol() Protocol
	// Stats returns the flow's counters.
	Stats() Stats
	// Close stops the flow after delivering what was accepted, waiting at
	// most Options.CloseTimeout; later Sends fail with ErrClosed.
	Close() error
}
