// Command stkd is the STK daemon: it runs the name server that publishers
// and subscribers use to find each other.
//
// With no arguments it serves names on TCP and STK-UDP 127.0.0.1:20002, as
// the C stkd does with its shipped stkd.cfg. It accepts the C stkd.cfg
// format (-c file) and runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/namesvc"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "stkd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	c := config{names: true, namesTCP: defaultNamesTCP, namesUDP: defaultNamesUDP}
	fs := pflag.NewFlagSet("stkd", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.StringVarP(&c.cfgFile, "config", "c", "", "read a C-format stkd.cfg (lines \"named: -T ip:port -U ip:port -M group:port\" and \"httpd: ...\") instead of the built-in defaults")
	forceNamed := fs.BoolP("named", "N", false, "with -c: run the name server even if the file has no named: line")
	forceHttpd := fs.BoolP("httpd", "H", false, "with -c: ask for the monitor and HTTP UI even if the file has no httpd: line (not in this build yet)")
	fs.StringVar(&c.namesTCP, "names-tcp", c.namesTCP, "name server TCP address, ip:port")
	fs.StringVar(&c.namesUDP, "names-udp", c.namesUDP, "name server STK-UDP address, ip:port (\"\" turns it off)")
	fs.StringVar(&c.namesMcast, "names-multicast", "", "also serve names on this multicast group:port, e.g. 224.10.10.20:20002")
	fs.DurationVar(&c.udpTTL, "udp-ttl", namesvc.DefaultUDPTTL, "forget a UDP registration this long after its client's last request or keep-alive (the C stknamed never does; negative: never)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	help := fs.BoolP("help", "h", false, "show this help")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: stkd [flags]\n\nRuns the STK name server until SIGINT or SIGTERM.\nDefaults: names on tcp and udp 127.0.0.1:20002.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w (see stkd -h)", err)
	}
	if *help {
		fs.Usage()
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see stkd -h)", fs.Arg(0))
	}
	if c.cfgFile != "" {
		explicitTCP, explicitUDP := fs.Changed("names-tcp"), fs.Changed("names-udp")
		tcp, udp := c.namesTCP, c.namesUDP
		if err := loadCfgFile(&c, c.cfgFile, *forceNamed, *forceHttpd); err != nil {
			return err
		}
		if explicitTCP { // flags given on the command line win over the file
			c.namesTCP = tcp
		}
		if explicitUDP {
			c.namesUDP = udp
		}
	} else {
		c.httpdWanted = *forceHttpd
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d, err := start(c, log)
	if err != nil {
		return err
	}
	log.Info("stkd running", "names_tcp", d.namesTCP, "names_udp", d.namesUDP, "names_multicast", d.namesMcast)
	<-ctx.Done()
	stop()
	log.Info("stkd stopping")
	return d.close()
}

// daemon is a running stkd.
type daemon struct {
	names                          *namesvc.Server
	namesTCP, namesUDP, namesMcast string
}

// start brings up what c asks for.
func start(c config, log *slog.Logger) (*daemon, error) {
	if c.httpdWanted {
		log.Warn("the monitor and HTTP UI are not in this build yet; ignoring the httpd: line", "args", strings.Join(c.httpdArgs, " "))
	}
	if !c.names {
		return nil, fmt.Errorf("nothing to run: the config file has no named: line (add one, or pass -N)")
	}
	d := &daemon{}
	srv, err := namesvc.NewServer(namesvc.ServerConfig{UDPTTL: c.udpTTL, Logger: log.With("component", "names")})
	if err != nil {
		return nil, err
	}
	d.names = srv
	ap, err := srv.ServeTCP(c.namesTCP)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("%w (is another stkd running? use --names-tcp to pick another address)", err)
	}
	d.namesTCP = ap.String()
	if c.namesUDP != "" {
		if ap, err = srv.ServeUDP(c.namesUDP); err != nil {
			srv.Close()
			return nil, fmt.Errorf("%w (use --names-udp \"\" to run without UDP)", err)
		}
		d.namesUDP = ap.String()
	}
	if c.namesMcast != "" {
		if ap, err = srv.ServeMulticast(c.namesMcast); err != nil {
			srv.Close()
			return nil, err
		}
		d.namesMcast = ap.String()
	}
	return d, nil
}

func (d *daemon) close() error {
	return d.names.Close()
}
