package namesvc

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/syncbuf"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/testutil/testpeer"
	"github.com/stk-go/stk/seq"
)

// Tests of the access policy: the file format and rule matching, then a
// real server over loopback with Go clients (tokens) and raw C-format
// clients (source networks).

const (
	alphaSecret = "alpha-secret-0123456789"
	betaSecret  = "beta-secret-0123456789"
)

func mustPolicy(t testing.TB, text string) *Policy {
	t.Helper()
	p, err := ParsePolicy(strings.NewReader(text), "test.conf")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParsePolicy(t *testing.T) {
	p := mustPolicy(t, `
# a comment
mode default-deny
allow register billing.* token billing group prod,"" via tcp   # tokens may come later
token billing `+HashToken(alphaSecret)+`
token ops `+betaSecret+`
allow lookup,subscribe *
deny all step from 10.0.0.0/8,192.168.1.7
allow register c.?x from 127.0.0.1/32 via tcp,udp
`)
	if p.Mode != ModeDefaultDeny || len(p.Rules()) != 4 || strings.Join(p.Tokens(), ",") != "billing,ops" {
		t.Fatalf("parsed %v: rules %+v tokens %v", p, p.Rules(), p.Tokens())
	}
	r := p.Rules()[0]
	if !r.Allow || r.Ops != OpRegister || r.Names[0] != "billing.*" || len(r.Groups) != 2 || r.Groups[1] != "" ||
		r.Tokens[0] != "billing" || len(r.Via) != 1 || r.Via[0] != flow.TCP || r.Line != 4 {
		t.Errorf("rule 0: %+v", r)
	}
	if r := p.Rules()[2]; r.Allow || r.Ops != OpAll || len(r.From) != 2 || r.From[1] != netip.MustParsePrefix("192.168.1.7/32") {
		t.Errorf("rule 2: %+v", r)
	}

	_, err := ParsePolicy(strings.NewReader(`mode closed
token short abc
allow fly *
allow register x token nobody
deny register x from 10.0.0.0/33
mode open
frobnicate
`), "bad.conf")
	if err == nil {
		t.Fatal("a bad policy parsed")
	}
	for _, want := range []string{"bad.conf:1:", "bad.conf:2:", "bad.conf:3:", "bad.conf:4:", "bad.conf:5:", "bad.conf:6:", "bad.conf:7:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		g, s string
		want bool
	}{
		{"step", "step", true}, {"step", "steps", false}, {"step.*", "step.a", true}, {"step.*", "step", false},
		{"*", "", true}, {"a*b*c", "aXbYc", true}, {"a*b*c", "aXbY", false}, {"?x", "cx", true}, {"?x", "x", false},
		{"*.prod", "billing.prod", true}, {"b*.p?od", "billing.prod", true}, {"a**", "a", true},
	} {
		if got := compilePattern(tc.g).match(tc.s); got != tc.want {
			t.Errorf("%q ~ %q: %v, want %v", tc.g, tc.s, got, tc.want)
		}
	}
}

func TestPolicyDecide(t *testing.T) {
	p := mustPolicy(t, `mode default-deny
token billing `+alphaSecret+`
allow register billing.* token billing
deny lookup secret*
allow lookup *
allow subscribe feed group g1
allow register c.* from 127.0.0.0/24 via tcp
allow register *-svc-? from 10.0.0.0/8
allow register *.prod from 127.0.0.1
allow register web-?.t*t from 127.0.0.1
deny register web* from 127.0.0.2
allow register monitor token billing
deny register monitor
allow register * from 127.0.0.9
`)
	lo, other := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	for i, tc := range []struct {
		op          Op
		name, group string
		who         identity
		proto       flow.Protocol
		want        bool
	}{
		{OpRegister, "billing.a", "", identity{token: "billing", ip: lo}, flow.TCP, true},
		{OpRegister, "billing.a", "", identity{ip: lo}, flow.TCP, false},
		{OpRegister, "other", "", identity{token: "billing", ip: lo}, flow.TCP, false},
		{OpLookup, "anything", "", identity{ip: other}, flow.UDP, true},
		{OpLookup, "secret.x", "", identity{ip: lo}, flow.TCP, false}, // the first match decides
		{OpSubscribe, "feed", "g1", identity{ip: lo}, flow.TCP, true},
		{OpSubscribe, "feed", "", identity{ip: lo}, flow.TCP, false},
		{OpRegister, "c.x", "", identity{ip: lo}, flow.TCP, true},
		{OpRegister, "c.x", "", identity{ip: lo}, flow.UDP, false},
		{OpRegister, "c.x", "", identity{ip: netip.MustParseAddr("127.0.1.1")}, flow.TCP, false},
		{OpRegister, "a-svc-1", "", identity{ip: netip.MustParseAddr("10.1.2.3")}, flow.TCP, true},
		{OpRegister, "a-svc-12", "", identity{ip: netip.MustParseAddr("10.1.2.3")}, flow.TCP, false},
		{OpRegister, "db.eu.prod", "", identity{ip: lo}, flow.TCP, true},
		{OpRegister, "db.eu.prod", "", identity{ip: other}, flow.TCP, false},
		{OpRegister, "web-1.test", "", identity{ip: lo}, flow.TCP, true},
		{OpRegister, "web-1.dev", "", identity{ip: netip.MustParseAddr("127.0.0.9")}, flow.TCP, true}, // the last rule
		{OpRegister, "web-1.dev", "", identity{ip: other}, flow.TCP, false},
		{OpRegister, "monitor", "", identity{token: "billing", ip: other}, flow.TCP, true},
		{OpRegister, "monitor", "", identity{ip: netip.MustParseAddr("127.0.0.9")}, flow.TCP, false}, // denied before the last rule
	} {
		if got := p.decide(tc.op, tc.name, tc.group, tc.who, tc.proto); got.allow != tc.want {
			t.Errorf("case %d (%v %q group %q by %v over %v): allow %v, want %v", i, tc.op, tc.name, tc.group, tc.who, tc.proto, got.allow, tc.want)
		}
	}
	var none *Policy
	if d := none.decide(OpRegister, "x", "", identity{}, flow.UDP); !d.allow {
		t.Error("the nil policy refused")
	}
	if n, _, ok := p.verifyToken([]byte("billing:" + alphaSecret)); !ok || n != "billing" {
		t.Error("the right token was refused")
	}
	for _, bad := range []string{"billing:" + betaSecret, "nobody:" + alphaSecret, alphaSecret, "billing:", ""} {
		if _, _, ok := p.verifyToken([]byte(bad)); ok {
			t.Errorf("token %q accepted", bad)
		}
	}
}

// policyServer starts a server with the policy text.
func policyServer(t *testing.T, text string, logs *syncbuf.Buffer) *testServer {
	t.Helper()
	cfg := ServerConfig{Policy: mustPolicy(t, text)}
	if logs != nil {
		cfg.Logger = slogTo(logs)
	}
	return startServer(t, cfg, "", "")
}

// regAt is regInfo with its own address, to tell registrations apart.
func regAt(name, addr string) Info {
	info := regInfo(name)
	info.Addresses[0].Addr = netip.MustParseAddrPort(addr)
	return info
}

// waitAuthenticated waits until n clients showed a token.
func waitAuthenticated(t *testing.T, ts *testServer, n int) {
	t.Helper()
	testutil.WaitForf(t, waitLimit, func() bool { return ts.Stats().Authenticated == n },
		func() string { return fmt.Sprintf("%d authenticated clients, want %d", ts.Stats().Authenticated, n) })
}

func TestPolicyFirstOwner(t *testing.T) {
	var logs syncbuf.Buffer
	ts := policyServer(t, "mode first-owner\ntoken alpha "+alphaSecret+"\ntoken beta "+betaSecret+"\n", &logs)
	a := dial(t, ts.tcp(), ClientOptions{Token: "alpha:" + alphaSecret})
	b := dial(t, ts.tcp(), ClientOptions{Token: "beta:" + betaSecret})
	register(t, a, regAt("svc", "127.0.0.1:7001"))
	refusedRegister(t, b, regAt("svc", "127.0.0.1:6666"))
	wantRefused(t, ts, RefusedPolicyOwner, 1)
	got := lookupAll(t, b, "svc", "")
	if len(got) != 1 || got[0].Addresses[0].Addr.Port() != 7001 {
		t.Fatalf("lookup: %v, want only the owner's", got)
	}
	// The owner may register it again (another connection, same token),
	// and b may register names nobody owns.
	a2 := dial(t, ts.tcp(), ClientOptions{Token: "alpha:" + alphaSecret})
	register(t, a2, regAt("svc", "127.0.0.1:7002"))
	register(t, b, regAt("mine", "127.0.0.1:6001"))

	// Gone, its linger included: then b may have it.
	a.Close()
	a2.Close()
	recv(t, ts.gone, "a's disconnect")
	recv(t, ts.gone, "a2's disconnect")
	refusedRegister(t, b, regAt("svc", "127.0.0.1:6666")) // lingering still
	ts.clk.Advance(regInfo("").Linger + time.Second)
	register(t, b, regAt("svc", "127.0.0.1:6666"))
	if got := lookupAll(t, b, "svc", ""); len(got) != 1 || got[0].Addresses[0].Addr.Port() != 6666 {
		t.Fatalf("lookup after the owner's linger: %v, want b's", got)
	}
	if n := strings.Count(logs.String(), "reason=policy_owner"); n < 1 || n > 2 {
		t.Errorf("%d log lines for 2 refusals within a second or so, want 1 (2 across a second boundary):\n%s", n, logs.String())
	}
}

func TestPolicyDefaultDenyToken(t *testing.T) {
	ts := policyServer(t, `mode default-deny
token billing `+HashToken(alphaSecret)+`
allow register billing.* token billing
allow lookup,subscribe *
`, nil)
	with := dial(t, ts.tcp(), ClientOptions{Token: "billing:" + alphaSecret})
	without := dial(t, ts.tcp(), ClientOptions{})
	wrong := dial(t, ts.tcp(), ClientOptions{Token: "billing:" + betaSecret})
	info := regAt("billing.api", "127.0.0.1:7001")
	info.Meta = []seq.Element{{UserType: 100, Data: []byte("meta\x00")}}
	register(t, with, info)
	refusedRegister(t, without, regAt("billing.api", "127.0.0.1:6666"))
	refusedRegister(t, wrong, regAt("billing.api", "127.0.0.1:6667"))
	wantRefused(t, ts, RefusedPolicyRegister, 2)
	if ts.Stats().Refused[RefusedPolicyToken] == 0 {
		t.Error("the wrong token was not counted")
	}
	// Over UDP too: the token comes in the keep-alive sent before any
	// request. The client re-sends both (keep-alives every 500 ms, the
	// request every 50 ms): a loaded loopback can drop a datagram, and the
	// test is about the token, not about one datagram surviving.
	u := dial(t, ts.udp(), ClientOptions{Token: "billing:" + alphaSecret, RetryInterval: 50 * time.Millisecond})
	register(t, u, regAt("billing.udp", "127.0.0.1:7003"))

	got := lookupAll(t, without, "billing.api", "")
	if len(got) != 1 || !sameInfo(got[0], info) {
		t.Fatalf("lookup: %v, want %v", got, info)
	}
	// The token is in no answer, no stored registration, no echo.
	for _, e := range got[0].Meta {
		if bytes.Contains(e.Data, []byte(alphaSecret)) || e.UserType == UTToken {
			t.Errorf("an answer carries the token: %v", e)
		}
	}
	for _, e := range ts.Names() {
		for _, el := range e.Info.Meta {
			if bytes.Contains(el.Data, []byte(alphaSecret)) {
				t.Errorf("stored registration %s carries the token", e.Name)
			}
		}
	}
	c := rawTCP(t, ts.tcpAddr)
	sb := smartbeatSequence(time.Now(), netip.AddrPort{})
	sb.Add(UTToken, []byte("billing:"+alphaSecret))
	c.write(sb)
	echo := c.read(time.Now().Add(waitLimit))
	if echo == nil || echo.ID != seq.IDSmartbeat || len(echo.Elements) != 3 {
		t.Fatalf("echo %v, want the smartbeat's two elements and NS_ID", echo)
	}
	for _, e := range echo.Elements {
		if e.UserType == UTToken || bytes.Contains(e.Data, []byte(alphaSecret)) {
			t.Errorf("the echo carries the token: %v", elems(echo))
		}
	}
	// The raw client is now authenticated too: a C-format registration
	// on that connection is admitted.
	c.write(buildRegister(9, new(regAt("billing.raw", "127.0.0.1:7004"))))
	c.barrier()
	if len(c.got) != 1 || c.got[0].Type != seq.TypeRequest {
		t.Errorf("raw registration after the token: %d replies", len(c.got))
	}
}

// rawTCPFrom dials addr from the local IP src, skipping if it cannot.
func rawTCPFrom(t *testing.T, src string, addr netip.AddrPort) *replayClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitLimit}
	conn, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Skipf("cannot connect from %s (needs the loopback network 127.0.0.0/8 on lo): %v", src, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &replayClient{t: t, label: "raw tcp from " + src, tcp: conn, isTCP: true}
}

