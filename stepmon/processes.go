package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/hostmon"
)

// processOptions are the --process-* flags: which processes the processes
// collector reports (see hostmon.ProcessOptions).
type processOptions struct {
	minLifetime time.Duration
	summary     time.Duration
	include     []string
	exclude     []string
}

// addProcessFlags defines the --process-* flags on fs.
func addProcessFlags(fs *pflag.FlagSet, o *processOptions) {
	fs.DurationVar(&o.minLifetime, "process-min-lifetime", hostmon.DefaultProcessMinLifetime,
		"report a process (process.start, later process.exit) only once it has run this long; one that ends sooner is only counted in the short-lived summary (0: report every process a scan sees)")
	fs.DurationVar(&o.summary, "process-summary", hostmon.DefaultProcessSummaryInterval,
		"how often to send a system.processes.short_lived event with the count and top command names of the processes that ended within --process-min-lifetime (none for a period without any; 0: never)")
	fs.StringSliceVar(&o.include, "process-include", nil,
		"report only the processes whose command name (comm, the name field of process.start) matches one of these comma-separated patterns (*, ?, [a-z]; e.g. nginx,python*); default all")
	fs.StringSliceVar(&o.exclude, "process-exclude", nil,
		"never report nor count the processes whose command name matches one of these patterns (e.g. sleep,sh); wins over --process-include")
}

// hostmon returns the collector's options; 0 durations turn a feature
// off (hostmon reads 0 as its default, and negative as off).
func (o processOptions) hostmon() (hostmon.ProcessOptions, error) {
	switch {
	case o.minLifetime < 0:
		return hostmon.ProcessOptions{}, fmt.Errorf("--process-min-lifetime %v is negative (0 reports every process)", o.minLifetime)
	case o.summary < 0:
		return hostmon.ProcessOptions{}, fmt.Errorf("--process-summary %v is negative (0 sends no summary)", o.summary)
	}
	p := hostmon.ProcessOptions{MinLifetime: o.minLifetime, SummaryInterval: o.summary, Include: o.include, Exclude: o.exclude}
	if p.MinLifetime == 0 {
		p.MinLifetime = -1
	}
	if p.SummaryInterval == 0 {
		p.SummaryInterval = -1
	}
	if err := p.Validate(); err != nil {
		return hostmon.ProcessOptions{}, fmt.Errorf("--process-include/--process-exclude: %w", err)
	}
	return p, nil
}
