package testprog

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/httpd"
)

// Stkd is a running stkd and the addresses it logged as bound; an address
// is "" when its listener is off.
type Stkd struct {
	*Proc
	Names    string // name server, "tcp:ip:port"
	NamesUDP string // name server over STK-UDP, "udp:ip:port"
	Monitor  string // monitor, "tcp:ip:port"
	HTTP     string // status UI and API, "ip:port"
	Steps    string // STEP feed, "ip:port"
	// NamesTLS and MonitorTLS are the name server and the monitor inside
	// TLS (--names-tls, --monitor-tls), "tls:ip:port".
	NamesTLS, MonitorTLS string
}

// URL returns the HTTP address as a URL with path p appended.
func (d *Stkd) URL(p string) string { return "http://" + d.HTTP + p }

// StartStkd starts the stkd binary at path on free loopback ports: the
// name server and the monitor on TCP, the HTTP UI, the UDP listeners off.
// args follow these defaults, so they may change any of them (the last
// occurrence of a flag wins).
func StartStkd(t testing.TB, path string, args ...string) *Stkd {
	t.Helper()
	all := append([]string{"--names-tcp", "127.0.0.1:0", "--names-udp", "", "--monitor-tcp", "127.0.0.1:0",
		"--monitor-udp", "", "--http", "127.0.0.1:0"}, args...)
	p := Start(t, path, all...)
	line := p.WaitFor(t, `msg="stkd running" .*`, 10*time.Second)[0]
	d := &Stkd{Proc: p}
	prefix := func(proto, addr string) string {
		if addr == "" {
			return ""
		}
		return proto + ":" + addr
	}
	d.Names = prefix("tcp", logValue(line, "names_tcp"))
	d.NamesUDP = prefix("udp", logValue(line, "names_udp"))
	d.Monitor = prefix("tcp", logValue(line, "monitor_tcp"))
	d.HTTP = logValue(line, "http")
	d.Steps = logValue(line, "steps_feed")
	d.NamesTLS = prefix("tls", logValue(line, "names_tls"))
	d.MonitorTLS = prefix("tls", logValue(line, "monitor_tls"))
	return d
}

// logValue returns the value of key in a log/slog text line ("" when
// absent or empty).
func logValue(line, key string) string {
	m := regexp.MustCompile(`(?:^| )` + regexp.QuoteMeta(key) + `=("(?:[^"\\]|\\.)*"|\S*)`).FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	v := m[1]
	if strings.HasPrefix(v, `"`) {
		if u, err := strconv.Unquote(v); err == nil {
			return u
		}
	}
	return v
}

// Services GETs a service list of stkd's JSON API (url ends in
// /api/v1/services or /api/v1/history) and returns its records.
func Services(t testing.TB, url string) []httpd.ServiceJSON {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body httpd.ServicesJSON
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return body.Services
}
