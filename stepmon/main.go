// Command stepmon is the host monitor: it runs the hostmon collectors every
// interval (CPU, memory, disks, network, GPUs, processes, files, the
// services stkd monitors, ...), raises WARNING, CRITICAL and recovery
// alerts from their values, prints every STEP event on the console and
// publishes each as a sequence on a TCP data flow.
//
// The flow is registered in the name service twice: as step.<hostname>
// (--name), to reach this host, and under the shared directory name "step"
// (--directory), which stkd's STEP bus watches to follow every host's
// monitor. It runs until SIGINT or SIGTERM.
//
// Settings come from flags or from a config file (-c) of "key = value"
// lines whose keys are the long flag names; flags win over the file, and
// threshold lines apply before the command line's, rule by rule:
//
//	# /etc/stepmon.conf
//	interval = 5s
//	collectors = cpu,memory,disk,network,processes,services
//	paths = /etc,/var/www
//	process-min-lifetime = 10s
//	process-exclude = sleep,sh
//	threshold = disk=90/98
//	threshold = network=100M/500M
//	threshold = gpu=off
//	cooldown = 10m
//	directory = ""
//	token-file = /etc/stk/stepmon.token
//
// A name server whose access policy asks for a token gets the one of
// --token-file (token-file in the config file) or of $STK_TOKEN, as the
// example programs show it (NAME:SECRET, see package namesvc, "Tokens").
//
// Alerts, their cooldown and recovery, and the psychology scores are
// described in package hostmon.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/hostmon"
	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/step"
)

func main() {
	tuneRuntime()
	ctx, cancel := cli.SignalContext()
	defer cancel()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepmon:", err)
		os.Exit(1)
	}
}

// tuneRuntime keeps the heap small: stepmon allocates little and often, so
// collecting at 50 % growth instead of 100 % costs a few extra short GC
// cycles a minute. The environment (GOGC, GOMEMLIMIT) still wins.
func tuneRuntime() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
}

// errVersion is parseArgs's answer to --version.
var errVersion = errors.New("--version")

// options are stepmon's settings, one field per flag.
type options struct {
	interval   time.Duration
	collectors []string
	paths      []string
	thresholds []string
	cooldown   time.Duration
	hysteresis float64
	name       string
	directory  string
	listen     string
	nameServer string
	tokenFile  string
	token      string // of tokenFile or $STK_TOKEN, "" for none
	tlsFiles   cli.TLSFiles
	tls        *tls.Config // of tlsFiles or $STK_TLS_*, nil for none
	stkdHTTP   string
	json       bool
	quiet      bool
	eventsOnly bool
	logLevel   string
	logFormat  string
	processes  processOptions
}

