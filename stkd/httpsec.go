package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/httpd"
)

// The HTTP UI's protection (package httpd's guard): the names and origins
// it answers besides its own, its token, and the refusal to serve the
// network without one.

// tokenEnv names the environment variable holding the HTTP token when
// --http-token-file is not given. The token is never a flag's value: the
// command line is visible to every user of the host (ps).
const tokenEnv = "STKD_HTTP_TOKEN"

// minTokenLen is the shortest token stkd takes; one of 32 random bytes
// (head -c 32 /dev/urandom | base64) is what it should be.
const minTokenLen = 16

// httpSecurity is what the HTTP flags ask of the UI's guard.
type httpSecurity struct {
	hosts         []string // --http-host
	origins       []string // --http-origin
	tokenFile     string   // --http-token-file
	tokenForReads bool     // --http-token-for-reads
	insecure      bool     // --http-insecure
}

// addHTTPFlags defines the HTTP security flags on fs, into f.
func addHTTPFlags(fs *pflag.FlagSet, f *config) {
	fs.StringArrayVar(&f.httpSec.hosts, "http-host", nil, "a further name the HTTP UI answers to (repeatable), e.g. the host's DNS name or a reverse proxy's; localhost, loopback and this host's addresses always work, any other Host header gets 421 (defeats DNS rebinding); \"*\" allows any")
	fs.StringArrayVar(&f.httpSec.origins, "http-origin", nil, "a further web origin, scheme://host[:port], whose pages may POST to the HTTP API and open its streams (repeatable); the UI's own pages always may, other sites' get 403")
	fs.StringVar(&f.httpSec.tokenFile, "http-token-file", "", "file holding the HTTP token (default: $"+tokenEnv+"): POSTs, event streams, the WebSocket and the pages then need it (Authorization: Bearer TOKEN, or sign in once at /login), and so do reads from other hosts; at least 16 characters, e.g. head -c 32 /dev/urandom | base64")
	fs.BoolVar(&f.httpSec.tokenForReads, "http-token-for-reads", false, "with a token: API reads and /metrics need it from loopback too (use behind a reverse proxy on this host, where every request comes from loopback)")
	fs.BoolVar(&f.httpSec.insecure, "http-insecure", false, "serve the HTTP UI on an address other than loopback without a token (refused otherwise): anyone who reaches it can post STEPs and read everything")
}

func init() {
	// With -c, only flags listed here win over the file's settings.
	flagFields["http-host"] = func(d, s *config) { d.httpSec.hosts = s.httpSec.hosts }
	flagFields["http-origin"] = func(d, s *config) { d.httpSec.origins = s.httpSec.origins }
	flagFields["http-token-file"] = func(d, s *config) { d.httpSec.tokenFile = s.httpSec.tokenFile }
	flagFields["http-token-for-reads"] = func(d, s *config) { d.httpSec.tokenForReads = s.httpSec.tokenForReads }
	flagFields["http-insecure"] = func(d, s *config) { d.httpSec.insecure = s.httpSec.insecure }
}

// isLoopbackListen reports whether the HTTP address addr ("ip:port",
// "localhost:port") listens on loopback only. ":port", 0.0.0.0, [::] and
// host names other than localhost do not.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// resolve checks the HTTP security settings for the UI on addr, loads the
// token (from --http-token-file, else $STKD_HTTP_TOKEN), and returns them
// as the part of httpd.Config they set. It refuses a UI on an address
// other than loopback without a token, unless --http-insecure, and then
// warns loudly. getenv is os.Getenv outside tests.
func (h httpSecurity) resolve(addr string, getenv func(string) string, log *slog.Logger) (httpd.Config, error) {
	var cfg httpd.Config
	if addr == "" {
		return cfg, nil
	}
	var errs []error
	for _, o := range h.origins {
		if _, err := httpd.ParseOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("--http-origin: %w", err))
		}
	}
	for _, n := range h.hosts {
		if n == "" || strings.ContainsAny(n, "/ ") {
			errs = append(errs, fmt.Errorf("--http-host %q: want a host name or IP address, without scheme or port", n))
		}
	}
	token, from := "", ""
	switch {
	case h.tokenFile != "":
		b, err := os.ReadFile(h.tokenFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--http-token-file: %w", err))
			break
		}
		token, from = strings.TrimSpace(string(b)), "--http-token-file "+h.tokenFile
		if fi, err := os.Stat(h.tokenFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the HTTP token file is readable by other users: chmod 600 it", "file", h.tokenFile, "mode", fi.Mode().Perm().String())
		}
	case getenv(tokenEnv) != "":
		token, from = strings.TrimSpace(getenv(tokenEnv)), "$"+tokenEnv
	}
	if from != "" && len(token) < minTokenLen {
		errs = append(errs, fmt.Errorf("%s: the HTTP token has %d characters, want at least %d (make one with: head -c 32 /dev/urandom | base64)", from, len(token), minTokenLen))
	}
	if h.tokenForReads && from == "" {
		errs = append(errs, fmt.Errorf("--http-token-for-reads needs a token: set --http-token-file PATH or $%s", tokenEnv))
	}
	if token == "" && !isLoopbackListen(addr) {
		if !h.insecure {
			errs = append(errs, fmt.Errorf("--http %s: the HTTP UI would serve the network without a token, letting anyone who reaches it post STEPs and read everything: set --http-token-file PATH (or $%s), bind it to 127.0.0.1, or pass --http-insecure to serve it open anyway", addr, tokenEnv))
		} else {
			log.Warn("!!! INSECURE: the HTTP UI serves the network with no token (--http-insecure): anyone who reaches it can post STEPs and read every service, name and event; set --http-token-file PATH or $"+tokenEnv, "http", addr)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	cfg.AllowedHosts, cfg.AllowedOrigins = h.hosts, h.origins
	cfg.Token, cfg.TokenForReads = token, h.tokenForReads
	if token != "" {
		log.Info("the HTTP UI needs its token for posts, streams and pages (sign in at /login)", "token_from", from, "token_for_reads", h.tokenForReads)
	}
	return cfg, nil
}

// httpCfgKeys are the config-file lines of the HTTP UI's settings
// (cfglines.go), each named after its flag: "http-host: NAME...",
// "http-origin: ORIGIN...", "http-token-file: FILE",
// "http-token-for-reads: yes|no", "http-insecure: yes|no" and (tls.go)
// "http-tls: yes|no". Lists may span several lines.
var httpCfgKeys = []string{"http-host", "http-origin", "http-token-file", "http-token-for-reads", "http-insecure", "http-tls"}

func init() {
	cfgSettings["http-host"] = cfgSetting{list: true, apply: func(c *config, v []string) error {
		c.httpSec.hosts = append(c.httpSec.hosts, v...)
		return nil
	}}
	cfgSettings["http-origin"] = cfgSetting{list: true, apply: func(c *config, v []string) error {
		c.httpSec.origins = append(c.httpSec.origins, v...)
		return nil
	}}
	cfgSettings["http-token-file"] = stringSetting(true, func(c *config) *string { return &c.httpSec.tokenFile })
	cfgSettings["http-token-for-reads"] = yesNoSetting(func(c *config) *bool { return &c.httpSec.tokenForReads })
	cfgSettings["http-insecure"] = yesNoSetting(func(c *config) *bool { return &c.httpSec.insecure })
}
