package namesvc

import (
	"context"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/tlstest"
)

// TestTLSRegisterLookup: clients register and look up over tls: against
// ServeTLS with mutual TLS, sharing the store with the TCP listener; a
// client without a certificate gets no answer, and a TLS client that
// leaves is disconnected as a TCP one is.
func TestTLSRegisterLookup(t *testing.T) {
	leakcheck.Check(t)
	ca := tlstest.NewCA(t, "names-ca")
	srvCert, alice := ca.Server(t, "names"), ca.Client(t, "alice")
	ts := startServer(t, ServerConfig{}, "", "")
	scfg, err := flow.NewServerTLS(srvCert.CertFile, srvCert.KeyFile, ca.CertFile, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	tlsAddr, err := ts.ServeTLS("127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := flow.NewClientTLS(ca.CertFile, alice.CertFile, alice.KeyFile, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	url := "tls:" + tlsAddr.String()
	a := dial(t, url, ClientOptions{TLS: ccfg})
	b := dial(t, url, ClientOptions{TLS: ccfg})
	info := Info{Name: "secure-svc", Addresses: []Endpoint{{"tcp", ap("127.0.0.1:29400")}}}
	register(t, a, info)
	if got := lookupAll(t, b, "secure-svc", ""); len(got) != 1 || !sameInfo(got[0], info) {
		t.Fatalf("lookup over TLS: %v, want %v", got, info.String())
	}
	plain := dial(t, ts.tcp(), ClientOptions{})
	if got := lookupAll(t, plain, "secure-svc", ""); len(got) != 1 {
		t.Fatalf("lookup over TCP of a TLS registration: %v", got)
	}
	if names := ts.Names(); len(names) != 1 || names[0].Transport != flow.TCP {
		t.Errorf("Names: %+v; want one, transport TCP", names)
	}

	// No client certificate: the server refuses the handshake; the
	// registration never gets through.
	noCert, err := flow.NewClientTLS(ca.CertFile, "", "", testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	stranger := dial(t, url, ClientOptions{TLS: noCert})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := stranger.Register(ctx, Info{Name: "intruder"}); err == nil {
		t.Error("a client without a certificate registered")
	}
	if got := lookupAll(t, plain, "intruder", ""); len(got) != 0 {
		t.Errorf("intruder registered: %v", got)
	}

	// A TLS client that leaves is disconnected: its registration goes.
	a.Close()
	recv(t, ts.gone, "the TLS client's disconnect")
	if got := lookupAll(t, plain, "secure-svc", ""); len(got) != 0 {
		t.Errorf("registration of a closed TLS client still answered: %v", got)
	}
}
