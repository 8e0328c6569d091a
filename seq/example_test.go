package seq_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/stk-go/stk/seq"
)

// Element user types of these examples. The numbers are the
// application's, apart from those STK reserves (the UT constants).
const (
	utSymbol uint64 = 0x10001 // C string
	utPrice  uint64 = 0x10002 // u64, in cents
	utVolume uint64 = 0x10003 // u32
	utPoint  uint64 = 0x10004 // a point, encoded by point.AppendBinary
)

// A sequence is an id, an optional name, a type and an ordered list of
// typed elements. The element helpers write what C peers expect: strings
// with their NUL, integers in little-endian.
func Example() {
	s := seq.New(42, "quote", seq.TypeData)
	s.AddCString(utSymbol, "ACME")
	s.AddUint64(utPrice, 12_345)
	s.AddUint32(utVolume, 300)
	s.Add(utVolume, binary.LittleEndian.AppendUint32(nil, 200)) // a second element of one type is fine

	fmt.Println(s)
	for i, e := range s.Elements { // elements keep their order
		fmt.Printf("element %d: user type %#x, %d bytes\n", i, e.UserType, len(e.Data))
	}

	// Find returns the first element of a type; the accessors check sizes.
	sym, _ := s.Find(utSymbol)
	price, _ := s.Find(utPrice)
	cents, ok := price.Uint64()
	fmt.Println(sym.CString(), cents, ok)
	_, ok = price.Uint32() // 8 bytes are not a u32
	fmt.Println("price as u32:", ok)

	var volume uint32
	for _, e := range s.Elements {
		if v, ok := e.Uint32(); ok && e.UserType == utVolume {
			volume += v
		}
	}
	fmt.Println("volume:", volume)
	// Output:
	// seq id=0x2a type=data name="quote" elements=4 bytes=21
	// element 0: user type 0x10001, 5 bytes
	// element 1: user type 0x10002, 8 bytes
	// element 2: user type 0x10003, 4 bytes
	// element 3: user type 0x10003, 4 bytes
	// ACME 12345 true
	// price as u32: false
	// volume: 500
}

// point is an application type carried in a sequence element: the element
// is its own encoding (here two little-endian i32), and its user type tells
// receivers how to read it.
type point struct{ X, Y int32 }

// AppendBinary appends p's encoding to b (encoding.BinaryAppender).
func (p point) AppendBinary(b []byte) ([]byte, error) {
	b = binary.LittleEndian.AppendUint32(b, uint32(p.X))
	return binary.LittleEndian.AppendUint32(b, uint32(p.Y)), nil
}

// parsePoint reads an element written by AppendBinary, checking its type
// and size as a receiver must: the bytes come from the network.
func parsePoint(e seq.Element) (point, error) {
	if e.UserType != utPoint || len(e.Data) != 8 {
		return point{}, fmt.Errorf("not a point: user type %#x, %d bytes", e.UserType, len(e.Data))
	}
	return point{
		X: int32(binary.LittleEndian.Uint32(e.Data)),
		Y: int32(binary.LittleEndian.Uint32(e.Data[4:])),
	}, nil
}

// A custom element type: a user type number and an encoding of your own.
// STK carries element bytes as they are; the receiver decodes them by
// their user type.
func Example_customElement() {
	s := seq.New(7, "path", seq.TypeData)
	for _, p := range []point{{1, 2}, {-3, 40}, {500, -6}} {
		b, _ := p.AppendBinary(nil)
		s.Add(utPoint, b)
	}
	s.AddCString(utSymbol, "end") // other types may sit between them

	// What a receiver does with the decoded sequence.
	frame, err := seq.AppendTCP(nil, s)
	if err != nil {
		log.Fatal(err)
	}
	var got seq.Sequence
	if _, _, err := seq.DecodeTCP(&got, frame, 0); err != nil {
		log.Fatal(err)
	}
	for _, e := range got.Elements {
		p, err := parsePoint(e)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%+v\n", p)
	}
	// Output:
	// {X:1 Y:2}
	// {X:-3 Y:40}
	// {X:500 Y:-6}
	// not a point: user type 0x10001, 4 bytes
}

// The TCP frame: what a flow writes on a connection, byte for byte the C
// library's. DecodeTCP reads one frame from the start of a stream; with
// only part of a frame it says how many bytes it needs before trying again.
func ExampleAppendTCP() {
	s := seq.New(1, "tick", seq.TypeData)
	s.AddCString(utSymbol, "ACME")
	frame, err := seq.AppendTCP(nil, s)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(frame), "bytes, as TCPSize says:", seq.TCPSize(s))
	h, rest := frame[:seq.TCPHeaderLen], frame[seq.TCPHeaderLen:]
	fmt.Printf("header  % x\n", h)                      // version 1, compat 1, flags 3 (elements, name), id, type
	fmt.Printf("name    % x\n", rest[:2+len("tick")+1]) // u16 length with the NUL, the name, NUL
	rest = rest[2+len("tick")+1:]
	fmt.Printf("segment % x\n", rest[:seq.TCPSegmentLen]) // segment 0 of 1, 5 bytes, user type
	fmt.Printf("data    %q\n", rest[seq.TCPSegmentLen:])

	// The encoders refuse what a C receiver would crash on.
	_, err = seq.AppendTCP(nil, &seq.Sequence{ID: 2})
	fmt.Println(errors.Is(err, seq.ErrInvalidType))
	// Output:
	// 52 bytes, as TCPSize says: 52
	// header  01 00 01 00 03 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00
	// name    05 00 74 69 63 6b 00
	// segment 00 00 01 00 05 00 00 00 01 00 01 00 00 00 00 00
	// data    "ACME\x00"
	// true
}

