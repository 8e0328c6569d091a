// Command stkbench-monitor measures stkd's service monitor with real
// processes: how long it takes to declare a service killed with SIGKILL
// timed out, whether it times out services that are alive while every core
// is busy or while stkd itself is paused, and what holding 10,000 services
// costs it. (A benchmark, named so that `go install ./...` puts no program
// called monitor next to the real ones.)
//
// Usage:
//
//	stkbench-monitor detect  [flags]  kill -9 a monitored_service, time until it is timed out (p50/p99/max per beat period)
//	stkbench-monitor load    [flags]  50 services beating for --duration while busy loops load every core; count timeouts
//	stkbench-monitor sigstop [flags]  pause stkd with SIGSTOP for 2 s, 5 times, with 50 services beating; count timeouts
//	stkbench-monitor scale   [flags]  10,000 services beating at 2 Hz; stkd's CPU, RSS and timeouts over 60 s
//
// Every mode starts its own stkd on free loopback ports (--names-tcp,
// --monitor-tcp and --http 127.0.0.1:0, UDP off) and reads it through its
// HTTP API (/api/v1/stats, /api/v1/services and the /api/v1/events stream,
// whose event times are the monitor's own clock) and through its log. The
// services are other processes: examples/monitored_service (detect), or
// this program's "beaters" mode, which runs N smartbeat.Services spread over
// Senders of its own (load, sigstop, scale). The busy loops are this
// program's "burn" mode, one process per core.
//
// bench/monitor.sh builds stkd, monitored_service and this program and runs
// a mode; "go run ./bench/stkbench-monitor MODE" works too and builds the other two
// itself (or give --bin, a directory holding them).
//
// These are measurements, not tests: they take minutes, and their figures
// depend on the machine and on what else runs on it. Each mode prints what
// it measured and exits with status 1 when a service was timed out that
// should not have been (load, sigstop, scale) or a kill went undetected
// (detect).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// prog is the program's name in its messages.
const prog = "stkbench-monitor"

const usage = `Usage: stkbench-monitor MODE [flags]   (stkbench-monitor MODE -h for the flags of a mode)

Measures stkd's service monitor with real processes:

  detect   kill -9 a monitored_service, time until stkd has it timed out:
           p50/p99/max over --runs kills for each beat period
  load     --services services beating for --duration while busy loops load
           every core: count the services timed out (there should be none)
  sigstop  pause stkd with SIGSTOP for --pause, --pauses times, with
           --services services beating: count timeouts (there should be none)
  scale    --services services at 2 Hz: stkd's CPU use and RSS over --window,
           and the services timed out meanwhile

Internal modes, started by the others: beaters (runs smartbeat services),
burn (a busy loop).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	modes := map[string]func([]string) error{
		"detect":  runDetect,
		"load":    runLoad,
		"sigstop": runSigstop,
		"scale":   runScale,
		"beaters": runBeaters,
		"burn":    runBurn,
	}
	mode := os.Args[1]
	if mode == "-h" || mode == "--help" || mode == "help" {
		fmt.Print(usage)
		return
	}
	run := modes[mode]
	if run == nil {
		fmt.Fprintf(os.Stderr, "%s: unknown mode %q\n\n%s", prog, mode, usage)
		os.Exit(2)
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s %s: %v\n", prog, mode, err)
		os.Exit(1)
	}
}

// newFlags returns the flag set of a mode; parse handles -h.
func newFlags(mode, synopsis string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(prog+" "+mode, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: %s %s [flags]\n\n%s\n\nFlags:\n%s", prog, mode, synopsis, fs.FlagUsages())
	}
	return fs
}

// parse parses args; -h prints the usage and exits.
func parse(fs *pflag.FlagSet, args []string) error {
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			os.Exit(0)
		}
		return err
	}
	if *help {
		fs.Usage()
		os.Exit(0)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// binFlag adds --bin to fs.
func binFlag(fs *pflag.FlagSet) *string {
	return fs.String("bin", "", "directory holding the stkd and monitored_service binaries (default: build them with go build)")
}

// programs finds or builds stkd and monitored_service. cleanup removes
// what it built.
func programs(bin string) (dir string, cleanup func(), err error) {
	if bin != "" {
		for _, p := range []string{"stkd", "monitored_service"} {
			if _, err := os.Stat(filepath.Join(bin, p)); err != nil {
				return "", nil, fmt.Errorf("--bin %s: %w", bin, err)
			}
		}
		return bin, func() {}, nil
	}
	dir, err = os.MkdirTemp("", "stk-bench-monitor-")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/stk-go/stk/stkd", "github.com/stk-go/stk/examples/monitored_service")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building stkd and monitored_service (run from the module, or give --bin): %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// conditions describes the machine at the start of a measurement.
func conditions() string {
	load, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(load))
	if len(f) >= 3 {
		return fmt.Sprintf("%d CPUs, load average %s %s %s at %s", numCPU(), f[0], f[1], f[2], time.Now().Format(time.DateTime))
	}
	return fmt.Sprintf("%d CPUs", numCPU())
}
