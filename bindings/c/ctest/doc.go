// Package ctest tests the C binding (bindings/c) from outside, as a C
// program uses it: its tests build libstk.so and the C examples and unit
// test once, run them against a real stkd and real Go programs, and run the
// C programs under AddressSanitizer (and valgrind when installed and able
// to run Go code on this CPU, with GODEBUG=cpu.rdtscp=off where it needs
// it) so that memory errors in C code fail the tests. They skip when gcc is
// missing.
package ctest
