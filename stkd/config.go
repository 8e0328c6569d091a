package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
	"github.com/stk-go/stk/stepbus"
)

// Ports of STK; stkd binds them to loopback by default (the C daemons bind
// TCP to 0.0.0.0; pass an address to serve other hosts).
const (
	namesPort   = 20002
	monitorPort = 20001
	httpPort    = 8080
	mcastGroup  = "224.10.10.20"
)

// config is what stkd runs. Its zero value runs nothing; defaultConfig is
// what the shipped C stkd.cfg asks for.
type config struct {
	names      bool          // run the name server
	namesTCP   string        // "ip:port"
	namesUDP   string        // "ip:port", "" for none
	namesMcast string        // "group:port", "" for none
	udpTTL     time.Duration // of UDP registrations

	monitor    bool          // run the monitor (and the HTTP UI, if http is set)
	monTCP     string        // "ip:port", "" for none
	monUDP     string        // "ip:port", "" for none
	monMcast   string        // "group:port", "" for none
	monName    string        // name registered for the monitor
	monLinger  time.Duration // its linger
	nameServer string        // where the monitor registers when stkd runs no name server
	advertise  string        // IP registered for listeners on 0.0.0.0, "" for flow.AdvertiseIP's choice

	http    string       // HTTP UI "ip:port", "" for none
	httpSec httpSecurity // its Host, Origin and token settings; see httpsec.go

	tls tlsSettings // --names-tls, --monitor-tls, --http-tls and their certificate; see tls.go

	steps                bool          // run the STEP bus
	stepsFeed            string        // its feed flow "ip:port", "" for none
	stepsFeedName        string        // name the feed registers
	stepsDirectory       string        // name the publishers register under
	stepsAccept          string        // networks the bus follows publishers in, CIDRs; "" for any
	stepsHistory         int           // STEPs kept in memory
	stepsArchive         string        // archive directory, "" for none
	stepsArchiveMaxBytes int64         // rotate a segment at this many uncompressed bytes
	stepsArchiveMaxAge   time.Duration // rotate a segment at this age
	stepsArchiveKeep     int           // rotated segments kept

	logLevel  string
	logFormat string // "text" or "json"

	limits limits // what clients may do; see limits.go

	policy    string // the name server's access policy file, "" for none (open); see policy.go
	tokenFile string // the token stkd's own name-service clients show, "" for $STK_TOKEN

	cluster clusterSettings // --cluster, --node-id, --cluster-lease-ttl; see cluster.go

	where *origins // where a config file set each setting, for messages; nil: flags and defaults
}

// origins returns where c's config file set each setting (none without one).
func (c config) origins() origins {
	if c.where == nil {
		return nil
	}
	return *c.where
}

// defaultConfig matches the C stkd with its shipped stkd.cfg
// ("httpd: -T 127.0.0.1:20001 -U 127.0.0.1:20001", "named: -T
// 127.0.0.1:20002 -U 127.0.0.1:20002"), with every address on loopback,
// plus the STEP bus (which C lacks): its feed on a loopback port the
// system picks (subscribers find it by name), no archive.
func defaultConfig() config {
	return config{
		names:      true,
		namesTCP:   fmt.Sprintf("127.0.0.1:%d", namesPort),
		namesUDP:   fmt.Sprintf("127.0.0.1:%d", namesPort),
		udpTTL:     namesvc.DefaultUDPTTL,
		monitor:    true,
		monTCP:     fmt.Sprintf("127.0.0.1:%d", monitorPort),
		monUDP:     fmt.Sprintf("127.0.0.1:%d", monitorPort),
		monName:    smartbeat.DefaultMonitorName,
		monLinger:  smartbeat.DefaultMonitorLinger,
		nameServer: fmt.Sprintf("tcp:127.0.0.1:%d", namesPort),
		http:       fmt.Sprintf("127.0.0.1:%d", httpPort),
		logLevel:   "info",
		logFormat:  "text",

		steps:                true,
		stepsFeed:            "127.0.0.1:0",
		stepsFeedName:        stepbus.DefaultFeedName,
		stepsDirectory:       stepbus.DefaultDirectory,
		stepsHistory:         stepbus.DefaultHistory,
		stepsArchiveMaxBytes: stepbus.DefaultArchiveMaxBytes,
		stepsArchiveMaxAge:   stepbus.DefaultArchiveMaxAge,
		stepsArchiveKeep:     stepbus.DefaultArchiveKeep,
	}
}

// cfgLine is a "named:" or "httpd:" line of a C stkd.cfg.
type cfgLine struct {
	n    int      // line number, from 1; 0: no such line
	args []string // the arguments after the colon
}

