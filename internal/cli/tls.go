package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
)

// The environment variables a program takes its TLS files from when the
// --tls-ca, --tls-cert and --tls-key flags do not name them.
const (
	TLSCAEnv   = "STK_TLS_CA"
	TLSCertEnv = "STK_TLS_CERT"
	TLSKeyEnv  = "STK_TLS_KEY"
)

// TLSFiles are the PEM files of a TLS client: CA names the CAs to trust
// ("" for the system's roots), Cert and Key the client certificate shown
// to a server asking for one (mutual TLS; both or neither).
type TLSFiles struct {
	CA, Cert, Key string
}

// IsZero reports whether no file is named.
func (f TLSFiles) IsZero() bool { return f == TLSFiles{} }

// tlsFlags are the --tls-* flags Parse adds to a program with
// --name-server.
type tlsFlags struct{ ca, cert, key *string }

func addTLSFlags(fs *pflag.FlagSet) *tlsFlags {
	if fs.Lookup("name-server") == nil || fs.Lookup("tls-ca") != nil {
		return nil
	}
	return &tlsFlags{
		ca: fs.String("tls-ca", "", "CA certificates (PEM file) to trust for a tls: name server or monitor (default: $"+TLSCAEnv+"; without either, the system's roots); "+
			"ignored for tcp: and udp: addresses"),
		cert: fs.String("tls-cert", "", "client certificate (PEM file) shown to a tls: server asking for one, mutual TLS as stkd --tls-client-ca does; needs --tls-key (default: $"+TLSCertEnv+")"),
		key:  fs.String("tls-key", "", "private key (PEM file) of --tls-cert (default: $"+TLSKeyEnv+")"),
	}
}

// files returns the flags' files, each taken from its environment
// variable when its flag is not given, and whether any flag was given on
// the command line.
func (f *tlsFlags) files() (TLSFiles, bool) {
	return TLSFilesOrEnv(TLSFiles{CA: *f.ca, Cert: *f.cert, Key: *f.key})
}

// TLSFilesOrEnv returns given with each empty file taken from its
// environment variable ($STK_TLS_CA, $STK_TLS_CERT, $STK_TLS_KEY), and
// whether given named any: for programs with flag parsing of their own.
func TLSFilesOrEnv(given TLSFiles) (TLSFiles, bool) {
	pick := func(file, env string) string {
		if file != "" {
			return file
		}
		return os.Getenv(env)
	}
	return TLSFiles{CA: pick(given.CA, TLSCAEnv), Cert: pick(given.Cert, TLSCertEnv), Key: pick(given.Key, TLSKeyEnv)}, !given.IsZero()
}

// LoadTLS returns the client configuration of files (flow.NewClientTLS:
// the certificate is reloaded when its files change), or nil when files
// names none. Errors say which file failed and are marked BadUsage.
func LoadTLS(files TLSFiles) (*tls.Config, error) {
	if files.IsZero() {
		return nil, nil
	}
	if (files.Cert == "") != (files.Key == "") {
		return nil, BadUsage(fmt.Errorf("--tls-cert and --tls-key go together (or $%s and $%s): a client certificate needs its private key", TLSCertEnv, TLSKeyEnv))
	}
	cfg, err := flow.NewClientTLS(files.CA, files.Cert, files.Key, slog.New(defaultHandler{}))
	if err != nil {
		return nil, BadUsage(fmt.Errorf("--tls-*: %w", err))
	}
	return cfg, nil
}

// The TLS client configuration of the program, set by UseTLS.
var clientTLS struct {
	mu    sync.Mutex
	cfg   *tls.Config
	given bool // by flags on the command line, not the environment only
}

// UseTLS loads files (LoadTLS) and makes the result the configuration
// TLS returns, which DialNames uses for a tls: name server. given says
// the files were named on the command line (a tcp: -R then gets a
// warning: the user asked for TLS and is not getting it). Parse calls it.
func UseTLS(files TLSFiles, given bool) error {
	cfg, err := LoadTLS(files)
	if err != nil {
		return err
	}
	clientTLS.mu.Lock()
	clientTLS.cfg, clientTLS.given = cfg, given && cfg != nil
	clientTLS.mu.Unlock()
	return nil
}