func TestPolicyCClientBySourceNetwork(t *testing.T) {
	ts := policyServer(t, `mode default-deny
allow register c.* from 127.0.0.1/32
allow lookup * from 127.0.0.1
`, nil)
	ok := rawTCPFrom(t, "127.0.0.1", ts.tcpAddr)
	no := rawTCPFrom(t, "127.0.0.2", ts.tcpAddr)
	ok.write(buildRegister(1, new(regAt("c.svc", "127.0.0.1:7001"))))
	ok.barrier()
	no.write(buildRegister(2, new(regAt("c.svc", "127.0.0.2:6666"))))
	no.barrier()
	if len(ok.got) != 1 || ok.got[0].Type != seq.TypeRequest {
		t.Errorf("from 127.0.0.1: %d replies, want the confirmation", len(ok.got))
	}
	if len(no.got) != 0 {
		t.Errorf("from 127.0.0.2: answered %s, want nothing", elems(no.got[0]))
	}
	wantRefused(t, ts, RefusedPolicyRegister, 1)
	// Lookups as C sends them (no end-of-answers element): 127.0.0.1
	// gets the answer, 127.0.0.2 nothing, as for an unknown name.
	ok.got, no.got = nil, nil
	ok.write(buildQuery(seq.TypeQuery, 3, "c.svc", "", false))
	ok.barrier()
	no.write(buildQuery(seq.TypeQuery, 4, "c.svc", "", false))
	no.barrier()
	if len(ok.got) != 1 || len(no.got) != 0 {
		t.Errorf("lookups: %d answers from 127.0.0.1 (want 1), %d from 127.0.0.2 (want 0)", len(ok.got), len(no.got))
	}
	wantRefused(t, ts, RefusedPolicyLookup, 1)
	if st := ts.Stats(); st.Registrations != 1 {
		t.Errorf("%d registrations stored, want 1", st.Registrations)
	}
}

