package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/flow"
)

// tlsSettings are the TLS flags: extra name-server and monitor listeners
// inside TLS and HTTPS for the UI, all with one certificate (reloaded when
// its files change), mutual TLS when a client CA is given. Plain listeners
// stay as they are: C programs cannot speak TLS.
type tlsSettings struct {
	names    string // --names-tls "ip:port", "" for none
	monitor  string // --monitor-tls "ip:port", "" for none
	cert     string // --tls-cert
	key      string // --tls-key
	clientCA string // --tls-client-ca: mutual TLS
	http     bool   // --http-tls
}

func addTLSFlags(fs *pflag.FlagSet, f *config) {
	fs.StringVar(&f.tls.names, "names-tls", "", "also serve names inside TLS on this ip:port (clients dial tls:ip:port); needs --tls-cert and --tls-key")
	fs.StringVar(&f.tls.monitor, "monitor-tls", "", "also receive monitoring inside TLS on this ip:port (services report to tls:ip:port; it is not registered under --monitor-name, whose C clients cannot speak TLS); needs --tls-cert and --tls-key")
	fs.StringVar(&f.tls.cert, "tls-cert", "", "PEM certificate (chain) of --names-tls, --monitor-tls and --http-tls; a renewed file is served to new connections within a second, no restart")
	fs.StringVar(&f.tls.key, "tls-key", "", "PEM private key of --tls-cert (reloaded with it)")
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
	flagFields["http-tls"] = func(d, s *config) { d.tls.http = s.tls.http }

	// Their config-file lines (cfglines.go): files relative to the
	// config file.
	cfgSettings["names-tls"] = stringSetting(false, func(c *config) *string { return &c.tls.names })
	cfgSettings["monitor-tls"] = stringSetting(false, func(c *config) *string { return &c.tls.monitor })
	cfgSettings["tls-cert"] = stringSetting(true, func(c *config) *string { return &c.tls.cert })
	cfgSettings["tls-key"] = stringSetting(true, func(c *config) *string { return &c.tls.key })
	cfgSettings["tls-client-ca"] = stringSetting(true, func(c *config) *string { return &c.tls.clientCA })
	cfgSettings["http-tls"] = yesNoSetting(func(c *config) *bool { return &c.tls.http })
}

// serverConfig checks the TLS flags and loads the certificate, key and
// client CAs; it returns nil when no listener asks for TLS.
func (t tlsSettings) serverConfig(httpAddr string, log *slog.Logger) (*tls.Config, error) {
	uses := t.names != "" || t.monitor != "" || t.http && httpAddr != ""
	switch {
	case t.http && httpAddr == "":
		return nil, errors.New("--http-tls: the HTTP UI is off (--http \"\"); drop --http-tls or give --http an address")
	case !uses && (t.cert != "" || t.key != "" || t.clientCA != ""):
		return nil, errors.New("--tls-cert, --tls-key and --tls-client-ca are for --names-tls, --monitor-tls and --http-tls; none is given")
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
