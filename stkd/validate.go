package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/cli"
)

// checkIPv4 checks an "ip:port" of an STK listener: an IPv4 address (a
// multicast group if multicast) and a port from 0 to 65535.
func checkIPv4(addr string, multicast bool) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not ip:port (as in 127.0.0.1:20002)", addr)
	}
	a := ap.Addr().Unmap()
	switch {
	case !a.Is4():
		return fmt.Errorf("%v is not an IPv4 address (STK flows are IPv4)", ap.Addr())
	case multicast && !a.IsMulticast():
		return fmt.Errorf("%v is not a multicast group (224.0.0.0 to 239.255.255.255)", a)
	case !multicast && a.IsMulticast():
		return fmt.Errorf("%v is a multicast group; a unicast listener needs a local address", a)
	}
	return nil
}

// checkHTTP checks the HTTP UI's "host:port": any host net.Listen takes,
// a numeric port from 0 to 65535.
func checkHTTP(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (as in 127.0.0.1:8080)", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("bad port %q: want a number from 0 to 65535", port)
	}
	return nil
}

// label names where a setting came from: its config file line, else its
// flag.
func (o origins) label(flag string) string {
	if w := o[flag]; w != "" {
		return w
	}
	return "--" + flag
}

// validate checks the whole configuration before anything starts and
// reports every problem at once, each named by its flag or file:line.
func validate(c config, o origins) error {
	var errs []error
	bad := func(flag, value string, err error) {
		errs = append(errs, fmt.Errorf("%s %q: %w", o.label(flag), value, err))
	}
	if !c.names && !c.monitor {
		errs = append(errs, errors.New("nothing to run: the config file has neither a named: nor an httpd: line (add one, or pass -N or -H)"))
	}
	addr := func(flag, v string, multicast bool) {
		if v == "" {
			return
		}
		if err := checkIPv4(v, multicast); err != nil {
			bad(flag, v, err)
		}
	}
	if c.names {
		if c.namesTCP == "" {
			bad("names-tcp", "", errors.New("the name server needs a TCP address (the monitor and the STEP bus register on it)"))
		}
		addr("names-tcp", c.namesTCP, false)
		addr("names-udp", c.namesUDP, false)
		addr("names-multicast", c.namesMcast, true)
	}
	if c.monitor {
		addr("monitor-tcp", c.monTCP, false)
		addr("monitor-udp", c.monUDP, false)
		addr("monitor-multicast", c.monMcast, true)
		if c.monName == "" {
			bad("monitor-name", c.monName, errors.New("want a name"))
		}
		if c.monLinger < 0 {
			bad("monitor-linger", c.monLinger.String(), errors.New("want 0 or more"))
		}
	}
	if !c.names && c.nameServer != "" {
		if _, err := flow.ParseAddress(c.nameServer); err != nil {
			bad("name-server", c.nameServer, fmt.Errorf("want [tcp|udp|tls:]ip[:port]: %w", err))
		}
	}
	if c.http != "" {
		if err := checkHTTP(c.http); err != nil {
			bad("http", c.http, err)
		}
	}
	if c.steps {
		addr("steps-feed", c.stepsFeed, false)
		if _, err := cli.ParseNetworks("network", c.stepsAccept); err != nil {
			bad("steps-accept", c.stepsAccept, err)
		}
		if c.stepsHistory <= 0 {
			bad("steps-history", strconv.Itoa(c.stepsHistory), errors.New("want a positive number of STEPs"))
		}
		if c.stepsArchiveMaxBytes <= 0 {
			bad("steps-archive-max-bytes", strconv.FormatInt(c.stepsArchiveMaxBytes, 10), errors.New("want a positive size"))
		}
		if c.stepsArchiveMaxAge <= 0 {
			bad("steps-archive-max-age", c.stepsArchiveMaxAge.String(), errors.New("want a positive duration"))
		}
		if c.stepsArchiveKeep <= 0 {
			bad("steps-archive-keep", strconv.Itoa(c.stepsArchiveKeep), errors.New("want a positive number of segments"))
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		bad("log-level", c.logLevel, errors.New("want debug, info, warn or error"))
	}
	if _, err := cli.NewLogger(nil, c.logFormat, level); err != nil {
		bad("log-format", c.logFormat, fmt.Errorf("want %s", cli.LogFormats))
	}
	return errors.Join(errs...)
}
