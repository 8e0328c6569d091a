// Command monitored_service is a service that reports to the monitor: it
// announces itself, goes to "running", advances its checkpoint once per
// iteration, and on the last iteration (or Ctrl-C) goes to "stopping" and
// says goodbye. Watch it in stkd's status UI, http://127.0.0.1:8080/.
//
// --beat sets its smartbeat period and --activity-timeout how long the
// monitor waits for a smartbeat before declaring it failed (bench/monitor
// kills it with SIGKILL to measure how long that takes).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/smartbeat"
)

func main() {
	fs := pflag.NewFlagSet("monitored_service", pflag.ContinueOnError)
	monitor := fs.StringP("monitor", "m", "tcp:127.0.0.1:20001", "monitor: lookup:name or [tcp|udp|multicast:]ip[:port]")
	iterations := fs.Int64P("iterations", "t", 1000000, "iterations before exiting; the checkpoint is the iteration number")
	name := fs.StringP("service-name", "S", "basic monitored service", "service name")
	interval := fs.DurationP("interval", "i", time.Second, "time between iterations")
	beat := fs.DurationP("beat", "b", smartbeat.DefaultPeriod, "smartbeat period")
	activity := fs.DurationP("activity-timeout", "a", smartbeat.DefaultActivityTimeout, "how long the monitor waits for a smartbeat before declaring the service failed; at least --beat")
	nameServer := fs.StringP("name-server", "R", cli.DefaultNameServer, "name server for -m lookup:name, [tcp|udp:]ip[:port]")
	verbose := fs.BoolP("verbose", "v", false, "log what happens")
	cli.Usage(fs, "monitored_service [flags]", "Runs a service that reports its state and checkpoint to the monitor.")
	cli.Parse(fs, os.Args[1:], 0)
	if *iterations < 0 || *interval <= 0 || *beat <= 0 || *activity < *beat {
		cli.Fail("monitored_service", fmt.Errorf("-t must be >= 0, -i and --beat > 0, and --activity-timeout >= --beat"))
	}
	cli.Logger(*verbose)

	ctx, cancel := cli.SignalContext()
	defer cancel()
	sender := smartbeat.NewSender(smartbeat.SenderOptions{Period: *beat})
	svc, err := smartbeat.NewService(*name, smartbeat.Options{
		Monitor: *monitor, NameServerAddr: *nameServer,
		Sender: sender, ActivityTimeout: *activity,
	})
	if err != nil {
		cli.Fail("monitored_service", fmt.Errorf("%w (is stkd running? -m says where the monitor is)", err))
	}
	fmt.Printf("Service '%s' id %#x reporting to %s\n", svc.Name(), svc.ID(), *monitor)
	svc.SetState(smartbeat.Running)
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for i := int64(1); i <= *iterations && ctx.Err() == nil; i++ {
		select {
		case <-tick.C:
			svc.SetCheckpoint(uint64(i))
			if *verbose {
				fmt.Printf("checkpoint %d\n", i)
			}
		case <-ctx.Done():
		}
	}
	svc.SetState(smartbeat.Stopping)
	if err := svc.Close(); err != nil {
		cli.Fail("monitored_service", err)
	}
	fmt.Printf("Service '%s' stopped at checkpoint %d\n", svc.Name(), svc.Checkpoint())
}
