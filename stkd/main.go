// Command stkd is the STK daemon: the name server that publishers and
// subscribers use to find each other, the monitor that services report
// their state and smartbeats to, and the STEP bus that keeps and streams
// the events of the host monitors (stepmon).
//
// With no arguments it runs what the C stkd runs with its shipped
// stkd.cfg, on loopback: names on TCP and STK-UDP 127.0.0.1:20002, the
// monitor on TCP and STK-UDP 127.0.0.1:20001, registered as "monitor". It
// accepts the C stkd.cfg format (-c file) and runs until SIGINT or SIGTERM.
//
// The STEP bus (package stepbus) follows every publisher registered under
// the name "step", keeps the newest 100 000 events in memory for the HTTP
// API, and republishes them on a feed flow registered as "steps" (on a
// loopback port the system picks). It writes no archive unless
// --steps-archive names a directory, for instance
// ~/.local/state/stk/steps: segments of zstd-compressed JSON lines,
// rotated hourly or at 64 MiB of JSON, the newest 168 kept, readable with
// zstd -d; a kill -9 loses at most the last second of events.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/internal/cli"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "stkd:", err)
		os.Exit(1)
	}
}

// Ports of --port-base N: each listener keeps its address and moves to N
// plus its default port's last digits, so the defaults are --port-base
// 20000 with the HTTP UI on 20080 instead of 8080.
const (
	portBaseNames    = 2  // names TCP, STK-UDP and multicast: N+2 (20002)
	portBaseMonitor  = 1  // monitor TCP, STK-UDP and multicast: N+1 (20001)
	portBaseFeed     = 3  // STEP feed: N+3 (by default the system picks)
	portBaseNamesTLS = 12 // names inside TLS, when --names-tls is given: N+12
	portBaseMonTLS   = 13 // the monitor inside TLS, when --monitor-tls is given: N+13
	portBaseHTTP     = 80 // HTTP UI: N+80 (8080)
)

// applyPortBase moves every listener of c that is on to port base plus its
// offset, keeping its IP address or group.
func applyPortBase(c *config, base int) error {
	if base < 1 || base+portBaseHTTP > 65535 {
		return fmt.Errorf("--port-base %d: want 1 to %d (the HTTP UI goes on N+%d)", base, 65535-portBaseHTTP, portBaseHTTP)
	}
	move := func(addr *string, off int) {
		if *addr == "" {
			return
		}
		host, _, err := net.SplitHostPort(*addr)
		if err != nil { // validate reports it
			return
		}
		*addr = net.JoinHostPort(host, strconv.Itoa(base+off))
	}
	for _, p := range []*string{&c.namesTCP, &c.namesUDP, &c.namesMcast} {
		move(p, portBaseNames)
	}
	move(&c.tls.names, portBaseNamesTLS)
	move(&c.tls.monitor, portBaseMonTLS)
	for _, p := range []*string{&c.monTCP, &c.monUDP, &c.monMcast} {
		move(p, portBaseMonitor)
	}
	move(&c.stepsFeed, portBaseFeed)
	move(&c.http, portBaseHTTP)
	if !c.names && c.nameServer == defaultConfig().nameServer {
		// A monitor without its own name server registers with the one of
		// the same port base.
		c.nameServer = fmt.Sprintf("tcp:127.0.0.1:%d", base+portBaseNames)
	}
	return nil
}

// flagFields copies each command-line flag's value between configs, so that
// flags given explicitly win over a config file.
var flagFields = map[string]func(dst, src *config){
	"names-tcp":         func(d, s *config) { d.namesTCP = s.namesTCP },
	"names-udp":         func(d, s *config) { d.namesUDP = s.namesUDP },
	"names-multicast":   func(d, s *config) { d.namesMcast = s.namesMcast },
	"udp-ttl":           func(d, s *config) { d.udpTTL = s.udpTTL },
	"monitor-tcp":       func(d, s *config) { d.monTCP = s.monTCP },
	"monitor-udp":       func(d, s *config) { d.monUDP = s.monUDP },
	"monitor-multicast": func(d, s *config) { d.monMcast = s.monMcast },
	"monitor-name":      func(d, s *config) { d.monName = s.monName },
	"monitor-linger":    func(d, s *config) { d.monLinger = s.monLinger },
	"name-server":       func(d, s *config) { d.nameServer = s.nameServer },
	"advertise":         func(d, s *config) { d.advertise = s.advertise },
	"http":              func(d, s *config) { d.http = s.http },
	"log-level":         func(d, s *config) { d.logLevel = s.logLevel },
	"log-format":        func(d, s *config) { d.logFormat = s.logFormat },
	"policy":            func(d, s *config) { d.policy = s.policy },
	"token-file":        func(d, s *config) { d.tokenFile = s.tokenFile },

	"steps":                   func(d, s *config) { d.steps = s.steps },
	"steps-feed":              func(d, s *config) { d.stepsFeed = s.stepsFeed },
	"steps-feed-name":         func(d, s *config) { d.stepsFeedName = s.stepsFeedName },
	"steps-directory":         func(d, s *config) { d.stepsDirectory = s.stepsDirectory },
	"steps-accept":            func(d, s *config) { d.stepsAccept = s.stepsAccept },
	"steps-history":           func(d, s *config) { d.stepsHistory = s.stepsHistory },
	"steps-archive":           func(d, s *config) { d.stepsArchive = s.stepsArchive },
	"steps-archive-max-bytes": func(d, s *config) { d.stepsArchiveMaxBytes = s.stepsArchiveMaxBytes },
	"steps-archive-max-age":   func(d, s *config) { d.stepsArchiveMaxAge = s.stepsArchiveMaxAge },
	"steps-archive-keep":      func(d, s *config) { d.stepsArchiveKeep = s.stepsArchiveKeep },
}

