package namesvc

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/syncbuf"
	"github.com/stk-go/stk/internal/testutil/testpeer"
	"github.com/stk-go/stk/seq"
)

// The server's protocol core, without sockets: fake peers, a fake clock.

func TestServerRegisterLookup(t *testing.T) {
	s, _ := newTestServer(t, ServerConfig{})
	reg := testpeer.New(flow.TCP, "127.0.0.1:40001")
	info := regInfo("svc")
	info.Group = "g"
	info.Meta = []seq.Element{{UserType: 100, Data: []byte("hello\x00")}, {UserType: 200, Data: []byte("world\x00")}}
	s.Handle(reg, buildRegister(0x1111, &info))
	got := reg.Take()
	if len(got) != 1 || elems(got[0]) != `request 5:1111000000000000 1:"svc"` {
		t.Fatalf("register reply: %v", got)
	}

	q := testpeer.New(flow.TCP, "127.0.0.1:40002")
	s.Handle(q, buildQuery(seq.TypeQuery, 0x2222, "svc", "g", false))
	got = q.Take()
	want := `query 1:"svc" 4:05000000 3:"g" 2:0000581b7f0000010000000000000000 6:"tcp" 7:01000000 100:"hello" 200:"world" 5:2222000000000000`
	if len(got) != 1 || elems(got[0]) != want {
		t.Fatalf("lookup answer:\n got  %v\n want %s", got, want)
	}
	if got[0].ID != seq.IDNameRequest || got[0].Name != seq.NameNameRequest {
		t.Errorf("answer header %v", got[0])
	}

	// A miss is silence; with the extension, just the marker.
	s.Handle(q, buildQuery(seq.TypeQuery, 3, "nope", "", false))
	if got := q.Take(); len(got) != 0 {
		t.Fatalf("miss answered: %v", got)
	}
	s.Handle(q, buildQuery(seq.TypeQuery, 4, "nope", "", true))
	got = q.Take()
	if len(got) != 1 || elems(got[0]) != `query 1:"nope" 2587754497:00000000 5:0400000000000000` {
		t.Fatalf("miss with end-of-answers: %v", got)
	}
	// A hit with the extension: answers, then the marker with the count.
	s.Handle(q, buildQuery(seq.TypeQuery, 5, "svc", "g", true))
	got = q.Take()
	if len(got) != 2 || got[1].Elements[1].UserType != UTEndOfAnswers || binary.LittleEndian.Uint32(got[1].Elements[1].Data) != 1 {
		t.Fatalf("hit with end-of-answers: %v", got)
	}
}

func TestServerGroups(t *testing.T) {
	s, _ := newTestServer(t, ServerConfig{})
	reg := testpeer.New(flow.TCP, "127.0.0.1:40001")
	inG := regInfo("a")
	inG.Group = "g"
	s.Handle(reg, buildRegister(1, &inG))
	s.Handle(reg, buildRegister(2, new(regInfo("b"))))
	reg.Take()

	q := testpeer.New(flow.TCP, "127.0.0.1:40002")
	count := func(name, group string) int {
		s.Handle(q, buildQuery(seq.TypeQuery, 9, name, group, false))
		return len(q.Take())
	}
	for _, c := range []struct {
		name, group string
		want        int
	}{
		{"a", "g", 1},           // in its group
		{"a", "", 0},            // not in the default store
		{"a", "nosuchgroup", 0}, // unknown group: default store
		{"b", "", 1},
		{"b", "nosuchgroup", 1}, // unknown group falls back to the default store (docs/differences.md B10)
		{"b", "g", 0},           // known group: its own store only
	} {
		if got := count(c.name, c.group); got != c.want {
			t.Errorf("lookup %q in %q: %d answers, want %d", c.name, c.group, got, c.want)
		}
	}
}