// Decoding a stream: frames arrive in pieces, and a reader decodes the
// whole frames it holds after each read. With only the start of a frame,
// DecodeTCP says how many bytes it needs before it can make progress.
// Element data alias the buffer (Clone what you keep past the next read).
func ExampleDecodeTCP() {
	var stream []byte // what the sender wrote: three frames of 55 bytes
	for i := range uint64(3) {
		s := seq.New(i, "tick", seq.TypeData)
		s.AddUint64(utPrice, 100+i)
		stream, _ = seq.AppendTCP(stream, s)
	}

	var s seq.Sequence // reused: decoding into it does not allocate
	var buf []byte
	for off := 0; off < len(stream); off += 40 {
		buf = append(buf, stream[off:min(off+40, len(stream))]...) // a read of up to 40 bytes
		for {
			n, need, err := seq.DecodeTCP(&s, buf, 0)
			if err != nil {
				log.Fatal(err) // a bad peer: close the connection
			}
			if n == 0 {
				fmt.Println("have", len(buf), "bytes, need", need)
				break
			}
			price, _ := s.Elements[0].Uint64()
			fmt.Println("frame of", n, "bytes:", s.ID, s.Name, price)
			buf = buf[n:]
		}
	}
	// Output:
	// have 40 bytes, need 47
	// frame of 55 bytes: 0 tick 100
	// have 25 bytes, need 26
	// frame of 55 bytes: 1 tick 101
	// have 10 bytes, need 24
	// have 50 bytes, need 55
	// frame of 55 bytes: 2 tick 102
	// have 0 bytes, need 24
}

// STK-UDP: AppendUDP splits a sequence into datagrams of at most MRU bytes
// (the C library's format), and a Reassembler on the receiving side puts
// them back together, whatever their order.
func ExampleAppendUDP() {
	s := seq.New(9, "image", seq.TypeData)
	s.Add(utPoint, make([]byte, 150_000)) // three datagrams' worth
	s.Generation = 1                      // senders bump it before each send

	var datagrams [][]byte
	_, err := seq.AppendUDP(nil, s, 0x1234, func(d []byte) error {
		datagrams = append(datagrams, append([]byte(nil), d...)) // d is reused
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(datagrams), "datagrams")

	r := seq.NewReassembler(seq.ReassemblerConfig{})
	from := netip.MustParseAddrPort("127.0.0.1:5000") // fragments are keyed by sender too
	var got seq.Sequence
	now := time.Now()
	for _, i := range []int{2, 0, 1} { // out of order
		done, err := r.Add(&got, from, datagrams[i], now)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("datagram", i, "completes the sequence:", done)
	}
	fmt.Println(got.ID, got.Name, got.Generation, got.Size(), "bytes")
	// Output:
	// 3 datagrams
	// datagram 2 completes the sequence: false
	// datagram 0 completes the sequence: false
	// datagram 1 completes the sequence: true
	// 9 image 1 150000 bytes
}

// A sequence that fits in one datagram needs no Reassembler: DecodeUDP
// reads it.
func ExampleDecodeUDP() {
	s := seq.New(3, "small", seq.TypeData)
	s.AddCString(utSymbol, "ACME")
	s.Generation = 1
	var d []byte
	if _, err := seq.AppendUDP(nil, s, 1, func(b []byte) error { d = append(d, b...); return nil }); err != nil {
		log.Fatal(err)
	}
	var got seq.Sequence
	if err := seq.DecodeUDP(&got, d); err != nil {
		log.Fatal(err)
	}
	sym, _ := got.Find(utSymbol)
	fmt.Println(len(d), "bytes:", got.ID, got.Name, sym.CString())
	// Output:
	// 93 bytes: 3 small ACME
}

// Raw UDP carries one element and nothing else: the receiver labels what
// it gets from its own configuration.
func ExampleDecodeRawUDP() {
	s := seq.New(1, "ignored", seq.TypeData)
	s.Add(utSymbol, []byte("hello"))
	payload, ok, err := seq.RawUDPPayload(s) // what a raw UDP flow sends
	fmt.Printf("%q %v %v\n", payload, ok, err)

	var got seq.Sequence
	seq.DecodeRawUDP(&got, payload, seq.DefaultRawUDPConfig)
	fmt.Println(got.String(), string(got.Elements[0].Data))
	// Output:
	// "hello" true <nil>
	// seq id=0x0 type=data name="UDP" elements=1 bytes=5 hello
}

// Clone keeps a decoded sequence beyond the buffer it was decoded from:
// a flow's Handler gets sequences whose data alias its read buffer.
func ExampleSequence_Clone() {
	s := seq.New(1, "tick", seq.TypeData)
	s.AddCString(utSymbol, "ACME")
	frame, _ := seq.AppendTCP(nil, s)

	var decoded seq.Sequence
	seq.DecodeTCP(&decoded, frame, 0)
	kept := decoded.Clone()
	clear(frame) // the read buffer is reused for the next frame
	fmt.Printf("decoded %q, kept %q\n", decoded.Elements[0].CString(), kept.Elements[0].CString())
	// Output:
	// decoded "", kept "ACME"
}
