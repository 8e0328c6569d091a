package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"

	"github.com/stk-go/stk/internal/syncbuf"
)

const httpTestToken = "a-token-for-the-stkd-http-tests"

// httpConfig is a daemon on free loopback ports with the HTTP UI on addr
// and the given flags.
func httpConfig(t *testing.T, addr string, flags ...string) config {
	t.Helper()
	cp, err := parseArgs(append([]string{"--names-tcp", "127.0.0.1:0", "--names-udp", "", "--monitor-tcp", "127.0.0.1:0",
		"--monitor-udp", "", "--steps-feed", "", "--http", addr}, flags...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return *cp
}

// httpDo sends method to the daemon's UI over loopback (whatever address
// it is bound to) and returns the status.
func httpDo(t *testing.T, d *daemon, method, path, body string, hdr ...string) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(d.http)
	req, _ := http.NewRequest(method, "http://127.0.0.1:"+port+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestHTTPRefusesNetworkWithoutToken: the UI on 0.0.0.0 (or any address
// but loopback) needs a token or --http-insecure; with either stkd starts,
// and with the token its writes need it.
func TestHTTPRefusesNetworkWithoutToken(t *testing.T) {
	t.Setenv(tokenEnv, "")
	for _, addr := range []string{"0.0.0.0:0", ":0"} {
		_, err := start(httpConfig(t, addr), testutil.Discard())
		if err == nil || !strings.Contains(err.Error(), "--http-insecure") || !strings.Contains(err.Error(), "--http-token-file") {
			t.Errorf("--http %s without a token: %v, want a refusal naming --http-insecure and --http-token-file", addr, err)
		}
	}
	// Loopback needs neither.
	d, err := start(httpConfig(t, "127.0.0.1:0"), testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	d.close()

	// --http-insecure: it starts, warning loudly.
	var logs syncbuf.Buffer // the daemon's goroutines log too
	d, err = start(httpConfig(t, "0.0.0.0:0", "--http-insecure"), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "INSECURE") {
		t.Errorf("no loud warning with --http-insecure:\n%s", logs.String())
	}
	step := `{"event":{"type":"test.x"},"space":{"hostname":"h"}}`
	if s := httpDo(t, d, "POST", "/api/v1/step", step); s != http.StatusAccepted {
		t.Errorf("POST to the insecure UI: %d", s)
	}
	d.close()

	// A token file: it starts, and the writes need the token.
	path := filepath.Join(t.TempDir(), "token")
	os.WriteFile(path, []byte(httpTestToken+"\n"), 0o600)
	d, err = start(httpConfig(t, "0.0.0.0:0", "--http-token-file", path, "--http-host", "stk.example"), testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if s := httpDo(t, d, "POST", "/api/v1/step", step); s != http.StatusUnauthorized {
		t.Errorf("POST without the token: %d", s)
	}
	if s := httpDo(t, d, "POST", "/api/v1/step", step, "Authorization", "Bearer "+httpTestToken); s != http.StatusAccepted {
		t.Errorf("POST with the token: %d", s)
	}
	if s := httpDo(t, d, "GET", "/api/v1/stats", "", "Host", "stk.example"); s != http.StatusOK {
		t.Errorf("read with the configured --http-host: %d", s)
	}
	d.close()

	// The environment: the same.
	t.Setenv(tokenEnv, httpTestToken)
	d, err = start(httpConfig(t, "0.0.0.0:0", "--http-token-for-reads"), testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if s := httpDo(t, d, "GET", "/api/v1/stats", ""); s != http.StatusUnauthorized {
		t.Errorf("read without the token, --http-token-for-reads: %d", s)
	}
	if s := httpDo(t, d, "GET", "/api/v1/stats", "", "Authorization", "Bearer "+httpTestToken); s != http.StatusOK {
		t.Errorf("read with the token: %d", s)
	}
	d.close()
}

// TestHTTPSecurityBadSettings: each is refused before anything starts,
// saying what to do.
func TestHTTPSecurityBadSettings(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	for _, tc := range []struct {
		env   string
		flags []string
		want  string
	}{
		{"", []string{"--http-token-file", filepath.Join(dir, "missing")}, "--http-token-file"},
		{"", []string{"--http-token-file", short}, "at least 16"},
		{"short", nil, "$" + tokenEnv},
		{"", []string{"--http-token-for-reads"}, "needs a token"},
		{"", []string{"--http-origin", "ui.example"}, "--http-origin"},
		{"", []string{"--http-host", "http://ui.example/"}, "--http-host"},
	} {
		t.Setenv(tokenEnv, tc.env)
		d, err := start(httpConfig(t, "127.0.0.1:0", tc.flags...), testutil.Discard())
		if err == nil {
			d.close()
			t.Errorf("%v (env %q): started", tc.flags, tc.env)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v (env %q): %v, want it to mention %s", tc.flags, tc.env, err, tc.want)
		}
	}
}

// TestHTTPSecurityFlagsWinOverCfgFile: with -c, the HTTP security flags
// still apply.
func TestHTTPSecurityFlagsWinOverCfgFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stkd.cfg")
	os.WriteFile(path, []byte("named: -T 127.0.0.1:0\n"), 0o644)
	c, err := parseArgs([]string{"-c", path, "--http-host", "a.example", "--http-host", "b.example", "--http-origin", "https://a.example",
		"--http-token-file", "/x", "--http-token-for-reads", "--http-insecure"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h := c.httpSec
	if strings.Join(h.hosts, ",") != "a.example,b.example" || strings.Join(h.origins, ",") != "https://a.example" || h.tokenFile != "/x" || !h.tokenForReads || !h.insecure {
		t.Errorf("settings after -c: %+v", h)
	}
}

// TestHTTPInsecureProcess: the stkd binary exits with the reason when
// asked to serve the UI on 0.0.0.0 without a token, and runs with
// $STKD_HTTP_TOKEN.
func TestHTTPInsecureProcess(t *testing.T) {
	bin := stkdBin(t)
	args := []string{"--names-tcp", "127.0.0.1:0", "--names-udp", "", "--monitor-tcp", "127.0.0.1:0", "--monitor-udp", "", "--steps-feed", "", "--http", "0.0.0.0:0"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), tokenEnv+"=")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "--http-insecure") {
		t.Errorf("stkd --http 0.0.0.0:0 without a token: %v\n%s", err, out)
	}
	t.Setenv(tokenEnv, httpTestToken)
	d := testprog.StartStkd(t, bin, "--steps-feed", "", "--http", "0.0.0.0:0")
	_, port, _ := net.SplitHostPort(d.HTTP)
	res, err := http.Post("http://127.0.0.1:"+port+"/api/v1/step", "application/json", strings.NewReader(`{"event":{"type":"t.x"},"space":{"hostname":"h"}}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without the token to stkd with $%s: %s", tokenEnv, res.Status)
	}
}
