//go:build stk_cshared

package main

/*
#include "stk_internal.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// subscriber is an stk_subscriber: one TCP client flow per publisher
// address, found by a name subscription or given directly.
type subscriber struct {
	h        uint64
	env      *env // nil for stk_subscriber_connect without env
	cb, user C.uintptr_t
	gate     *gate

	mu     sync.Mutex
	closed bool
	flows  map[netip.AddrPort]*subFlow
	sub    *namesvc.Subscription
}

// subFlow is one connection and the C sequence its sequences are copied
// into (its handler runs on one goroutine at a time).
type subFlow struct {
	f  *flow.TCPClient
	in *inSeq
}

func newSubscriber(e *env, cb, user C.uintptr_t) *subscriber {
	s := &subscriber{env: e, cb: cb, user: user, flows: map[netip.AddrPort]*subFlow{}}
	s.h = newHandle()
	s.gate = newGate(s.h)
	return s
}

// dial connects to a publisher unless already connected there (the flow
// reconnects by itself). Called from name-service callbacks: no waiting.
func (s *subscriber) dial(addr netip.AddrPort) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.flows[addr] != nil {
		return nil
	}
	sf := &subFlow{in: newInSeq()}
	f, err := flow.DialTCP(addr.String(), flow.Options{
		Logger:  s.env.logger(),
		Name:    "subscriber",
		Handler: func(_ flow.Peer, q *seq.Sequence) { s.handle(sf, q) },
	})
	if err != nil {
		sf.in.free()
		return err
	}
	sf.f = f
	s.flows[addr] = sf
	return nil
}

// handle passes a received sequence to the C callback.
func (s *subscriber) handle(sf *subFlow, q *seq.Sequence) {
	if !s.gate.enter() {
		return
	}
	if sf.in.fill(q) {
		C.stk__call_seq(s.cb, s.user, C.uint64_t(s.h), sf.in.cs)
	} else {
		s.env.logger().Error("out of memory: received sequence dropped", "size", q.Size())
	}
	s.gate.exit()
}

// connect dials the TCP addresses of a registration (subscription callback).
func (s *subscriber) connect(info namesvc.Info) {
	for _, ep := range info.Addresses {
		if ep.Protocol != "" && ep.Protocol != "tcp" {
			s.env.logger().Warn("subscriber: ignoring a non-TCP address; the C binding receives over TCP", "name", info.Name, "address", ep.String())
			continue
		}
		if err := s.dial(ep.Addr); err != nil {
			s.env.logger().Error("subscriber: cannot connect", "name", info.Name, "address", ep.String(), "err", err)
		}
	}
}

func (s *subscriber) destroy() error {
	s.mu.Lock()
	s.closed = true
	flows := s.flows
	sub := s.sub
	s.mu.Unlock()
	if sub != nil {
		sub.Unsubscribe()
	}
	// The C sequences are freed once no callback uses them; a flow's own
	// goroutine cannot wait for its Close, so from a callback the flows
	// close in the background.
	self := s.gate.close(func() {
		for _, sf := range flows {
			sf.in.free()
		}
	})
	closeFlows := func() {
		for _, sf := range flows {
			sf.f.Close()
		}
	}
	if self {
		s.env.goAsync(closeFlows)
	} else {
		closeFlows()
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
	c, err := e.names()
	if err != nil {
		return fail(err)
	}
	s := newSubscriber(e, cb, user)
	sub, err := c.Subscribe(name, namesvc.SubscribeOptions{}, s.connect)
	if err != nil {
		s.destroy()
		return failAs(eInval, fmt.Errorf("stk_subscriber_create: %w", err))
	}
	s.mu.Lock()
	s.sub = sub
	s.mu.Unlock()
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
	if err == nil && (a.Lookup != "" || a.Protocol != flow.TCP || a.Port == 0) {
		err = errors.New("want [tcp:]ip:port")
	}
	var ap netip.AddrPort
	if err == nil {
		ap, err = a.WithDefaults("127.0.0.1", 0).AddrPort()
	}
	if err != nil {
		return failf(eAddr, "stk_subscriber_connect: address %q: %v", addrStr, err)
	}
	s := newSubscriber(e, cb, user)
	if err := s.dial(ap); err != nil {
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
	var sum flow.Stats
	s.mu.Lock()
	for _, sf := range s.flows {
		fs := sf.f.Stats()
		sum.SequencesIn += fs.SequencesIn
		sum.SequencesOut += fs.SequencesOut
		sum.BytesIn += fs.BytesIn
		sum.BytesOut += fs.BytesOut
		sum.Dropped += fs.Dropped
		sum.Reconnects += fs.Reconnects
		sum.Connections += fs.Connections
	}
	s.mu.Unlock()
	fillStats(st, sum)
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
