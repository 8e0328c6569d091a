package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/tlstest"
	"github.com/stk-go/stk/smartbeat"
)

// TestMonitorTLSFlags: --monitor-tls is checked with the other listeners
// before anything starts, --port-base moves it to N+13, and it needs the
// certificate flags.
func TestMonitorTLSFlags(t *testing.T) {
	c, err := parseArgs([]string{"--port-base", "21000", "--monitor-tls", "127.0.0.1:20013"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.tls.monitor != "127.0.0.1:20013" {
		t.Fatalf("--monitor-tls given on the line must win over --port-base: %q", c.tls.monitor)
	}
	if err := applyPortBase(c, 21000); err != nil || c.tls.monitor != "127.0.0.1:21013" {
		t.Fatalf("--port-base 21000 moves --monitor-tls to %q (%v), want 127.0.0.1:21013", c.tls.monitor, err)
	}
	c.monTCP = c.tls.monitor // the same address twice
	if err := preflight(*c, nil); err == nil || !strings.Contains(err.Error(), "monitor-tls") {
		t.Errorf("--monitor-tls on --monitor-tcp's address: %v, want a clash naming --monitor-tls", err)
	}
	d, err := start(httpConfig(t, "", "--monitor-tls", "127.0.0.1:0"), testutil.Discard())
	if err == nil {
		d.close()
		t.Error("--monitor-tls without a certificate: started")
	} else if !strings.Contains(err.Error(), "--monitor-tls") || !strings.Contains(err.Error(), "--tls-cert") {
		t.Errorf("--monitor-tls without a certificate: %v", err)
	}
}

// TestMonitorTLS: stkd --monitor-tls with --tls-client-ca: a service
// showing a certificate of that CA reports over tls:, one whose
// certificate another CA issued is refused at the handshake.
func TestMonitorTLS(t *testing.T) {
	ca, other := tlstest.NewCA(t, "stkd-ca"), tlstest.NewCA(t, "other-ca")
	srv := ca.Server(t, "stkd")
	d, err := start(httpConfig(t, "", "--monitor-tls", "127.0.0.1:0",
		"--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile, "--tls-client-ca", ca.CertFile), testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if d.monTLS == "" {
		t.Fatal("no monitor TLS listener")
	}
	report := func(name string, is *tlstest.Issued) {
		t.Helper()
		ccfg, err := flow.NewClientTLS(ca.CertFile, is.CertFile, is.KeyFile, testutil.Discard())
		if err != nil {
			t.Fatal(err)
		}
		snd := smartbeat.NewSender(smartbeat.SenderOptions{Period: 50 * time.Millisecond, Logger: testutil.Discard(),
			Flow: flow.Options{TLS: ccfg, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}})
		t.Cleanup(func() { snd.Close() })
		if _, err := smartbeat.NewService(name, smartbeat.Options{Monitor: "tls:" + d.monTLS, Sender: snd,
			Logger: testutil.Discard(), ConnectWait: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	seen := func(name string) (beats uint64, ok bool) {
		for _, v := range d.monitor.Services() {
			if v.Name == name {
				return v.Beats, true
			}
		}
		return 0, false
	}
	report("trusted", ca.Client(t, "trusted"))
	report("forged", other.Client(t, "trusted"))
	testutil.WaitFor(t, 10*time.Second, "the trusted service's beats over TLS", func() bool { b, _ := seen("trusted"); return b >= 3 })
	var hs uint64
	testutil.WaitFor(t, 10*time.Second, "the forged certificate's handshakes to fail", func() bool {
		hs = 0
		for _, f := range d.monitor.Flows() {
			if tf, ok := f.(*flow.TLSServer); ok {
				hs += tf.Stats().HandshakeErrors
			}
		}
		return hs >= 2
	})
	if _, ok := seen("forged"); ok {
		t.Error("a service with another CA's certificate reached the monitor")
	}
}
