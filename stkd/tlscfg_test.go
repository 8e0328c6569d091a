package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/tlstest"
	"github.com/stk-go/stk/namesvc"
)

// copyInto copies file into dir under name.
func copyInto(t *testing.T, file, dir, name string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSCfgLines: the TLS settings have config-file lines named after
// their flags, files relative to the config file; a daemon configured by
// the file alone serves names over mutual TLS; flags win; bad lines are
// reported with file and line.
func TestTLSCfgLines(t *testing.T) {
	ca := tlstest.NewCA(t, "stkd-ca")
	srv, client := ca.Server(t, "stkd"), ca.Client(t, "ops")
	path := writeCfg(t,
		"named: -T 127.0.0.1:0",
		"httpd: -T 127.0.0.1:0 -p 127.0.0.1:0",
		"names-tls: 127.0.0.1:0",
		"monitor-tls: 127.0.0.1:0",
		"tls-cert: certs/stkd.pem",
		"tls-key: certs/stkd.key",
		"tls-client-ca: certs/ca.pem")
	dir := filepath.Join(filepath.Dir(path), "certs")
	os.Mkdir(dir, 0o700)
	copyInto(t, srv.CertFile, dir, "stkd.pem")
	copyInto(t, srv.KeyFile, dir, "stkd.key")
	copyInto(t, ca.CertFile, dir, "ca.pem")

	c, err := parseArgs([]string{"-c", path, "--steps-feed", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.tls.names != "127.0.0.1:0" || c.tls.monitor != "127.0.0.1:0" || c.tls.cert != filepath.Join(dir, "stkd.pem") ||
		c.tls.key != filepath.Join(dir, "stkd.key") || c.tls.clientCA != filepath.Join(dir, "ca.pem") {
		t.Fatalf("settings from the file: %+v", c.tls)
	}
	if w := c.origins()["tls-client-ca"]; !strings.Contains(w, "stkd.cfg:7") {
		t.Errorf("origin of tls-client-ca: %q", w)
	}

	d, err := start(*c, testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if d.namesTLS == "" {
		t.Fatal("no names TLS listener from the file's names-tls line")
	}
	ccfg, err := flow.NewClientTLS(ca.CertFile, client.CertFile, client.KeyFile, testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := namesvc.Dial("tls:"+d.namesTLS, namesvc.ClientOptions{TLS: ccfg, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Register(ctx, namesvc.Info{Name: "from-cfg-tls"}); err != nil {
		t.Fatalf("register over the file's names-tls: %v", err)
	}

	// Flags win.
	c, err = parseArgs([]string{"-c", path, "--names-tls", "127.0.0.1:1", "--tls-cert", "/x.pem"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.tls.names != "127.0.0.1:1" || c.tls.cert != "/x.pem" || c.tls.key != filepath.Join(dir, "stkd.key") {
		t.Errorf("settings with flags after -c: %+v", c.tls)
	}

	// Bad lines: each reported with its file and line.
	_, err = parseArgs([]string{"-c", writeCfg(t, "names-tls: a b", "tls-cert: x.pem", "tls-cert: y.pem")}, io.Discard)
	if err == nil {
		t.Fatal("bad TLS lines accepted")
	}
	for _, want := range []string{"stkd.cfg:1: names-tls: want one value", "stkd.cfg:3: tls-cert: a second line (the first is line 2)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestTLSCfgLinesShipped: the commented TLS lines of examples/stkd.cfg,
// uncommented, parse into every TLS setting.
func TestTLSCfgLinesShipped(t *testing.T) {
	b, err := os.ReadFile("../examples/stkd.cfg")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "#tls-") || strings.HasPrefix(l, "#names-tls:") || strings.HasPrefix(l, "#monitor-tls:") {
			l = l[1:]
		}
		lines = append(lines, l)
	}
	path := writeCfg(t, lines...)
	c, err := parseArgs([]string{"-c", path}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	if c.tls.names != "127.0.0.1:20012" || c.tls.monitor != "127.0.0.1:20013" || c.tls.cert != filepath.Join(dir, "stkd.pem") ||
		c.tls.key != filepath.Join(dir, "stkd.key") || c.tls.clientCA != filepath.Join(dir, "clients-ca.pem") ||
		c.tls.ca != filepath.Join(dir, "names-ca.pem") {
		t.Errorf("settings from the shipped lines: %+v", c.tls)
	}
}
