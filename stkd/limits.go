package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
)

// limits are the bounds stkd applies to its clients: the name server's
// (namesvc.Limits and its listeners'), and the monitor's. Zero fields take
// the libraries' defaults; -1 ("off") removes a bound.
type limits struct {
	names         namesvc.Limits
	namesFlow     flow.Options // MaxConns, MaxConnsPerIP, IdleTimeout, FrameTimeout only
	monFlow       flow.Options // the same for the monitor
	monRecords    int
	monPerSource  int
	monMaxHistory int
}

// limitKey is one KEY of --limit KEY=VALUE and of a config file's
// "limit:" line.
type limitKey struct {
	key, help string
	def       string                          // the default, as shown by --limits
	set       func(l *limits, v string) error // v is "off" or a value
}

// limitKeys lists every limit, in the order --limits prints them.
var limitKeys = []limitKey{
	intLimit("names.registrations_per_client", "registrations one connection or UDP source may hold", namesvc.DefaultRegistrationsPerClient, func(l *limits) *int { return &l.names.RegistrationsPerClient }),
	intLimit("names.registrations_per_ip", "registrations all clients of one IP address may hold (lingering ones count)", namesvc.DefaultRegistrationsPerIP, func(l *limits) *int { return &l.names.RegistrationsPerIP }),
	intLimit("names.registrations", "registrations in total", namesvc.DefaultRegistrations, func(l *limits) *int { return &l.names.Registrations }),
	{key: "names.stored_bytes", help: "bytes of registrations' elements stored in total", def: strconv.Itoa(namesvc.DefaultMaxStoredBytes),
		set: func(l *limits, v string) error { return setInt64(&l.names.MaxStoredBytes, v) }},
	intLimit("names.subscriptions_per_client", "subscriptions one connection or UDP source may hold", namesvc.DefaultSubscriptionsPerClient, func(l *limits) *int { return &l.names.SubscriptionsPerClient }),
	intLimit("names.subscriptions_per_ip", "subscriptions all clients of one IP address may hold", namesvc.DefaultSubscriptionsPerIP, func(l *limits) *int { return &l.names.SubscriptionsPerIP }),
	intLimit("names.subscriptions", "subscriptions in total", namesvc.DefaultSubscriptions, func(l *limits) *int { return &l.names.Subscriptions }),
	intLimit("names.groups", "name groups (never deleted once made)", namesvc.DefaultGroups, func(l *limits) *int { return &l.names.Groups }),
	intLimit("names.meta_bytes", "meta-data bytes of one registration", namesvc.DefaultMetaBytes, func(l *limits) *int { return &l.names.MetaBytes }),
	boundLimit("names.addresses", "addresses of one registration (C clients read at most 5, so at most 5)", namesvc.MaxAddresses, func(l *limits) *int { return &l.names.Addresses }),
	durLimit("names.max_linger", "longer lingers are cut to this", namesvc.DefaultMaxLinger, func(l *limits) *time.Duration { return &l.names.MaxLinger }),
	intLimit("names.disconnect_after", "refusals after which a TCP client is disconnected", namesvc.DefaultDisconnectAfter, func(l *limits) *int { return &l.names.DisconnectAfter }),
	intLimit("names.max_conns", "TCP connections to the name server", flow.DefaultMaxConns, func(l *limits) *int { return &l.namesFlow.MaxConns }),
	intLimit("names.max_conns_per_ip", "TCP connections to the name server from one IP address", namesvc.DefaultMaxConnsPerIP, func(l *limits) *int { return &l.namesFlow.MaxConnsPerIP }),
	durLimit("names.idle_timeout", "a connection that sends no frame this long is closed (clients keep alive every 500 ms)", namesvc.DefaultIdleTimeout, func(l *limits) *time.Duration { return &l.namesFlow.IdleTimeout }),
	durLimit("names.frame_timeout", "a connection holding an incomplete frame this long is closed", namesvc.DefaultFrameTimeout, func(l *limits) *time.Duration { return &l.namesFlow.FrameTimeout }),
	boundLimit("monitor.records", "services monitored at once (always bounded)", smartbeat.DefaultMaxRecords, func(l *limits) *int { return &l.monRecords }),
	boundLimit("monitor.records_per_source", "services one connection or UDP source may report (always bounded)", smartbeat.DefaultMaxRecordsPerSource, func(l *limits) *int { return &l.monPerSource }),
	boundLimit("monitor.history", "ended services kept in the history (always bounded)", smartbeat.DefaultMaxHistory, func(l *limits) *int { return &l.monMaxHistory }),
	intLimit("monitor.max_conns", "TCP connections to the monitor", flow.DefaultMaxConns, func(l *limits) *int { return &l.monFlow.MaxConns }),
	intLimit("monitor.max_conns_per_ip", "TCP connections to the monitor from one IP address", smartbeat.DefaultMonitorMaxConnsPerIP, func(l *limits) *int { return &l.monFlow.MaxConnsPerIP }),
	durLimit("monitor.idle_timeout", "a connection that sends no frame this long is closed (services beat every 500 ms by default)", smartbeat.DefaultMonitorIdleTimeout, func(l *limits) *time.Duration { return &l.monFlow.IdleTimeout }),
	durLimit("monitor.frame_timeout", "a connection holding an incomplete frame this long is closed", smartbeat.DefaultMonitorFrameTimeout, func(l *limits) *time.Duration { return &l.monFlow.FrameTimeout }),
}

