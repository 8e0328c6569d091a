// Command simple_name_lookup looks a name up, or with -X subscribes to it,
// and prints every answer.
package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/namesvc"
)

const prog = "simple_name_lookup"

func main() {
	fs := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	group := fs.StringP("group", "G", "", "name group to look in")
	subscribe := fs.BoolP("subscribe", "X", false, "subscribe: print the current registrations and every later one until Ctrl-C")
	count := fs.IntP("count", "c", 0, "stop after this many answers (0: all of them)")
	expiration := fs.DurationP("expiration", "e", time.Second, "how long to wait for answers (a Go stkd says when it has sent them all, so a lookup usually ends sooner)")
	nameServer := fs.StringP("name-server", "R", cli.DefaultNameServer, "name server: [tcp|udp|tls:]host[:port] (tls: with --tls-ca, --tls-cert, --tls-key)")
	quiet := fs.BoolP("quiet", "q", false, "print only the summary")
	cli.Usage(fs, prog+" [flags] <name>", "Looks <name> up with the name server and prints the answers.",
		"0  the name server answered with at least one registration (-c: with -c of them); -X: stopped by Ctrl-C or SIGTERM after reaching the name server",
		"1  no registration of <name> (the name server answered), the name server was not reached, or interrupted before -c answers")
	name := cli.Parse(fs, os.Args[1:], 1)[0]
	if *count < 0 || *expiration <= 0 {
		cli.Fail(prog, cli.BadUsage(fmt.Errorf("-c must be >= 0 and -e > 0")))
	}
	log := cli.Logger(false)

	ctx, cancel := cli.SignalContext()
	defer cancel()
	names, err := cli.DialNames(*nameServer, *group, log)
	if err != nil {
		cli.Fail(prog, err)
	}
	defer names.Close()
	notReached := func() error {
		return fmt.Errorf("not connected to a name server at %s (%s)", *nameServer, cli.WhyNotConnected(names, *nameServer))
	}

	var answers atomic.Int64
	stop := make(chan struct{}, 1)
	onAnswer := func(info namesvc.Info) {
		if !*quiet {
			cli.PrintInfo(os.Stdout, info)
		}
		if n := answers.Add(1); *count > 0 && n == int64(*count) {
			stop <- struct{}{}
		}
	}
	start := time.Now()
	if *subscribe {
		var reached atomic.Bool // the name server was connected at some point
		go func() {
			wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
			defer wcancel()
			if names.WaitConnected(wctx) != nil {
				if ctx.Err() != nil {
					return
				}
				fmt.Fprintf(os.Stderr, "%s: %v; still trying\n", prog, notReached())
				if names.WaitConnected(ctx) != nil {
					return
				}
			}
			reached.Store(true)
		}()
		fmt.Printf("Subscribing to name %s\n", name)
		if _, err := names.Subscribe(name, namesvc.SubscribeOptions{}, onAnswer); err != nil {
			cli.Fail(prog, err)
		}
		select {
		case <-ctx.Done():
		case <-stop:
		}
		n := answers.Load()
		fmt.Printf("Received %d answer(s) for name %s\n", n, name)
		switch {
		case *count > 0 && n < int64(*count):
			cli.Fail(prog, fmt.Errorf("interrupted after %d of %d answers", n, *count))
		case !reached.Load() && !names.Connected():
			cli.Fail(prog, notReached())
		}
		return
	}

	fmt.Printf("Requesting info on name %s\n", name)
	done := make(chan namesvc.LookupResult, 1)
	if _, err := names.Lookup(name, namesvc.LookupOptions{Expiration: *expiration}, onAnswer, func(r namesvc.LookupResult) { done <- r }); err != nil {
		cli.Fail(prog, err)
	}
	select {
	case <-ctx.Done():
		cli.Fail(prog, fmt.Errorf("interrupted with %d answer(s)", answers.Load()))
	case <-stop:
		fmt.Printf("Lookup of '%s': stopped after %d answer(s) in %v\n", name, answers.Load(), time.Since(start).Round(time.Microsecond))
	case r := <-done:
		how := "complete"
		if !r.Complete {
			how = "expired"
		}
		fmt.Printf("Lookup of '%s' %s: %d answer(s) in %v\n", name, how, r.Answers, time.Since(start).Round(time.Microsecond))
		switch {
		case r.Answers == 0 && !r.Complete && !names.Connected():
			cli.Fail(prog, notReached())
		case r.Answers == 0:
			where := ""
			if *group != "" {
				where = " in group " + *group
			}
			cli.Fail(prog, fmt.Errorf("no registration of %q%s", name, where))
		case *count > 0 && r.Answers < *count:
			cli.Fail(prog, fmt.Errorf("%d of %d answers", r.Answers, *count))
		}
	}
}
