package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/stk-go/stk/namesvc"
)

// The name server's access policy (--policy, a config file's "policy:"
// line): who may register, look up and subscribe to which names, in the
// format of namesvc's package documentation. SIGHUP reloads it; a file
// that does not load then keeps the policy running and logs why.

// loadPolicy loads the policy file at path; "" means none (open).
func loadPolicy(path string) (*namesvc.Policy, error) {
	if path == "" {
		return nil, nil
	}
	p, err := namesvc.LoadPolicy(path)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w (see examples/stkd-policy.conf for the format)", err)
	}
	return p, nil
}

func init() {
	// The config file's "policy: FILE" line (cfglines.go), relative to the
	// config file.
	cfgSettings["policy"] = stringSetting(true, func(c *config) *string { return &c.policy })
}

// reloadOnHangup reloads the name server's policy from path at every
// SIGHUP until ctx ends. A file that does not load keeps the running
// policy, and the error is logged.
func (d *daemon) reloadOnHangup(ctx context.Context, path string, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				d.reloadPolicy(path, log)
			}
		}
	}()
}

func (d *daemon) reloadPolicy(path string, log *slog.Logger) {
	if d.names == nil {
		log.Warn("SIGHUP: no name server runs here, so there is no policy to reload")
		return
	}
	if path == "" {
		log.Info("SIGHUP: no --policy file; the name server stays open")
		return
	}
	p, err := loadPolicy(path)
	if err != nil {
		log.Error("SIGHUP: the policy file does not load; the running policy stays", "file", path, "err", err)
		return
	}
	d.names.SetPolicy(p)
	log.Info("SIGHUP: policy reloaded", "file", path, "policy", p.String())
}

// printNewToken prints a new random token for name: the line of the
// client's token file and the policy file's line, which holds only the
// secret's hash.
func printNewToken(w io.Writer, name string) error {
	if name == "" || strings.ContainsAny(name, ": \t") {
		return fmt.Errorf("--new-token %q: want a name without spaces or ':'", name)
	}
	b := make([]byte, 24)
	rand.Read(b)
	secret := base64.RawURLEncoding.EncodeToString(b)
	fmt.Fprintf(w, "# The client's token file (chmod 600; the CLIs' --token-file, or STK_TOKEN):\n%s:%s\n", name, secret)
	fmt.Fprintf(w, "# The policy file's line (the secret's SHA-256; the secret itself is not needed there):\ntoken %s %s\n", name, namesvc.HashToken(secret))
	return nil
}
