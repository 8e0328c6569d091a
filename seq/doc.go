// Package seq holds the Sequence, STK's unit of data, and its wire codecs.
//
// A Sequence is an id, an optional name, a type, a generation and an ordered
// list of typed elements, plus local meta-data that never travels. The codecs
// turn sequences into the byte formats of the original C Sequence Toolkit and
// back, byte for byte:
//
//   - the TCP frame (AppendTCP, DecodeTCP): a 24-byte header, an optional name
//     and one 16-byte segment header per element;
//   - STK-UDP (AppendUDP; Reassembler, or DecodeUDP for a single datagram):
//     40-byte fragment headers, sequences split over datagrams of at most MRU
//     bytes and put back together with timeouts and a memory bound;
//   - raw UDP (RawUDPPayload, DecodeRawUDP): the datagram is the single
//     element.
//
// Elements are typed bytes: the user type (a u64 of the application's,
// except the values STK reserves, the UT constants) tells a receiver how to
// read the data. The helpers AddCString, AddUint32 and AddUint64 and the
// accessors CString, Uint32 and Uint64 write and read what C peers send
// (strings with their NUL, little-endian integers); any other type is the
// application's own encoding in an element (see the customElement example).
//
// Decoders never allocate what a length field merely claims: they check every
// length against the bytes actually present and against a maximum sequence
// size (DefaultMaxSize unless the caller sets one). Decoding into a reused
// Sequence does not allocate in steady state: element data alias the input
// buffer, so a decoded Sequence is only valid as long as that buffer is; call
// Clone to keep one.
//
// Encoders refuse what C receivers cannot take: sequence type 0 and more than
// MaxElements elements on TCP (see ErrInvalidType, ErrTooManyElements).
//
// This package knows nothing of sockets, flows or the name service; those
// live in package flow and package namesvc.
package seq
