package main

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestProcessFlags: the --process-* flags and their config-file keys give
// the processes collector its options; 0 turns the minimum lifetime and
// the summary off.
func TestProcessFlags(t *testing.T) {
	o, err := parseArgs(nil, io.Discard, "h1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := o.processes.hostmon()
	if err != nil || p.MinLifetime != 5*time.Second || p.SummaryInterval != time.Minute || p.Include != nil || p.Exclude != nil {
		t.Fatalf("defaults: %+v, %v", p, err)
	}

	path := writeFile(t, `
process-min-lifetime = 10s
process-summary = 5m
process-exclude = sleep,sh
process-include = bash
`)
	o, err = parseArgs([]string{"-c", path, "--process-include", "nginx,python*", "--process-summary", "0"}, io.Discard, "h1")
	if err != nil {
		t.Fatal(err)
	}
	p, err = o.processes.hostmon()
	if err != nil || p.MinLifetime != 10*time.Second || p.SummaryInterval >= 0 ||
		!slices.Equal(p.Include, []string{"nginx", "python*"}) || !slices.Equal(p.Exclude, []string{"sleep", "sh"}) {
		t.Fatalf("file and flags: %+v, %v (want the flags to win over the file, summary off)", p, err)
	}
	o, err = parseArgs([]string{"--process-min-lifetime", "0"}, io.Discard, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := o.processes.hostmon(); p.MinLifetime >= 0 {
		t.Errorf("--process-min-lifetime 0: %v, want negative (report every process)", p.MinLifetime)
	}

	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--process-min-lifetime", "-1s"}, "--process-min-lifetime -1s is negative"},
		{[]string{"--process-summary", "-1m"}, "--process-summary -1m0s is negative"},
		{[]string{"--process-exclude", "[a-"}, `--process-include/--process-exclude: process name pattern "[a-"`},
	} {
		if _, err := parseArgs(c.args, io.Discard, "h1"); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: error %v, want %q", c.args, err, c.msg)
		}
	}

	var help bytes.Buffer
	if _, err := parseArgs([]string{"-h"}, &help, "h1"); !errors.Is(err, pflag.ErrHelp) {
		t.Fatal(err)
	}
	for _, f := range []string{"--process-min-lifetime duration", "--process-summary duration", "--process-include strings", "--process-exclude strings", "system.processes.short_lived"} {
		if !strings.Contains(help.String(), f) {
			t.Errorf("-h does not show %q", f)
		}
	}
}
