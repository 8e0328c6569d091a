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
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// cAlloc collects the C allocations of one callback argument, freed
// together after the callback.
type cAlloc struct{ ptrs []unsafe.Pointer }

func (a *cAlloc) mem(n C.size_t) unsafe.Pointer {
	p := C.calloc(1, n)
	if p == nil {
		panic("stk: out of memory") // calloc of a few bytes; nothing sensible is left to do
	}
	a.ptrs = append(a.ptrs, p)
	return p
}

func (a *cAlloc) str(s string) *C.char {
	p := (*C.char)(a.mem(C.size_t(len(s) + 1)))
	copy(unsafe.Slice((*byte)(unsafe.Pointer(p)), len(s)), s)
	return p
}

func (a *cAlloc) bytes(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	p := a.mem(C.size_t(len(b)))
	copy(unsafe.Slice((*byte)(p), len(b)), b)
	return p
}

func (a *cAlloc) free() {
	for _, p := range a.ptrs {
		C.free(p)
	}
	a.ptrs = nil
}

// cInfo lays info out in C memory owned by a.
func cInfo(a *cAlloc, info *namesvc.Info) *C.stk_name_info {
	ci := (*C.stk_name_info)(a.mem(C.sizeof_stk_name_info))
	ci.name = a.str(info.Name)
	ci.group = a.str(info.Group)
	if n := len(info.Addresses); n > 0 {
		eps := (*C.stk_endpoint)(a.mem(C.size_t(n) * C.sizeof_stk_endpoint))
		for i, ep := range info.Addresses {
			ce := &unsafe.Slice(eps, n)[i]
			ce.protocol = a.str(ep.Protocol)
			ce.ip = a.str(ep.Addr.Addr().String())
			ce.port = C.uint16_t(ep.Addr.Port())
		}
		ci.addresses, ci.naddresses = eps, C.size_t(n)
	}
	ci.linger_s = C.int(info.Linger / time.Second)
	switch info.FT {
	case namesvc.FTStandby:
		ci.ft_state = C.STK_FT_STANDBY
	case namesvc.FTActive:
		ci.ft_state = C.STK_FT_ACTIVE
	default:
		ci.ft_state = C.STK_FT_UNSET
	}
	if n := len(info.Meta); n > 0 {
		ms := (*C.stk_element)(a.mem(C.size_t(n) * C.sizeof_stk_element))
		for i, m := range info.Meta {
			ce := &unsafe.Slice(ms, n)[i]
			ce.user_type = C.uint64_t(m.UserType)
			ce.data = a.bytes(m.Data)
			ce.len = C.size_t(len(m.Data))
		}
		ci.meta, ci.nmeta = ms, C.size_t(n)
	}
	return ci
}

