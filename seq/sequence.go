package seq

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// Type is the sequence type carried in every frame.
type Type uint16

// Sequence types. The C library only treats TypeData as application data.
const (
	TypeInvalid   Type = 0 // never sent: C TCP receivers abort on it
	TypeData      Type = 1 // application data
	TypeKVPair    Type = 2 // defined by STK, unused
	TypeMgmt      Type = 3 // smartbeats and service notifications
	TypeRequest   Type = 4 // name registration and its reply
	TypeQuery     Type = 5 // name lookup, its answers, subscription pushes
	TypeSubscribe Type = 6 // name subscription
)

var typeNames = [...]string{"invalid", "data", "kvpair", "mgmt", "request", "query", "subscribe"}

// String returns the lower-case STK name of t, or its number.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint16(t))
}

// Element is one typed piece of a sequence. UserType belongs to the
// application, except for the values STK reserves (see the UT constants).
type Element struct {
	UserType uint64
	Data     []byte
}

// Uint64 returns the element as a little-endian u64; ok is false unless the
// element is exactly 8 bytes long.
func (e Element) Uint64() (v uint64, ok bool) {
	if len(e.Data) != 8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(e.Data), true
}

// Uint32 returns the element as a little-endian u32; ok is false unless the
// element is exactly 4 bytes long.
func (e Element) Uint32() (v uint32, ok bool) {
	if len(e.Data) != 4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(e.Data), true
}

// CString returns the element's bytes up to the first NUL, as C peers write
// strings (with the NUL counted in the element size).
func (e Element) CString() string {
	b := e.Data
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	return string(b)
}

// Sequence is STK's message: an id, an optional name, a type, a generation and
// ordered typed elements. Meta holds local meta-data that is never encoded.
//
// The zero value is an empty sequence with type TypeInvalid; set Type before
// sending it.
type Sequence struct {
	ID   uint64
	Name string // optional; sent whenever non-empty
	Type Type
	// Generation is carried by STK-UDP only. Senders bump it once per send
	// (the first send of a new sequence carries 1); TCP receivers see 0.
	Generation uint16
	Elements   []Element
	// Meta is local meta-data: an application's notes about the sequence.
	// It never travels on the wire.
	Meta []Element
}

// New returns an empty sequence with the given id, name and type.
func New(id uint64, name string, t Type) *Sequence {
	return &Sequence{ID: id, Name: name, Type: t}
}

// Equal reports whether s and o carry the same content: id, name, type and
// elements (user types and bytes, in order). Generation, a count of sends,
// and Meta, which never travels, are not compared.
func (s *Sequence) Equal(o *Sequence) bool {
	return s.ID == o.ID && s.Name == o.Name && s.Type == o.Type && ElementsEqual(s.Elements, o.Elements)
}

// ElementsEqual reports whether a and b are the same elements, user types
// and bytes, in the same order.
func ElementsEqual(a, b []Element) bool {
	return slices.EqualFunc(a, b, func(x, y Element) bool { return x.UserType == y.UserType && bytes.Equal(x.Data, y.Data) })
}

// Reset empties s for reuse, keeping the capacity of its element slices.
func (s *Sequence) Reset() {
	s.ID, s.Name, s.Type, s.Generation = 0, "", 0, 0
	clear(s.Elements) // drop references to old buffers
	s.Elements = s.Elements[:0]
	clear(s.Meta)
	s.Meta = s.Meta[:0]
}

// Add appends an element that refers to data (no copy). The caller may
// change data between sends; the encoder reads it at encode time.
func (s *Sequence) Add(userType uint64, data []byte) {
	s.Elements = append(s.Elements, Element{UserType: userType, Data: data})
}

// AddCopy appends an element holding a copy of data.
func (s *Sequence) AddCopy(userType uint64, data []byte) {
	s.Add(userType, append([]byte(nil), data...))
}

// AddCString appends str followed by a NUL, the way C peers send strings.
func (s *Sequence) AddCString(userType uint64, str string) {
	b := make([]byte, len(str)+1)
	copy(b, str)
	s.Add(userType, b)
}

// AddUint32 appends a 4-byte little-endian element.
func (s *Sequence) AddUint32(userType uint64, v uint32) {
	s.Add(userType, binary.LittleEndian.AppendUint32(nil, v))
}

// AddUint64 appends an 8-byte little-endian element.
func (s *Sequence) AddUint64(userType uint64, v uint64) {
	s.Add(userType, binary.LittleEndian.AppendUint64(nil, v))
}

// Find returns the first element with the given user type.
func (s *Sequence) Find(userType uint64) (Element, bool) {
	for _, e := range s.Elements {
		if e.UserType == userType {
			return e, true
		}
	}
	return Element{}, false
}

// Size returns the total number of element data bytes.
func (s *Sequence) Size() int {
	n := 0
	for _, e := range s.Elements {
		n += len(e.Data)
	}
	return n
}

// Clone returns a deep copy of s whose element data share no memory with s,
// for keeping a sequence that was decoded from a buffer about to be reused.
func (s *Sequence) Clone() *Sequence {
	c := &Sequence{ID: s.ID, Name: s.Name, Type: s.Type, Generation: s.Generation}
	c.Elements = cloneElements(s.Elements)
	c.Meta = cloneElements(s.Meta)
	return c
}

func cloneElements(es []Element) []Element {
	if len(es) == 0 {
		return nil
	}
	n := 0
	for _, e := range es {
		n += len(e.Data)
	}
	buf := make([]byte, 0, n) // one allocation for all the data
	out := make([]Element, len(es))
	for i, e := range es {
		start := len(buf)
		buf = append(buf, e.Data...)
		out[i] = Element{UserType: e.UserType, Data: buf[start:len(buf):len(buf)]}
	}
	return out
}

// String describes s briefly, for logs.
func (s *Sequence) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seq id=%#x type=%v", s.ID, s.Type)
	if s.Name != "" {
		fmt.Fprintf(&b, " name=%q", s.Name)
	}
	fmt.Fprintf(&b, " elements=%d bytes=%d", len(s.Elements), s.Size())
	return b.String()
}

// setName sets s.Name from b (a C string, NUL optional) without allocating
// when the name is unchanged, which is the common case on a data stream.
// Like a C receiver, it stops at the first NUL: a name with a NUL inside
// could not be sent again (ErrNameHasNUL).
func (s *Sequence) setName(b []byte) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if string(b) != s.Name {
		s.Name = string(b)
	}
}

// resetForDecode clears s before a decoder fills it.
func (s *Sequence) resetForDecode() {
	s.ID, s.Type, s.Generation = 0, 0, 0
	s.Elements = s.Elements[:0]
	s.Meta = s.Meta[:0]
}
