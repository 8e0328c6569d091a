package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"fmt"
	"github.com/stk-go/stk/cluster"
	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/httpd"
	"github.com/stk-go/stk/internal/cli"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
	"github.com/stk-go/stk/stepbus"
)

// daemon is a running stkd: what start brought up, with the addresses it
// bound (ports chosen by the system included).
type daemon struct {
	names   *namesvc.Server
	cluster *cluster.Node // nil without --cluster
	monitor *smartbeat.Monitor
	steps   *stepbus.Bus
	ui      *httpd.Server
	uiDone  chan error

	// clusterSvcs publishes the monitor's services to the cluster (nil
	// without --cluster or a monitor).
	clusterSvcs *cluster.Services

	closeOnce sync.Once
	closeErr  error

	namesTCP, namesUDP, namesMcast string
	namesTLS                       string
	monTCP, monUDP, monMcast       string
	monTLS                         string
	http                           string
	stepsFeed, stepsArchive        string
}

// start brings up what c asks for; on error, nothing is left running.
func start(c config, log *slog.Logger) (d *daemon, err error) {
	// Everything is checked before anything starts, so that one run reports
	// every problem and a failed start leaves nothing behind.
	if err := validate(c, c.origins()); err != nil {
		return nil, err
	}
	if err := preflight(c, c.origins()); err != nil {
		return nil, err
	}
	if err := checkAdvertise(c.advertise); err != nil {
		return nil, err
	}
	uiSec, err := c.httpSec.resolve(c.http, os.Getenv, log.With("component", "http"))
	if err != nil {
		return nil, err
	}
	policy, err := loadPolicy(c.policy)
	if err != nil {
		return nil, err
	}
	if err := cli.UseToken(c.tokenFile); err != nil { // for the monitor's and the STEP bus's clients
		return nil, err
	}
	nsTLS, err := c.clientTLS() // for a tls: --name-server
	if err != nil {
		return nil, err
	}
	_, remoteNS := c.remoteNameServer()
	tlsCfg, err := c.tls.serverConfig(c.http, remoteNS && nsTLS != nil, log.With("component", "tls"))
	if err != nil {
		return nil, err
	}
	d = &daemon{}
	started := d // "return nil, err" clears d before the deferred call runs
	defer func() {
		if err != nil {
			started.close()
		}
	}()
	if c.names {
		if d.names, err = namesvc.NewServer(namesvc.ServerConfig{UDPTTL: c.udpTTL, Logger: log.With("component", "names"),
			Limits: c.limits.names, Flow: c.limits.namesFlow, Policy: policy}); err != nil {
			return nil, err
		}
		if d.namesTCP, err = serve(d.names.ServeTCP, c.namesTCP, "--names-tcp"); err != nil {
			return nil, err
		}
		if d.namesUDP, err = serve(d.names.ServeUDP, c.namesUDP, "--names-udp"); err != nil {
			return nil, err
		}
		if d.namesMcast, err = serve(d.names.ServeMulticast, c.namesMcast, "--names-multicast"); err != nil {
			return nil, err
		}
		serveTLS := func(addr string) (netip.AddrPort, error) { return d.names.ServeTLS(addr, tlsCfg) }
		if d.namesTLS, err = serve(serveTLS, c.tls.names, "--names-tls"); err != nil {
			return nil, err
		}
		if d.cluster, err = startCluster(c.cluster, d.names, log); err != nil {
			return nil, err
		}
	}
	if c.monitor {
		ns := c.nameServer
		if d.names != nil {
			ns = "tcp:" + d.namesTCP // register with our own name server
		}
		d.monitor, err = smartbeat.NewMonitor(smartbeat.MonitorConfig{
			Name: c.monName, Linger: c.monLinger, NameServerAddr: ns, NameServerTLS: nsTLS, AdvertiseHost: c.advertise,
			Logger: log.With("component", "monitor"), Flow: c.limits.monFlow,
			MaxRecords: c.limits.monRecords, MaxRecordsPerSource: c.limits.monPerSource, MaxHistory: c.limits.monMaxHistory,
		})
		if err != nil {
			return nil, err
		}
		if d.monTCP, err = serve(d.monitor.ServeTCP, c.monTCP, "--monitor-tcp"); err != nil {
			return nil, err
		}
		if d.monUDP, err = serve(d.monitor.ServeUDP, c.monUDP, "--monitor-udp"); err != nil {
			return nil, err
		}
		if d.monMcast, err = serve(d.monitor.ServeMulticast, c.monMcast, "--monitor-multicast"); err != nil {
			return nil, err
		}
		monTLS := func(addr string) (netip.AddrPort, error) { return d.monitor.ServeTLS(addr, tlsCfg) }
		if d.monTLS, err = serve(monTLS, c.tls.monitor, "--monitor-tls"); err != nil {
			return nil, err
		}
	}
	if err := d.startClusterServices(); err != nil {
		return nil, err
	}
	if c.steps {
		if err := d.startSteps(c, nsTLS, log.With("component", "steps")); err != nil {
			return nil, err
		}
	}
	if c.http != "" {
		uiTLS := tlsCfg
		if !c.tls.http {
			uiTLS = nil
		}
		if err := d.startUI(c.http, uiSec, uiTLS, log.With("component", "http")); err != nil {
			return nil, err
		}
	}
	d.logAdvertised(c, log)
	return d, nil
}

