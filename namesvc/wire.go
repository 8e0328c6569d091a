package namesvc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/stk-go/stk/seq"
)

// Wire limits of the name-request elements (docs/protocol.md §7.2, §7.14).
// C peers keep names, groups and protocols in fixed buffers and abort on
// wrong sizes, so requests outside these limits are refused, and Info values
// outside them cannot be registered.
const (
	MaxNameLen     = 95 // NS_NAME characters, without the NUL (96-byte C buffer)
	MaxGroupLen    = 47 // NS_GROUP_NAME characters, without the NUL (48-byte C buffer)
	MaxProtocolLen = 15 // NS_PROTOCOL characters, without the NUL (16-byte C limit)
	MaxAddresses   = 5  // NS_CONNECT_IPV4 elements per registration (C clients keep 5)

	sizeConnectIPv4 = 16
	sizeRequestID   = 8
	sizeLinger      = 4
	sizeFTState     = 4
	sizeNSID        = 8
)

// UTEndOfAnswers is the element user type of the end-of-answers extension
// (see the package documentation). STK does not use it: the name service's
// own types are 1..8, and the values near the name-request sequence id are
// free. In a QUERY or SUBSCRIBE request the element holds a u32 version (1)
// and asks for the marker; in the marker answer it holds the u32 number of
// answers sent before it.
const UTEndOfAnswers uint64 = 0x9a3e0001

// UTRemoved is the element user type of a removal notice (see the package
// documentation): the last element of a QUERY pushed to a subscription
// that asked for notices, after NS_REQUEST_ID, holding u32 1. The
// elements before it are those of the registration that went.
const UTRemoved uint64 = 0x9a3e0003

// Reserved extension types: a registration's elements of these types are
// dropped by the server, so that no registrant can forge a marker.
const (
	firstReservedType uint64 = 0x9a3e0001
	lastReservedType  uint64 = 0x9a3e000f
)

// Versions of the end-of-answers element of a QUERY or SUBSCRIBE request:
// 1 asks for the end-of-answers marker; 2 also asks for removal notices on
// a subscription. Our client sends 2.
const (
	endOfAnswersVersion = 2
	removalsVersion     = 2
)

// ErrInvalidRequest is wrapped by every error about a malformed name
// request: a wrong element size, a missing or over-long name, and so on.
var ErrInvalidRequest = errors.New("namesvc: invalid name request")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidRequest}, args...)...)
}

// request is a parsed and validated name request. The byte slices alias
// the received sequence: valid while it is.
type request struct {
	typ          seq.Type
	name         string
	group        string
	nameData     []byte // the NS_NAME element data
	idData       []byte // the NS_REQUEST_ID element data; nil if absent
	linger       time.Duration
	endOfAnswers bool // the client asked for the end-of-answers marker
	removals     bool // and, for a subscription, for removal notices

	// Registrations only: what the server's limits look at.
	addrs     int     // NS_CONNECT_IPV4 elements
	metaBytes int     // data bytes of the elements that are not NS fields (types 1..7)
	tooLong   bool    // the name or group is longer than its C buffer: refused, not malformed
	tooLongAs Refusal // RefusedNameLength or RefusedGroupLength
	groupLen  int     // NS_GROUP_NAME characters
	// lingerClamped: the server cut linger to Limits.MaxLinger.
	lingerClamped bool
}

// requestID returns the request id, 0 if there is none.
func (r *request) requestID() uint64 {
	if r.idData == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(r.idData)
}