func TestServerReplaceAndAccumulate(t *testing.T) {
	s, _ := newTestServer(t, ServerConfig{})
	a := testpeer.New(flow.TCP, "127.0.0.1:40001")
	b := testpeer.New(flow.TCP, "127.0.0.1:40002")
	port := func(p uint16) *Info {
		i := regInfo("dup")
		i.Addresses[0].Addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p)
		return &i
	}
	s.Handle(a, buildRegister(1, port(1111)))
	s.Handle(b, buildRegister(2, port(2222)))
	s.Handle(a, buildRegister(3, port(3333))) // same connection: replaces 1111 in place
	q := testpeer.New(flow.TCP, "127.0.0.1:40003")
	s.Handle(q, buildQuery(seq.TypeQuery, 9, "dup", "", false))
	got := q.Take()
	if len(got) != 2 {
		t.Fatalf("%d answers, want 2", len(got))
	}
	var info Info
	parseAnswer(got[0], &info)
	if info.Addresses[0].Addr.Port() != 3333 {
		t.Errorf("first answer port %d, want 3333 (replaced in place)", info.Addresses[0].Addr.Port())
	}
	parseAnswer(got[1], &info)
	if info.Addresses[0].Addr.Port() != 2222 {
		t.Errorf("second answer port %d, want 2222", info.Addresses[0].Addr.Port())
	}
	if st := s.Stats(); st.Registrations != 2 {
		t.Errorf("stats: %+v", st)
	}
}

func TestServerLinger(t *testing.T) {
	s, clk := newTestServer(t, ServerConfig{})
	reg := testpeer.New(flow.TCP, "127.0.0.1:40001")
	info := regInfo("short")
	info.Linger = 2 * time.Second
	s.Handle(reg, buildRegister(1, &info))
	zero := regInfo("zero")
	zero.Linger = 0
	s.Handle(reg, buildRegister(2, &zero))
	q := testpeer.New(flow.TCP, "127.0.0.1:40002")
	answers := func(name string) int {
		s.Handle(q, buildQuery(seq.TypeQuery, 9, name, "", false))
		return len(q.Take())
	}

	clk.Advance(time.Hour) // no expiry while the connection is open
	if n := s.collect(clk.Now()); n != 0 || answers("short") != 1 {
		t.Fatal("registration expired while its connection was open")
	}
	s.Disconnect(reg)
	if answers("zero") != 0 {
		t.Error("linger 0: still answered after the disconnect")
	}
	e := s.Names()
	if len(e) != 1 || !e[0].Lingering || e[0].Expires != clk.Now().Add(2*time.Second) {
		t.Errorf("Names while lingering: %+v", e)
	}
	clk.Advance(time.Second)
	if answers("short") != 1 {
		t.Error("not answered within its linger")
	}
	clk.Advance(time.Second)
	if answers("short") != 0 {
		t.Error("answered after its linger")
	}
	if n := s.collect(clk.Now()); n != 2 {
		t.Errorf("collect removed %d, want 2", n)
	}
	if st := s.Stats(); st.Registrations != 0 || st.Lingering != 0 || st.Clients != 0 {
		t.Errorf("after collect: %+v", st)
	}
}

func TestServerLingeringReplacedByIdentical(t *testing.T) {
	s, _ := newTestServer(t, ServerConfig{})
	a := testpeer.New(flow.TCP, "127.0.0.1:40001")
	info := regInfo("svc")
	s.Handle(a, buildRegister(1, &info))
	s.Disconnect(a)
	b := testpeer.New(flow.TCP, "127.0.0.1:40002") // the same service, reconnected
	s.Handle(b, buildRegister(2, &info))
	if st := s.Stats(); st.Registrations != 1 || st.Lingering != 0 {
		t.Errorf("identical re-registration did not replace the lingering one: %+v", st)
	}
	other := info
	other.Linger = 7 * time.Second
	s.Disconnect(b)
	c := testpeer.New(flow.TCP, "127.0.0.1:40003")
	s.Handle(c, buildRegister(3, &other)) // different content: both kept
	if st := s.Stats(); st.Registrations != 2 {
		t.Errorf("different registration replaced a lingering one: %+v", st)
	}
}

