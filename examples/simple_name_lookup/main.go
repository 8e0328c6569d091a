// Command simple_name_lookup looks a name up, or with -X subscribes to it,
// and prints every answer.
package main

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/namesvc"
)

func main() {
	fs := pflag.NewFlagSet("simple_name_lookup", pflag.ContinueOnError)
	group := fs.StringP("group", "G", "", "name group to look in")
	subscribe := fs.BoolP("subscribe", "X", false, "subscribe: print the current registrations and every later one until Ctrl-C")
	count := fs.IntP("count", "c", 0, "stop after this many answers (0: all of them)")
	expiration := fs.DurationP("expiration", "e", time.Second, "how long to wait for answers (a Go stkd says when it has sent them all, so a lookup usually ends sooner)")
	nameServer := fs.StringP("name-server", "R", cli.DefaultNameServer, "name server: [tcp|udp:]ip[:port]")
	quiet := fs.BoolP("quiet", "q", false, "print only the summary")
	cli.Usage(fs, "simple_name_lookup [flags] <name>", "Looks <name> up with the name server and prints the answers.")
	name := cli.Parse(fs, os.Args[1:], 1)[0]
	log := cli.Logger(false)

	ctx, cancel := cli.SignalContext()
	defer cancel()
	names, err := cli.DialNames(*nameServer, *group, log)
	if err != nil {
		cli.Fail("simple_name_lookup", err)
	}
	defer names.Close()

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
		fmt.Printf("Subscribing to name %s\n", name)
		if _, err := names.Subscribe(name, namesvc.SubscribeOptions{}, onAnswer); err != nil {
			cli.Fail("simple_name_lookup", err)
		}
		select {
		case <-ctx.Done():
		case <-stop:
		}
		fmt.Printf("Received %d answer(s) for name %s\n", answers.Load(), name)
		return
	}

	fmt.Printf("Requesting info on name %s\n", name)
	done := make(chan namesvc.LookupResult, 1)
	if _, err := names.Lookup(name, namesvc.LookupOptions{Expiration: *expiration}, onAnswer, func(r namesvc.LookupResult) { done <- r }); err != nil {
		cli.Fail("simple_name_lookup", err)
	}
	select {
	case <-ctx.Done():
	case <-stop:
		fmt.Printf("Lookup of '%s': stopped after %d answer(s) in %v\n", name, answers.Load(), time.Since(start).Round(time.Microsecond))
	case r := <-done:
		how := "complete"
		if !r.Complete {
			how = "expired"
		}
		fmt.Printf("Lookup of '%s' %s: %d answer(s) in %v\n", name, how, r.Answers, time.Since(start).Round(time.Microsecond))
		if !r.Complete && !names.Connected() {
			fmt.Fprintf(os.Stderr, "simple_name_lookup: not connected to a name server (%s)\n", cli.NamesHint)
		}
	}
}
