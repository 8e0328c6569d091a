package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/smartbeat"
)

// runBeaters is the "beaters" mode: services that report to a monitor and
// beat until SIGTERM, SIGINT or SIGKILL, advancing their checkpoints once
// a second. It prints "ready N SECONDS" when all N are running.
func runBeaters(args []string) error {
	fs := newFlags("beaters", "Runs smartbeat services reporting to a monitor until killed (started by the other modes).")
	monitor := fs.StringP("monitor", "m", "tcp:127.0.0.1:20001", "monitor address")
	n := fs.IntP("services", "n", 50, "number of services")
	perSender := fs.Int("per-sender", 0, "services per smartbeat.Sender, each Sender with its own connection to the monitor (0: one Sender for all)")
	beat := fs.Duration("beat", smartbeat.DefaultPeriod, "smartbeat period")
	activity := fs.Duration("activity-timeout", smartbeat.DefaultActivityTimeout, "activity timeout of the services")
	prefix := fs.String("prefix", "bench", "service names are PREFIX-00000 and up")
	sendWait := fs.Duration("send-wait", 0, "how long a Sender's send waits for room in its connection's full queue (4 MiB) before dropping (0: the Sender's default, drop at once)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *n <= 0 || *perSender < 0 {
		return fmt.Errorf("--services must be > 0 and --per-sender >= 0")
	}
	if *perSender == 0 {
		*perSender = *n
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := time.Now()
	var sender *smartbeat.Sender
	svcs := make([]*smartbeat.Service, 0, *n)
	for i := range *n {
		if i%*perSender == 0 {
			opts := smartbeat.SenderOptions{Period: *beat, Logger: log}
			if *sendWait > 0 {
				opts.Flow = flow.Options{QueueBytes: 256 << 10, SlowConsumer: flow.Drop, SlowConsumerWait: *sendWait}
			}
			sender = smartbeat.NewSender(opts)
		}
		svc, err := smartbeat.NewService(*prefix+"-"+fmt.Sprintf("%05d", i), smartbeat.Options{
			Monitor: *monitor, Sender: sender, ActivityTimeout: *activity, Logger: log,
		})
		if err != nil {
			return err
		}
		svc.SetState(smartbeat.Running)
		svcs = append(svcs, svc)
	}
	fmt.Println("ready", *n, strconv.FormatFloat(time.Since(start).Seconds(), 'f', 2, 64))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-sig:
			return nil // no DESTROY: the benchmarks stop stkd first
		case <-t.C:
			for _, s := range svcs {
				s.AddCheckpoint(1)
			}
		}
	}
}

// runBurn is the "burn" mode: one thread in a busy loop until killed.
func runBurn(args []string) error {
	fs := newFlags("burn", "Spins one thread in a busy loop until killed (started by the other modes).")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Println("ready")
	n := 0
	for {
		n++
	}
}

// startBurners starts n busy loops, one process each.
func startBurners(n int) ([]*child, error) {
	var cs []*child
	for range n {
		c, err := startSelf("burn")
		if err != nil {
			killAll(cs)
			return nil, err
		}
		cs = append(cs, c)
		if _, err := c.waitReady(10 * time.Second); err != nil {
			killAll(cs)
			return nil, err
		}
	}
	return cs, nil
}

// beaterSpec says how to spread services over processes and Senders.
type beaterSpec struct {
	services, procs, perSender int
	beat, activity             time.Duration
	sendWait                   time.Duration
	prefix                     string
}

// startBeaters starts spec.procs beaters processes sharing spec.services
// and waits until each has all its services running. It returns the
// processes and the slowest start.
func startBeaters(monitor string, spec beaterSpec, timeout time.Duration) ([]*child, time.Duration, error) {
	var cs []*child
	start := time.Now()
	for p := range spec.procs {
		n := spec.services / spec.procs
		if p < spec.services%spec.procs {
			n++
		}
		c, err := startSelf("beaters", "-m", monitor, "-n", strconv.Itoa(n), "--per-sender", strconv.Itoa(spec.perSender),
			"--beat", spec.beat.String(), "--activity-timeout", spec.activity.String(), "--send-wait", spec.sendWait.String(), "--prefix", fmt.Sprintf("%s-p%d", spec.prefix, p))
		if err != nil {
			killAll(cs)
			return nil, 0, err
		}
		cs = append(cs, c)
	}
	for _, c := range cs {
		if _, err := c.waitReady(timeout); err != nil {
			killAll(cs)
			return nil, 0, err
		}
	}
	return cs, time.Since(start), nil
}
