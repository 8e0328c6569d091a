package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

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

	http string // HTTP UI "ip:port", "" for none

	steps                bool          // run the STEP bus
	stepsFeed            string        // its feed flow "ip:port", "" for none
	stepsFeedName        string        // name the feed registers
	stepsDirectory       string        // name the publishers register under
	stepsHistory         int           // STEPs kept in memory
	stepsArchive         string        // archive directory, "" for none
	stepsArchiveMaxBytes int64         // rotate a segment at this many uncompressed bytes
	stepsArchiveMaxAge   time.Duration // rotate a segment at this age
	stepsArchiveKeep     int           // rotated segments kept

	logLevel string
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

// parseCfgFile reads a C stkd.cfg: lines "named: <args>" and "httpd: <args>"
// (prefix case-insensitive); other lines are ignored, as in C.
func parseCfgFile(r io.Reader) (named, httpd []string, hasNamed, hasHttpd bool, err error) {
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10)) // C reads at most 64 KB
	for sc.Scan() {
		key, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "named":
			named, hasNamed = strings.Fields(rest), true
		case "httpd":
			httpd, hasHttpd = strings.Fields(rest), true
		}
	}
	return named, httpd, hasNamed, hasHttpd, sc.Err()
}

// applyNamedArgs applies the C stknamed flags of a "named:" line: -T
// ip[:port] (TCP; C ignores it, stkd honours it), -U -|ip[:port] (STK-UDP,
// off without it), -M -|group[:port] (multicast), -P (ignored, as in C).
func applyNamedArgs(c *config, args []string) error {
	fs := pflag.NewFlagSet("named", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	tcp := fs.StringP("tcp", "T", "", "")
	udp := fs.StringP("udp", "U", "", "")
	mc := fs.StringP("multicast", "M", "", "")
	fs.StringP("protocol", "P", "", "")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("named: line: %w (accepted: -T ip[:port] -U -|ip[:port] -M -|group[:port] -P x)", err)
	}
	c.namesUDP, c.namesMcast = "", ""
	var err error
	if fs.Changed("tcp") {
		if c.namesTCP, err = hostPort(*tcp, "127.0.0.1", namesPort); err != nil {
			return fmt.Errorf("named: -T: %w", err)
		}
	}
	if fs.Changed("udp") {
		if c.namesUDP, err = hostPort(*udp, "127.0.0.1", namesPort); err != nil {
			return fmt.Errorf("named: -U: %w", err)
		}
	}
	if fs.Changed("multicast") {
		if c.namesMcast, err = hostPort(*mc, mcastGroup, namesPort); err != nil {
			return fmt.Errorf("named: -M: %w", err)
		}
	}
	return nil
}

// applyHttpdArgs applies the C stkhttpd flags of an "httpd:" line: -p port
// (HTTP), -R [proto:]ip[:port] (name server), -N name, -L linger seconds,
// -T -|ip[:port] (STK TCP), -U -|ip[:port] (STK-UDP, off without it),
// -M -|group[:port] (multicast).
func applyHttpdArgs(c *config, args []string) error {
	fs := pflag.NewFlagSet("httpd", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	port := fs.StringP("port", "p", "", "")
	ns := fs.StringP("name-server", "R", "", "")
	name := fs.StringP("name", "N", "", "")
	linger := fs.IntP("linger", "L", 0, "")
	tcp := fs.StringP("tcp", "T", "", "")
	udp := fs.StringP("udp", "U", "", "")
	mc := fs.StringP("multicast", "M", "", "")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("httpd: line: %w (accepted: -p port -R [proto:]ip[:port] -N name -L seconds -T -|ip[:port] -U -|ip[:port] -M -|group[:port])", err)
	}
	c.monUDP, c.monMcast = "", ""
	var err error
	if fs.Changed("port") {
		if c.http, err = hostPort(*port, "127.0.0.1", httpPort); err != nil {
			return fmt.Errorf("httpd: -p: %w", err)
		}
		if !strings.Contains(*port, ":") { // mongoose syntax: a bare port
			c.http = "127.0.0.1:" + *port
		}
	}
	if fs.Changed("name-server") {
		c.nameServer = *ns
	}
	if fs.Changed("name") {
		c.monName = *name
	}
	if fs.Changed("linger") {
		c.monLinger = time.Duration(*linger) * time.Second
	}
	if fs.Changed("tcp") {
		if c.monTCP, err = hostPort(*tcp, "127.0.0.1", monitorPort); err != nil {
			return fmt.Errorf("httpd: -T: %w", err)
		}
	}
	if fs.Changed("udp") {
		if c.monUDP, err = hostPort(*udp, "127.0.0.1", monitorPort); err != nil {
			return fmt.Errorf("httpd: -U: %w", err)
		}
	}
	if fs.Changed("multicast") {
		if c.monMcast, err = hostPort(*mc, mcastGroup, monitorPort); err != nil {
			return fmt.Errorf("httpd: -M: %w", err)
		}
	}
	return nil
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
	var p uint16
	if _, err := fmt.Sscan(port, &p); err != nil {
		return "", fmt.Errorf("bad port in %q", arg)
	}
	return fmt.Sprintf("%s:%d", host, p), nil
}

// loadCfgFile applies a C stkd.cfg file to c: a part without its line does
// not run, unless forced (-N, -H).
func loadCfgFile(c *config, path string, forceNamed, forceHttpd bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the config file: %w (use -c to name another, or run without -c for the built-in defaults)", err)
	}
	named, httpd, hasNamed, hasHttpd, err := parseCfgFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	c.names = hasNamed || forceNamed
	c.monitor = hasHttpd || forceHttpd
	if hasNamed {
		if err := applyNamedArgs(c, named); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if hasHttpd {
		if err := applyHttpdArgs(c, httpd); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}