// goInfo copies a C stk_name_info for registering it.
func goInfo(ci *C.stk_name_info) (namesvc.Info, error) {
	if ci.name == nil {
		return namesvc.Info{}, errorf(eInval, "the name is NULL")
	}
	info := namesvc.Info{Name: C.GoString(ci.name), Group: goString(ci.group, "")}
	if ci.linger_s < 0 {
		return info, errorf(eInval, "linger_s %d < 0", ci.linger_s)
	}
	info.Linger = time.Duration(ci.linger_s) * time.Second
	switch ci.ft_state {
	case C.STK_FT_UNSET:
		info.FT = namesvc.FTUnset
	case C.STK_FT_STANDBY:
		info.FT = namesvc.FTStandby
	case C.STK_FT_ACTIVE:
		info.FT = namesvc.FTActive
	default:
		return info, errorf(eInval, "ft_state %d: want STK_FT_UNSET, STK_FT_STANDBY or STK_FT_ACTIVE", ci.ft_state)
	}
	if ci.naddresses > namesvc.MaxAddresses || (ci.naddresses > 0 && ci.addresses == nil) {
		return info, errorf(eInval, "naddresses %d: want at most %d, with addresses not NULL", ci.naddresses, namesvc.MaxAddresses)
	}
	if ci.naddresses > 0 {
		for i, ce := range unsafe.Slice(ci.addresses, int(ci.naddresses)) {
			proto := goString(ce.protocol, "")
			switch proto {
			case "", "tcp", "udp", "rawudp", "multicast":
			default:
				return info, errorf(eAddr, "address %d: protocol %q: want tcp, udp, rawudp, multicast or empty", i, proto)
			}
			ip, err := netip.ParseAddr(goString(ce.ip, ""))
			if err != nil || !ip.Is4() {
				return info, errorf(eAddr, "address %d: ip %q: want an IPv4 address", i, goString(ce.ip, ""))
			}
			info.Addresses = append(info.Addresses, namesvc.Endpoint{Protocol: proto, Addr: netip.AddrPortFrom(ip, uint16(ce.port))})
		}
	}
	if ci.nmeta > 0 && ci.meta == nil {
		return info, errorf(eInval, "nmeta %d with meta NULL", ci.nmeta)
	}
	if ci.nmeta > seq.MaxElements {
		return info, errorf(eInval, "nmeta %d: a registration holds fewer than %d elements", ci.nmeta, seq.MaxElements)
	}
	if ci.nmeta > 0 {
		for i, m := range unsafe.Slice(ci.meta, int(ci.nmeta)) {
			if m.data == nil && m.len > 0 {
				return info, errorf(eInval, "meta %d: data NULL with len %d", i, m.len)
			}
			if m.len > namesvc.DefaultMaxRequestSize {
				return info, errorf(eInval, "meta %d: %d bytes; a name request holds at most %d", i, m.len, namesvc.DefaultMaxRequestSize)
			}
			info.Meta = append(info.Meta, seq.Element{UserType: uint64(m.user_type), Data: C.GoBytes(m.data, C.int(m.len))})
		}
	}
	return info, nil
}

//export stkgo_name_register
func stkgo_name_register(envH C.uint64_t, ci *C.stk_name_info, timeoutMS C.int) C.int {
	e, code := envOf(envH, false)
	if code != eOK {
		return code
	}
	if ci == nil {
		return failf(eInval, "stk_name_register: info is NULL")
	}
	info, err := goInfo(ci)
	if err != nil {
		return fail(fmt.Errorf("stk_name_register: %w", err))
	}
	c, err := e.names()
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitDuration(timeoutMS, defaultRegisterWait))
	defer cancel()
	err = c.Register(ctx, info)
	switch {
	case err == nil, timeoutMS == 0 && errors.Is(err, context.DeadlineExceeded):
		return eOK
	case errors.Is(err, context.DeadlineExceeded):
		return failf(eTimedOut, "stk_name_register: the name server at %s did not confirm %q in time (%s); the registration is kept and sent again on reconnect", e.nsString, info.Name, whyNotConnected(c))
	}
	return failAs(eInval, fmt.Errorf("stk_name_register: %w", err))
}

//export stkgo_name_unregister
func stkgo_name_unregister(envH C.uint64_t, name, group *C.char) C.int {
	_, c, code := namesOf("stk_name_unregister", envH, name)
	if code != eOK {
		return code
	}
	c.Unregister(C.GoString(name), goString(group, ""))
	return eOK
}

// nameCallbacks calls the C callbacks of a lookup or a name subscription.
type nameCallbacks struct {
	h                      uint64
	gate                   *gate
	onAnswer, onDone, user C.uintptr_t
}

func (n *nameCallbacks) answer(info namesvc.Info) {
	if n.onAnswer == 0 || !n.gate.enter() {
		return
	}
	var a cAlloc
	ci := cInfo(&a, &info)
	C.stk__call_name(n.onAnswer, n.user, C.uint64_t(n.h), ci)
	a.free()
	n.gate.exit()
}

func (n *nameCallbacks) done(r namesvc.LookupResult) {
	if n.onDone == 0 || !n.gate.enter() {
		return
	}
	status := C.int(eOK)
	switch {
	case r.Err != nil:
		status = codeOf(r.Err)
	case !r.Complete:
		status = eTimedOut
	}
	C.stk__call_done(n.onDone, n.user, C.uint64_t(n.h), C.int(r.Answers), status)
	n.gate.exit()
}

// nameRequest is what a lookup and a name subscription share: the C
// callbacks, the env that holds the handle, and how to end the request.
type nameRequest struct {
	nameCallbacks
	env  *env
	mu   sync.Mutex
	stop func() // cancels the query or the subscription; nil until it has started
}

