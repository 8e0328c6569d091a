package testprog

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/httpd"
	"github.com/stk-go/stk/internal/stkdproc"
	"github.com/stk-go/stk/internal/tlstest"
)

// Stkd is a running stkd and the addresses it logged as bound; an address
// is "" when its listener is off.
type Stkd struct {
	*Proc
	stkdproc.Addrs
}

// StartStkd starts the stkd binary at path on free loopback ports
// (stkdproc.DefaultArgs: the name server and the monitor on TCP, the HTTP
// UI, the UDP listeners off). args follow these defaults, so they may
// change any of them (the last occurrence of a flag wins).
func StartStkd(t testing.TB, path string, args ...string) *Stkd {
	t.Helper()
	p := Start(t, path, append(append([]string{}, stkdproc.DefaultArgs...), args...)...)
	p.WaitFor(t, stkdproc.RunningMsg, 10*time.Second)
	for _, line := range strings.Split(p.Output(), "\n") {
		if a, ok := stkdproc.ParseRunning(line); ok {
			return &Stkd{Proc: p, Addrs: a}
		}
	}
	t.Fatalf("stkd: no %s line in its output", stkdproc.RunningMsg)
	return nil
}

// StartStkdMutualTLS is StartStkd with the name server on mutual TLS
// (--names-tls on a free loopback port): its certificate is issued by ca,
// and it asks every client for one of ca's. args follow, as for StartStkd.
// The test fails if stkd does not log its names_tls address.
func StartStkdMutualTLS(t testing.TB, path string, ca *tlstest.CA, args ...string) *Stkd {
	t.Helper()
	srv := ca.Server(t, "stkd")
	d := StartStkd(t, path, append([]string{"--names-tls", "127.0.0.1:0",
		"--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile, "--tls-client-ca", ca.CertFile}, args...)...)
	if d.NamesTLS == "" {
		t.Fatalf("stkd did not log its names_tls listener:\n%s", d.Output())
	}
	return d
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
