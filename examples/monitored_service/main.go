// Command monitored_service is a service that reports to the monitor: it
// announces itself, goes to "running", advances its checkpoint once per
// iteration, and on the last iteration (or Ctrl-C) goes to "stopping" and
// says goodbye. Watch it in stkd's status UI, http://127.0.0.1:8080/.
//
// --beat sets its smartbeat period and --activity-timeout how long the
// monitor waits for a smartbeat before declaring it failed (bench/stkbench-monitor
// kills it with SIGKILL to measure how long that takes).
//
// Its job is to be seen by the monitor: over TCP it exits with status 1
// when it never reached the monitor, or had lost it when it stopped (the
// goodbye was not delivered). Over udp and multicast nothing tells whether
// a monitor listens.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/smartbeat"
)

const prog = "monitored_service"

func main() {
	fs := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	monitor := fs.StringP("monitor", "m", "tcp:127.0.0.1:20001", "monitor: lookup:name or [tcp|udp|multicast|tls:]host[:port] (tls: with --tls-ca, --tls-cert, --tls-key)")
	iterations := fs.Int64P("iterations", "t", 1000000, "iterations before exiting; the checkpoint is the iteration number")
	name := fs.StringP("service-name", "S", "basic monitored service", "service name")
	interval := fs.DurationP("interval", "i", time.Second, "time between iterations")
	beat := fs.DurationP("beat", "b", smartbeat.DefaultPeriod, "smartbeat period")
	activity := fs.DurationP("activity-timeout", "a", smartbeat.DefaultActivityTimeout, "how long the monitor waits for a smartbeat before declaring the service failed; at least --beat")
	nameServer := fs.StringP("name-server", "R", cli.DefaultNameServer, "name server for -m lookup:name, [tcp|udp|tls:]host[:port] (tls: with --tls-ca, --tls-cert, --tls-key)")
	verbose := fs.BoolP("verbose", "v", false, "log what happens")
	cli.Usage(fs, prog+" [flags]", "Runs a service that reports its state and checkpoint to the monitor.",
		"0  ran -t iterations, or until Ctrl-C or SIGTERM, and the monitor got its reports (over udp and multicast: they were sent)",
		"1  it did not: -m lookup:name not found, the TCP monitor was never reached, or was not connected at the end")
	cli.Parse(fs, os.Args[1:], 0)
	if *iterations < 0 || *interval <= 0 || *beat <= 0 || *activity < *beat {
		cli.Fail(prog, cli.BadUsage(fmt.Errorf("-t must be >= 0, -i and --beat > 0, and --activity-timeout >= --beat")))
	}
	log := cli.Logger(*verbose)

	target, err := cli.ResolveAddress("-m", *monitor)
	if err != nil {
		cli.Fail(prog, err)
	}
	opts := smartbeat.Options{Monitor: target.String(), ActivityTimeout: *activity, Logger: log}
	if target.Lookup != "" {
		// Look the monitor up here to learn its protocol (the service looks
		// it up again, on the same connection, with its own checks).
		names, err := cli.DialNames(*nameServer, "", log)
		if err != nil {
			cli.Fail(prog, err)
		}
		defer names.Close()
		ctx, cancel := context.WithTimeout(context.Background(), smartbeat.DefaultLookupTimeout)
		target, err = smartbeat.LookupMonitor(ctx, names, target.Lookup)
		cancel()
		if err != nil {
			err = cli.NotConnected(names, *nameServer, err)
			cli.Fail(prog, fmt.Errorf("-m %s: %w", *monitor, err))
		}
		opts.NameServer = names
	}
	var link monitorLink
	opts.Sender = smartbeat.NewSender(smartbeat.SenderOptions{Period: *beat, Logger: log,
		Flow: flow.Options{OnConnect: link.connected, OnDisconnect: link.disconnected, TLS: cli.TLS()}}) // TLS for a tls: -m

	ctx, cancel := cli.SignalContext()
	defer cancel()
	svc, err := smartbeat.NewService(*name, opts)
	if err != nil {
		cli.Fail(prog, err)
	}
	fmt.Printf("Service '%s' id %#x reporting to %s\n", svc.Name(), svc.ID(), *monitor)
	svc.SetState(smartbeat.Running)
	if target.Protocol == flow.TCP {
		// Say early that the reports go nowhere yet; the exit status says
		// whether they ever arrived.
		warn := time.AfterFunc(unreachableWarning, func() {
			if !link.everConnected() {
				fmt.Fprintf(os.Stderr, "%s: monitor %s not reachable after %v; still trying (%s)\n", prog, target, unreachableWarning, monitorHint)
			}
		})
		defer warn.Stop()
	}
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
	if err := svc.Close(); err != nil { // closes the monitoring flow after delivering the DESTROY
		cli.Fail(prog, err)
	}
	fmt.Printf("Service '%s' stopped at checkpoint %d\n", svc.Name(), svc.Checkpoint())
	if target.Protocol == flow.TCP {
		if err := link.verdict(); err != nil {
			where := target.String()
			if *monitor != where {
				where = fmt.Sprintf("%s (%s)", *monitor, where)
			}
			cli.Fail(prog, fmt.Errorf("monitor %s: %w", where, err))
		}
	}
}

// monitorLink follows the TCP monitoring connection through the Sender's
// OnDisconnect, which runs once per connection that ended: with a nil error
// for the one the service's close ended after delivering what was queued.
type monitorLink struct {
	mu      sync.Mutex
	opened  int   // connections that opened
	ended   int   // connections that ended
	lastErr error // why the last one ended
}

// unreachableWarning is how long the monitor may stay unreachable before
// the program says so on stderr.
const unreachableWarning = 2 * time.Second

func (l *monitorLink) connected(flow.Peer) {
	l.mu.Lock()
	l.opened++
	l.mu.Unlock()
}

func (l *monitorLink) everConnected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.opened > 0
}

func (l *monitorLink) disconnected(_ flow.Peer, err error) {
	l.mu.Lock()
	l.ended++
	l.lastErr = err
	l.mu.Unlock()
}

// verdict says whether the monitor got the reports, once the flow closed.
func (l *monitorLink) verdict() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.ended == 0:
		return fmt.Errorf("never reached: it saw nothing of this service; %s", monitorHint)
	case l.lastErr != nil:
		return fmt.Errorf("connection lost (%v) and not back at the end: the goodbye was not delivered; %s", l.lastErr, monitorHint)
	}
	return nil
}

const monitorHint = "is stkd running? start it with `go run ./stkd`, or point -m at the monitor"