func (r *nameRequest) destroy() error {
	r.mu.Lock()
	stop := r.stop
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
	r.gate.close(nil)
	r.env.forget(r.h)
	return nil
}

// namesOf begins a name call fn ("stk_name_lookup"): the env of envH and
// its name-service client, with name and the required callbacks checked
// not NULL first (so that a wrong call starts no client).
func namesOf(fn string, envH C.uint64_t, name *C.char, required ...C.uintptr_t) (*env, *namesvc.Client, C.int) {
	e, code := envOf(envH, false)
	if code != eOK {
		return nil, nil, code
	}
	if name == nil {
		return nil, nil, failf(eInval, "%s: name is NULL", fn)
	}
	for _, cb := range required {
		if code := checkCallback(fn, cb); code != eOK {
			return nil, nil, code
		}
	}
	c, err := e.names()
	if err != nil {
		return nil, nil, fail(err)
	}
	return e, c, eOK
}

// startNameRequest runs start, which begins the request r of o (a lookup or
// a name subscription) and returns how to end it, then hands o's handle to
// the env and to the C caller through out. fn names the C call in errors.
func startNameRequest(fn string, e *env, r *nameRequest, o object, start func() (stop func(), err error), out *C.uint64_t) C.int {
	stop, err := start()
	if err != nil {
		return failAs(eInval, fmt.Errorf("%s: %w", fn, err))
	}
	r.mu.Lock()
	r.stop = stop
	r.mu.Unlock()
	if !putObject(e, r.h, o) {
		return failf(eClosed, "%s: the env is destroyed", fn)
	}
	*out = C.uint64_t(r.h)
	return eOK
}

// lookup is an stk_lookup.
type lookup struct{ nameRequest }

//export stkgo_name_lookup
func stkgo_name_lookup(envH C.uint64_t, name, group *C.char, expirationMS C.int, onAnswer, onDone, user C.uintptr_t, out *C.uint64_t) C.int {
	const fn = "stk_name_lookup"
	e, c, code := namesOf(fn, envH, name)
	if code != eOK {
		return code
	}
	h := newHandle()
	l := &lookup{nameRequest{env: e, nameCallbacks: nameCallbacks{h: h, gate: newGate(h), onAnswer: onAnswer, onDone: onDone, user: user}}}
	var exp time.Duration
	if expirationMS > 0 {
		exp = time.Duration(expirationMS) * time.Millisecond
	}
	return startNameRequest(fn, e, &l.nameRequest, l, func() (func(), error) {
		q, err := c.Lookup(C.GoString(name), namesvc.LookupOptions{Group: goString(group, ""), Expiration: exp}, l.answer, l.done)
		if err != nil {
			return nil, err
		}
		return q.Cancel, nil
	}, out)
}

//export stkgo_lookup_destroy
func stkgo_lookup_destroy(h C.uint64_t) C.int {
	l, ok := take[*lookup](h)
	if !ok {
		return failf(eHandle, "stk_lookup_destroy: no lookup %d", h)
	}
	l.destroy()
	return eOK
}

// nameSubscription is an stk_name_subscription.
type nameSubscription struct{ nameRequest }

//export stkgo_name_subscribe
func stkgo_name_subscribe(envH C.uint64_t, name, group *C.char, cb, user C.uintptr_t, out *C.uint64_t) C.int {
	const fn = "stk_name_subscribe"
	e, c, code := namesOf(fn, envH, name, cb)
	if code != eOK {
		return code
	}
	h := newHandle()
	s := &nameSubscription{nameRequest{env: e, nameCallbacks: nameCallbacks{h: h, gate: newGate(h), onAnswer: cb, user: user}}}
	return startNameRequest(fn, e, &s.nameRequest, s, func() (func(), error) {
		sub, err := c.Subscribe(C.GoString(name), namesvc.SubscribeOptions{Group: goString(group, "")}, s.answer)
		if err != nil {
			return nil, err
		}
		return sub.Unsubscribe, nil
	}, out)
}

//export stkgo_name_subscription_destroy
func stkgo_name_subscription_destroy(h C.uint64_t) C.int {
	s, ok := take[*nameSubscription](h)
	if !ok {
		return failf(eHandle, "stk_name_subscription_destroy: no name subscription %d", h)
	}
	s.destroy()
	return eOK
}
