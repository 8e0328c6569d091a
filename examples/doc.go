// Package examples holds STK's command-line programs, one directory each
// (publish, subscribe, simple_name_registration, simple_name_lookup, ...).
// Each main is thin: flags, then calls into the libraries. The tests here
// build the programs and run them against a real stkd over loopback.
package examples
