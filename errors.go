package stk

import (
	"errors"
	"fmt"
	"time"
)

// Errors of this package; the errors returned wrap them, so test with
// errors.Is. Errors of the flows (flow.ErrClosed; flow.ErrQueueFull from a
// UDP or multicast publisher) and of the name service
// (namesvc.ErrNotFound...) come wrapped as they are.
var (
	// ErrClosed: the Env, publisher or subscription is closed.
	ErrClosed = errors.New("stk: closed")
	// ErrNoConnections: Publisher.WaitSubscribers on a UDP or multicast
	// publisher, which has no subscriber connections to count.
	ErrNoConnections = errors.New("stk: a UDP or multicast publisher has no subscriber connections")
)

// namesHint ends errors that mean the name server did not answer.
const namesHint = "is stkd running? start it with `go run ./stkd`, or give Connect the name server's address"

// notConfirmed is the error of a registration the name server did not
// confirm in time.
func notConfirmed(ns, name string, wait time.Duration, err error) error {
	return fmt.Errorf("stk: the name server at %s did not confirm the registration of %q within %v (%s): %w",
		ns, name, wait, namesHint, err)
}