// startUI serves the HTTP status UI on addr, guarded as sec says (its
// AllowedHosts, AllowedOrigins, Token and TokenForReads), over HTTPS when
// tlsCfg is set.
func (d *daemon) startUI(addr string, sec httpd.Config, tlsCfg *tls.Config, log *slog.Logger) error {
	// The UI shows what stkd --version prints ("stkd " comes from the UI).
	cfg := sec
	cfg.Flows, cfg.Logger, cfg.Version = d.flows, log, strings.TrimPrefix(cli.Version("stkd"), "stkd ")
	if d.monitor != nil { // a nil pointer must not become a non-nil interface
		cfg.Monitor = d.monitor
	}
	if d.names != nil {
		cfg.Names = d.names
	}
	cfg.Steps = d.steps
	if d.cluster != nil {
		cfg.Cluster = clusterUI{d.cluster, d.clusterSvcs}
	}
	ui, err := httpd.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("HTTP UI: %w (use --http to pick another address, or \"\" to turn it off)", err)
	}
	d.ui, d.http, d.uiDone = ui, ln.Addr().String(), make(chan error, 1)
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
		log.Info("HTTP UI served over HTTPS", "addr", "https://"+d.http+"/", "mutual_tls", tlsCfg.ClientCAs != nil)
	}
	go func() { d.uiDone <- ui.Serve(ln) }()
	return nil
}

// flows lists the daemon's listeners for the UI.
func (d *daemon) flows() []httpd.FlowInfo {
	var out []httpd.FlowInfo
	add := func(component string, fs []flow.Flow) {
		for _, f := range fs {
			proto := f.Protocol().String()
			if _, ok := f.(*flow.TLSServer); ok {
				proto = "tls"
			}
			fi := httpd.FlowInfo{
				Name:     fmt.Sprintf("%s-%v-%v", component, proto, f.LocalAddr()),
				Protocol: proto,
				Addr:     f.LocalAddr(),
				Stats:    f.Stats(),
			}
			if l, ok := f.(interface{ AcceptError() error }); ok { // listeners
				if err := l.AcceptError(); err != nil {
					fi.Error = err.Error()
				}
			}
			out = append(out, fi)
		}
	}
	if d.names != nil {
		add("names", d.names.Flows())
	}
	if d.monitor != nil {
		add("monitor", d.monitor.Flows())
	}
	if d.steps != nil {
		add("steps", d.steps.Flows())
	}
	return out
}

// serve starts one listener unless addr is empty, and returns the address
// it bound.
func serve(listen func(string) (netip.AddrPort, error), addr, flag string) (string, error) {
	if addr == "" {
		return "", nil
	}
	ap, err := listen(addr)
	if err != nil {
		return "", fmt.Errorf("%w (is another stkd running? use %s to pick another address, or \"\" to turn it off)", err, flag)
	}
	return ap.String(), nil
}

func (d *daemon) logAttrs() []any {
	return []any{"names_tcp", d.namesTCP, "names_udp", d.namesUDP, "names_multicast", d.namesMcast, "names_tls", d.namesTLS,
		"monitor_tcp", d.monTCP, "monitor_udp", d.monUDP, "monitor_multicast", d.monMcast, "monitor_tls", d.monTLS, "http", d.http,
		"steps_feed", d.stepsFeed, "steps_archive", d.stepsArchive, "cluster_node", d.clusterNode()}
}

// close stops everything: the UI (its streams read the STEP bus), the STEP
// bus (writing what its archive holds), then the monitor (it unregisters
// nothing, but its name-service client goes before the name server).
func (d *daemon) close() error {
	d.closeOnce.Do(func() { d.closeErr = d.closeAll() })
	return d.closeErr
}

// closeAll is close's body; it runs once (a second wait on uiDone would
// block forever).
func (d *daemon) closeAll() error {
	var errs []error
	if d.ui != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, d.ui.Shutdown(ctx))
		cancel()
		if err := <-d.uiDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if d.steps != nil {
		errs = append(errs, d.steps.Close())
	}
	if d.clusterSvcs != nil { // before the monitor and the node it reads and writes through
		errs = append(errs, d.clusterSvcs.Close())
	}
	if d.monitor != nil {
		errs = append(errs, d.monitor.Close())
	}
	if d.cluster != nil { // before the name server: it revokes the node's lease
		errs = append(errs, d.cluster.Close())
	}
	if d.names != nil {
		errs = append(errs, d.names.Close())
	}
	return errors.Join(errs...)
}