// parseCfgFile reads a C stkd.cfg: lines "named: <args>" and "httpd: <args>"
// (prefix case-insensitive); other lines are ignored, as in C. A second
// line of either kind is an error (which one C would use is not obvious).
// Lines "limit: KEY=VALUE ..." (stkd's own; C ignores them) are returned in
// order in lims.
func parseCfgFile(r io.Reader, path string) (named, httpd cfgLine, lims []cfgLine, err error) {
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10)) // C reads at most 64 KB
	var errs []error
	for n := 1; sc.Scan(); n++ {
		key, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		var l *cfgLine
		switch k := strings.ToLower(strings.TrimSpace(key)); k {
		case "named":
			l = &named
		case "httpd":
			l = &httpd
		case "limit":
			lims = append(lims, cfgLine{n: n, args: strings.Fields(rest)})
			continue
		default:
			continue
		}
		if l.n != 0 {
			errs = append(errs, fmt.Errorf("%s:%d: a second %s: line (the first is line %d): keep one", path, n, strings.ToLower(strings.TrimSpace(key)), l.n))
			continue
		}
		*l = cfgLine{n: n, args: strings.Fields(rest)}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("reading %s: %w", path, err))
	}
	return named, httpd, lims, errors.Join(errs...)
}

// origins says where a setting of a config file came from, by the name of
// the flag that sets it: "stkd.cfg:2 (named: -T)". Settings absent from it
// came from flags or defaults.
type origins map[string]string

// applyNamedArgs applies the C stknamed flags of a "named:" line: -T
// ip[:port] (TCP; C ignores it, stkd honours it), -U -|ip[:port] (STK-UDP,
// off without it), -M -|group[:port] (multicast), -P (ignored, as in C).
// Every bad argument is reported, not only the first.
func applyNamedArgs(c *config, args []string) error {
	return applyNamedLine(c, args, nil, "named:")
}

func applyNamedLine(c *config, args []string, o origins, where string) error {
	fs := pflag.NewFlagSet("named", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	tcp := fs.StringP("tcp", "T", "", "")
	udp := fs.StringP("udp", "U", "", "")
	mc := fs.StringP("multicast", "M", "", "")
	fs.StringP("protocol", "P", "", "")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s %w (accepted: -T ip[:port] -U -|ip[:port] -M -|group[:port] -P x)", where, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s unexpected argument %q (accepted: -T ip[:port] -U -|ip[:port] -M -|group[:port] -P x)", where, fs.Arg(0))
	}
	c.namesUDP, c.namesMcast = "", ""
	var errs []error
	set := func(flag, short, arg, defHost string, defPort int, multicast bool, dst *string) {
		if !fs.Changed(flag) {
			return
		}
		v, err := hostPort(arg, defHost, defPort)
		if err == nil {
			err = checkIPv4(v, multicast)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s -%s %s: %w", where, short, arg, err))
			return
		}
		*dst = v
		if o != nil {
			o[settingOf["named-"+flag]] = where + " -" + short
		}
	}
	set("tcp", "T", *tcp, "127.0.0.1", namesPort, false, &c.namesTCP)
	set("udp", "U", *udp, "127.0.0.1", namesPort, false, &c.namesUDP)
	set("multicast", "M", *mc, mcastGroup, namesPort, true, &c.namesMcast)
	return errors.Join(errs...)
}

// settingOf maps a C config line's flag to the stkd flag of the same
// setting, for origins.
var settingOf = map[string]string{
	"named-tcp": "names-tcp", "named-udp": "names-udp", "named-multicast": "names-multicast",
	"httpd-port": "http", "httpd-name-server": "name-server", "httpd-name": "monitor-name",
	"httpd-linger": "monitor-linger", "httpd-tcp": "monitor-tcp", "httpd-udp": "monitor-udp",
	"httpd-multicast": "monitor-multicast",
}

// applyHttpdArgs applies the C stkhttpd flags of an "httpd:" line: -p port
// (HTTP), -R [proto:]ip[:port] (name server), -N name, -L linger seconds,
// -T -|ip[:port] (STK TCP), -U -|ip[:port] (STK-UDP, off without it),
// -M -|group[:port] (multicast). Every bad argument is reported.
func applyHttpdArgs(c *config, args []string) error {
	return applyHttpdLine(c, args, nil, "httpd:")
}

