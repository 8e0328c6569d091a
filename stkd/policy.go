package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
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

// cfgPolicyLine returns the file of a config file's "policy: FILE" line
// (relative to the config file's directory), "" if it has none.
func cfgPolicyLine(b []byte, path string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	file, first := "", 0
	for n := 1; sc.Scan(); n++ {
		key, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(key), "policy") {
			continue
		}
		if first != 0 {
			return "", fmt.Errorf("%s:%d: a second policy: line (the first is line %d): keep one", path, n, first)
		}
		f := strings.Fields(rest)
		if len(f) != 1 {
			return "", fmt.Errorf("%s:%d: policy: want one file name", path, n)
		}
		first, file = n, f[0]
		if !filepath.IsAbs(file) {
			file = filepath.Join(filepath.Dir(path), file)
		}
	}
	return file, nil
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