// parseRequest validates a name-request sequence (id IDNameRequest) and
// returns its fields. It checks what C peers would abort on (§7.14):
// element sizes, a present NS_NAME, name/group/protocol lengths, at most
// MaxAddresses addresses, no repeated single-valued element.
func parseRequest(s *seq.Sequence) (request, error) {
	var r request
	switch s.Type {
	case seq.TypeRequest, seq.TypeQuery, seq.TypeSubscribe:
	default:
		return r, invalid("sequence type %v; want request, query or subscribe", s.Type)
	}
	r.typ = s.Type
	if len(s.Elements) > seq.MaxElements {
		return r, invalid("%d elements; at most %d", len(s.Elements), seq.MaxElements)
	}
	var seen [9]bool // single-valued NS elements seen so far
	addrs := 0
	for _, e := range s.Elements {
		switch e.UserType {
		case seq.UTNSName, seq.UTNSGroupName, seq.UTNSRequestID, seq.UTNSLinger, seq.UTNSFTState:
			if seen[e.UserType] {
				return r, invalid("element type %d appears twice", e.UserType)
			}
			seen[e.UserType] = true
		}
		switch e.UserType {
		case seq.UTNSName:
			name, err := cString(e.Data, limitFor(s.Type, MaxNameLen), "NS_NAME")
			if err != nil {
				return r, err
			}
			if len(name) == 0 {
				return r, invalid("empty NS_NAME")
			}
			if len(name) > MaxNameLen { // a registration: refused, not malformed
				r.tooLong, r.tooLongAs = true, RefusedNameLength
				name = name[:MaxNameLen]
			}
			r.name, r.nameData = string(name), e.Data
		case seq.UTNSGroupName:
			g, err := cString(e.Data, limitFor(s.Type, MaxGroupLen), "NS_GROUP_NAME")
			if err != nil {
				return r, err
			}
			r.groupLen = len(g)
			if len(g) > MaxGroupLen {
				if !r.tooLong {
					r.tooLong, r.tooLongAs = true, RefusedGroupLength
				}
				g = g[:MaxGroupLen]
			}
			r.group = string(g)
		case seq.UTNSRequestID:
			if len(e.Data) != sizeRequestID {
				return r, invalid("NS_REQUEST_ID of %d bytes; want %d", len(e.Data), sizeRequestID)
			}
			r.idData = e.Data
		case seq.UTNSConnectIPv4:
			if len(e.Data) != sizeConnectIPv4 {
				return r, invalid("NS_CONNECT_IPV4 of %d bytes; want %d", len(e.Data), sizeConnectIPv4)
			}
			if addrs++; addrs > MaxAddresses && s.Type != seq.TypeRequest {
				return r, invalid("more than %d NS_CONNECT_IPV4 addresses", MaxAddresses)
			}
		case seq.UTNSProtocol:
			if _, err := cString(e.Data, MaxProtocolLen, "NS_PROTOCOL"); err != nil {
				return r, err
			}
		case seq.UTNSLinger:
			if len(e.Data) != sizeLinger {
				return r, invalid("NS_LINGER of %d bytes; want %d", len(e.Data), sizeLinger)
			}
			secs := int32(binary.LittleEndian.Uint32(e.Data))
			r.linger = time.Duration(max(secs, 0)) * time.Second
		case seq.UTNSFTState:
			if len(e.Data) != sizeFTState {
				return r, invalid("NS_FT_STATE of %d bytes; want %d", len(e.Data), sizeFTState)
			}
		case seq.UTNSID:
			if len(e.Data) != sizeNSID {
				return r, invalid("NS_ID of %d bytes; want %d", len(e.Data), sizeNSID)
			}
		case UTEndOfAnswers:
			// In a registration it is meta-data like any other element.
			r.endOfAnswers = s.Type != seq.TypeRequest
			if v, ok := e.Uint32(); ok && v >= removalsVersion {
				r.removals = s.Type == seq.TypeSubscribe
			}
		}
		if e.UserType < seq.UTNSName || e.UserType > seq.UTNSFTState {
			r.metaBytes += len(e.Data)
		}
	}
	r.addrs = addrs
	if !seen[seq.UTNSName] {
		return r, invalid("no NS_NAME element")
	}
	return r, nil
}

// limitFor returns the length a C string of a request of type t may
// have: its C buffer's, except in a registration, where a longer one is
// parsed and then refused as over a limit (Limits; the request is well
// formed, only not storable).
func limitFor(t seq.Type, max int) int {
	if t == seq.TypeRequest {
		return math.MaxInt
	}
	return max
}

// cString checks that b is a C string of at most maxLen characters (one
// NUL, at the end) and returns it without the NUL.
func cString(b []byte, maxLen int, what string) ([]byte, error) {
	n := len(b)
	if n == 0 || b[n-1] != 0 {
		return nil, invalid("%s is not NUL-terminated", what)
	}
	for _, c := range b[:n-1] {
		if c == 0 {
			return nil, invalid("%s contains a NUL before its end", what)
		}
	}
	if n-1 > maxLen {
		return nil, invalid("%s of %d characters; at most %d", what, n-1, maxLen)
	}
	return b[:n-1], nil
}

// decodeSockaddr reads an NS_CONNECT_IPV4 sockaddr_in: family ignored, port
// little-endian (host order, §7.2), address in network order.
func decodeSockaddr(b []byte) netip.AddrPort {
	port := binary.LittleEndian.Uint16(b[2:])
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
}

// appendSockaddr appends the 16-byte NS_CONNECT_IPV4 form of a as C clients
// write it: family 0, port little-endian, IPv4 in network order, 8 zeros.
// A non-IPv4 address is written as 0.0.0.0.
func appendSockaddr(dst []byte, a netip.AddrPort) []byte {
	dst = append(dst, 0, 0)
	dst = binary.LittleEndian.AppendUint16(dst, a.Port())
	ip := [4]byte{}
	if a.Addr().Is4() || a.Addr().Is4In6() {
		ip = a.Addr().Unmap().As4()
	}
	dst = append(dst, ip[:]...)
	return append(dst, make([]byte, 8)...)
}

// appendReportingIP appends the 16-byte 0x8103 form of a (§8.3): family 2
// little-endian, port and address in network order, 8 zeros.
func appendReportingIP(dst []byte, a netip.AddrPort) []byte {
	dst = append(dst, 2, 0)
	dst = binary.BigEndian.AppendUint16(dst, a.Port())
	ip := [4]byte{}
	if a.Addr().Is4() || a.Addr().Is4In6() {
		ip = a.Addr().Unmap().As4()
	}
	dst = append(dst, ip[:]...)
	return append(dst, make([]byte, 8)...)
}

