//go:build stk_cshared

package main

/*
#include "stk_internal.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// defaultLinger is the linger of a publisher's registration when the caller
// gives a negative one (the Go publish example's default).
const defaultLinger = 5

// publisher is an stk_publisher: an stk.Publisher over TCP, registered
// under a name or not.
type publisher struct {
	h    uint64
	env  *env
	pub  *stk.Publisher
	pool sync.Pool // *outSeq
}

// putObject stores o under h and records it in e; if e was destroyed
// meanwhile, o is destroyed again and false returned. Storing first means
// a concurrent stk_env_destroy either finds o or refuses it.
func putObject(e *env, h uint64, o object) bool {
	store(h, o)
	if e.adopt(h, o) {
		return true
	}
	if _, ok := table.LoadAndDelete(h); ok {
		o.destroy()
	}
	return false
}

//export stkgo_publisher_create
func stkgo_publisher_create(envH C.uint64_t, cname, caddress *C.char, linger C.int, out *C.uint64_t) C.int {
	e, code := envOf(envH, false)
	if code != eOK {
		return code
	}
	addrStr := goString(caddress, "")
	if addrStr == "" {
		addrStr = "127.0.0.1:0"
	}
	a, err := flow.ParseAddress(addrStr)
	if err == nil && (a.Lookup != "" || a.Protocol != flow.TCP) {
		err = errors.New("a publisher listens on TCP: give [tcp:]ip:port")
	}
	var ap netip.AddrPort
	if err == nil {
		ap, err = a.WithDefaults("127.0.0.1", 0).AddrPort()
	}
	if err != nil {
		return failf(eAddr, "stk_publisher_create: address %q: %v", addrStr, err)
	}
	name := "publisher" // labels the log lines of an unregistered one
	if cname != nil {
		name = C.GoString(cname)
		if name == "" || len(name) > namesvc.MaxNameLen {
			return failf(eInval, "stk_publisher_create: the name must have 1 to %d bytes (or be NULL: no registration)", namesvc.MaxNameLen)
		}
	}
	if linger < 0 {
		linger = defaultLinger
	}
	// Without a name no name server is needed: stk.Listen.
	var pub *stk.Publisher
	if cname == nil {
		pub, err = stk.Listen("tcp:"+ap.String(), stk.ListenOptions{Name: name, Logger: e.log})
	} else {
		se, serr := e.stk()
		if serr != nil {
			return fail(serr)
		}
		opts := stk.PublishOptions{
			Listen:       "tcp:" + ap.String(),
			Linger:       time.Duration(linger) * time.Second,
			KeepOnClose:  true, // stk.h: the name server keeps it for its linger
			RegisterWait: defaultRegisterWait,
		}
		if linger == 0 {
			opts.Linger = -1 // stk's 0 is its default
		}
		pub, err = se.Publish(name, opts)
	}
	var op *net.OpError
	switch {
	case errors.As(err, &op):
		return failf(eNet, "stk_publisher_create: %v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return failf(eTimedOut, "stk_publisher_create: %v", err)
	case err != nil:
		return fail(fmt.Errorf("stk_publisher_create: %w", err))
	}
	if cname != nil {
		// The message C programs and tests know (stkgo registered, then
		// logged); the address is the one registered: on 0.0.0.0 the
		// interface toward the name server (flow.AdvertiseIP).
		e.log.Info("registering the publisher", "name", name, "address", pub.Addr().String(),
			"listen", pub.LocalAddr(), "name_server", e.nsString)
	}
	p := &publisher{env: e, pub: pub}
	p.pool.New = func() any { return new(outSeq) }
	p.h = newHandle()
	if !putObject(e, p.h, p) {
		return failf(eClosed, "stk_publisher_create: the env is destroyed")
	}
	*out = C.uint64_t(p.h)
	return eOK
}

func (p *publisher) destroy() error {
	err := p.pub.Close()
	p.env.forget(p.h)
	return err
}

//export stkgo_publisher_destroy
func stkgo_publisher_destroy(h C.uint64_t) C.int {
	p, ok := take[*publisher](h)
	if !ok {
		return failf(eHandle, "stk_publisher_destroy: no publisher %d", h)
	}
	if err := p.destroy(); err != nil {
		return fail(err)
	}
	return eOK
}

//export stkgo_publisher_address
func stkgo_publisher_address(h C.uint64_t, buf *C.char, n C.size_t) C.int {
	p, ok := get[*publisher](h)
	if !ok {
		return failf(eHandle, "stk_publisher_address: no publisher %d", h)
	}
	if buf == nil {
		return failf(eInval, "stk_publisher_address: buf is NULL")
	}
	s := "tcp:" + p.pub.LocalAddr().String()
	if uint64(len(s)) >= uint64(n) {
		return failf(eRange, "stk_publisher_address: %q needs %d bytes, buf has %d", s, len(s)+1, n)
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(buf)), len(s)+1)
	copy(b, s)
	b[len(s)] = 0
	return eOK
}

//export stkgo_publisher_subscribers
func stkgo_publisher_subscribers(h C.uint64_t) C.int {
	p, ok := get[*publisher](h)
	if !ok {
		return failf(eHandle, "stk_publisher_subscribers: no publisher %d", h)
	}
	return C.int(p.pub.Subscribers())
}

// send sends o and puts it back in the pool.
func (p *publisher) send(o *outSeq) C.int {
	err := p.pub.Send(&o.s)
	o.reset()
	p.pool.Put(o)
	if err != nil {
		return fail(fmt.Errorf("stk_publisher_send: %w", err))
	}
	return eOK
}

//export stkgo_publisher_send
func stkgo_publisher_send(h C.uint64_t, cs *C.stk_sequence) C.int {
	p, ok := get[*publisher](h)
	if !ok {
		return failf(eHandle, "stk_publisher_send: no publisher %d", h)
	}
	if cs == nil {
		return failf(eInval, "stk_publisher_send: seq is NULL")
	}
	o := p.pool.Get().(*outSeq)
	o.view(cs)
	return p.send(o)
}

//export stkgo_publisher_send_data
func stkgo_publisher_send_data(h C.uint64_t, id C.uint64_t, name *C.char, typ C.uint16_t, ut C.uint64_t, data unsafe.Pointer, n C.size_t) C.int {
	p, ok := get[*publisher](h)
	if !ok {
		return failf(eHandle, "stk_publisher_send_data: no publisher %d", h)
	}
	o := p.pool.Get().(*outSeq)
	o.s.ID, o.s.Type = uint64(id), seqType(typ)
	o.setName(name)
	o.s.Add(uint64(ut), cBytes(data, n))
	return p.send(o)
}

//export stkgo_publisher_send_data_batch
func stkgo_publisher_send_data_batch(h C.uint64_t, id C.uint64_t, name *C.char, typ C.uint16_t, ut C.uint64_t,
	data unsafe.Pointer, lens *C.size_t, n C.size_t) C.int {
	p, ok := get[*publisher](h)
	if !ok {
		return failf(eHandle, "stk_publisher_send_data_batch: no publisher %d", h)
	}
	if n > C.size_t(math.MaxInt32) {
		return failf(eInval, "stk_publisher_send_data_batch: n %d: at most %d per call", n, math.MaxInt32)
	}
	if n == 0 {
		return 0
	}
	o := p.pool.Get().(*outSeq)
	defer func() {
		o.reset()
		p.pool.Put(o)
	}()
	o.s.ID, o.s.Type = uint64(id), seqType(typ)
	o.setName(name)
	var off uintptr
	var queueFull error
	for i, l := range unsafe.Slice(lens, int(n)) {
		o.s.Elements = append(o.s.Elements[:0], seq.Element{UserType: uint64(ut), Data: cBytes(unsafe.Add(data, off), l)})
		off += uintptr(l)
		err := p.pub.Send(&o.s)
		switch {
		case err == nil:
		case codeOf(err) == eQueueFull:
			queueFull = err
		default:
			return fail(fmt.Errorf("stk_publisher_send_data_batch: sequence %d: %w", i, err))
		}
	}
	if queueFull != nil {
		return fail(fmt.Errorf("stk_publisher_send_data_batch: %w", queueFull))
	}
	return C.int(n)
}

//export stkgo_publisher_stats
func stkgo_publisher_stats(h C.uint64_t, st *C.stk_flow_stats) C.int {
	p, ok := get[*publisher](h)
	if !ok {
		return failf(eHandle, "stk_publisher_stats: no publisher %d", h)
	}
	if st == nil {
		return failf(eInval, "stk_publisher_stats: stats is NULL")
	}
	fillStats(st, p.pub.Stats())
	return eOK
}

// fillStats copies flow counters into the C struct.
func fillStats(st *C.stk_flow_stats, s flow.Stats) {
	st.sequences_in, st.sequences_out = C.uint64_t(s.SequencesIn), C.uint64_t(s.SequencesOut)
	st.bytes_in, st.bytes_out = C.uint64_t(s.BytesIn), C.uint64_t(s.BytesOut)
	st.dropped, st.reconnects = C.uint64_t(s.Dropped), C.uint64_t(s.Reconnects)
	st.connections = C.int(s.Connections)
}