// parseArgs turns the command line into the configuration to run: the
// built-in defaults or the config file (-c), then --port-base, then the
// flags given, which win. It returns a nil config for -h and --version,
// after printing what they ask for to stdout.
func parseArgs(args []string, stdout io.Writer) (*config, error) {
	f := defaultConfig()
	fs := pflag.NewFlagSet("stkd", pflag.ContinueOnError)
	fs.SortFlags = false
	cfgFile := fs.StringP("config", "c", "", "read a C-format stkd.cfg (\"named: -T ip:port -U ip:port -M group:port\", \"httpd: -p port -T ip:port -U ip:port -M group:port -N name -L secs -R addr\") instead of the built-in defaults; flags given here still win")
	forceNamed := fs.BoolP("named", "N", false, "with -c: run the name server even if the file has no named: line")
	forceHttpd := fs.BoolP("httpd", "H", false, "with -c: run the monitor even if the file has no httpd: line")
	fs.StringVar(&f.namesTCP, "names-tcp", f.namesTCP, "name server TCP address, ip:port")
	fs.StringVar(&f.namesUDP, "names-udp", f.namesUDP, "name server STK-UDP address, ip:port (\"\" turns it off)")
	fs.StringVar(&f.namesMcast, "names-multicast", "", "also serve names on this multicast group:port, e.g. 224.10.10.20:20002")
	fs.DurationVar(&f.udpTTL, "udp-ttl", f.udpTTL, "a UDP client silent this long (no request or keep-alive) is treated as disconnected: its registrations then linger (the C stknamed never forgets them; negative: never)")
	fs.StringVar(&f.monTCP, "monitor-tcp", f.monTCP, "monitor STK TCP address, ip:port (\"\" turns it off)")
	fs.StringVar(&f.monUDP, "monitor-udp", f.monUDP, "monitor STK-UDP address, ip:port (\"\" turns it off)")
	fs.StringVar(&f.monMcast, "monitor-multicast", "", "also receive monitoring on this multicast group:port, e.g. 224.10.10.20:20001")
	fs.StringVar(&f.monName, "monitor-name", f.monName, "name the monitor registers its addresses under (clients use -m lookup:NAME)")
	fs.DurationVar(&f.monLinger, "monitor-linger", f.monLinger, "linger of the monitor's name registration")
	fs.StringVar(&f.nameServer, "name-server", f.nameServer, "name server the monitor and the STEP bus use when stkd runs none itself, [tcp|udp|tls:]ip[:port]; a tls: one is dialled with --tls-ca and, when it asks for a client certificate, --tls-cert and --tls-key ($STK_TLS_CA, $STK_TLS_CERT, $STK_TLS_KEY by default)")
	fs.StringVar(&f.advertise, "advertise", "", "IP registered for the monitor and the STEP feed when they listen on 0.0.0.0: the address other hosts reach this host at (default: the address of the interface toward the name server, else the host's primary address)")
	fs.StringVar(&f.http, "http", f.http, "HTTP status UI address, ip:port (\"\" turns it off)")
	addHTTPFlags(fs, &f)
	addTLSFlags(fs, &f)
	fs.BoolVar(&f.steps, "steps", f.steps, "run the STEP bus: follow the host monitors registered under --steps-directory, keep their events for the HTTP API, republish them on a feed flow (--steps=false turns it off)")
	fs.StringVar(&f.stepsFeed, "steps-feed", f.stepsFeed, "STEP feed TCP address, ip:port; port 0 lets the system pick one, subscribers find it by --steps-feed-name (\"\" turns the feed off)")
	fs.StringVar(&f.stepsFeedName, "steps-feed-name", f.stepsFeedName, "name the STEP feed registers with the name server")
	fs.StringVar(&f.stepsDirectory, "steps-directory", f.stepsDirectory, "name every STEP publisher (stepmon) registers its feed under; the bus follows them all")
	fs.StringVar(&f.stepsAccept, "steps-accept", f.stepsAccept, "follow only the STEP publishers whose registered address is in these networks, comma-separated CIDRs (10.1.0.0/16,127.0.0.1); others are ignored and logged (\"\": any)")
	fs.IntVar(&f.stepsHistory, "steps-history", f.stepsHistory, "STEP events kept in memory for queries")
	fs.StringVar(&f.stepsArchive, "steps-archive", f.stepsArchive, "archive every STEP event in this directory (created if missing), e.g. ~/.local/state/stk/steps: zstd-compressed JSON lines, readable with zstd -d; a kill -9 loses at most the last second (\"\": no archive)")
	fs.Int64Var(&f.stepsArchiveMaxBytes, "steps-archive-max-bytes", f.stepsArchiveMaxBytes, "start a new archive segment after this many bytes of JSON (uncompressed)")
	fs.DurationVar(&f.stepsArchiveMaxAge, "steps-archive-max-age", f.stepsArchiveMaxAge, "start a new archive segment after this long")
	fs.IntVar(&f.stepsArchiveKeep, "steps-archive-keep", f.stepsArchiveKeep, "archive segments kept besides the current one; older ones are deleted")
	addClusterFlags(fs, &f.cluster)
	portBase := fs.Int("port-base", 0, fmt.Sprintf("move every listener to port N plus an offset, to run a second stkd beside the first: names on N+%d, monitor on N+%d, STEP feed on N+%d, HTTP on N+%d, --names-tls on N+%d, --monitor-tls on N+%d (e.g. 21000: 21002, 21001, 21003, 21080, 21012, 21013); flags naming an address still win", portBaseNames, portBaseMonitor, portBaseFeed, portBaseHTTP, portBaseNamesTLS, portBaseMonTLS))
	fs.StringVar(&f.logLevel, "log-level", f.logLevel, "log level: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", f.logFormat, "log format: text (key=value lines) or json (one JSON object per line, for journald or log collectors)")
	fs.StringVar(&f.policy, "policy", "", "the name server's access policy file: who may register, look up and subscribe to which names (modes open, first-owner, default-deny; rules by name, source network, token, transport); SIGHUP reloads it; see examples/stkd-policy.conf (\"\": open, as the C stkd)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the token (NAME:SECRET) stkd's own monitor and STEP bus show the name server, when its policy asks for one (default: $STK_TOKEN)")
	newToken := fs.String("new-token", "", "print a new random token for NAME (the client's token file line and the policy file's line) and exit")
	limitArgs := fs.StringArray("limit", nil, "change a limit on what clients may do, KEY=VALUE (repeatable; VALUE off removes a bound); --limits lists the keys and defaults")
	listLimits := fs.Bool("limits", false, "print the limits stkd applies to clients, with their defaults, and exit")
	version := fs.Bool("version", false, "print the version and exit")
	help := fs.BoolP("help", "h", false, "show this help")
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: stkd [flags]\n\nRuns the STK name server, the monitor and the STEP bus until SIGINT or SIGTERM.\nDefaults: names on tcp and udp 127.0.0.1:20002, the monitor on tcp and udp 127.0.0.1:20001,\nthe HTTP UI on 127.0.0.1:8080, the STEP feed on a loopback port registered as \"steps\", no STEP archive.\nEvery address is checked before anything starts; a second stkd on this host needs --port-base N.\nA commented config file: examples/stkd.cfg in the source tree.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w (see stkd -h)", err)
	}
	if *help {
		fs.Usage()
		return nil, nil
	}
	if *version {
		fmt.Fprintln(stdout, cli.Version("stkd"))
		return nil, nil
	}
	if *listLimits {
		printLimits(stdout)
		return nil, nil
	}
	if fs.Changed("new-token") {
		return nil, printNewToken(stdout, *newToken)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see stkd -h)", fs.Arg(0))
	}
	c := f           // defaults and flags
	var errs []error // every problem at once, the file's and the flags'
	if *cfgFile != "" {
		c = defaultConfig()
		o, err := loadCfgFile(&c, *cfgFile, *forceNamed, *forceHttpd)
		errs = append(errs, err)
		c.where = &o
	}
	if fs.Changed("port-base") {
		if err := applyPortBase(&c, *portBase); err != nil {
			return nil, err
		}
	}
	if *cfgFile != "" || fs.Changed("port-base") {
		fs.Visit(func(fl *pflag.Flag) {
			if cp := flagFields[fl.Name]; cp != nil {
				cp(&c, &f)
				if c.where != nil {
					delete(*c.where, fl.Name) // the flag, not the file, set it
				}
			}
		})
	}
	for _, kv := range *limitArgs { // after the file's limit: lines, so they win
		if err := c.limits.apply(kv); err != nil {
			errs = append(errs, fmt.Errorf("--limit %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &c, nil
}

func run(args []string) error {
	cp, err := parseArgs(args, os.Stdout)
	if cp == nil || err != nil {
		return err
	}
	c := *cp
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	log, err := cli.NewLogger(os.Stderr, c.logFormat, level)
	if err != nil {
		return fmt.Errorf("--log-format: %w", err)
	}
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d, err := start(c, log)
	if err != nil {
		return err
	}
	d.reloadOnHangup(ctx, c.policy, log.With("component", "names"))
	log.Info("stkd running", d.logAttrs()...)
	select {
	case <-ctx.Done():
	case <-d.clusterFailed(): // another live node has our --node-id
		stop()
		log.Error("stkd stopping: it cannot join the cluster", "err", d.cluster.Err())
		return errors.Join(d.cluster.Err(), d.close())
	}
	stop()
	log.Info("stkd stopping")
	return d.close()
}
