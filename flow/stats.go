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

	// Loss seen by a UDP flow's receiving side. UDP tells neither end what
	// was lost, so these count what the receiver can infer, and are lower
	// bounds: a sequence whose every datagram was lost on the way shows
	// only as a gap in its sender's generations, and only when the sender
	// resends one Sequence (as STK's publishers do) to this flow alone (a
	// sender alternating destinations never shows consecutive
	// generations, so no gap is counted for it).
	//
	// LostSequences counts STK-UDP sequences known lost: half-received
	// ones given up by reassembly (after Options.ReassemblyTimeout, or to
	// bound its memory; these are also in Dropped), plus the generations
	// missing between two sequences of one sender (same source, STK-UDP
	// unique_id and sequence id) once it has been seen sending
	// consecutive ones.
	LostSequences uint64
	// LostFragments counts the datagrams that the half-received sequences
	// given up were still missing.
	LostFragments uint64
	// ReceiveDrops counts the datagrams the system dropped at the flow's
	// socket, nearly always because its receive buffer was full (raise
	// Options.ReceiveBuffer, or pace the sender). Linux only (SO_MEMINFO);
	// 0 elsewhere.
	ReceiveDrops uint64
	// Paced counts the pauses a UDP flow's writer made to pace the
	// datagrams of large sequences (see UDPPacing).
	Paced uint64
}

// counters are the atomic form of Stats, shared by the flow types.
type counters struct {
	seqIn, seqOut, bytesIn, bytesOut atomic.Uint64
	dropped, slow, malformed, reconn atomic.Uint64
	acceptErrs, refused, timedOut    atomic.Uint64
	handshakeErrs                    atomic.Uint64
	conns                            atomic.Int64
	lostSeqs, lostFrags, paced       atomic.Uint64
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
		LostSequences:   c.lostSeqs.Load(),
		LostFragments:   c.lostFrags.Load(),
		Paced:           c.paced.Load(),
	}
}

// Add adds the counters of b to s (Connections too): the sum over several
// flows.
func (s *Stats) Add(b Stats) {
	s.SequencesIn += b.SequencesIn
	s.SequencesOut += b.SequencesOut
	s.BytesIn += b.BytesIn
	s.BytesOut += b.BytesOut
	s.Dropped += b.Dropped
	s.SlowConsumers += b.SlowConsumers
	s.Malformed += b.Malformed
	s.Reconnects += b.Reconnects
	s.AcceptErrors += b.AcceptErrors
	s.Refused += b.Refused
	s.TimedOut += b.TimedOut
	s.HandshakeErrors += b.HandshakeErrors
	s.Connections += b.Connections
	s.LostSequences += b.LostSequences
	s.LostFragments += b.LostFragments
	s.ReceiveDrops += b.ReceiveDrops
	s.Paced += b.Paced
}