func TestServerUDPTTL(t *testing.T) {
	s, clk := newTestServer(t, ServerConfig{UDPTTL: 10 * time.Second})
	l := testpeer.New(flow.UDP, "127.0.0.1:50001")
	other := l.Datagram("127.0.0.1:50002")
	s.Handle(l, buildRegister(1, new(regInfo("u"))))
	s.Handle(other, buildRegister(2, new(regInfo("u"))))
	if len(l.Take()) != 1 || len(other.Take()) != 1 {
		t.Fatal("UDP registrations not confirmed to their sources")
	}
	q := testpeer.New(flow.TCP, "127.0.0.1:40002")
	answers := func() int {
		s.Handle(q, buildQuery(seq.TypeQuery, 9, "u", "", false))
		return len(q.Take())
	}
	if n := answers(); n != 2 {
		t.Fatalf("%d answers; two UDP sources must not replace each other", n)
	}
	for range 3 { // keep-alives from l refresh its registration
		clk.Advance(8 * time.Second)
		s.Handle(l, smartbeatSequence(clk.Now(), netip.AddrPort{}))
	}
	if n := answers(); n != 1 {
		t.Fatalf("%d answers after 24 s; want only the refreshed one", n)
	}
	if n := s.collect(clk.Now()); n != 1 {
		t.Errorf("collect removed %d, want 1", n)
	}
	// l goes silent: at the end of its TTL it lingers (5 s, as regInfo),
	// like a TCP registrant that disconnected.
	clk.Advance(11 * time.Second)
	s.collect(clk.Now())
	if n := answers(); n != 1 {
		t.Fatal("UDP registration gone at the end of its TTL, before its linger")
	}
	if e := s.Names(); len(e) != 1 || !e[0].Lingering || !e[0].Expires.Equal(clk.Now().Add(4*time.Second)) {
		t.Fatalf("Names %+v: want one lingering until 24 s + TTL 10 s + linger 5 s", e)
	}
	clk.Advance(4 * time.Second)
	if n := answers(); n != 0 {
		t.Fatal("UDP registration outlived its TTL plus its linger")
	}
	if n := s.collect(clk.Now()); n != 1 || s.Stats().Registrations != 0 {
		t.Errorf("collect removed %d, stats %+v; want the lingering registration removed", n, s.Stats())
	}

	// Negative TTL: never expire, as C.
	s2, clk2 := newTestServer(t, ServerConfig{UDPTTL: -1})
	s2.Handle(l, buildRegister(1, new(regInfo("u"))))
	clk2.Advance(1000 * time.Hour)
	s2.collect(clk2.Now())
	s2.Handle(q, buildQuery(seq.TypeQuery, 9, "u", "", false))
	if len(q.Take()) != 1 {
		t.Error("UDPTTL < 0: UDP registration expired")
	}
}

func TestServerSubscribe(t *testing.T) {
	s, _ := newTestServer(t, ServerConfig{})
	reg := testpeer.New(flow.TCP, "127.0.0.1:40001")
	s.Handle(reg, buildRegister(1, new(regInfo("n"))))
	sub := testpeer.New(flow.TCP, "127.0.0.1:40002")
	s.Handle(sub, buildQuery(seq.TypeSubscribe, 0x77, "n", "", true))
	got := sub.Take()
	if len(got) != 3 || elems(got[0]) != `request 5:7700000000000000 1:"n"` ||
		got[1].Type != seq.TypeQuery || got[2].Elements[1].UserType != UTEndOfAnswers {
		t.Fatalf("subscribe: %v", got)
	}
	reg2 := testpeer.New(flow.TCP, "127.0.0.1:40003")
	s.Handle(reg2, buildRegister(2, new(regInfo("n"))))
	got = sub.Take()
	if len(got) != 1 || got[0].Elements[len(got[0].Elements)-1].UserType != seq.UTNSRequestID ||
		binary.LittleEndian.Uint64(got[0].Elements[len(got[0].Elements)-1].Data) != 0x77 {
		t.Fatalf("push: %v", got)
	}
	if e := s.Names(); e[0].Subscribers != 1 {
		t.Errorf("Names: subscribers %d", e[0].Subscribers)
	}
	// Other names and groups are not pushed.
	other := regInfo("n")
	other.Group = "g"
	s.Handle(reg2, buildRegister(3, &other))
	s.Handle(reg2, buildRegister(4, new(regInfo("m"))))
	if got := sub.Take(); len(got) != 0 {
		t.Fatalf("pushed other names: %v", got)
	}
	// A subscription to a group that does not exist yet creates it and
	// gets its later registrations (capture 04).
	gsub := testpeer.New(flow.TCP, "127.0.0.1:40004")
	s.Handle(gsub, buildQuery(seq.TypeSubscribe, 0x78, "n", "newgroup", false))
	if got := gsub.Take(); len(got) != 1 {
		t.Fatalf("subscribe to a new group: %v", got)
	}
	inNew := regInfo("n")
	inNew.Group = "newgroup"
	s.Handle(reg2, buildRegister(6, &inNew))
	if got := gsub.Take(); len(got) != 1 {
		t.Fatalf("registration in the new group not pushed: %v", got)
	}
	if got := sub.Take(); len(got) != 0 {
		t.Fatalf("default-group subscriber got a push for another group: %v", got)
	}
	reg2.Take()

	// The subscription ends with its connection.
	s.Disconnect(sub)
	s.Handle(reg, buildRegister(5, new(regInfo("n"))))
	if got := sub.Take(); len(got) != 0 || s.Stats().Subscriptions != 1 {
		t.Fatalf("pushed after disconnect: %v", got)
	}
}