// flags defines stepmon's flags on a new FlagSet.
func flags(o *options, hostname string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("stepmon", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.StringP("config", "c", "", "read settings from this file: \"key = value\" lines, keys are the long flag names (threshold may repeat), '#' starts a comment line; flags given here win")
	fs.DurationVar(&o.interval, "interval", time.Second, "collection interval")
	fs.StringSliceVar(&o.collectors, "collectors", hostmon.Defaults(), "collectors to run, comma-separated (known: "+strings.Join(hostmon.Registered(), ", ")+"); those unavailable on this host are skipped")
	fs.StringSliceVar(&o.paths, "paths", nil, "files and directories the files collector watches, comma-separated")
	addProcessFlags(fs, &o.processes)
	fs.StringArrayVar(&o.thresholds, "threshold", nil, "alert thresholds NAME=WARN/CRIT, or NAME=off to drop the rule; repeatable. Rules and defaults: "+ruleDefaults()+". Values are in the field's unit: percent, bytes per second (suffixes k, M, G: 1e3, 1e6, 1e9), °C")
	fs.DurationVar(&o.cooldown, "cooldown", hostmon.DefaultCooldown, "an alert does not repeat a level it sent less than this ago (per rule and mount, device, interface or GPU)")
	fs.Float64Var(&o.hysteresis, "hysteresis", hostmon.DefaultHysteresis*100, "percent of a threshold a value must fall below it to leave its level (0: none)")
	fs.StringVar(&o.name, "name", "step."+hostname, "name to register the feed under (\"\": none)")
	fs.StringVar(&o.directory, "directory", "step", "shared directory name to also register the feed under, which stkd's STEP bus follows (\"\": none)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "address of the feed, the TCP data flow every STEP is published on ([tcp:]ip:port; port 0: any free port; 0.0.0.0 registers the address of the interface toward the name server)")
	fs.StringVar(&o.nameServer, "name-server", cli.DefaultNameServer, "name server to register with, [tcp|udp|tls:]ip[:port] (\"\": don't register)")
	fs.StringVar(&o.tlsFiles.CA, "tls-ca", "", "CA certificates (PEM file) to trust for a tls: name server (default: $"+cli.TLSCAEnv+"; without either, the system's roots)")
	fs.StringVar(&o.tlsFiles.Cert, "tls-cert", "", "client certificate (PEM file) shown to a tls: name server asking for one (mutual TLS, stkd --tls-client-ca); needs --tls-key (default: $"+cli.TLSCertEnv+")")
	fs.StringVar(&o.tlsFiles.Key, "tls-key", "", "private key (PEM file) of --tls-cert (default: $"+cli.TLSKeyEnv+")")
	fs.StringVar(&o.tokenFile, "token-file", "", "read the name-service token (NAME:SECRET) from this file, for a name server whose policy asks for one (default: $"+cli.TokenEnv+"; a token is never taken on the command line, where ps shows it)")
	fs.StringVar(&o.stkdHTTP, "stkd-http", "http://127.0.0.1:8080", "stkd's HTTP API, http://host[:port], where the services collector finds the monitored services (GET /api/v1/services every 5 s at most; \"\": off)")
	fs.BoolVar(&o.json, "json", false, "print one JSON STEP per line instead of lines for people")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "print no STEPs (they are still published)")
	fs.BoolVar(&o.eventsOnly, "events", false, "print events and alerts only, not the periodic metrics")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error (logs go to standard error)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text (key=value lines) or json (one JSON object per line, for journald or log collectors)")
	fs.Bool("version", false, "print the version and exit")
	fs.BoolP("help", "h", false, "show this help")
	fs.Usage = func() {}
	return fs
}

func ruleDefaults() string {
	var parts []string
	for _, r := range hostmon.DefaultRules() {
		parts = append(parts, r.Name+"="+example(r))
	}
	return strings.Join(parts, " ")
}

const usageHead = `Usage: stepmon [flags]

Monitors this host: runs the collectors every interval, raises WARNING,
CRITICAL and recovery alerts, prints every STEP event and publishes each on
a TCP data flow registered in the name service as --name and --directory.
Runs until SIGINT or SIGTERM.

Flags:
`

// parseArgs reads the command line and the config file into o.
func parseArgs(args []string, stderr io.Writer, hostname string) (*options, error) {
	o := &options{}
	fs := flags(o, hostname)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w (see stepmon -h)", err)
	}
	if h, _ := fs.GetBool("help"); h {
		fmt.Fprint(stderr, usageHead, fs.FlagUsages())
		return nil, pflag.ErrHelp
	}
	if v, _ := fs.GetBool("version"); v {
		return nil, errVersion
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see stepmon -h)", fs.Arg(0))
	}
	if path, _ := fs.GetString("config"); path != "" {
		fromCmdline := map[string]bool{}
		fs.Visit(func(f *pflag.Flag) { fromCmdline[f.Name] = true })
		cmdThresholds := o.thresholds
		fileThresholds, err := applyConfigFile(fs, path, fromCmdline)
		if err != nil {
			return nil, err
		}
		o.thresholds = append(fileThresholds, cmdThresholds...)
	}
	switch {
	case o.interval < 10*time.Millisecond:
		return nil, fmt.Errorf("--interval %v: want at least 10ms", o.interval)
	case o.cooldown < 0:
		return nil, fmt.Errorf("--cooldown %v is negative", o.cooldown)
	case o.hysteresis < 0 || o.hysteresis >= 100:
		return nil, fmt.Errorf("--hysteresis %v: want a percent from 0 to below 100", o.hysteresis)
	case len(o.name) > namesvc.MaxNameLen || len(o.directory) > namesvc.MaxNameLen:
		return nil, fmt.Errorf("--name and --directory may have at most %d bytes", namesvc.MaxNameLen)
	}
	if _, err := o.processes.hostmon(); err != nil {
		return nil, err
	}
	// Read now, so that a bad file stops stepmon before it starts; the
	// name-service client of feed.register shows it.
	tok, err := cli.LoadToken(o.tokenFile)
	if err != nil {
		return nil, err
	}
	o.token = tok
	files, _ := cli.TLSFilesOrEnv(o.tlsFiles)
	if o.tls, err = cli.LoadTLS(files); err != nil {
		return nil, err
	}
	return o, nil
}

