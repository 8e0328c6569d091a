// Command simple_name_registration registers a name with an address and
// optional meta-data, group, fault-tolerance state and linger.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

const prog = "simple_name_registration"

func main() {
	fs := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	iface := fs.StringArrayP("interface", "i", []string{"tcp:127.0.0.1:20003"}, "address to register, [protocol:]host[:port] (a host name is registered as its IPv4 address); repeat for several (at most 5)")
	meta := fs.StringArrayP("meta", "M", nil, "meta-data element id,value (user type id, value sent as a C string); repeatable")
	ft := fs.StringP("ft-state", "F", "active", "fault-tolerance state: active, backup (sends none, like C) or standby")
	group := fs.StringP("group", "G", "", "name group")
	linger := fs.IntP("linger", "L", 300, "seconds the name outlives this program's connection")
	wait := fs.BoolP("wait", "w", false, "stay registered until Ctrl-C (the name then lingers -L seconds)")
	nameServer := fs.StringP("name-server", "R", cli.DefaultNameServer, "name server: [tcp|udp|tls:]host[:port] (tls: with --tls-ca, --tls-cert, --tls-key)")
	quiet := fs.BoolP("quiet", "q", false, "print nothing but errors")
	cli.Usage(fs, prog+" [flags] <name>", "Registers <name> with the name server.",
		"0  the name server confirmed the registration (-w: and then Ctrl-C or SIGTERM ended the wait)",
		"1  it did not confirm it within 5 s (not reached, or refused)")
	name := cli.Parse(fs, os.Args[1:], 1)[0]
	log := cli.Logger(false)

	info := namesvc.Info{Name: name, Group: *group, Linger: time.Duration(*linger) * time.Second}
	for _, s := range *iface {
		a, err := cli.ResolveAddress("-i", s)
		if err != nil {
			cli.Fail(prog, err)
		}
		if a.Lookup != "" {
			cli.Fail(prog, cli.BadUsage(fmt.Errorf("-i %s: a lookup: address cannot be registered", s)))
		}
		addr, err := a.WithDefaults("127.0.0.1", 20003).AddrPort()
		if err != nil {
			cli.Fail(prog, cli.BadUsage(fmt.Errorf("-i %s: %w", s, err)))
		}
		info.Addresses = append(info.Addresses, namesvc.Endpoint{Protocol: a.Protocol.String(), Addr: addr})
	}
	switch strings.ToLower(*ft) {
	case "active":
		info.FT = namesvc.FTActive
	case "backup":
		info.FT = namesvc.FTUnset // the C client sends no element for anything but "active"
	case "standby":
		info.FT = namesvc.FTStandby
	default:
		cli.Fail(prog, cli.BadUsage(fmt.Errorf("-F %q: want active, backup or standby", *ft)))
	}
	for _, m := range *meta {
		id, value, ok := strings.Cut(m, ",")
		ut, err := strconv.ParseUint(id, 0, 64)
		if !ok || err != nil {
			cli.Fail(prog, cli.BadUsage(fmt.Errorf("-M %q: want id,value with a numeric id, as in -M 100,hello", m)))
		}
		info.Meta = append(info.Meta, seq.Element{UserType: ut, Data: append([]byte(value), 0)})
	}

	ctx, cancel := cli.SignalContext()
	defer cancel()
	names, err := cli.DialNames(*nameServer, "", log)
	if err != nil {
		cli.Fail(prog, err)
	}
	defer names.Close()
	if !*quiet {
		fmt.Printf("Registering info on name %s\n", name)
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	err = names.Register(rctx, info)
	rcancel()
	if err != nil {
		err = cli.NotConnected(names, *nameServer, err)
		cli.Fail(prog, fmt.Errorf("register %s with the name server at %s: %w", name, *nameServer, err))
	}
	if !*quiet {
		fmt.Printf("Registered %s with the name server at %s (linger %v)\n", name, *nameServer, info.Linger)
	}
	if *wait {
		<-ctx.Done()
	}
}
