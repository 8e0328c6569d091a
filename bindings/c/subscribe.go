//go:build stk_cshared

package main

/*
#include "stk_internal.h"
*/
import "C"

import (
	"errors"
	"fmt"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// subscriber is an stk_subscriber: an stk.Subscription, by name or to one
// address, whose sequences are copied into a C sequence for the callback.
type subscriber struct {
	h        uint64
	env      *env // nil for stk_subscriber_connect without env
	cb, user C.uintptr_t
	gate     *gate
	sub      *stk.Subscription
	// in is the C sequence handed to the callback: stk calls the handler
	// one sequence at a time per subscription, so one is enough.
	in *inSeq
}

func newSubscriber(e *env, cb, user C.uintptr_t) *subscriber {
	s := &subscriber{env: e, cb: cb, user: user, in: newInSeq()}
	s.h = newHandle()
	s.gate = newGate(s.h)
	return s
}

// handle passes a received sequence to the C callback.
func (s *subscriber) handle(q *seq.Sequence) {
	if !s.gate.enter() {
		return
	}
	if s.in.fill(q) {
		C.stk__call_seq(s.cb, s.user, C.uint64_t(s.h), s.in.cs)
	} else {
		s.env.logger().Error("out of memory: received sequence dropped", "size", q.Size())
	}
	s.gate.exit()
}

// options are the stk options of the env's subscriptions: TCP only, as
// stk.h says, and the env's logger.
func (s *subscriber) options() stk.SubscribeOptions {
	return stk.SubscribeOptions{Protocols: []string{"tcp"}, Logger: s.env.logger(), OnEndpoint: s.endpoint}
}

// endpoint logs what the C binding's callers are told of its addresses.
func (s *subscriber) endpoint(ev stk.EndpointEvent) {
	switch ev.Kind {
	case stk.EndpointSkipped:
		s.env.logger().Warn("subscriber: ignoring a non-TCP address; the C binding receives over TCP", "name", ev.Name, "address", ev.Endpoint.String())
	case stk.EndpointFailed:
		s.env.logger().Error("subscriber: cannot connect", "name", ev.Name, "address", ev.Endpoint.String(), "err", ev.Err)
	case stk.EndpointTooMany:
		s.env.logger().Warn("subscriber: too many addresses; ignoring this one", "name", ev.Name, "address", ev.Endpoint.String(), "max", stk.DefaultMaxEndpoints)
	}
}

func (s *subscriber) destroy() error {
	// The C sequence is freed once no callback uses it; a flow's own
	// goroutine cannot wait for the subscription's Close, so from a
	// callback it closes in the background.
	self := s.gate.close(s.in.free)
	if s.sub != nil {
		if self {
			s.env.goAsync(func() { s.sub.Close() })
		} else {
			s.sub.Close()
		}
	}
	s.env.forget(s.h)
	return nil
}

// checkCallback refuses a NULL callback.
func checkCallback(fn string, cb C.uintptr_t) C.int {
	if cb == 0 {
		return failf(eInval, "%s: the callback is NULL", fn)
	}
	return eOK
}

//export stkgo_subscriber_create
func stkgo_subscriber_create(envH C.uint64_t, cname *C.char, cb, user C.uintptr_t, out *C.uint64_t) C.int {
	e, code := envOf(envH, false)
	if code != eOK {
		return code
	}
	if code := checkCallback("stk_subscriber_create", cb); code != eOK {
		return code
	}
	name := goString(cname, "")
	if name == "" || len(name) > namesvc.MaxNameLen {
		return failf(eInval, "stk_subscriber_create: the name must have 1 to %d bytes", namesvc.MaxNameLen)
	}
	se, err := e.stk()
	if err != nil {
		return fail(err)
	}
	s := newSubscriber(e, cb, user)
	if s.sub, err = se.Subscribe(name, s.handle, s.options()); err != nil {
		s.destroy()
		return failAs(eInval, fmt.Errorf("stk_subscriber_create: %w", err))
	}
	if !putObject(e, s.h, s) {
		return failf(eClosed, "stk_subscriber_create: the env is destroyed")
	}
	*out = C.uint64_t(s.h)
	return eOK
}

//export stkgo_subscriber_connect
func stkgo_subscriber_connect(envH C.uint64_t, caddr *C.char, cb, user C.uintptr_t, out *C.uint64_t) C.int {
	e, code := envOf(envH, true)
	if code != eOK {
		return code
	}
	if code := checkCallback("stk_subscriber_connect", cb); code != eOK {
		return code
	}
	addrStr := goString(caddr, "")
	a, err := flow.ParseAddress(addrStr)
	if err == nil && (a.Lookup != "" || a.Protocol != flow.TCP || a.TLS || a.Port == 0) {
		err = errors.New("want [tcp:]ip:port")
	}
	if err != nil {
		return failf(eAddr, "stk_subscriber_connect: address %q: %v", addrStr, err)
	}
	s := newSubscriber(e, cb, user)
	if s.sub, err = stk.SubscribeAddress(addrStr, s.handle, s.options()); err != nil {
		s.destroy()
		return failf(eNet, "stk_subscriber_connect: %v", err)
	}
	if e == nil {
		store(s.h, s)
	} else if !putObject(e, s.h, s) {
		return failf(eClosed, "stk_subscriber_connect: the env is destroyed")
	}
	*out = C.uint64_t(s.h)
	return eOK
}

//export stkgo_subscriber_stats
func stkgo_subscriber_stats(h C.uint64_t, st *C.stk_flow_stats) C.int {
	s, ok := get[*subscriber](h)
	if !ok {
		return failf(eHandle, "stk_subscriber_stats: no subscriber %d", h)
	}
	if st == nil {
		return failf(eInval, "stk_subscriber_stats: stats is NULL")
	}
	fillStats(st, s.sub.Stats())
	return eOK
}

//export stkgo_subscriber_destroy
func stkgo_subscriber_destroy(h C.uint64_t) C.int {
	s, ok := take[*subscriber](h)
	if !ok {
		return failf(eHandle, "stk_subscriber_destroy: no subscriber %d", h)
	}
	if err := s.destroy(); err != nil {
		return fail(err)
	}
	return eOK
}