// alertConfig turns the alert options into an AlertConfig.
func (o *options) alertConfig(log *slog.Logger) (hostmon.AlertConfig, error) {
	rules, err := applyThresholds(hostmon.DefaultRules(), o.thresholds)
	if err != nil {
		return hostmon.AlertConfig{}, err
	}
	h := o.hysteresis / 100
	if h == 0 {
		h = -1 // none
	}
	if rules == nil {
		rules = []hostmon.Rule{} // every rule turned off; nil would mean the defaults
	}
	return hostmon.AlertConfig{Rules: rules, Cooldown: o.cooldown, Hysteresis: h, Logger: log}, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	hostname, err := os.Hostname()
	if err != nil || hostname == "" {
		hostname = "localhost"
	}
	o, err := parseArgs(args, stderr, hostname)
	if errors.Is(err, errVersion) {
		fmt.Fprintln(stdout, cli.Version("stepmon"))
		return pflag.ErrHelp // done, as after -h
	}
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	log, err := cli.NewLogger(stderr, o.logFormat, level)
	if err != nil {
		return fmt.Errorf("--log-format: %w", err)
	}
	slog.SetDefault(log)

	acfg, err := o.alertConfig(log.With("component", "alerts"))
	if err != nil {
		return err
	}
	alerter, err := hostmon.NewAlerter(acfg)
	if err != nil {
		return err
	}
	env := hostmon.Env{Hostname: hostname, IP: hostIP()}
	cfg := hostmon.Config{Env: env, Interval: o.interval, Paths: o.paths, Logger: log.With("component", "collectors")}
	cfg.Processes, _ = o.processes.hostmon() // checked by parseArgs
	var services *stkdServices
	if o.stkdHTTP != "" {
		if services, err = newStkdServices(o.stkdHTTP); err != nil {
			return err
		}
		cfg.Services = services.get
	}

	f, err := newFeed(o.listen, log.With("component", "feed"))
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			f.close()
		}
	}()
	sinks := []func(*step.Step){f.publish}
	if !o.quiet {
		color := false
		if file, ok := stdout.(*os.File); ok {
			color = !o.json && isTerminal(file)
		}
		sinks = append(sinks, newConsole(stdout, o.json, color, o.eventsOnly, log).print)
	}
	mon, err := hostmon.NewMonitor(hostmon.MonitorConfig{Config: cfg, Collectors: o.collectors, Alerter: alerter, Sinks: sinks})
	if err != nil {
		return fmt.Errorf("--collectors: %w", err)
	}
	if o.nameServer != "" {
		if err := f.register(o.nameServer, o.token, o.tls, o.name, o.directory); err != nil {
			mon.Close()
			return err
		}
	}
	log.Info("stepmon running", "feed", "tcp:"+f.pub.Addr().Addr.String(), "registered_as", "tcp:"+f.addr.String(),
		"name", o.name, "directory", o.directory, "name_server", o.nameServer,
		"collectors", strings.Join(mon.Names(), ","), "skipped", strings.Join(mon.Skipped(), ","),
		"interval", o.interval, "host", hostname, "ip", env.IP)
	mon.Run(ctx)
	log.Info("stepmon stopping", "steps", mon.Stats().Steps, "alerts", mon.Stats().Alerts)
	closed = true
	return f.close()
}

// hostIP returns the host's first IPv4 address on an interface that is up
// and not loopback, or "" without one.
func hostIP() string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	return ""
}
