//go:build stk_cshared

// Command c is the C binding of the Go STK: built with
//
//	go build -tags stk_cshared -buildmode=c-shared -o libstk.so ./bindings/c
//
// it is libstk.so, the library behind the hand-written header stk.h, which
// documents the API (the header cgo generates is used internally only).
// Programs in C, or in any language that can load a C library (Python's
// ctypes, bindings/python), register and look up names, publish and
// subscribe sequences and report smartbeats with the Go implementation.
//
// The Go side is thin: it wraps packages flow, namesvc, smartbeat and seq,
// with no protocol code of its own. It exports stkgo_* functions that take
// handles as integers; stk_api.c implements stk.h over them, and stk_seq.c
// keeps sequences in C memory so that C reads them without calling Go.
// Objects live in a handle table (handles.go): C never holds a Go pointer.
// Callbacks go through C trampolines (stk_api.c) and are never called with
// a lock held, so they may call back into the library.
//
// Build the library, the header and the C examples with bindings/c/Makefile;
// bindings/c/ctest tests them against a real stkd. Every file has the build
// tag stk_cshared: without it `go install ./...` would install the library
// as a program named c. Vet it with `go vet -tags stk_cshared ./bindings/c`
// (.ci/run does).
package main

// main is required by -buildmode=c-shared and never runs.
func main() {}
