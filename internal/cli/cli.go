// Package cli holds what the example programs share: the name-server flag,
// logging, signal handling and the throughput report. Each example's main
// stays a page of flags and library calls.
package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
)

// DefaultNameServer is the name server the examples use without -R.
const DefaultNameServer = "tcp:127.0.0.1:20002"

// Logger returns a logger for a CLI: warnings and errors only, unless
// verbose.
func Logger(verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	l := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(l)
	return l
}

// Exit statuses shared by the example programs; each documents what its
// job is, and so what status 1 means for it, in its -h text.
const (
	ExitOK     = 0 // the program did its job
	ExitFailed = 1 // it did not (the reason is on standard error)
	ExitUsage  = 2 // bad usage: unknown flag, bad flag value, wrong arguments
)

// ExitUsageText describes ExitUsage for Usage's exit-status lines.
const ExitUsageText = "bad usage: an unknown flag, a bad flag value or address, or the wrong number of arguments"

// usageError marks an error in the command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// BadUsage marks err as an error in the command line: Fail then exits with
// ExitUsage and points to -h.
func BadUsage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// IsBadUsage reports whether err was marked by BadUsage.
func IsBadUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// Fail prints err on one line of standard error, prefixed with the
// program's name, and exits: with ExitUsage (and a pointer to -h) for an
// error marked by BadUsage, else with ExitFailed.
func Fail(prog string, err error) {
	if IsBadUsage(err) {
		fmt.Fprintf(os.Stderr, "%s: %v (see %s -h)\n", prog, err, prog)
		os.Exit(ExitUsage)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
	os.Exit(ExitFailed)
}

// Usage sets fs's usage text: a synopsis line, a description, the flags
// and the exit statuses, one "N  meaning" line each (ExitUsage's line is
// added).
func Usage(fs *pflag.FlagSet, synopsis, description string, exits ...string) {
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: %s\n\n%s\n\nFlags:\n%s", synopsis, description, fs.FlagUsages())
		fmt.Fprintf(os.Stderr, "\nExit status:\n")
		for _, e := range exits {
			fmt.Fprintf(os.Stderr, "  %s\n", e)
		}
		fmt.Fprintf(os.Stderr, "  %d  %s\n", ExitUsage, ExitUsageText)
	}
}

// Parse parses args, prints the usage for -h and the version for
// --version and exits, and exits with ExitUsage and a pointer to -h on
// errors. It returns the positional arguments.
func Parse(fs *pflag.FlagSet, args []string, positional int) []string {
	var tokenFile *string
	if fs.Lookup("name-server") != nil && fs.Lookup("token-file") == nil {
		tokenFile = fs.String("token-file", "", "read the name-service token (NAME:SECRET) from this file, for a name server whose policy asks for one (default: $"+TokenEnv+"; a token is never taken on the command line, where ps shows it)")
	}
	tlsf := addTLSFlags(fs)
	help := fs.BoolP("help", "h", false, "show this help")
	version := new(bool)
	if fs.Lookup("version") == nil {
		fs.BoolVar(version, "version", false, "print the version and exit")
	}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v (see %s -h)\n", fs.Name(), err, fs.Name())
		os.Exit(ExitUsage)
	}
	if *help {
		fs.Usage()
		os.Exit(ExitOK)
	}
	if *version {
		fmt.Println(Version(fs.Name()))
		os.Exit(ExitOK)
	}
	if fs.NArg() != positional {
		fmt.Fprintf(os.Stderr, "%s: want %d argument(s), got %d (see %s -h)\n", fs.Name(), positional, fs.NArg(), fs.Name())
		os.Exit(ExitUsage)
	}
	path := ""
	if tokenFile != nil {
		path = *tokenFile
	}
	if err := UseToken(path); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v (see %s -h)\n", fs.Name(), err, fs.Name())
		os.Exit(ExitUsage)
	}
	if tlsf != nil {
		if err := UseTLS(tlsf.files()); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v (see %s -h)\n", fs.Name(), err, fs.Name())
			os.Exit(ExitUsage)
		}
	}
	return fs.Args()
}

// TokenEnv is the environment variable a program takes its name-service
// token from when no --token-file names one.
const TokenEnv = "STK_TOKEN"

// LoadToken returns the name-service token ("NAME:SECRET", as the name
// server's policy file defines it) of the file at path, or with path ""
// of the environment variable STK_TOKEN; "" if neither gives one.
// Surrounding white space is dropped.
func LoadToken(path string) (string, error) {
	tok, from := os.Getenv(TokenEnv), "$"+TokenEnv
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		tok, from = string(b), "--token-file "+path
	}
	tok, err := ParseToken(tok, from)
	if err == nil && tok == "" && path != "" {
		err = fmt.Errorf("%s is empty: want one line NAME:SECRET", from)
	}
	return tok, err
}

// ParseToken checks the text of a token file or of $STK_TOKEN and returns
// the token "NAME:SECRET" without the surrounding white space, or "" for
// blank text. from names where the text came from, for the error. The C
// binding uses it too.
func ParseToken(text, from string) (string, error) {
	tok := strings.TrimSpace(text)
	if tok == "" {
		return "", nil
	}
	name, secret, ok := strings.Cut(tok, ":")
	if !ok || name == "" || secret == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("%s: want one line NAME:SECRET, as the name server's policy file defines the token", from)
	}
	return tok, nil
}

