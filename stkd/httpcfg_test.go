package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stk-go/stk/internal/testutil"
)

// writeCfg writes a config file of lines into a new directory.
func writeCfg(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stkd.cfg")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHTTPCfgLines: the HTTP settings have config-file lines named after
// their flags; a relative token file is the config file's neighbour;
// flags still win; bad lines are reported with file and line.
func TestHTTPCfgLines(t *testing.T) {
	path := writeCfg(t,
		"named: -T 127.0.0.1:0",
		"httpd: -T 127.0.0.1:0 -p 127.0.0.1:0",
		"http-host: a.example b.example",
		"http-host: c.example",
		"http-origin: https://ui.example",
		"http-token-file: token",
		"HTTP-Token-For-Reads: yes",
		"http-insecure: no",
		"http-tls: off")
	c, err := parseArgs([]string{"-c", path}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h := c.httpSec
	if strings.Join(h.hosts, ",") != "a.example,b.example,c.example" || strings.Join(h.origins, ",") != "https://ui.example" ||
		h.tokenFile != filepath.Join(filepath.Dir(path), "token") || !h.tokenForReads || h.insecure || c.tls.http {
		t.Errorf("settings from the file: %+v, tls %v", h, c.tls.http)
	}
	if w := c.origins()["http-token-file"]; !strings.Contains(w, "stkd.cfg:6") {
		t.Errorf("origin of http-token-file: %q", w)
	}

	// Flags win.
	c, err = parseArgs([]string{"-c", path, "--http-host", "flag.example", "--http-token-file", "/x", "--http-insecure"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if h := c.httpSec; strings.Join(h.hosts, ",") != "flag.example" || h.tokenFile != "/x" || !h.insecure || !h.tokenForReads {
		t.Errorf("settings with flags after -c: %+v", h)
	}
	if _, ok := c.origins()["http-token-file"]; ok {
		t.Error("http-token-file still said to come from the file")
	}

	for _, tc := range []struct{ line, want string }{
		{"http-insecure: maybe", `stkd.cfg:2: http-insecure: "maybe": want yes or no`},
		{"http-tls:", "stkd.cfg:2: http-tls: want one value"},
		{"http-token-file: a b", "stkd.cfg:2: http-token-file: want one value"},
		{"http-origin:", "stkd.cfg:2: http-origin: want one or more values"},
	} {
		if _, err := parseArgs([]string{"-c", writeCfg(t, "named: -T 127.0.0.1:0", tc.line)}, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.line, err, tc.want)
		}
	}
	_, err = parseArgs([]string{"-c", writeCfg(t, "http-tls: yes", "http-tls: no")}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "stkd.cfg:2: http-tls: a second line (the first is line 1)") {
		t.Errorf("two http-tls lines: %v", err)
	}
}

// TestHTTPCfgLinesApply: a UI configured by the file alone (on 0.0.0.0,
// a token file, a further host name) starts and guards as the flags
// would: writes need the token, the named host is answered, another is
// not.
func TestHTTPCfgLinesApply(t *testing.T) {
	t.Setenv(tokenEnv, "")
	path := writeCfg(t,
		"named: -T 127.0.0.1:0",
		"httpd: -T 127.0.0.1:0 -p 0.0.0.0:0",
		"http-host: stk.example",
		"http-token-file: token")
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "token"), []byte(httpTestToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseArgs([]string{"-c", path, "--steps-feed", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d, err := start(*c, testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	step := `{"event":{"type":"test.x"},"space":{"hostname":"h"}}`
	if s := httpDo(t, d, "POST", "/api/v1/step", step); s != http.StatusUnauthorized {
		t.Errorf("POST without the token: %d", s)
	}
	if s := httpDo(t, d, "POST", "/api/v1/step", step, "Authorization", "Bearer "+httpTestToken); s != http.StatusAccepted {
		t.Errorf("POST with the token: %d", s)
	}
	if s := httpDo(t, d, "GET", "/api/v1/stats", "", "Host", "stk.example"); s != http.StatusOK {
		t.Errorf("read with the file's http-host: %d", s)
	}
	if s := httpDo(t, d, "GET", "/api/v1/stats", "", "Host", "evil.example"); s != http.StatusMisdirectedRequest {
		t.Errorf("read with a foreign Host: %d, want 421", s)
	}
}

// TestHTTPCfgLinesShipped: the commented HTTP lines of examples/stkd.cfg,
// uncommented, parse.
func TestHTTPCfgLinesShipped(t *testing.T) {
	b, err := os.ReadFile("../examples/stkd.cfg")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "#http-") {
			l, n = l[1:], n+1
		}
		lines = append(lines, l)
	}
	if n != len(httpCfgKeys) {
		t.Errorf("examples/stkd.cfg shows %d commented HTTP lines, want one per key (%v)", n, httpCfgKeys)
	}
	c, err := parseArgs([]string{"-c", writeCfg(t, lines...)}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.httpSec.hosts) == 0 || len(c.httpSec.origins) == 0 || c.httpSec.tokenFile == "" {
		t.Errorf("settings from the shipped lines: %+v", c.httpSec)
	}
}