func intLimit(key, help string, def int, field func(*limits) *int) limitKey {
	return limitKey{key: key, help: help, def: strconv.Itoa(def), set: func(l *limits, v string) error {
		if v == "off" {
			*field(l) = -1
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive whole number or off")
		}
		*field(l) = n
		return nil
	}}
}

// boundLimit is intLimit for a bound that cannot be turned off.
func boundLimit(key, help string, def int, field func(*limits) *int) limitKey {
	k := intLimit(key, help, def, field)
	set := k.set
	k.set = func(l *limits, v string) error {
		if v == "off" {
			return fmt.Errorf("this bound cannot be turned off; give a number")
		}
		return set(l, v)
	}
	return k
}

func durLimit(key, help string, def time.Duration, field func(*limits) *time.Duration) limitKey {
	return limitKey{key: key, help: help, def: def.String(), set: func(l *limits, v string) error {
		if v == "off" {
			*field(l) = -1
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("want a positive duration such as 30s, or off")
		}
		*field(l) = d
		return nil
	}}
}

func setInt64(dst *int64, v string) error {
	if v == "off" {
		*dst = -1
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("want a positive whole number or off")
	}
	*dst = n
	return nil
}

// apply sets one "KEY=VALUE".
func (l *limits) apply(kv string) error {
	key, v, ok := strings.Cut(kv, "=")
	key, v = strings.TrimSpace(key), strings.TrimSpace(v)
	if !ok || key == "" || v == "" {
		return fmt.Errorf("%q: want KEY=VALUE, such as names.registrations_per_client=5000 (stkd --limits lists the keys)", kv)
	}
	for _, k := range limitKeys {
		if k.key == key {
			if err := k.set(l, v); err != nil {
				return fmt.Errorf("%s=%s: %w", key, v, err)
			}
			return nil
		}
	}
	return fmt.Errorf("unknown limit %q (stkd --limits lists the keys)", key)
}

// printLimits writes the table of --limits.
func printLimits(w io.Writer) {
	fmt.Fprintln(w, "Limits stkd applies to its clients; change one with --limit KEY=VALUE (repeatable) or a config")
	fmt.Fprintln(w, "file line \"limit: KEY=VALUE ...\"; the value off removes the bound. A refused request is counted")
	fmt.Fprintln(w, "(stk_names_refused_total, stk_monitor_refused_total, stk_flow_refused_total in /metrics) and logged")
	fmt.Fprintln(w, "at most once a second per kind.")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tDEFAULT\tMEANING")
	for _, k := range limitKeys {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.key, k.def, k.help)
	}
	tw.Flush()
}
