package main

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/tlstest"
	"github.com/stk-go/stk/namesvc"
)

// TestTLSBadSettings: each is refused before anything starts, saying
// which flag is wrong.
func TestTLSBadSettings(t *testing.T) {
	ca := tlstest.NewCA(t, "stkd-ca")
	srv, other := ca.Server(t, "stkd"), ca.Server(t, "other")
	missing := filepath.Join(t.TempDir(), "missing.pem")
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--http-tls"}, "need --tls-cert FILE and --tls-key FILE"},
		{[]string{"--names-tls", "127.0.0.1:0", "--tls-cert", srv.CertFile}, "need --tls-cert FILE and --tls-key FILE"},
		{[]string{"--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile}, "none is given"},
		{[]string{"--http-tls", "--tls-cert", missing, "--tls-key", srv.KeyFile}, "missing.pem: no such file"},
		{[]string{"--http-tls", "--tls-cert", srv.CertFile, "--tls-key", other.KeyFile}, "private key does not match"},
		{[]string{"--http-tls", "--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile, "--tls-client-ca", notPEM}, "no PEM certificate"},
	} {
		d, err := start(httpConfig(t, "127.0.0.1:0", tc.flags...), testutil.Discard())
		if err == nil {
			d.close()
			t.Errorf("%v: started", tc.flags)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want it to mention %q", tc.flags, err, tc.want)
		}
	}
	d, err := start(httpConfig(t, "", "--http-tls", "--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile), testutil.Discard())
	if err == nil {
		d.close()
		t.Error("--http-tls with the HTTP UI off: started")
	} else if !strings.Contains(err.Error(), "the HTTP UI is off") {
		t.Errorf("--http-tls with the UI off: %v", err)
	}
}

// TestTLSProcess runs stkd with --names-tls and --http-tls under mutual
// TLS: HTTPS answers a client with a certificate, refuses one without;
// a name registered over tls: is found over plain TCP.
func TestTLSProcess(t *testing.T) {
	ca := tlstest.NewCA(t, "stkd-ca")
	srv, client := ca.Server(t, "stkd"), ca.Client(t, "ops")
	d := testprog.StartStkd(t, stkdBin(t), "--names-tls", "127.0.0.1:0", "--http-tls",
		"--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile, "--tls-client-ca", ca.CertFile)
	m := regexp.MustCompile(`names_tls=(\S+)`).FindStringSubmatch(d.Output())
	if m == nil || m[1] == "" {
		t.Fatalf("no names_tls in stkd's output:\n%s", d.Output())
	}
	namesTLS := "tls:" + m[1]

	get := func(cert *tlstest.Issued) (*http.Response, error) {
		cfg := &tls.Config{RootCAs: ca.Pool()}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{cert.TLS}
		}
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer hc.CloseIdleConnections()
		return hc.Get("https://" + d.HTTP + "/healthz")
	}
	resp, err := get(client)
	if err != nil {
		t.Fatalf("https GET /healthz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("https GET /healthz: %s %s", resp.Status, body)
	}
	if resp, err := get(nil); err == nil {
		resp.Body.Close()
		t.Errorf("https GET without a client certificate: %s, want a refused handshake", resp.Status)
	}
	if resp, err := http.Get(d.URL("/healthz")); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain http GET answered 200 on the HTTPS port")
		}
	}

	ccfg, err := flow.NewClientTLS(ca.CertFile, client.CertFile, client.KeyFile, testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sec, err := namesvc.Dial(namesTLS, namesvc.ClientOptions{TLS: ccfg, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Close()
	info := namesvc.Info{Name: "over-tls"}
	if err := sec.Register(ctx, info); err != nil {
		t.Fatalf("register over %s: %v", namesTLS, err)
	}
	plain, err := namesvc.Dial(d.Names, namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if got, err := plain.LookupOnce(ctx, "over-tls", namesvc.LookupOptions{}); err != nil || got.Name != "over-tls" {
		t.Errorf("lookup over TCP of a name registered over TLS: %v, %v", got, err)
	}
}
