package namesvc

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
)

// Registration is one stored registration: the registrant's request as it
// came, minus its NS_REQUEST_ID, plus what the server needs to answer and
// expire it.
type Registration struct {
	// Name and Group key the registration; Group is the store it lives in
	// ("" for the default one).
	Name, Group string
	// Elements are the request's elements in the registrant's order, minus
	// its NS_REQUEST_ID. Answers are these plus the querier's request id.
	// They are immutable and own their memory.
	Elements []seq.Element
	// Linger is how long the registration outlives its registrant's
	// connection.
	Linger time.Duration
	// Registrant is the address the registration came from and Transport
	// the protocol it came over.
	Registrant netip.AddrPort
	Transport  flow.Protocol
	// Registered is when the server stored it.
	Registered time.Time

	// Server bookkeeping, guarded by the server's lock.
	owner   *owner
	expires time.Time // zero: no expiry scheduled
	// serial orders a name's registrations for page cursors: assigned
	// from a server-wide counter when a registration is added, inherited
	// by its replacements, so it grows in registration order.
	serial uint64
	size   int      // element data bytes, counted against Limits.MaxStoredBytes
	ident  identity // who owns it (ModeFirstOwner): a token's name, else the source IP
	node   string   // the cluster node it came from (ApplyRemote); "" for this server's own
}

// Info parses the registration's elements.
func (r *Registration) Info() Info {
	var info Info
	s := seq.Sequence{Type: seq.TypeQuery, Elements: r.Elements}
	parseAnswer(&s, &info)
	info.Group = r.Group
	return info
}

// newRegistration makes the record for a validated registration request:
// its elements minus NS_REQUEST_ID, copied into one buffer. An NS_LINGER
// element clamped by the server says the clamped linger, so that
// answers tell what the server does.
func newRegistration(req *request, s *seq.Sequence, from flow.Peer, now time.Time) *Registration {
	n, size := 0, 0
	for _, e := range s.Elements {
		if keptInRegistration(e.UserType) {
			n++
			size += len(e.Data)
		}
	}
	elems := make([]seq.Element, 0, n)
	buf := make([]byte, 0, size)
	for _, e := range s.Elements {
		if keptInRegistration(e.UserType) {
			start := len(buf)
			if e.UserType == seq.UTNSLinger && req.lingerClamped {
				buf = binary.LittleEndian.AppendUint32(buf, uint32(int32(req.linger/time.Second)))
			} else {
				buf = append(buf, e.Data...)
			}
			elems = append(elems, seq.Element{UserType: e.UserType, Data: buf[start:len(buf):len(buf)]})
		}
	}
	return &Registration{
		Name:       req.name,
		Group:      req.group,
		Elements:   elems,
		Linger:     req.linger,
		Registrant: from.RemoteAddr(),
		Transport:  from.Protocol(),
		Registered: now,
		size:       size,
	}
}

// keptInRegistration reports whether a registration keeps an element of user type t:
// all but the request id, which is the registrant's, and this
// implementation's reserved extension types, which a registrant could
// otherwise use to forge an end-of-answers marker or a removal notice in
// the answers others receive.
func keptInRegistration(t uint64) bool {
	return t != seq.UTNSRequestID && (t < firstReservedType || t > lastReservedType)
}

// answerSequence builds the QUERY answer for r: its elements, then the
// querier's request id last (§7.4; C clients misparse any other order, docs/differences.md B11).
// id is the 8-byte request-id element data, nil when the request had none.
// The result owns nothing but its element slice: it can wait in a queue.
func answerSequence(r *Registration, id []byte) *seq.Sequence {
	n := len(r.Elements)
	s := &seq.Sequence{ID: seq.IDNameRequest, Name: seq.NameNameRequest, Type: seq.TypeQuery,
		Elements: make([]seq.Element, n, n+1)}
	fillAnswer(s, r, id)
	return s
}

// removalSequence returns the removal notice of r for a subscription of
// request id id: r's answer with UTRemoved = u32 1 after NS_REQUEST_ID
// (§7.13). Only the server appends after the request id, so no
// registrant's elements can pass for a notice.
func removalSequence(r *Registration, id []byte) *seq.Sequence {
	n := len(r.Elements) + 2
	s := &seq.Sequence{ID: seq.IDNameRequest, Name: seq.NameNameRequest, Type: seq.TypeQuery,
		Elements: make([]seq.Element, 0, n)}
	fillAnswer(s, r, id)
	s.Add(UTRemoved, u32Bytes(1))
	return s
}

// fillAnswer makes s (a QUERY name sequence) the answer for r.
func fillAnswer(s *seq.Sequence, r *Registration, id []byte) {
	s.Elements = append(s.Elements[:0], r.Elements...)
	if id != nil {
		s.Elements = append(s.Elements, seq.Element{UserType: seq.UTNSRequestID, Data: id})
	}
}

// Replies sent from within Handle use pooled sequences: flows encode what
// they are given before Send returns and keep nothing.
var seqPool = sync.Pool{New: func() any {
	return &seq.Sequence{ID: seq.IDNameRequest, Name: seq.NameNameRequest, Elements: make([]seq.Element, 0, 16)}
}}

// pooledSequence returns an empty name-request sequence of type t; give
// it back with release once sent.
func pooledSequence(t seq.Type) *seq.Sequence {
	s := seqPool.Get().(*seq.Sequence)
	s.ID, s.Name, s.Type, s.Generation = seq.IDNameRequest, seq.NameNameRequest, t, 0
	return s
}

func release(s *seq.Sequence) {
	clear(s.Elements)
	s.Elements = s.Elements[:0]
	s.Meta = nil
	seqPool.Put(s)
}

// fillReply makes s the REQUEST reply to a registration or subscription:
// [NS_REQUEST_ID, NS_NAME] (§7.3, §7.5). id and name are element data.
func fillReply(s *seq.Sequence, id, name []byte) {
	s.Type = seq.TypeRequest
	s.Elements = s.Elements[:0]
	if id != nil {
		s.Add(seq.UTNSRequestID, id)
	}
	s.Add(seq.UTNSName, name)
}

// fillEnd makes s the end-of-answers marker: QUERY [NS_NAME,
// UTEndOfAnswers = count, NS_REQUEST_ID].
func fillEnd(s *seq.Sequence, id, name []byte, count int) {
	s.Type = seq.TypeQuery
	s.Elements = s.Elements[:0]
	s.Add(seq.UTNSName, name)
	s.Add(UTEndOfAnswers, u32Bytes(uint32(count)))
	if id != nil {
		s.Add(seq.UTNSRequestID, id)
	}
}