// TLS returns a copy of the program's TLS client configuration (of
// --tls-ca, --tls-cert, --tls-key or their environment variables, loaded
// by Parse), or nil when none was given: a tls: address then trusts the
// system's roots and shows no certificate. For stk.Options.TLS and
// smartbeat.SenderOptions.Flow.TLS; DialNames applies it itself.
func TLS() *tls.Config {
	clientTLS.mu.Lock()
	defer clientTLS.mu.Unlock()
	if clientTLS.cfg == nil {
		return nil
	}
	return clientTLS.cfg.Clone()
}

// WarnIfPlain logs a warning when --tls-* flags were given on the command
// line but a, the address of flag (-R, -m), is not a tls: one: the user
// asked for TLS and is not getting it. DialNames calls it for -R.
func WarnIfPlain(log *slog.Logger, flag string, a flow.Address) {
	clientTLS.mu.Lock()
	given := clientTLS.given
	clientTLS.mu.Unlock()
	if !given || a.TLS || a.Lookup != "" {
		return
	}
	if log == nil {
		log = slog.Default()
	}
	log.Warn("--tls-* given but the address is not a tls: one: the connection is plain, neither encrypted nor authenticated", "flag", flag, "address", a.String())
}

// NotConnected adds to err, the failure of a request to the name server
// at addr (the value of -R), why the client is not connected
// (WhyNotConnected). err is returned as it is when the client is
// connected.
func NotConnected(names *namesvc.Client, addr string, err error) error {
	if err == nil || names == nil || connectedForGood(names) {
		return err
	}
	return fmt.Errorf("%w; %s", err, WhyNotConnected(names, addr))
}

// WhyNotConnected says why names, a client of the name server at addr,
// is not connected: its last connection error, if any, and what to check
// (the TLS files when a tls: server refused the handshake, else whether
// stkd runs: NamesHint).
func WhyNotConnected(names *namesvc.Client, addr string) string {
	if last := LastAttempt(names, addr); last != "" {
		if flow.IsHandshakeError(names.DialError()) {
			return last
		}
		return last + "; " + NamesHint
	}
	return NamesHint
}

// LastAttempt returns "last connection attempt: <error>" for a client
// of the name server at addr that is not connected, followed by TLSHint
// when the error is a refused or untrusted TLS handshake; "" when the
// client is connected or has not failed yet. For errors that already say
// NamesHint (package stk's).
func LastAttempt(names *namesvc.Client, addr string) string {
	if names == nil || connectedForGood(names) {
		return ""
	}
	derr := names.DialError()
	if derr == nil {
		return ""
	}
	if a, err := flow.ParseAddress(addr); err == nil && a.TLS && flow.IsHandshakeError(derr) {
		return fmt.Sprintf("last connection attempt: %v; %s", derr, TLSHint)
	}
	return fmt.Sprintf("last connection attempt: %v", derr)
}

// connectedForGood reports whether names is connected and its server has
// not refused its TLS handshake: under TLS 1.3 a client whose certificate
// the server refuses is connected for a moment after each handshake, until
// the refusal arrives, and its last refusal is what explains a timeout.
func connectedForGood(names *namesvc.Client) bool {
	return names.Connected() && !flow.IsHandshakeError(names.DialError())
}

// TLSHint is appended to errors of a tls: name server that refused the
// handshake or was not trusted.
const TLSHint = "check that --tls-ca (or $" + TLSCAEnv + ") holds the CA of the server's certificate and that " +
	"--tls-cert/--tls-key are issued by a CA the server trusts (stkd --tls-client-ca)"

// defaultHandler sends records to slog.Default() at the time of logging,
// so that the certificate reloader made in Parse logs through the logger
// the program sets up afterwards (Logger, NewLogger and slog.SetDefault).
type defaultHandler struct{}

func (defaultHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return slog.Default().Handler().Enabled(ctx, l)
}

func (defaultHandler) Handle(ctx context.Context, r slog.Record) error {
	return slog.Default().Handler().Handle(ctx, r)
}

func (h defaultHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return slog.Default().Handler().WithAttrs(as)
}

func (h defaultHandler) WithGroup(name string) slog.Handler {
	return slog.Default().Handler().WithGroup(name)
}