// UseToken loads the token of path or STK_TOKEN (LoadToken) and makes it
// the default of every name-service client the program makes afterwards
// (namesvc.SetDefaultToken), those of libraries included. Parse calls it.
func UseToken(path string) error {
	tok, err := LoadToken(path)
	if err != nil {
		return BadUsage(err)
	}
	namesvc.SetDefaultToken(tok)
	return nil
}

// ParseNetworks reads a comma-separated list of networks in CIDR
// form ("10.1.0.0/16,127.0.0.1"; a bare IP is that one address), the
// value of an --accept flag; "" gives none. Errors start with flag.
func ParseNetworks(flag, list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("%s %q: want networks in CIDR form, comma-separated, as in 10.1.0.0/16,127.0.0.1", flag, f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("%s %q: the address has bits beyond the /%d mask; did you mean %v?", flag, f, p.Bits(), p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

// ResolveTimeout bounds the host-name lookup of an address flag.
const ResolveTimeout = 5 * time.Second

// ResolveAddress parses the value of an address flag (named flag, as
// "-R") with flow.ResolveAddress: a host name becomes its IPv4 address,
// so that what the program registers or sends on the wire is an IP. Errors
// are marked BadUsage and start with the flag.
func ResolveAddress(flag, s string) (flow.Address, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ResolveTimeout)
	defer cancel()
	a, err := flow.ResolveAddress(ctx, s)
	if err != nil {
		return flow.Address{}, BadUsage(fmt.Errorf("%s: %w", flag, err))
	}
	return a, nil
}

// ResolveAddressString is ResolveAddress returning the address as a
// string, for the APIs that take one (namesvc.Dial, smartbeat's Monitor).
// A "lookup:name" address is returned as it is.
func ResolveAddressString(flag, s string) (string, error) {
	a, err := ResolveAddress(flag, s)
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

// DialNames connects to the name server at addr, the value of -R
// ("[tcp|udp|tls:]host[:port]"; a host name is resolved). The client keeps
// trying in the background: Dial does not wait for the connection. A bad
// address is a BadUsage error. The client shows the token of --token-file
// or STK_TOKEN, which Parse loaded (UseToken), and a tls: server gets the
// TLS configuration of --tls-ca, --tls-cert and --tls-key (TLS).
func DialNames(addr, group string, log *slog.Logger) (*namesvc.Client, error) {
	return DialNamesOptions(addr, namesvc.ClientOptions{Group: group, Logger: log})
}

// DialNamesOptions is DialNames with the client's options; opts.TLS nil
// takes TLS().
func DialNamesOptions(addr string, opts namesvc.ClientOptions) (*namesvc.Client, error) {
	a, err := nameServerAddress(addr, opts.Logger, &opts.TLS)
	if err != nil {
		return nil, err
	}
	c, err := namesvc.DialAddress(a, opts)
	if err != nil {
		return nil, BadUsage(fmt.Errorf("-R %s: %w", addr, err))
	}
	return c, nil
}

// nameServerAddress resolves addr, the value of -R, sets *cfg to TLS()
// when it is nil, and warns (on log) when --tls-* were given for a plain
// address: what DialNamesOptions and Connect do before connecting.
func nameServerAddress(addr string, log *slog.Logger, cfg **tls.Config) (flow.Address, error) {
	a, err := ResolveAddress("-R", addr)
	if err != nil {
		return a, err
	}
	if *cfg == nil {
		*cfg = TLS()
	}
	WarnIfPlain(log, "-R", a)
	return a, nil
}

// Connect connects an stk environment to the name server at addr, the
// value of -R, as DialNamesOptions dials a client: a host name is
// resolved, --tls-* with a plain address gets a warning, and opts.TLS nil
// takes TLS(). A bad address is a BadUsage error.
func Connect(addr string, opts stk.Options) (*stk.Env, error) {
	a, err := nameServerAddress(addr, opts.Logger, &opts.TLS)
	if err != nil {
		return nil, err
	}
	env, err := stk.Connect(a.String(), opts)
	if err != nil {
		return nil, BadUsage(fmt.Errorf("-R %s: %w", addr, err))
	}
	return env, nil
}

// NamesHint is appended to errors that mean the name server did not answer.
const NamesHint = "is stkd running? start it with `go run ./stkd`, or point -R at it"

// SignalContext returns a context that ends at SIGINT or SIGTERM. A second
// signal exits at once.
func SignalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ch
		cancel()
		<-ch
		os.Exit(130)
	}()
	return ctx, cancel
}

// Rate formats a throughput report: n sequences carrying bytes payload
// bytes between first and last.
func Rate(n int64, bytes int64, first, last time.Time) string {
	d := last.Sub(first)
	if n < 2 || d <= 0 {
		return fmt.Sprintf("%d sequences, %d bytes", n, bytes)
	}
	s := d.Seconds()
	return fmt.Sprintf("%d sequences, %d bytes in %.6f s: %.0f sequences/s, %.1f MB/s",
		n, bytes, s, float64(n)/s, float64(bytes)/s/1e6)
}
