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
	"net"
	"syscall"
	"unsafe"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/smartbeat"
)

// Error codes of stk.h.
const (
	eOK        = C.STK_OK
	eInval     = C.STK_EINVAL
	eHandle    = C.STK_EHANDLE
	eNoMem     = C.STK_ENOMEM
	eAddr      = C.STK_EADDR
	eNet       = C.STK_ENET
	eTimedOut  = C.STK_ETIMEDOUT
	eNotFound  = C.STK_ENOTFOUND
	eClosed    = C.STK_ECLOSED
	eQueueFull = C.STK_EQUEUEFULL
	eSequence  = C.STK_ESEQUENCE
	eRange     = C.STK_ERANGE
	eBusy      = C.STK_EBUSY
	eInternal  = C.STK_EINTERNAL
)

// codeError is an error with the code the C caller gets for it.
type codeError struct {
	code C.int
	msg  string
}

func (e *codeError) Error() string { return e.msg }

// errorf makes an error with an explicit code.
func errorf(code C.int, format string, args ...any) error {
	return &codeError{code, fmt.Sprintf(format, args...)}
}

// codeOf maps an error of the wrapped packages to an stk.h code.
func codeOf(err error) C.int {
	var ce *codeError
	var op *net.OpError
	var errno syscall.Errno
	switch {
	case err == nil:
		return eOK
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, context.DeadlineExceeded):
		return eTimedOut
	case errors.Is(err, namesvc.ErrNotFound):
		return eNotFound
	case errors.Is(err, flow.ErrClosed), errors.Is(err, namesvc.ErrClosed), errors.Is(err, stk.ErrClosed),
		errors.Is(err, smartbeat.ErrServiceClosed), errors.Is(err, smartbeat.ErrSenderClosed):
		return eClosed
	case errors.Is(err, flow.ErrQueueFull), errors.Is(err, flow.ErrSlowConsumer), errors.Is(err, flow.ErrNotConnected):
		return eQueueFull
	case errors.Is(err, seq.ErrInvalidType), errors.Is(err, seq.ErrTooManyElements), errors.Is(err, seq.ErrNameTooLong),
		errors.Is(err, seq.ErrNameHasNUL), errors.Is(err, seq.ErrTooLarge), errors.Is(err, seq.ErrElementTooLarge):
		return eSequence
	case errors.Is(err, namesvc.ErrInvalidRequest):
		return eInval
	case errors.As(err, &op), errors.As(err, &errno):
		return eNet
	}
	return eInternal
}

// fail records err as the calling thread's last error (stk_last_error) and
// returns its code. Exported functions run on the C caller's thread, and so
// does this cgo call, so the thread-local message reaches that caller.
func fail(err error) C.int {
	msg := err.Error()
	if msg == "" {
		msg = "error"
	}
	C.stk__set_error((*C.char)(unsafe.Pointer(unsafe.StringData(msg))), C.size_t(len(msg)))
	return codeOf(err)
}

// failf is fail(errorf(...)).
func failf(code C.int, format string, args ...any) C.int {
	return fail(errorf(code, format, args...))
}

// failAs is fail, with code def for errors the wrapped packages do not
// classify: the validation errors of namesvc requests, for instance.
func failAs(def C.int, err error) C.int {
	code := fail(err)
	if code == eInternal {
		code = def
	}
	return code
}
