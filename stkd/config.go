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
)

// Default addresses: the ports of STK, bound to loopback (the C stknamed
// binds TCP to 0.0.0.0 whatever -T says, bug B4; use --names-tcp to serve
// other hosts).
const (
	defaultNamesTCP = "127.0.0.1:20002"
	defaultNamesUDP = "127.0.0.1:20002"
	defaultMcast    = "224.10.10.20"
	namesPort       = 20002
	monitorPort     = 20001
)

// config is what stkd runs.
type config struct {
	names       bool   // run the name server
	namesTCP    string // "ip:port"
	namesUDP    string // "ip:port", "" for none
	namesMcast  string // "group:port", "" for none
	udpTTL      time.Duration
	httpdArgs   []string // the httpd: line, kept to report what this build cannot run yet
	httpdWanted bool
	logLevel    string
	cfgFile     string
}

// parseCfgFile reads a C stkd.cfg: lines "named: <args>" and "httpd: <args>"
// (prefix case-insensitive); other lines are ignored, as in C. It returns the
// arguments of each line, split on white space.
func parseCfgFile(r io.Reader) (named, httpd []string, hasNamed, hasHttpd bool, err error) {
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10)) // C reads at most 64 KB
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		key, rest, ok := strings.Cut(line, ":")
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

// applyNamedArgs applies the C stknamed flags of a "named:" line:
// -T ip[:port] (TCP; C ignores it, we honour it), -U -|ip[:port] (STK-UDP),
// -M -|group[:port] (multicast), -P (accepted and ignored, as in C).
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
	} else {
		c.namesUDP = "" // C: no -U, no UDP listener
	}
	if fs.Changed("multicast") {
		if c.namesMcast, err = hostPort(*mc, defaultMcast, namesPort); err != nil {
			return fmt.Errorf("named: -M: %w", err)
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
	var p uint16
	if _, err := fmt.Sscan(port, &p); err != nil {
		return "", fmt.Errorf("bad port in %q", arg)
	}
	return fmt.Sprintf("%s:%d", host, p), nil
}

// loadCfgFile applies a C stkd.cfg file to c.
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
	c.httpdWanted = hasHttpd || forceHttpd
	c.httpdArgs = httpd
	if hasNamed {
		if err := applyNamedArgs(c, named); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}
