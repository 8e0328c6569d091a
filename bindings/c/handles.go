//go:build stk_cshared

package main

/*
#include "stk_internal.h"
*/
import "C"

import (
	"sync"
	"sync/atomic"
)

// The handle table: C gets numbers, never Go pointers. Numbers are not
// reused, so a stale handle is reported (STK_EHANDLE) instead of reaching
// another object.
var (
	table      sync.Map // uint64 -> object
	lastHandle atomic.Uint64
)

// object is anything a handle stands for.
type object interface {
	// destroy releases the object; its handle is already out of the table.
	destroy() error
}

// newHandle returns the next handle number; store puts the object under it.
// They are separate so an object can know its handle (for its callbacks)
// before it is published.
func newHandle() uint64 { return lastHandle.Add(1) }

func store(h uint64, o object) { table.Store(h, o) }

// get returns the live object of type T under h.
func get[T object](h C.uint64_t) (T, bool) {
	v, ok := table.Load(uint64(h))
	if !ok {
		var zero T
		return zero, false
	}
	o, ok := v.(T)
	return o, ok
}

// take removes the object of type T under h from the table, so exactly one
// caller destroys it.
func take[T object](h C.uint64_t) (T, bool) {
	var zero T
	v, ok := table.Load(uint64(h))
	if !ok {
		return zero, false
	}
	o, ok := v.(T)
	if !ok || !table.CompareAndDelete(uint64(h), v) {
		return zero, false
	}
	return o, true
}

// gate guards the callbacks of one object: they may run concurrently, and
// close stops new ones and waits for those running, except the caller's own
// when an object is destroyed from its own callback. No lock is held while
// a callback runs.
type gate struct {
	h       uint64
	mu      sync.Mutex
	idle    sync.Cond
	closed  bool
	active  int
	release func() // run once closed and idle
}

func newGate(h uint64) *gate {
	g := &gate{h: h}
	g.idle.L = &g.mu
	return g
}

// enter is called before a callback; false means the object is closed and
// the callback must not run. Every true is followed by exit.
func (g *gate) enter() bool {
	g.mu.Lock()
	ok := !g.closed
	if ok {
		g.active++
	}
	g.mu.Unlock()
	return ok
}

// exit ends a callback; the last one after close runs release.
func (g *gate) exit() {
	g.mu.Lock()
	g.active--
	var rel func()
	if g.closed && g.active == 0 {
		rel, g.release = g.release, nil
	}
	g.idle.Broadcast()
	g.mu.Unlock()
	if rel != nil {
		rel()
	}
}

// close stops the callbacks and waits until none runs, not counting one of
// this object that the calling thread is running (then self is true).
// release runs when no callback runs any more: before close returns, or,
// when self, as that callback returns.
func (g *gate) close(release func()) (self bool) {
	own := int(C.stk__in_callback(C.uint64_t(g.h)))
	self = own > 0
	g.mu.Lock()
	g.closed = true
	for g.active > own {
		g.idle.Wait()
	}
	if g.active > 0 {
		g.release = release
		release = nil
	}
	g.mu.Unlock()
	if release != nil {
		release()
	}
	return self
}

// inCallback reports whether the calling thread runs any callback of the
// library (stk_env_destroy is refused there).
func inCallback() bool { return C.stk__callback_depth() > 0 }
