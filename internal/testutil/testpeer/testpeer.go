// Package testpeer holds Peer, the flow.Peer that tests hand to the
// handlers of namesvc, smartbeat and others in place of a connection:
// it records what it is sent and can be closed. It imports flow, so
// flow's own tests cannot use it (they have real connections).
package testpeer

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
)

// ids start far above the ids of real flows, so a test mixing both
// cannot confuse them.
var ids atomic.Uint64

// Local is the LocalAddr of every Peer.
var Local = netip.MustParseAddrPort("127.0.0.1:20002")

// Peer is a flow.Peer that records the sequences sent to it. A TCP Peer
// can be closed (later Sends fail with flow.ErrClosed); closing a UDP
// Peer does nothing, as for a real datagram peer. It is safe for
// concurrent use.
type Peer struct {
	id     uint64
	remote netip.AddrPort
	proto  flow.Protocol

	mu     sync.Mutex
	got    []*seq.Sequence
	closed bool
}

// New returns a Peer of protocol proto at remote ("127.0.0.1:40000"),
// with an id no other Peer has.
func New(proto flow.Protocol, remote string) *Peer {
	return &Peer{id: 1<<40 + ids.Add(1), remote: netip.MustParseAddrPort(remote), proto: proto}
}

// Datagram returns a peer of the same UDP flow as p (the same id) with
// another source address.
func (p *Peer) Datagram(remote string) *Peer {
	return &Peer{id: p.id, remote: netip.MustParseAddrPort(remote), proto: p.proto}
}

// ID returns the peer's id.
func (p *Peer) ID() uint64 { return p.id }

// RemoteAddr returns the address New was given.
func (p *Peer) RemoteAddr() netip.AddrPort { return p.remote }

// LocalAddr returns Local.
func (p *Peer) LocalAddr() netip.AddrPort { return Local }

// Protocol returns the protocol New was given.
func (p *Peer) Protocol() flow.Protocol { return p.proto }

// Send records a copy of s, or returns flow.ErrClosed on a closed Peer.
func (p *Peer) Send(s *seq.Sequence) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return flow.ErrClosed
	}
	p.got = append(p.got, s.Clone())
	return nil
}

// Close closes a TCP Peer; on a datagram peer it does nothing.
func (p *Peer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proto == flow.TCP {
		p.closed = true
	}
	return nil
}

// Take returns the sequences sent since the last Take and forgets them.
func (p *Peer) Take() []*seq.Sequence {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.got
	p.got = nil
	return g
}

// Closed reports whether the Peer was closed.
func (p *Peer) Closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

var _ flow.Peer = (*Peer)(nil)
