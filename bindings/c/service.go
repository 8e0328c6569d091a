//go:build stk_cshared

package main

/*
#include "stk_internal.h"
*/
import "C"

import (
	"fmt"
	"time"

	"github.com/stk-go/stk/smartbeat"
)

// service is an stk_service.
type service struct {
	h   uint64
	env *env
	svc *smartbeat.Service
}

func (s *service) destroy() error {
	err := s.svc.Close()
	s.env.forget(s.h)
	return err
}

//export stkgo_service_create
func stkgo_service_create(envH C.uint64_t, cname *C.char, o *C.stk_service_options, out *C.uint64_t) C.int {
	e, code := envOf(envH, false)
	if code != eOK {
		return code
	}
	if cname == nil {
		return failf(eInval, "stk_service_create: name is NULL")
	}
	var opts C.stk_service_options
	if o != nil {
		opts = *o
	}
	activity := time.Duration(opts.activity_timeout_ms) * time.Millisecond
	if activity < 0 || (activity > 0 && activity < e.sender.Period()) {
		return failf(eInval, "stk_service_create: activity_timeout_ms %d: want 0 (default) or at least the smartbeat period, %v",
			opts.activity_timeout_ms, e.sender.Period())
	}
	monitor := goString(opts.monitor, e.monitor)
	svc, err := smartbeat.NewService(C.GoString(cname), smartbeat.Options{
		ID:              uint64(opts.id),
		Type:            smartbeat.ServiceType(opts._type),
		ActivityTimeout: activity,
		Monitor:         monitor,
		Sender:          e.sender,
		NameServerAddr:  e.nsString,
		Logger:          e.log,
	})
	if err != nil {
		// Beyond the checks above, what NewService refuses is the monitor
		// address: unparsable, or a lookup: that found nothing.
		return failAs(eAddr, fmt.Errorf("stk_service_create: %w", err))
	}
	s := &service{h: newHandle(), env: e, svc: svc}
	if !putObject(e, s.h, s) {
		return failf(eClosed, "stk_service_create: the env is destroyed")
	}
	*out = C.uint64_t(s.h)
	return eOK
}

// checkState refuses what is not a u8 state.
func checkState(fn string, st C.int) C.int {
	if st < 1 || st > 255 {
		return failf(eInval, "%s: state %d: want 1..255", fn, st)
	}
	return eOK
}

//export stkgo_service_set_state
func stkgo_service_set_state(h C.uint64_t, st C.int) C.int {
	s, ok := get[*service](h)
	if !ok {
		return failf(eHandle, "stk_service_set_state: no service %d", h)
	}
	if code := checkState("stk_service_set_state", st); code != eOK {
		return code
	}
	if err := s.svc.SetState(smartbeat.State(st)); err != nil {
		return fail(fmt.Errorf("stk_service_set_state: %w", err))
	}
	return eOK
}

//export stkgo_service_set_state_name
func stkgo_service_set_state_name(h C.uint64_t, st C.int, name *C.char) C.int {
	s, ok := get[*service](h)
	if !ok {
		return failf(eHandle, "stk_service_set_state_name: no service %d", h)
	}
	if code := checkState("stk_service_set_state_name", st); code != eOK {
		return code
	}
	s.svc.SetStateName(smartbeat.State(st), goString(name, ""))
	return eOK
}

//export stkgo_service_state
func stkgo_service_state(h C.uint64_t) C.int {
	s, ok := get[*service](h)
	if !ok {
		return failf(eHandle, "stk_service_state: no service %d", h)
	}
	return C.int(s.svc.State())
}

//export stkgo_service_set_checkpoint
func stkgo_service_set_checkpoint(h C.uint64_t, cp C.uint64_t) C.int {
	s, ok := get[*service](h)
	if !ok {
		return failf(eHandle, "stk_service_set_checkpoint: no service %d", h)
	}
	s.svc.SetCheckpoint(uint64(cp))
	return eOK
}

//export stkgo_service_id
func stkgo_service_id(h C.uint64_t, id *C.uint64_t) C.int {
	s, ok := get[*service](h)
	if !ok {
		return failf(eHandle, "stk_service_id: no service %d", h)
	}
	*id = C.uint64_t(s.svc.ID())
	return eOK
}

//export stkgo_service_destroy
func stkgo_service_destroy(h C.uint64_t) C.int {
	s, ok := take[*service](h)
	if !ok {
		return failf(eHandle, "stk_service_destroy: no service %d", h)
	}
	if err := s.destroy(); err != nil {
		return fail(fmt.Errorf("stk_service_destroy: %w", err))
	}
	return eOK
}
