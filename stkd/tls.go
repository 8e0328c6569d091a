package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/cli"
)

// tlsSettings are the TLS flags: extra name-server and monitor listeners
// inside TLS and HTTPS for the UI, all with one certificate (reloaded when
// its files change), mutual TLS when a client CA is given. Plain listeners
// stay as they are: C programs cannot speak TLS. The same certificate is
// the client certificate of the monitor's and the STEP bus's connections
// to a tls: --name-server (one identity per host, as Consul's agents
// have), with --tls-ca the CAs trusted there.
type tlsSettings struct {
	names    string // --names-tls "ip:port", "" for none
	monitor  string // --monitor-tls "ip:port", "" for none
	cert     string // --tls-cert
	key      string // --tls-key
	clientCA string // --tls-client-ca: mutual TLS
	ca       string // --tls-ca: the CAs trusted for a tls: --name-server
	http     bool   // --http-tls
}

func addTLSFlags(fs *pflag.FlagSet, f *config) {
	fs.StringVar(&f.tls.names, "names-tls", "", "also serve names inside TLS on this ip:port (clients dial tls:ip:port); needs --tls-cert and --tls-key")
	fs.StringVar(&f.tls.monitor, "monitor-tls", "", "also receive monitoring inside TLS on this ip:port (services report to tls:ip:port; it is not registered under --monitor-name, whose C clients cannot speak TLS); needs --tls-cert and --tls-key")
	fs.StringVar(&f.tls.cert, "tls-cert", "", "PEM certificate (chain) of --names-tls, --monitor-tls and --http-tls, and the client certificate shown to a tls: --name-server that asks for one (for that use, default: $"+cli.TLSCertEnv+"; a certificate serving both needs both the serverAuth and the clientAuth extended key usage); a renewed file is used for new connections within a second, no restart")
	fs.StringVar(&f.tls.key, "tls-key", "", "PEM private key of --tls-cert (reloaded with it; for a tls: --name-server, default: $"+cli.TLSKeyEnv+")")
	fs.StringVar(&f.tls.ca, "tls-ca", "", "PEM CA certificates trusted for a tls: --name-server, where the monitor and the STEP bus register when stkd runs no name server itself (default: $"+cli.TLSCAEnv+"; without either, the system's roots)")
	fs.StringVar(&f.tls.clientCA, "tls-client-ca", "", "PEM CA certificates: with it, TLS clients (names, monitor and HTTPS) must show a certificate one of them issued (mutual TLS)")
	fs.BoolVar(&f.tls.http, "http-tls", false, "serve the HTTP UI over HTTPS on --http, with --tls-cert and --tls-key")
}

func init() {
	// With -c, only flags listed here win over the file's settings.
	flagFields["names-tls"] = func(d, s *config) { d.tls.names = s.tls.names }
	flagFields["monitor-tls"] = func(d, s *config) { d.tls.monitor = s.tls.monitor }
	flagFields["tls-cert"] = func(d, s *config) { d.tls.cert = s.tls.cert }
	flagFields["tls-key"] = func(d, s *config) { d.tls.key = s.tls.key }
	flagFields["tls-client-ca"] = func(d, s *config) { d.tls.clientCA = s.tls.clientCA }
	flagFields["tls-ca"] = func(d, s *config) { d.tls.ca = s.tls.ca }
	flagFields["http-tls"] = func(d, s *config) { d.tls.http = s.tls.http }

	// Their config-file lines (cfglines.go): files relative to the
	// config file.
	cfgSettings["names-tls"] = stringSetting(false, func(c *config) *string { return &c.tls.names })
	cfgSettings["monitor-tls"] = stringSetting(false, func(c *config) *string { return &c.tls.monitor })
	cfgSettings["tls-cert"] = stringSetting(true, func(c *config) *string { return &c.tls.cert })
	cfgSettings["tls-key"] = stringSetting(true, func(c *config) *string { return &c.tls.key })
	cfgSettings["tls-client-ca"] = stringSetting(true, func(c *config) *string { return &c.tls.clientCA })
	cfgSettings["tls-ca"] = stringSetting(true, func(c *config) *string { return &c.tls.ca })
	cfgSettings["http-tls"] = yesNoSetting(func(c *config) *bool { return &c.tls.http })
}

// serverConfig checks the TLS flags and loads the certificate, key and
// client CAs; it returns nil when no listener asks for TLS. client says
// that --tls-cert and --tls-key are also the client certificate of a
// tls: --name-server (clientTLS), so that they may come without a
// listener.
func (t tlsSettings) serverConfig(httpAddr string, client bool, log *slog.Logger) (*tls.Config, error) {
	uses := t.names != "" || t.monitor != "" || t.http && httpAddr != ""
	switch {
	case t.http && httpAddr == "":
		return nil, errors.New("--http-tls: the HTTP UI is off (--http \"\"); drop --http-tls or give --http an address")
	case !uses && client && t.clientCA != "":
		return nil, errors.New("--tls-client-ca is for --names-tls, --monitor-tls and --http-tls; none is given (the CAs of a tls: --name-server are --tls-ca)")
	case !uses && client:
		return nil, nil
	case !uses && (t.cert != "" || t.key != "" || t.clientCA != ""):
		return nil, errors.New("--tls-cert, --tls-key and --tls-client-ca are for --names-tls, --monitor-tls and --http-tls, and for a tls: --name-server; none is given")
	case !uses:
		return nil, nil
	case t.cert == "" || t.key == "":
		return nil, errors.New("--names-tls, --monitor-tls and --http-tls need --tls-cert FILE and --tls-key FILE (PEM)")
	}
	cfg, err := flow.NewServerTLS(t.cert, t.key, t.clientCA, log)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key/--tls-client-ca: %w", err)
	}
	return cfg, nil
}

// remoteNameServer returns the address of --name-server when stkd opens
// clients to it: its monitor or STEP bus runs and it runs no name server
// of its own (they then use its plain TCP listener).
func (c config) remoteNameServer() (flow.Address, bool) {
	if c.names || !c.monitor && !c.steps || c.nameServer == "" {
		return flow.Address{}, false
	}
	a, err := flow.ParseAddress(c.nameServer)
	return a, err == nil // validate reports a bad one
}

// clientTLS returns the TLS configuration of the monitor's and the STEP
// bus's clients of a tls: --name-server: the CAs of --tls-ca and the
// client certificate of --tls-cert and --tls-key, each file defaulting
// to its $STK_TLS_* variable as for the other programs (cli.LoadTLS: the
// certificate is reloaded when its files change). It returns nil when
// --name-server is not a tls: address stkd dials, or names no file (the
// system's roots, no certificate).
func (c config) clientTLS() (*tls.Config, error) {
	a, remote := c.remoteNameServer()
	switch {
	case remote && a.TLS:
	case c.tls.ca != "" && c.names:
		return nil, errors.New("--tls-ca is for a tls: --name-server, and stkd runs its own name server (its monitor and STEP bus register there): drop --tls-ca")
	case c.tls.ca != "":
		return nil, fmt.Errorf("--tls-ca is for a tls: --name-server, and --name-server %q is not one: give tls:ip:port or drop --tls-ca", c.nameServer)
	default:
		return nil, nil
	}
	files, _ := cli.TLSFilesOrEnv(cli.TLSFiles{CA: c.tls.ca, Cert: c.tls.cert, Key: c.tls.key})
	cfg, err := cli.LoadTLS(files)
	if err != nil {
		return nil, fmt.Errorf("--name-server %s: %w", c.nameServer, err)
	}
	return cfg, nil
}
