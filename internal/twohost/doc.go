// Package twohost holds the two-host test: STK across hosts, proved with
// two network namespaces joined by a veth pair and the real programs run
// inside them.
//
// Host A runs stkd bound to 0.0.0.0; host B runs no stkd at all, so that a
// program on B that uses an address registered wrongly (0.0.0.0 or
// 127.0.0.1, which lead back to B itself) finds nothing there and the test
// fails instead of passing by accident. On B: a monitored service that
// finds A's monitor with lookup:monitor through A's name server, a Go
// publisher and a C publisher (the C binding) bound to 0.0.0.0; on A:
// subscribers receiving every sequence. A second test checks that a
// subscriber on A warns when the publisher on B registers 127.0.0.1.
//
// The tests need root (to create namespaces) and iproute2's ip; they skip,
// saying which is missing, without them. Run them with
//
//	sudo go test -count=1 ./internal/twohost/
//
// (-count=1: the programs are built while the test runs, so the go
// command cannot tell when a change to them calls for a new run.)
//
// The package holds nothing but the tests.
package twohost