func applyHttpdLine(c *config, args []string, o origins, where string) error {
	const accepted = "accepted: -p port -R [proto:]ip[:port] -N name -L seconds -T -|ip[:port] -U -|ip[:port] -M -|group[:port]"
	fs := pflag.NewFlagSet("httpd", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	port := fs.StringP("port", "p", "", "")
	ns := fs.StringP("name-server", "R", "", "")
	name := fs.StringP("name", "N", "", "")
	linger := fs.StringP("linger", "L", "", "")
	tcp := fs.StringP("tcp", "T", "", "")
	udp := fs.StringP("udp", "U", "", "")
	mc := fs.StringP("multicast", "M", "", "")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s %w (%s)", where, err, accepted)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s unexpected argument %q (%s)", where, fs.Arg(0), accepted)
	}
	c.monUDP, c.monMcast = "", ""
	var errs []error
	origin := func(flag, short string) {
		if o != nil {
			o[settingOf["httpd-"+flag]] = where + " -" + short
		}
	}
	bad := func(short, arg string, err error) {
		errs = append(errs, fmt.Errorf("%s -%s %s: %w", where, short, arg, err))
	}
	if fs.Changed("port") {
		arg := *port
		if !strings.Contains(arg, ":") { // mongoose syntax: a bare port
			arg = ":" + arg
		}
		v, err := hostPort(arg, "127.0.0.1", httpPort)
		if err == nil {
			err = checkIPv4(v, false)
		}
		if err != nil {
			bad("p", *port, err)
		} else {
			c.http = v
			origin("port", "p")
		}
	}
	if fs.Changed("name-server") {
		if _, err := flow.ParseAddress(*ns); err != nil || *ns == "" {
			bad("R", *ns, fmt.Errorf("want [tcp|udp|tls:]ip[:port]: %v", err))
		} else {
			c.nameServer = *ns
			origin("name-server", "R")
		}
	}
	if fs.Changed("name") {
		if *name == "" || len(*name) > namesvc.MaxNameLen {
			bad("N", *name, fmt.Errorf("want a name of 1 to %d bytes", namesvc.MaxNameLen))
		} else {
			c.monName = *name
			origin("name", "N")
		}
	}
	if fs.Changed("linger") {
		if secs, err := strconv.Atoi(*linger); err != nil || secs < 0 {
			bad("L", *linger, errors.New("want a whole number of seconds, 0 or more"))
		} else {
			c.monLinger = time.Duration(secs) * time.Second
			origin("linger", "L")
		}
	}
	set := func(flag, short, arg, defHost string, multicast bool, dst *string) {
		if !fs.Changed(flag) {
			return
		}
		v, err := hostPort(arg, defHost, monitorPort)
		if err == nil {
			err = checkIPv4(v, multicast)
		}
		if err != nil {
			bad(short, arg, err)
			return
		}
		*dst = v
		origin(flag, short)
	}
	set("tcp", "T", *tcp, "127.0.0.1", false, &c.monTCP)
	set("udp", "U", *udp, "127.0.0.1", false, &c.monUDP)
	set("multicast", "M", *mc, mcastGroup, true, &c.monMcast)
	return errors.Join(errs...)
}

// hostPort turns a C daemon address argument into "ip:port": "-" means
// defHost:defPort, a missing port means defPort.
func hostPort(arg, defHost string, defPort int) (string, error) {
	if arg == "-" || arg == "" {
		return fmt.Sprintf("%s:%d", defHost, defPort), nil
	}
	host, port, ok := strings.Cut(arg, ":")
	if !ok {
		port = fmt.Sprint(defPort)
	}
	if host == "" {
		host = defHost
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", fmt.Errorf("bad port %q: want a number from 0 to 65535", port)
	}
	return fmt.Sprintf("%s:%d", host, p), nil
}

// loadCfgFile applies a C stkd.cfg file to c: a part without its line does
// not run, unless forced (-N, -H). It checks every line and reports every
// error, each naming the file and line, and returns where each setting it
// applied came from.
func loadCfgFile(c *config, path string, forceNamed, forceHttpd bool) (origins, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the config file: %w (use -c to name another, or run without -c for the built-in defaults)", err)
	}
	named, httpd, lims, err := parseCfgFile(bytes.NewReader(b), path)
	errs := []error{err}
	errs = append(errs, cfgClusterLine(b, path, &c.cluster)) // cluster.go
	o := origins{}
	errs = append(errs, cfgSettingLines(b, path, c, o)) // cfglines.go: policy, http-*, tls-*, names-tls, monitor-tls
	c.names = named.n != 0 || forceNamed
	c.monitor = httpd.n != 0 || forceHttpd
	if named.n != 0 {
		errs = append(errs, applyNamedLine(c, named.args, o, fmt.Sprintf("%s:%d: named:", path, named.n)))
	}
	if httpd.n != 0 {
		errs = append(errs, applyHttpdLine(c, httpd.args, o, fmt.Sprintf("%s:%d: httpd:", path, httpd.n)))
	}
	for _, l := range lims {
		for _, kv := range l.args {
			if err := c.limits.apply(kv); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: limit: %w", path, l.n, err))
			}
		}
	}
	return o, errors.Join(errs...)
}