func TestPolicyUDPCannotReplaceTCP(t *testing.T) {
	t.Run("udp refused for the name", func(t *testing.T) {
		ts := policyServer(t, "deny register svc via udp,multicast\n", nil)
		c := dial(t, ts.tcp(), ClientOptions{})
		register(t, c, regAt("svc", "127.0.0.1:7001"))
		u := rawUDP(t, ts.udpAddr)
		u.write(buildRegister(1, new(regAt("svc", "127.0.0.1:6666"))))
		u.write(buildRegister(2, new(regAt("other", "127.0.0.1:6666"))))
		u.barrier()
		if len(u.got) != 1 { // only "other"
			t.Errorf("UDP registrations: %d replies, want 1", len(u.got))
		}
		if got := lookupAll(t, c, "svc", ""); len(got) != 1 || got[0].Addresses[0].Addr.Port() != 7001 {
			t.Errorf("lookup: %v, want the TCP registration only", got)
		}
		wantRefused(t, ts, RefusedPolicyRegister, 1)
	})
	t.Run("first-owner keeps the TCP owner's", func(t *testing.T) {
		ts := policyServer(t, "mode first-owner\ntoken owner "+alphaSecret+"\n", nil)
		c := dial(t, ts.tcp(), ClientOptions{Token: "owner:" + alphaSecret})
		info := regAt("svc", "127.0.0.1:7001")
		register(t, c, info)
		// A datagram with the same source IP but no token: another
		// identity, so it cannot take the name, not even with the same
		// elements (a lingering twin would otherwise be replaced).
		u := rawUDP(t, ts.udpAddr)
		u.write(buildRegister(1, new(regAt("svc", "127.0.0.1:6666"))))
		u.barrier()
		c.Close()
		recv(t, ts.gone, "the owner's disconnect")
		u.write(buildRegister(2, &info))
		u.barrier()
		if len(u.got) != 0 {
			t.Errorf("UDP registrations answered: %s", elems(u.got[0]))
		}
		wantRefused(t, ts, RefusedPolicyOwner, 2)
		names := ts.Names()
		if len(names) != 1 || names[0].Transport != flow.TCP || !names[0].Lingering {
			t.Errorf("stored %+v, want the owner's lingering TCP registration", names)
		}
	})
}