func cStringBytes(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

func u32Bytes(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64Bytes(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// newNameSequence returns an empty name-request sequence of type t.
func newNameSequence(t seq.Type, capacity int) *seq.Sequence {
	return &seq.Sequence{ID: seq.IDNameRequest, Name: seq.NameNameRequest, Type: t,
		Elements: make([]seq.Element, 0, capacity)}
}

// buildRegister builds a registration request in the element order of the C
// client (§7.3): REQUEST_ID, NAME, LINGER, GROUP?, then per address
// CONNECT_IPV4 and PROTOCOL?,
// FT_STATE?, and the meta-data elements.
func buildRegister(id uint64, info *Info) *seq.Sequence {
	s := newNameSequence(seq.TypeRequest, 5+2*len(info.Addresses)+len(info.Meta))
	s.Add(seq.UTNSRequestID, u64Bytes(id))
	s.Add(seq.UTNSName, cStringBytes(info.Name))
	s.Add(seq.UTNSLinger, u32Bytes(uint32(int32(min(info.Linger/time.Second, 1<<31-1)))))
	if info.Group != "" {
		s.Add(seq.UTNSGroupName, cStringBytes(info.Group))
	}
	for _, a := range info.Addresses {
		s.Add(seq.UTNSConnectIPv4, appendSockaddr(make([]byte, 0, sizeConnectIPv4), a.Addr))
		if a.Protocol != "" {
			s.Add(seq.UTNSProtocol, cStringBytes(a.Protocol))
		}
	}
	if v, ok := info.FT.wire(); ok {
		s.Add(seq.UTNSFTState, u32Bytes(v))
	}
	for _, m := range info.Meta {
		s.Add(m.UserType, m.Data)
	}
	return s
}

// buildQuery builds a lookup (TypeQuery) or subscription (TypeSubscribe)
// request as the C client does (§7.4, §7.5): REQUEST_ID, NAME, GROUP?; with
// eoa, the end-of-answers element follows.
func buildQuery(t seq.Type, id uint64, name, group string, eoa bool) *seq.Sequence {
	s := newNameSequence(t, 4)
	s.Add(seq.UTNSRequestID, u64Bytes(id))
	s.Add(seq.UTNSName, cStringBytes(name))
	if group != "" {
		s.Add(seq.UTNSGroupName, cStringBytes(group))
	}
	if eoa {
		s.Add(UTEndOfAnswers, u32Bytes(endOfAnswersVersion))
	}
	return s
}

// checkInfo reports what in info cannot be registered.
func checkInfo(info *Info) error {
	if info.Name == "" {
		return errors.New("namesvc: register: empty name; give the name to register")
	}
	if err := checkString(info.Name, MaxNameLen, "name"); err != nil {
		return err
	}
	if err := checkString(info.Group, MaxGroupLen, "group"); err != nil {
		return err
	}
	if len(info.Addresses) > MaxAddresses {
		return fmt.Errorf("namesvc: register %q: %d addresses; C peers take at most %d", info.Name, len(info.Addresses), MaxAddresses)
	}
	for _, a := range info.Addresses {
		if err := checkString(a.Protocol, MaxProtocolLen, "protocol"); err != nil {
			return err
		}
		if a.Addr.IsValid() && !a.Addr.Addr().Unmap().Is4() {
			return fmt.Errorf("namesvc: register %q: address %v is not IPv4; STK carries IPv4 only", info.Name, a.Addr)
		}
	}
	if info.Linger < 0 {
		return fmt.Errorf("namesvc: register %q: negative linger %v", info.Name, info.Linger)
	}
	n := 5 + 2*len(info.Addresses) + len(info.Meta)
	if n >= seq.MaxElements {
		return fmt.Errorf("namesvc: register %q: %d meta-data elements are too many; a name request holds at most %d elements", info.Name, len(info.Meta), seq.MaxElements-1)
	}
	for _, m := range info.Meta {
		switch m.UserType {
		case seq.UTNSName, seq.UTNSGroupName, seq.UTNSRequestID, seq.UTNSConnectIPv4,
			seq.UTNSProtocol, seq.UTNSLinger, seq.UTNSFTState:
			return fmt.Errorf("namesvc: register %q: meta-data element of user type %d is a name-service field; use the Info fields", info.Name, m.UserType)
		case seq.UTNSID:
			if len(m.Data) != sizeNSID {
				return fmt.Errorf("namesvc: register %q: meta-data of user type 8 (NS_ID) must be 8 bytes", info.Name)
			}
		}
		if !keptInRegistration(m.UserType) {
			return fmt.Errorf("namesvc: register %q: meta-data of user type %#x: types %#x to %#x are reserved for this implementation's name-service extensions; use another", info.Name, m.UserType, firstReservedType, lastReservedType)
		}
	}
	return nil
}

func checkString(s string, maxLen int, what string) error {
	if len(s) > maxLen {
		return fmt.Errorf("namesvc: %s %q is %d bytes; C peers take at most %d", what, s, len(s), maxLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return fmt.Errorf("namesvc: %s %q contains a NUL byte", what, s)
		}
	}
	return nil
}
