package flow

import "sync/atomic"

// Stats are a flow's counters since it started.
type Stats struct {
	SequencesIn, SequencesOut uint64
	BytesIn, BytesOut         uint64 // wire bytes, headers included
	Dropped                   uint64 // sequences not delivered: queue full, undeliverable or lost with a connection
	SlowConsumers             uint64 // peers disconnected for not reading
	Malformed                 uint64 // undecodable frames or datagrams received
	Reconnects                uint64 // connections a client re-established
	AcceptErrors              uint64 // failed accepts of a server (out of descriptors, say); each is retried
	Refused                   uint64 // connections a server closed at once: MaxConns or MaxConnsPerIP reached
	TimedOut                  uint64 // connections a server closed for IdleTimeout or FrameTimeout
	HandshakeErrors           uint64 // connections a TLS server closed for a failed handshake (untrusted or missing client certificate, not TLS)
	Connections               int    // open connections now
}

// counters are the atomic form of Stats, shared by the flow types.
type counters struct {
	seqIn, seqOut, bytesIn, bytesOut atomic.Uint64
	dropped, slow, malformed, reconn atomic.Uint64
	acceptErrs, refused, timedOut    atomic.Uint64
	handshakeErrs                    atomic.Uint64
	conns                            atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		SequencesIn:     c.seqIn.Load(),
		SequencesOut:    c.seqOut.Load(),
		BytesIn:         c.bytesIn.Load(),
		BytesOut:        c.bytesOut.Load(),
		Dropped:         c.dropped.Load(),
		SlowConsumers:   c.slow.Load(),
		Malformed:       c.malformed.Load(),
		Reconnects:      c.reconn.Load(),
		AcceptErrors:    c.acceptErrs.Load(),
		Refused:         c.refused.Load(),
		TimedOut:        c.timedOut.Load(),
		HandshakeErrors: c.handshakeErrs.Load(),
		Connections:     int(c.conns.Load()),
	}
}