func TestPolicyRefusedLookupAndSubscribe(t *testing.T) {
	ts := policyServer(t, `mode default-deny
token pub `+alphaSecret+`
allow register pub.* token pub
allow lookup,subscribe pub.*
`, nil)
	p := dial(t, ts.tcp(), ClientOptions{Token: "pub:" + alphaSecret})
	c := dial(t, ts.tcp(), ClientOptions{})
	register(t, p, regAt("pub.a", "127.0.0.1:7001"))
	res := make(chan LookupResult, 1)
	if _, err := c.Lookup("secret", LookupOptions{Expiration: waitLimit}, nil, func(r LookupResult) { res <- r }); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, res, "the refused lookup's end"); r.Answers != 0 || !r.Complete {
		t.Errorf("refused lookup: %+v, want a miss ended by the marker", r)
	}
	pushed := make(chan Info, 10)
	synced := make(chan int, 1)
	if _, err := c.Subscribe("secret", SubscribeOptions{OnSynced: func(n int) { synced <- n }}, func(i Info) { pushed <- i }); err != nil {
		t.Fatal(err)
	}
	if n := recv(t, synced, "the refused subscription's end of answers"); n != 0 {
		t.Errorf("refused subscription: %d answers", n)
	}
	// No subscription was stored for it (so nothing will ever be pushed
	// to it); an allowed subscription of the same client works.
	sub := subscribeSynced(t, c, "pub.a", func(i Info) { pushed <- i })
	defer sub.Unsubscribe()
	if i := recv(t, pushed, "the answer to the allowed subscription"); i.Name != "pub.a" {
		t.Errorf("pushed %v", i)
	}
	register(t, p, regAt("pub.a", "127.0.0.1:7002"))
	if i := recv(t, pushed, "the push"); i.Name != "pub.a" {
		t.Errorf("pushed %v", i)
	}
	wantRefused(t, ts, RefusedPolicyLookup, 1)
	wantRefused(t, ts, RefusedPolicySubscribe, 1)
	if st := ts.Stats(); st.Subscriptions != 1 {
		t.Errorf("%d subscriptions stored, want 1 (the refused one is not)", st.Subscriptions)
	}
}