func TestServerSubscribeUDPPushesToSubscriber(t *testing.T) {
	s, _ := newTestServer(t, ServerConfig{})
	l := testpeer.New(flow.UDP, "127.0.0.1:40712")
	s.Handle(l, buildQuery(seq.TypeSubscribe, 1, "udp_sub_name", "", false))
	if len(l.Take()) != 1 {
		t.Fatal("no confirmation")
	}
	reg := testpeer.New(flow.TCP, "127.0.0.1:45782")
	s.Handle(reg, buildRegister(2, new(regInfo("udp_sub_name"))))
	if len(reg.Take()) != 1 {
		t.Fatal("registrant: want the reply only")
	}
	if got := l.Take(); len(got) != 1 || got[0].Type != seq.TypeQuery {
		t.Fatalf("UDP subscriber: %v (docs/differences.md B8: C sends it to the registrant)", got)
	}
}

func TestServerKeepaliveEcho(t *testing.T) {
	s, _ := newTestServer(t, ServerConfig{ID: 0x709d8366})
	p := testpeer.New(flow.TCP, "127.0.0.1:53516")
	sb := smartbeatSequence(time.Unix(1795313252, 371657000), p.RemoteAddr())
	s.Handle(p, sb)
	got := p.Take()
	if len(got) != 1 {
		t.Fatal("no echo")
	}
	e := got[0]
	if len(e.Elements) != 3 || e.Elements[2].UserType != seq.UTNSID || binary.LittleEndian.Uint64(e.Elements[2].Data) != 0x709d8366 {
		t.Fatalf("echo: %s", elems(e))
	}
	if n := seq.TCPSize(sb); n != 116 {
		t.Errorf("smartbeat %d bytes on TCP, want 116", n)
	}
	if n := seq.TCPSize(e); n != 140 {
		t.Errorf("echo %d bytes on TCP, want 140", n)
	}
	if len(sb.Elements) != 2 {
		t.Error("echo modified the received sequence")
	}
}

// malformedCases are requests C peers abort on (§7.14, docs/differences.md B21): the
// server drops them as malformed and closes a TCP connection. A registration over a C buffer or the address limit is
// well formed, only refused: see refusedCases in limits_test.go.
func malformedCases() map[string]*seq.Sequence {
	good := func() *seq.Sequence { return buildRegister(1, new(regInfo("x"))) }
	set := func(ut uint64, data []byte) *seq.Sequence {
		s := good()
		for i := range s.Elements {
			if s.Elements[i].UserType == ut {
				s.Elements[i].Data = data
			}
		}
		return s
	}
	add := func(ut uint64, data []byte) *seq.Sequence {
		s := good()
		s.Add(ut, data)
		return s
	}
	noName := good()
	noName.Elements = noName.Elements[:1:1]
	noName.Elements = append(noName.Elements, good().Elements[2:]...)
	badType := good()
	badType.Type = seq.TypeData
	query := func(name string) *seq.Sequence {
		s := buildQuery(seq.TypeQuery, 1, "x", "", false)
		s.Elements[1].Data = []byte(name)
		return s
	}
	return map[string]*seq.Sequence{
		"connect_ipv4 15 bytes": set(seq.UTNSConnectIPv4, make([]byte, 15)),
		"connect_ipv4 17 bytes": set(seq.UTNSConnectIPv4, make([]byte, 17)),
		"request_id 4 bytes":    set(seq.UTNSRequestID, make([]byte, 4)),
		"request_id 9 bytes":    set(seq.UTNSRequestID, make([]byte, 9)),
		"linger 8 bytes":        set(seq.UTNSLinger, make([]byte, 8)),
		"linger 2 bytes":        set(seq.UTNSLinger, make([]byte, 2)),
		"ft_state 1 byte":       set(seq.UTNSFTState, make([]byte, 1)),
		"ft_state 8 bytes":      set(seq.UTNSFTState, make([]byte, 8)),
		"ns_id 4 bytes":         add(seq.UTNSID, make([]byte, 4)),
		"no name":               noName,
		"empty name":            set(seq.UTNSName, []byte{0}),
		"name without NUL":      set(seq.UTNSName, []byte("x")),
		"name with inner NUL":   set(seq.UTNSName, []byte("x\x00y\x00")),
		"protocol 16 chars":     set(seq.UTNSProtocol, cStringBytes(strings.Repeat("p", 16))),
		"two names":             add(seq.UTNSName, cStringBytes("y")),
		"type data":             badType,
		"query name 96 chars":   query(strings.Repeat("q", 96) + "\x00"),
		"query empty name":      query(""),
		"foreign sequence id":   {ID: 0x6a549557, Name: "publish sequence", Type: seq.TypeData},
		"subscribe no name": func() *seq.Sequence {
			s := buildQuery(seq.TypeSubscribe, 1, "x", "", false)
			s.Elements = s.Elements[:1]
			return s
		}(),
	}
}

