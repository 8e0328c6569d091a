package smartbeat

import (
	"slices"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/tlstest"
)

// TestServiceToMonitorTLS: a service reports to a monitor's mutual-TLS
// listener (tls:ip:port, the Sender's Flow.TLS carrying its client
// certificate) and is tracked as over TCP; a service whose certificate
// another CA issued fails the handshake and never shows up; a Sender
// with a TLS configuration still reports in the clear to a tcp: address.
// The TLS listener is listed but not registered.
func TestServiceToMonitorTLS(t *testing.T) {
	checkNoLeakedGoroutines(t)
	ca, other := tlstest.NewCA(t, "monitor-ca"), tlstest.NewCA(t, "other-ca")
	srv := ca.Server(t, "monitor")
	scfg, err := flow.NewServerTLS(srv.CertFile, srv.KeyFile, ca.CertFile, testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	m := e2eMonitor(t, MonitorConfig{})
	tlsAddr, err := m.ServeTLS("127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.registration(); ok {
		t.Error("the TLS listener is in the monitor's registration")
	}
	if l := m.Stats().Listeners; !slices.Contains(l, "tls:"+tlsAddr.String()) {
		t.Errorf("listeners %v, want tls:%v", l, tlsAddr)
	}
	tcpAddr, err := m.ServeTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}

	sender := func(ca *tlstest.CA, client *tlstest.Issued) *Sender {
		t.Helper()
		ccfg, err := flow.NewClientTLS(ca.CertFile, client.CertFile, client.KeyFile, testutil.Discard())
		if err != nil {
			t.Fatal(err)
		}
		fo := flow.Options{TLS: ccfg, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}
		s := NewSender(SenderOptions{Period: 50 * time.Millisecond, Logger: testutil.Discard(), Flow: fo})
		t.Cleanup(func() { s.Close() })
		return s
	}
	good := sender(ca, ca.Client(t, "worker"))
	svc, err := NewService("secure-worker", Options{Monitor: "tls:" + tlsAddr.String(), Sender: good,
		ActivityTimeout: time.Second, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	svc.SetState(Running)
	testutil.WaitFor(t, 10*time.Second, "the service over TLS", func() bool {
		v, ok := find(m.Services(), "secure-worker")
		return ok && v.State == Running && v.Beats >= 2
	})

	if v, _ := find(m.Services(), "secure-worker"); v.Protocol != "tcp" {
		t.Errorf("record over TLS: protocol %q, want tcp", v.Protocol)
	}
	// The same Sender reports in the clear to a tcp: address.
	if _, err := NewService("plain-worker", Options{Monitor: "tcp:" + tcpAddr.String(), Sender: good, Logger: testutil.Discard()}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the service over plain TCP", func() bool { _, ok := find(m.Services(), "plain-worker"); return ok })

	// Another CA's certificate (trusting the right server CA): refused at
	// the handshake, again at every reconnect.
	bad := sender(ca, other.Client(t, "worker"))
	if _, err := NewService("intruder", Options{Monitor: "tls:" + tlsAddr.String(), Sender: bad,
		ActivityTimeout: time.Second, Logger: testutil.Discard(), ConnectWait: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	var tlsFlow *flow.TLSServer
	for _, f := range m.Flows() {
		if tf, ok := f.(*flow.TLSServer); ok {
			tlsFlow = tf
		}
	}
	testutil.WaitFor(t, 10*time.Second, "two refused handshakes", func() bool { return tlsFlow.Stats().HandshakeErrors >= 2 })
	// The good service keeps beating meanwhile; the intruder never appears.
	beats := func() uint64 { v, _ := find(m.Services(), "secure-worker"); return v.Beats }
	b0 := beats()
	testutil.WaitFor(t, 10*time.Second, "more beats of the good service", func() bool { return beats() >= b0+3 })
	if _, ok := find(m.Services(), "intruder"); ok {
		t.Error("a service with another CA's certificate reached the monitor")
	}
	if st := m.Stats(); st.Created != 2 {
		t.Errorf("created %d records, want 2", st.Created)
	}
}