func TestPolicySetPolicyDropsStaleIdentities(t *testing.T) {
	ts := policyServer(t, "mode default-deny\ntoken a "+alphaSecret+"\nallow register x* token a\n", nil)
	c := dial(t, ts.tcp(), ClientOptions{Token: "a:" + alphaSecret})
	register(t, c, regInfo("x1"))
	waitAuthenticated(t, ts, 1)
	// The same token name with another secret: the client's identity goes.
	ts.SetPolicy(mustPolicy(t, "mode default-deny\ntoken a "+betaSecret+"\nallow register x* token a\n"))
	if n := ts.Stats().Authenticated; n != 0 {
		t.Errorf("%d authenticated after the secret changed, want 0", n)
	}
	refusedRegister(t, c, regInfo("x2"))
	// Back to open: everyone may register again.
	ts.SetPolicy(nil)
	register(t, c, regInfo("x3"))
}

func TestClientTokenChecked(t *testing.T) {
	for _, tok := range []string{"nocolon", ":secret", "name:"} {
		if _, err := Dial("tcp:127.0.0.1:1", ClientOptions{Token: tok}); err == nil {
			t.Errorf("token %q accepted", tok)
		}
	}
}

// BenchmarkLookupWithPolicy: a lookup through Handle with no policy, and
// with a default-deny policy of 1000 rules (900 exact names, 50 prefix
// patterns, 40 globs with a literal suffix, 9 with wild ends). The rules
// are indexed by name, so a lookup looks at a handful of them; a scan of
// 1000 patterns per request would cost tens of microseconds.
func BenchmarkLookupWithPolicy(b *testing.B) {
	var rules strings.Builder
	rules.WriteString("mode default-deny\nallow register *\n")
	for i := range 900 {
		fmt.Fprintf(&rules, "allow lookup svc-%d from 127.0.0.0/8\n", i)
	}
	for i := range 50 {
		fmt.Fprintf(&rules, "allow lookup team%d.* via tcp\n", i)
	}
	for i := range 40 {
		fmt.Fprintf(&rules, "deny lookup *.zone%d\n", i)
	}
	for i := range 9 {
		fmt.Fprintf(&rules, "deny lookup *-x%d-?\n", i)
	}
	for _, n := range []int{0, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			cfg := ServerConfig{Logger: testutil.Discard(), Limits: NoLimits()}
			if n > 0 {
				cfg.Policy = mustPolicy(b, rules.String())
				if got := len(cfg.Policy.Rules()); got != 1000 {
					b.Fatalf("%d rules", got)
				}
			}
			s, _ := newTestServer(b, cfg)
			peer := &discardPeer{testpeer.New(flow.TCP, "127.0.0.1:30000")}
			info := regInfo("svc-450")
			s.Handle(peer, buildRegister(1, &info))
			q := buildQuery(seq.TypeQuery, 2, "svc-450", "", true)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				s.Handle(peer, q)
			}
			b.StopTimer()
			if st := s.Stats(); st.Answers != uint64(b.N) || st.Refused[RefusedPolicyLookup] != 0 {
				b.Fatalf("answers %d of %d lookups, refused %d", st.Answers, b.N, st.Refused[RefusedPolicyLookup])
			}
		})
	}
}
