// Package cli holds what the example programs share: the name-server flag,
// logging, signal handling and the throughput report. Each example's main
// stays a page of flags and library calls.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

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

// Fail prints err prefixed with the program's name and exits with status 1.
func Fail(prog string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
	os.Exit(1)
}

// Usage sets fs's usage text: a synopsis line, a description and the flags.
func Usage(fs *pflag.FlagSet, synopsis, description string) {
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: %s\n\n%s\n\nFlags:\n%s", synopsis, description, fs.FlagUsages())
	}
}

// Parse parses args, prints the usage for -h and exits on errors with a
// pointer to -h. It returns the positional arguments.
func Parse(fs *pflag.FlagSet, args []string, positional int) []string {
	help := fs.BoolP("help", "h", false, "show this help")
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v (see %s -h)\n", fs.Name(), err, fs.Name())
		os.Exit(2)
	}
	if *help {
		fs.Usage()
		os.Exit(0)
	}
	if fs.NArg() != positional {
		fmt.Fprintf(os.Stderr, "%s: want %d argument(s), got %d (see %s -h)\n", fs.Name(), positional, fs.NArg(), fs.Name())
		os.Exit(2)
	}
	return fs.Args()
}

// DialNames connects to the name server at addr ("[tcp|udp:]ip[:port]").
func DialNames(addr, group string, log *slog.Logger) (*namesvc.Client, error) {
	c, err := namesvc.Dial(addr, namesvc.ClientOptions{Group: group, Logger: log})
	if err != nil {
		return nil, err
	}
	return c, nil
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
