//go:build stk_cshared

package main

/*
#include "stk_internal.h"
*/
import "C"

import (
	"strings"
	"unsafe"

	"github.com/stk-go/stk/seq"
)

// outSeq is a reusable Go view of a C sequence for sending: its element
// data alias the C memory (flows encode before Send returns, so nothing of
// it is kept), and the name string is kept between sends while it does not
// change, so steady sending does not allocate.
type outSeq struct {
	s    seq.Sequence
	name string
}

// view points o at the C sequence cs.
func (o *outSeq) view(cs *C.stk_sequence) {
	o.s.ID = uint64(cs.id)
	o.s.Type = seq.Type(cs._type)
	o.setName(cs.name)
	n := int(cs.count)
	o.s.Elements = o.s.Elements[:0]
	if n > 0 {
		for _, e := range unsafe.Slice(cs.elems, n) {
			o.s.Elements = append(o.s.Elements, seq.Element{UserType: uint64(e.user_type), Data: cBytes(e.data, e.len)})
		}
	}
}

// setName sets the name from a C string (NULL: none), reusing the string
// of the previous send when the bytes are the same. It scans the C string
// in Go, never past its NUL: a cgo call to strlen would cost more than the
// scan of a typical name.
func (o *outSeq) setName(name *C.char) {
	if name == nil {
		o.s.Name = ""
		return
	}
	p := unsafe.Pointer(name)
	same := true
	n := 0
	for ; *(*byte)(unsafe.Add(p, n)) != 0; n++ {
		if same && (n >= len(o.name) || o.name[n] != *(*byte)(unsafe.Add(p, n))) {
			same = false
		}
	}
	if !same || n != len(o.name) {
		// a copy: the C memory may change or go after the send
		o.name = strings.Clone(unsafe.String((*byte)(p), n))
	}
	o.s.Name = o.name
}

// reset drops the references to C memory before o goes back to its pool.
func (o *outSeq) reset() {
	clear(o.s.Elements)
	o.s.Elements = o.s.Elements[:0]
}

// cBytes is a Go slice over n bytes of C memory (nil for none).
func cBytes(p unsafe.Pointer, n C.size_t) []byte {
	if p == nil || n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(p), int(n))
}

// inSeq is a borrowed C sequence that received sequences are copied into,
// one per receiving connection (each calls its handler on one goroutine).
type inSeq struct {
	cs *C.stk_sequence
}

func newInSeq() *inSeq {
	return &inSeq{cs: C.stk__seq_borrowed_new()}
}

// free releases the C memory; the sequence must no longer be in use.
func (in *inSeq) free() {
	C.stk__seq_borrowed_free(in.cs)
	in.cs = nil
}

// fill copies q into the C sequence, growing its buffers when needed (one
// cgo call then; none in the steady state). False when out of memory.
func (in *inSeq) fill(q *seq.Sequence) bool {
	cs := in.cs
	if cs == nil {
		return false
	}
	total := 0
	for _, e := range q.Elements {
		total += len(e.Data)
	}
	if uint64(len(q.Name)+1) > uint64(cs.name_cap) || uint64(len(q.Elements)) > uint64(cs.cap) || uint64(total) > uint64(cs.buf_cap) {
		if C.stk__seq_reserve(cs, C.size_t(len(q.Name)), C.size_t(len(q.Elements)), C.size_t(total)) != 0 {
			return false
		}
	}
	cs.id = C.uint64_t(q.ID)
	cs._type = C.uint16_t(q.Type)
	name := unsafe.Slice((*byte)(unsafe.Pointer(cs.name)), len(q.Name)+1)
	copy(name, q.Name)
	name[len(q.Name)] = 0
	cs.count = C.size_t(len(q.Elements))
	if len(q.Elements) == 0 {
		return true
	}
	elems := unsafe.Slice(cs.elems, len(q.Elements))
	var buf []byte
	if total > 0 {
		buf = unsafe.Slice((*byte)(unsafe.Pointer(cs.buf)), total)
	}
	off := 0
	for i, e := range q.Elements {
		elems[i].user_type = C.uint64_t(e.UserType)
		elems[i].len = C.size_t(len(e.Data))
		if len(e.Data) == 0 {
			elems[i].data = nil
			continue
		}
		copy(buf[off:], e.Data)
		elems[i].data = unsafe.Pointer(&buf[off])
		off += len(e.Data)
	}
	return true
}

// seqType converts a C sequence type.
func seqType(t C.uint16_t) seq.Type { return seq.Type(t) }
