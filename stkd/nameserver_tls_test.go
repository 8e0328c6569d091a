package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/tlstest"
	"github.com/stk-go/stk/namesvc"
)

// monitorOnlyCfg writes a config file that runs the monitor and the STEP
// bus but no name server (a C stkd.cfg with an httpd: line only), plus
// extra lines, in dir ("": a new temporary directory), and returns its
// path.
func monitorOnlyCfg(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "stkd.cfg")
	body := "httpd: -p 127.0.0.1:0 -T 127.0.0.1:0\n" + strings.Join(extra, "\n") + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNameServerTLSSettings: the client side of a tls: --name-server is
// checked before anything starts: --tls-ca is refused where stkd dials
// no tls: name server, --tls-cert and --tls-key are accepted without a
// TLS listener when they are the client certificate, --tls-client-ca is
// not, and a file that does not load names the name server.
func TestNameServerTLSSettings(t *testing.T) {
	ca := tlstest.NewCA(t, "stkd-ca")
	cl := ca.Client(t, "node-b")
	for _, v := range []string{cli.TLSCAEnv, cli.TLSCertEnv, cli.TLSKeyEnv} {
		t.Setenv(v, "") // the environment of whoever runs the tests must not count
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	cfg := monitorOnlyCfg(t, "")
	for _, tc := range []struct {
		args []string
		want string // "" for a start
	}{
		{[]string{"--tls-ca", ca.CertFile}, "stkd runs its own name server"},
		{[]string{"-c", cfg, "--name-server", "tcp:127.0.0.1:1", "--tls-ca", ca.CertFile}, `"tcp:127.0.0.1:1" is not one`},
		{[]string{"-c", cfg, "--name-server", "tcp:127.0.0.1:1", "--tls-cert", cl.CertFile, "--tls-key", cl.KeyFile}, "none is given"},
		{[]string{"-c", cfg, "--name-server", "tls:127.0.0.1:1", "--tls-cert", cl.CertFile}, "--tls-cert and --tls-key go together"},
		{[]string{"-c", cfg, "--name-server", "tls:127.0.0.1:1", "--tls-ca", missing}, "--name-server tls:127.0.0.1:1"},
		{[]string{"-c", cfg, "--name-server", "tls:127.0.0.1:1", "--tls-ca", ca.CertFile, "--tls-client-ca", ca.CertFile}, "the CAs of a tls: --name-server are --tls-ca"},
		{[]string{"-c", cfg, "--name-server", "tls:127.0.0.1:1", "--tls-ca", ca.CertFile, "--tls-cert", cl.CertFile, "--tls-key", cl.KeyFile}, ""},
	} {
		cp, err := parseArgs(append(tc.args, "--http", "", "--steps-feed", ""), io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		d, err := start(*cp, testutil.Discard())
		switch {
		case err == nil && tc.want == "":
			if d.monitor == nil || d.names != nil {
				t.Errorf("%v: monitor %v, name server %v: want a monitor and no name server", tc.args, d.monitor != nil, d.names != nil)
			}
			d.close()
		case err == nil:
			d.close()
			t.Errorf("%v: started, want an error mentioning %q", tc.args, tc.want)
		case tc.want == "":
			t.Errorf("%v: %v", tc.args, err)
		case !strings.Contains(err.Error(), tc.want):
			t.Errorf("%v: %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}

// TestNameServerTLSProcess: a stkd serving names over mutual TLS (A)
// and stkds running no name server of their own with --name-server
// tls:A: with a certificate of A's client CA, given by flags, by the
// environment or by config-file lines, their monitor and STEP feed are
// registered at A; with another CA's certificate they are not, and the
// stkd says in its log that A refused the handshake.
func TestNameServerTLSProcess(t *testing.T) {
	bin := stkdBin(t)
	ca, other := tlstest.NewCA(t, "stkd-ca"), tlstest.NewCA(t, "other-ca")
	for _, v := range []string{cli.TLSCAEnv, cli.TLSCertEnv, cli.TLSKeyEnv} {
		t.Setenv(v, "")
	}
	a := testprog.StartStkdMutualTLS(t, bin, ca, "--steps-feed", "")
	names, err := namesvc.Dial(a.Names, namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer names.Close()
	registered := func(name string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := names.LookupOnce(ctx, name, namesvc.LookupOptions{})
		if err != nil && !errors.Is(err, namesvc.ErrNotFound) {
			t.Fatalf("lookup of %s at A: %v", name, err)
		}
		return err == nil
	}
	// startB starts a monitor-only stkd registering with A over TLS under
	// names of its own, with args and (when env) the environment set.
	startB := func(b string, env map[string]string, cfgDir string, cfgLines []string, args ...string) *testprog.Stkd {
		t.Helper()
		for k, v := range env {
			t.Setenv(k, v) // inherited by the process started next
		}
		all := append([]string{"-c", monitorOnlyCfg(t, cfgDir, cfgLines...), "--name-server", a.NamesTLS,
			"--monitor-name", "monitor-" + b, "--steps-feed-name", "steps-" + b, "--steps-feed", "127.0.0.1:0"}, args...)
		d := testprog.StartStkd(t, bin, all...)
		for k := range env {
			t.Setenv(k, "")
		}
		if d.Names != "" || d.Monitor == "" || d.Steps == "" {
			t.Fatalf("stkd %s: names %q, monitor %q, STEP feed %q: want a monitor and a feed, no name server", b, d.Names, d.Monitor, d.Steps)
		}
		return d
	}
	wantRegistered := func(b string) {
		t.Helper()
		for _, n := range []string{"monitor-" + b, "steps-" + b} {
			testutil.WaitFor(t, 15*time.Second, fmt.Sprintf("%s registered at A over TLS", n), func() bool { return registered(n) })
		}
	}

	good := ca.Client(t, "node-b")
	startB("flags", nil, "", nil, "--tls-ca", ca.CertFile, "--tls-cert", good.CertFile, "--tls-key", good.KeyFile)
	wantRegistered("flags")
	startB("env", map[string]string{cli.TLSCAEnv: ca.CertFile, cli.TLSCertEnv: good.CertFile, cli.TLSKeyEnv: good.KeyFile}, "", nil)
	wantRegistered("env")
	// Config-file lines, their files relative to the file's directory.
	dir := t.TempDir()
	tlstest.Copy(t, ca.CertFile, filepath.Join(dir, "ca.pem"))
	good.CopyTo(t, filepath.Join(dir, "b.pem"), filepath.Join(dir, "b-key.pem"))
	startB("file", nil, dir, []string{"tls-ca: ca.pem", "tls-cert: b.pem", "tls-key: b-key.pem"})
	wantRegistered("file")

	forged := other.Client(t, "node-b")
	bad := startB("forged", nil, "", nil, "--tls-ca", ca.CertFile, "--tls-cert", forged.CertFile, "--tls-key", forged.KeyFile)
	// Both of its clients say why they do not get through.
	bad.WaitFor(t, `TLS handshake with the server failed.* component=monitor .*unknown certificate authority`, 15*time.Second)
	bad.WaitFor(t, `TLS handshake with the server failed.* component="steps names" .*unknown certificate authority`, 15*time.Second)
	for _, n := range []string{"monitor-forged", "steps-forged"} {
		if registered(n) {
			t.Errorf("%s registered at A with a certificate of another CA", n)
		}
	}
}
