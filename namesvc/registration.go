package namesvc

import (
	"bytes"
	"net/netip"
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
}

// Info parses the registration's elements.
func (r *Registration) Info() Info {
	var info Info
	s := seq.Sequence{Type: seq.TypeQuery, Elements: r.Elements}
	parseAnswer(&s, &info)
	info.Group = r.Group
	if g, ok := s.Find(seq.UTNSGroupName); ok {
		info.Group = g.CString()
	}
	return info
}

// newRegistration makes the record for a validated registration request.
func newRegistration(req *request, s *seq.Sequence, from flow.Peer, group string, now time.Time) *Registration {
	elems := make([]seq.Element, 0, len(s.Elements))
	for _, e := range s.Elements {
		if e.UserType != seq.UTNSRequestID {
			elems = append(elems, e)
		}
	}
	return &Registration{
		Name:       req.name,
		Group:      group,
		Elements:   cloneElements(elems),
		Linger:     req.info.Linger,
		Registrant: from.RemoteAddr(),
		Transport:  from.Protocol(),
		Registered: now,
	}
}

// sameElements reports whether a and b carry the same elements.
func sameElements(a, b []seq.Element) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].UserType != b[i].UserType || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

// answerSequence builds the QUERY answer for r: its elements, then the
// querier's request id last (§7.4; C clients misparse any other order, B11).
// id is the 8-byte request-id element data, nil when the request had none.
func answerSequence(r *Registration, id []byte) *seq.Sequence {
	n := len(r.Elements)
	elems := make([]seq.Element, n, n+1)
	copy(elems, r.Elements)
	if id != nil {
		elems = append(elems, seq.Element{UserType: seq.UTNSRequestID, Data: id})
	}
	return &seq.Sequence{ID: seq.IDNameRequest, Name: seq.NameNameRequest, Type: seq.TypeQuery, Elements: elems}
}

// replySequence builds the REQUEST reply to a registration or subscription:
// [NS_REQUEST_ID, NS_NAME] (§7.3, §7.5).
func replySequence(id []byte, name string) *seq.Sequence {
	s := newNameSequence(seq.TypeRequest, 2)
	if id != nil {
		s.Add(seq.UTNSRequestID, id)
	}
	s.Add(seq.UTNSName, cStringBytes(name))
	return s
}

// endSequence builds the end-of-answers marker: QUERY [NS_NAME,
// UTEndOfAnswers = count, NS_REQUEST_ID].
func endSequence(id []byte, name string, count int) *seq.Sequence {
	s := newNameSequence(seq.TypeQuery, 3)
	s.Add(seq.UTNSName, cStringBytes(name))
	s.Add(UTEndOfAnswers, u32Bytes(uint32(count)))
	if id != nil {
		s.Add(seq.UTNSRequestID, id)
	}
	return s
}