func TestServerRejectsMalformed(t *testing.T) {
	var logs syncbuf.Buffer
	s, _ := newTestServer(t, ServerConfig{Logger: slogTo(&logs)})
	good := testpeer.New(flow.TCP, "127.0.0.1:40000")
	s.Handle(good, buildRegister(1, new(regInfo("ok"))))
	good.Take()
	cases := malformedCases()
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			bad := testpeer.New(flow.TCP, "127.0.0.1:40001")
			s.Handle(bad, req)
			if got := bad.Take(); len(got) != 0 {
				t.Errorf("answered a malformed request: %v", got)
			}
			if !bad.Closed() {
				t.Error("connection not closed")
			}
			s.Handle(good, buildQuery(seq.TypeQuery, 2, "ok", "", false))
			if got := good.Take(); len(got) != 1 {
				t.Errorf("good client lost service: %v", got)
			}
		})
	}
	if st := s.Stats(); st.Rejected != uint64(len(cases)) || st.Registrations != 1 {
		t.Errorf("stats %+v", st)
	}
	if n := strings.Count(logs.String(), "dropped a malformed name request"); n != len(cases) {
		t.Errorf("%d log lines, want %d", n, len(cases))
	}
	if n := strings.Count(logs.String(), "level=WARN"); n < 1 || n > 2 {
		t.Errorf("%d warnings for %d rejects within a second or two: want them rate-limited", n, len(cases))
	}
	// Limits themselves are fine.
	edge := Info{Name: strings.Repeat("n", MaxNameLen), Group: strings.Repeat("g", MaxGroupLen)}
	for range MaxAddresses {
		edge.Addresses = append(edge.Addresses, Endpoint{Protocol: strings.Repeat("p", MaxProtocolLen)})
	}
	s.Handle(good, buildRegister(3, &edge))
	if got := good.Take(); len(got) != 1 || good.Closed() {
		t.Errorf("registration at the limits refused: %v", got)
	}
}

func TestParseRequestRoundTrip(t *testing.T) {
	info := Info{Name: "n", Group: "g", Linger: 3 * time.Second, FT: FTStandby,
		Addresses: []Endpoint{
			{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:5432")},
			{Addr: netip.MustParseAddrPort("10.0.0.2:6000")},
			{Protocol: "udp", Addr: netip.MustParseAddrPort("10.0.0.3:6001")},
		},
		Meta: []seq.Element{{UserType: 0x1000, Data: []byte("tcp:127.0.0.1:20001\x00")}}}
	q := buildRegister(42, &info)
	req, err := parseRequest(q)
	if err != nil {
		t.Fatal(err)
	}
	r := newRegistration(&req, q, testpeer.New(flow.TCP, "127.0.0.1:1"), time.Now())
	if got := r.Info(); req.requestID() != 42 || req.linger != 3*time.Second || !sameInfo(got, info) {
		t.Errorf("parsed %v, want %v", got.String(), info.String())
	}
	s := buildRegister(42, &info)
	s.Type = seq.TypeQuery
	s.Elements = s.Elements[1:]
	var back Info
	parseAnswer(s, &back)
	if back.String() != info.String() || back.Addresses[2] != info.Addresses[2] {
		t.Errorf("answer parsed %v, want %v", back.String(), info.String())
	}
	if v, _ := back.MetaString(0x1000); v != "tcp:127.0.0.1:20001" {
		t.Errorf("MetaString %q", v)
	}
}
