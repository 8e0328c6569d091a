package namesvc

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/tlstest"
)

// TestPolicyCertRules: "cert" conditions match a client certificate's
// common name, DNS or URI alternative names (globs allowed), never a
// request without a certificate; bad cert values are errors.
func TestPolicyCertRules(t *testing.T) {
	ca := tlstest.NewCA(t, "rules-ca")
	alice := ca.Client(t, "alice").TLS.Leaf
	bob := ca.Client(t, "bob").TLS.Leaf
	web := ca.ClientNames(t, "web", "", []string{"web-3.example.com"}, []string{"spiffe://example.org/web"}).TLS.Leaf
	p := mustPolicy(t, `mode default-deny
allow register billing.* cert alice
allow register web.* cert dns:*.example.com
allow register spiffe.* cert uri:spiffe://example.org/*
allow register team.* cert cn:b?b,alice
allow lookup * cert alice token billing
token billing `+alphaSecret+`
`)
	lo := netip.MustParseAddr("127.0.0.1")
	for i, tc := range []struct {
		op   Op
		name string
		who  identity
		want bool
	}{
		{OpRegister, "billing.api", identity{cert: alice, ip: lo}, true},
		{OpRegister, "billing.api", identity{cert: bob, ip: lo}, false},
		{OpRegister, "billing.api", identity{ip: lo}, false},
		{OpRegister, "web.front", identity{cert: web, ip: lo}, true},
		{OpRegister, "web.front", identity{cert: alice, ip: lo}, false},
		{OpRegister, "spiffe.x", identity{cert: web, ip: lo}, true},
		{OpRegister, "spiffe.x", identity{cert: bob, ip: lo}, false},
		{OpRegister, "team.x", identity{cert: bob, ip: lo}, true},
		{OpRegister, "team.x", identity{cert: alice, ip: lo}, true},
		{OpRegister, "team.x", identity{cert: web, ip: lo}, false}, // no common name
		{OpLookup, "x", identity{cert: alice, ip: lo}, false},      // the token is missing
		{OpLookup, "x", identity{cert: alice, token: "billing", ip: lo}, true},
	} {
		if got := p.decide(tc.op, tc.name, "", tc.who, flow.TCP).allow; got != tc.want {
			t.Errorf("%d: %v %s by %v: allow %v, want %v", i, tc.op, tc.name, tc.who, got, tc.want)
		}
	}
	if got := (identity{cert: alice, ip: lo}).owner(); got != (identity{certName: "cn:alice"}) {
		t.Errorf("owner of alice's certificate: %+v", got)
	}
	if got := (identity{cert: web, ip: lo}).owner(); got != (identity{certName: "dns:web-3.example.com"}) {
		t.Errorf("owner of a certificate without CN: %+v", got)
	}
	for _, bad := range []string{"allow register x cert foo:bar", "allow register x cert dns:", "allow register x cert cn:"} {
		if _, err := ParsePolicy(strings.NewReader(bad), "bad.conf"); err == nil || !strings.Contains(err.Error(), "cert") {
			t.Errorf("%q: %v, want an error about cert", bad, err)
		}
	}
}

// certServer starts a name server with the policy text and a mutual-TLS
// listener whose client CA is ca; it returns the server and the
// "tls:ip:port" to dial.
func certServer(t *testing.T, ca *tlstest.CA, policy string) (*testServer, string) {
	t.Helper()
	ts := policyServer(t, policy, nil)
	srv := ca.Server(t, "names")
	cfg, err := flow.NewServerTLS(srv.CertFile, srv.KeyFile, ca.CertFile, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ts.ServeTLS("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ts, "tls:" + a.String()
}

// dialCert dials url showing the certificate is (none if nil), trusting
// the server certificates trust issued.
func dialCert(t *testing.T, url string, trust *tlstest.CA, is *tlstest.Issued) *Client {
	t.Helper()
	cert, key := "", ""
	if is != nil {
		cert, key = is.CertFile, is.KeyFile
	}
	cfg, err := flow.NewClientTLS(trust.CertFile, cert, key, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return dial(t, url, ClientOptions{TLS: cfg})
}

// TestPolicyClientCertificate: with default-deny and a cert rule, the
// client showing that certificate registers; one with another certificate
// of the same CA is refused by the policy; one whose certificate another
// CA issued cannot even connect; a plain TCP client is refused.
func TestPolicyClientCertificate(t *testing.T) {
	ca, other := tlstest.NewCA(t, "names-ca"), tlstest.NewCA(t, "other-ca")
	ts, url := certServer(t, ca, `mode default-deny
allow register billing.* cert alice via tcp
allow lookup,subscribe *
`)
	alice := dialCert(t, url, ca, ca.Client(t, "alice"))
	bob := dialCert(t, url, ca, ca.Client(t, "bob"))
	plain := dial(t, ts.tcp(), ClientOptions{})

	register(t, alice, regAt("billing.api", "127.0.0.1:7001"))
	refusedRegister(t, bob, regAt("billing.api", "127.0.0.1:6666"))
	refusedRegister(t, plain, regAt("billing.api", "127.0.0.1:6667"))
	wantRefused(t, ts, RefusedPolicyRegister, 2)

	// A certificate with alice's name from another CA: the handshake
	// fails, so no request reaches the policy.
	forger := dialCert(t, url, ca, other.Client(t, "alice"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := forger.Register(ctx, regAt("billing.api", "127.0.0.1:6668")); err == nil {
		t.Error("a client with another CA's certificate registered")
	}
	wantRefused(t, ts, RefusedPolicyRegister, 2)
	handshakeErrors := func() (n uint64) {
		for _, f := range ts.Flows() {
			if tf, ok := f.(*flow.TLSServer); ok {
				n += tf.Stats().HandshakeErrors
			}
		}
		return n
	}
	testutil.WaitFor(t, waitLimit, "a handshake error counted for the other CA's certificate", func() bool { return handshakeErrors() > 0 })

	got := lookupAll(t, plain, "billing.api", "")
	if len(got) != 1 || got[0].Addresses[0].Addr.Port() != 7001 {
		t.Fatalf("lookup: %v, want alice's only", got)
	}
}

// TestPolicyFirstOwnerByCertificate: in first-owner mode a certificate's
// name owns what it registered: another connection with the same
// certificate may register the name again, another certificate may not.
func TestPolicyFirstOwnerByCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "names-ca")
	ts, url := certServer(t, ca, "mode first-owner\n")
	aliceCert := ca.Client(t, "alice")
	a1 := dialCert(t, url, ca, aliceCert)
	a2 := dialCert(t, url, ca, aliceCert)
	bob := dialCert(t, url, ca, ca.Client(t, "bob"))
	register(t, a1, regAt("svc", "127.0.0.1:7001"))
	register(t, a2, regAt("svc", "127.0.0.1:7002"))
	refusedRegister(t, bob, regAt("svc", "127.0.0.1:6666"))
	wantRefused(t, ts, RefusedPolicyOwner, 1)
	if got := lookupAll(t, bob, "svc", ""); len(got) != 2 {
		t.Fatalf("lookup: %v, want alice's two", got)
	}
}
