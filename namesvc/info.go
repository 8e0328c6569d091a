package namesvc

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/stk-go/stk/seq"
)

// Info is what a name stands for: what a client registers and what lookups
// and subscriptions answer.
type Info struct {
	// Name is the registered name, case-sensitive, at most MaxNameLen bytes.
	Name string
	// Group selects a separate name space; "" is the default one. At most
	// MaxGroupLen bytes.
	Group string
	// Addresses are where the name's service can be reached, each with the
	// protocol to use ("tcp", "udp", "rawudp", "multicast" or empty); at
	// most MaxAddresses.
	Addresses []Endpoint
	// Linger is how long the server keeps the registration after the
	// registrant's connection closes; whole seconds on the wire.
	Linger time.Duration
	// FT is the fault-tolerance state; the server stores it and returns it
	// unchanged.
	FT FTState
	// Meta holds every other element of the registration, in order:
	// application meta-data the server returns unchanged (for instance the
	// "monitor" registration's 0x1000/0x1001/0x1002 address strings).
	Meta []seq.Element
}

// Endpoint is one registered address.
type Endpoint struct {
	Protocol string         // "tcp", "udp", "rawudp", "multicast"; may be empty
	Addr     netip.AddrPort // IPv4 address and port
}

// String formats e as an STK address string, "[protocol:]ip:port".
func (e Endpoint) String() string {
	if e.Protocol == "" {
		return e.Addr.String()
	}
	return e.Protocol + ":" + e.Addr.String()
}

// FTState is a registration's fault-tolerance state (NS_FT_STATE).
type FTState uint8

const (
	// FTUnset sends no NS_FT_STATE element. That is what the C client sends
	// for anything but "active" (C programs print it as "backup").
	FTUnset FTState = iota
	// FTStandby sends NS_FT_STATE = 0.
	FTStandby
	// FTActive sends NS_FT_STATE = 1, as the C client does for "active".
	FTActive
)

// String returns "unset", "standby" or "active".
func (f FTState) String() string {
	switch f {
	case FTUnset:
		return "unset"
	case FTStandby:
		return "standby"
	case FTActive:
		return "active"
	}
	return fmt.Sprintf("ftstate(%d)", uint8(f))
}

// wire returns the NS_FT_STATE value of f and whether one is sent.
func (f FTState) wire() (uint32, bool) {
	switch f {
	case FTStandby:
		return 0, true
	case FTActive:
		return 1, true
	}
	return 0, false
}

func ftFromWire(v uint32) FTState {
	if v == 1 {
		return FTActive
	}
	return FTStandby
}

// MetaString returns the C-string meta-data element of user type ut, as
// in the "monitor" registration's 0x1000 "tcp:127.0.0.1:20001".
func (i *Info) MetaString(ut uint64) (string, bool) {
	for _, m := range i.Meta {
		if m.UserType == ut {
			return m.CString(), true
		}
	}
	return "", false
}

// String describes i briefly, for logs.
func (i *Info) String() string {
	var b strings.Builder
	b.WriteString(i.Name)
	if i.Group != "" {
		b.WriteString(" group=" + i.Group)
	}
	for _, a := range i.Addresses {
		b.WriteString(" " + a.String())
	}
	fmt.Fprintf(&b, " linger=%v ft=%v meta=%d", i.Linger, i.FT, len(i.Meta))
	return b.String()
}

// clone returns a deep copy of i.
func (i Info) clone() Info {
	i.Addresses = append([]Endpoint(nil), i.Addresses...)
	i.Meta = cloneElements(i.Meta)
	return i
}

func cloneElements(es []seq.Element) []seq.Element {
	if len(es) == 0 {
		return nil
	}
	s := seq.Sequence{Elements: es}
	return s.Clone().Elements
}

// answer is a parsed answer or reply seen by the client.
type answer struct {
	typ          seq.Type
	requestID    uint64
	hasRequestID bool
	name         string
	endOfAnswers bool   // the marker of the end-of-answers extension
	count        uint32 // the marker's answer count
	removed      bool   // a removal notice: the registration answered went
}

// parseAnswer reads the fields a client matches on and, for a QUERY answer,
// fills info (copying everything, so info outlives s). Malformed elements
// are skipped rather than trusted: the request id is only taken from an
// 8-byte NS_REQUEST_ID, and the last one wins, as it is the querier's (the
// server appends it last, §7.4).
//
// The extension's markers are recognized by their shape, which only the
// server makes: the end-of-answers marker is exactly [NS_NAME,
// UTEndOfAnswers, NS_REQUEST_ID]; a removal notice ends with
// [NS_REQUEST_ID, UTRemoved], the server appending both after the
// registration's elements (which our server strips of the reserved types).
func parseAnswer(s *seq.Sequence, info *Info) answer {
	a := answer{typ: s.Type}
	es := s.Elements
	if n := len(es); s.Type == seq.TypeQuery && n >= 2 && es[n-1].UserType == UTRemoved && es[n-2].UserType == seq.UTNSRequestID {
		if _, ok := es[n-1].Uint32(); ok {
			a.removed = true
			es = es[:n-1]
		}
	}
	for i, e := range es {
		switch e.UserType {
		case seq.UTNSRequestID:
			if v, ok := e.Uint64(); ok {
				a.requestID, a.hasRequestID = v, true
			}
		case seq.UTNSName:
			a.name = e.CString()
		case UTEndOfAnswers:
			if v, ok := e.Uint32(); ok && s.Type == seq.TypeQuery && len(es) == 3 && i == 1 {
				a.endOfAnswers, a.count = true, v
			}
		}
	}
	if info == nil || s.Type != seq.TypeQuery || a.endOfAnswers {
		return a
	}
	*info = Info{Name: a.name}
	for _, e := range es {
		switch e.UserType {
		case seq.UTNSRequestID, seq.UTNSName:
		case seq.UTNSGroupName:
			info.Group = e.CString()
		case seq.UTNSConnectIPv4:
			if len(e.Data) == sizeConnectIPv4 {
				info.Addresses = append(info.Addresses, Endpoint{Addr: decodeSockaddr(e.Data)})
			}
		case seq.UTNSProtocol:
			if n := len(info.Addresses); n > 0 {
				info.Addresses[n-1].Protocol = e.CString()
			}
		case seq.UTNSLinger:
			if v, ok := e.Uint32(); ok {
				info.Linger = time.Duration(max(int32(v), 0)) * time.Second
			}
		case seq.UTNSFTState:
			if v, ok := e.Uint32(); ok {
				info.FT = ftFromWire(v)
			}
		default:
			info.Meta = append(info.Meta, e)
		}
	}
	info.Meta = cloneElements(info.Meta)
	return a
}
