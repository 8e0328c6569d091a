package namesvc

import (
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"

	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testprog/multicast"
	"github.com/stk-go/stk/seq"
)

// End to end: our Client against our Server over loopback sockets.

const waitLimit = 5 * time.Second

type testServer struct {
	*Server
	clk     *testutil.Clock
	tcpAddr netip.AddrPort
	udpAddr netip.AddrPort
	gone    chan flow.Peer // every Disconnect
}

// startServer starts a server with a fake clock on TCP and UDP loopback
// ports (tcpAt/udpAt "" for any port).
func startServer(t testing.TB, cfg ServerConfig, tcpAt, udpAt string) *testServer {
	t.Helper()
	cfg, clk := testConfig(t, cfg)
	if cfg.Flow.EventLoops == 0 {
		cfg.Flow.EventLoops = 2
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, clk: clk, gone: make(chan flow.Peer, 1000)}
	s.afterDisconnect = func(p flow.Peer) { ts.gone <- p }
	t.Cleanup(func() { s.Close() })
	if tcpAt == "" {
		tcpAt = "127.0.0.1:0"
	}
	if udpAt == "" {
		udpAt = "127.0.0.1:0"
	}
	if ts.tcpAddr, err = s.ServeTCP(tcpAt); err != nil {
		t.Fatal(err)
	}
	if ts.udpAddr, err = s.ServeUDP(udpAt); err != nil {
		t.Fatal(err)
	}
	return ts
}

func (ts *testServer) tcp() string { return "tcp:" + ts.tcpAddr.String() }
func (ts *testServer) udp() string { return "udp:" + ts.udpAddr.String() }

func dial(t testing.TB, addr string, opts ClientOptions) *Client {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testutil.Logger(t)
	}
	if opts.Flow.ReconnectMin == 0 {
		opts.Flow.ReconnectMin = 5 * time.Millisecond
		opts.Flow.ReconnectMax = 50 * time.Millisecond
	}
	c, err := Dial(addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func register(t testing.TB, c *Client, info Info) {
	t.Helper()
	if err := c.Register(ctxT(t), info); err != nil {
		t.Fatal(err)
	}
}

func lookupAll(t testing.TB, c *Client, name, group string) []Info {
	t.Helper()
	infos, err := c.LookupAll(ctxT(t), name, LookupOptions{Group: group, Expiration: waitLimit})
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

func sameInfo(a, b Info) bool {
	return a.String() == b.String() && slices.Equal(a.Addresses, b.Addresses) && seq.ElementsEqual(a.Meta, b.Meta)
}

func TestEndToEndRegisterLookupSubscribe(t *testing.T) {
	ts := startServer(t, ServerConfig{}, "", "")
	a := dial(t, ts.tcp(), ClientOptions{})
	b := dial(t, ts.tcp(), ClientOptions{})
	info := Info{Name: "svc", Group: "g", Linger: 10 * time.Second, FT: FTStandby,
		Addresses: []Endpoint{{"tcp", ap("127.0.0.1:29312")}, {"udp", ap("10.1.2.3:29313")}},
		Meta: []seq.Element{{UserType: 100, Data: []byte("hello\x00")},
			{UserType: seq.UTMDDataFlowType, Data: []byte{1, 0}}}}
	register(t, a, info)

	got := lookupAll(t, b, "svc", "g")
	if len(got) != 1 || !sameInfo(got[0], info) {
		t.Fatalf("lookup: %v, want %v", got, info.String())
	}
	if got := lookupAll(t, b, "svc", ""); len(got) != 0 {
		t.Errorf("found in the default group: %v", got)
	}
	if got := lookupAll(t, b, "svc", "nosuchgroup"); len(got) != 0 {
		t.Errorf("unknown group fell back to a store holding it: %v", got)
	}
	if i, err := b.LookupOnce(ctxT(t), "svc", LookupOptions{Group: "g"}); err != nil || i.Name != "svc" {
		t.Errorf("LookupOnce: %v %v", i, err)
	}
	if _, err := b.LookupOnce(ctxT(t), "nope", LookupOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupOnce miss: %v", err)
	}

	// Client-wide group.
	cg := dial(t, ts.tcp(), ClientOptions{Group: "g"})
	if got := lookupAll(t, cg, "svc", ""); len(got) != 1 {
		t.Errorf("ClientOptions.Group not used: %v", got)
	}

	answers := make(chan Info, 10)
	synced := make(chan int, 10)
	sub, err := b.Subscribe("svc", SubscribeOptions{Group: "g", OnSynced: func(n int) { synced <- n }}, func(i Info) { answers <- i })
	if err != nil {
		t.Fatal(err)
	}
	if i := recv(t, answers, "current registration"); !sameInfo(i, info) {
		t.Errorf("subscription answer %v", i.String())
	}
	if n := recv(t, synced, "synced"); n != 1 {
		t.Errorf("synced with %d", n)
	}
	second := info
	second.Addresses = []Endpoint{{"tcp", ap("127.0.0.2:1")}}
	second.FT = FTActive
	register(t, cg, second)
	if i := recv(t, answers, "pushed registration"); !sameInfo(i, second) {
		t.Errorf("push %v, want %v", i.String(), second.String())
	}
	names := ts.Names()
	if len(names) != 2 || names[0].Subscribers != 1 || names[0].Transport != flow.TCP || names[1].FT != FTActive {
		t.Errorf("Names: %+v", names)
	}
	sub.Unsubscribe()
	register(t, a, Info{Name: "svc", Group: "g"}) // replaces a's registration; no callback now
	if got := lookupAll(t, b, "svc", "g"); len(got) != 2 || len(got[0].Addresses) != 0 {
		t.Errorf("after replacement: %v", got)
	}
	select {
	case i := <-answers:
		t.Errorf("callback after Unsubscribe: %v", i.String())
	default:
	}
}

func TestEndOfAnswers(t *testing.T) {
	ts := startServer(t, ServerConfig{}, "", "")
	q := dial(t, ts.tcp(), ClientOptions{})
	for i := range 3 {
		c := dial(t, ts.tcp(), ClientOptions{})
		info := regInfo("tri")
		info.Addresses[0].Addr = netip.AddrPortFrom(info.Addresses[0].Addr.Addr(), uint16(1000+i))
		register(t, c, info)
	}
	type ev struct {
		info *Info
		res  *LookupResult
	}
	lookup := func(name string) ([]ev, time.Duration) {
		events := make(chan ev, 10)
		start := time.Now()
		_, err := q.Lookup(name, LookupOptions{Expiration: 10 * time.Second},
			func(i Info) { events <- ev{info: &i} },
			func(r LookupResult) { events <- ev{res: &r} })
		if err != nil {
			t.Fatal(err)
		}
		var out []ev
		for {
			e := recv(t, events, "lookup events")
			out = append(out, e)
			if e.res != nil {
				return out, time.Since(start)
			}
		}
	}
	evs, took := lookup("tri")
	if len(evs) != 4 || evs[3].res.Answers != 3 || !evs[3].res.Complete {
		t.Fatalf("events %v", evs)
	}
	for i := range 3 {
		if p := evs[i].info.Addresses[0].Addr.Port(); p != uint16(1000+i) {
			t.Errorf("answer %d port %d: not in registration order", i, p)
		}
	}
	if took > time.Second {
		t.Errorf("3 answers took %v with a 10 s expiration", took)
	}
	evs, took = lookup("missing")
	if len(evs) != 1 || evs[0].res.Answers != 0 || !evs[0].res.Complete || took > time.Second {
		t.Errorf("miss: %v after %v", evs, took)
	}

	// Without the marker (a C server, or the extension off) the lookup ends
	// at its expiration.
	plain := dial(t, ts.tcp(), ClientOptions{NoEndOfAnswers: true})
	done := make(chan LookupResult, 1)
	start := time.Now()
	plain.Lookup("tri", LookupOptions{Expiration: 200 * time.Millisecond}, nil, func(r LookupResult) { done <- r })
	r := recv(t, done, "expiry")
	if r.Complete || r.Answers != 3 || time.Since(start) < 200*time.Millisecond {
		t.Errorf("expiry fallback: %+v after %v", r, time.Since(start))
	}
}

func TestLingerEndToEnd(t *testing.T) {
	ts := startServer(t, ServerConfig{}, "", "")
	reg := dial(t, ts.tcp(), ClientOptions{})
	q := dial(t, ts.tcp(), ClientOptions{})
	info := regInfo("short_linger")
	info.Linger = 2 * time.Second
	register(t, reg, info)
	reg.Close()
	recv(t, ts.gone, "the server to see the disconnect")
	if got := lookupAll(t, q, "short_linger", ""); len(got) != 1 {
		t.Fatalf("not answered while lingering: %v", got)
	}
	if n := ts.Names(); len(n) != 1 || !n[0].Lingering {
		t.Errorf("Names: %+v", n)
	}
	ts.clk.Advance(2 * time.Second)
	if got := lookupAll(t, q, "short_linger", ""); len(got) != 0 {
		t.Fatalf("answered after the linger: %v", got)
	}
	if n := ts.collect(ts.clk.Now()); n != 1 || ts.Stats().Registrations != 0 {
		t.Errorf("collect: %d, stats %+v", n, ts.Stats())
	}
}

func TestServerRestartReregisters(t *testing.T) {
	ts := startServer(t, ServerConfig{ID: 1}, "", "")
	changes := make(chan [2]uint64, 10)
	reg := dial(t, ts.tcp(), ClientOptions{OnServerChange: func(o, n uint64) { changes <- [2]uint64{o, n} }})
	sub := dial(t, ts.tcp(), ClientOptions{})
	register(t, reg, regInfo("restart_name"))
	answers := make(chan Info, 10)
	if _, err := sub.Subscribe("restart_name", SubscribeOptions{}, func(i Info) { answers <- i }); err != nil {
		t.Fatal(err)
	}
	recv(t, answers, "first answer")
	if c := recv(t, changes, "first server id"); c != [2]uint64{0, 1} {
		t.Errorf("server change %v", c)
	}

	ts.Close()
	ts2 := startServer(t, ServerConfig{ID: 2}, ts.tcpAddr.String(), "")
	if c := recv(t, changes, "new server id"); c != [2]uint64{1, 2} {
		t.Errorf("server change %v", c)
	}
	// The subscriber subscribes again and hears of the re-registration.
	if i := recv(t, answers, "answer from the new server"); i.Name != "restart_name" {
		t.Errorf("answer %v", i.String())
	}
	if got := lookupAll(t, sub, "restart_name", ""); len(got) != 1 {
		t.Errorf("new server has %d registrations, want 1", len(got))
	}
	if reg.ServerID() != 2 || ts2.Stats().Subscriptions != 1 {
		t.Errorf("server id %d, stats %+v", reg.ServerID(), ts2.Stats())
	}
}

func TestUDPTransport(t *testing.T) {
	ts := startServer(t, ServerConfig{ID: 1}, "", "")
	changes := make(chan uint64, 10)
	u := dial(t, ts.udp(), ClientOptions{Keepalive: 20 * time.Millisecond, OnServerChange: func(_, n uint64) { changes <- n }})
	v := dial(t, ts.udp(), ClientOptions{})
	info := regInfo("udp_name")
	info.Group = "g"
	register(t, u, info)
	if got := lookupAll(t, v, "udp_name", "g"); len(got) != 1 || !sameInfo(got[0], info) {
		t.Fatalf("UDP lookup: %v", got)
	}
	// A UDP subscriber hears of a TCP registration (C sends it to the
	// registrant instead, docs/differences.md B8).
	answers := make(chan Info, 10)
	subSynced := make(chan int, 1)
	if _, err := v.Subscribe("later", SubscribeOptions{OnSynced: func(n int) { subSynced <- n }}, func(i Info) { answers <- i }); err != nil {
		t.Fatal(err)
	}
	recv(t, subSynced, "UDP subscription")
	tc := dial(t, ts.tcp(), ClientOptions{})
	register(t, tc, regInfo("later"))
	if i := recv(t, answers, "push to the UDP subscriber"); i.Name != "later" {
		t.Errorf("push %v", i.String())
	}
	if e := ts.Names(); e[0].Transport != flow.UDP && e[1].Transport != flow.UDP {
		t.Errorf("Names transports: %+v", e)
	}
	recv(t, changes, "first server id")

	// Restart on the same UDP port: no connection breaks, the keep-alive
	// echo shows the new id and the client registers again.
	ts.Close()
	ts2 := startServer(t, ServerConfig{ID: 2}, "", ts.udpAddr.String())
	watch := dial(t, ts2.tcp(), ClientOptions{})
	pushed := make(chan Info, 10)
	synced := make(chan int, 1)
	if _, err := watch.Subscribe("udp_name", SubscribeOptions{Group: "g", OnSynced: func(n int) { synced <- n }}, func(i Info) { pushed <- i }); err != nil {
		t.Fatal(err)
	}
	recv(t, synced, "subscription on the new server")
	if n := recv(t, changes, "new server id"); n != 2 {
		t.Errorf("server id %d", n)
	}
	if i := recv(t, pushed, "re-registration over UDP"); !sameInfo(i, info) {
		t.Errorf("re-registered %v", i.String())
	}
}

// rawTCP is a test connection that writes frames and reads replies.
func rawTCP(t *testing.T, addr netip.AddrPort) *replayClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &replayClient{t: t, label: "raw tcp", tcp: conn, isTCP: true}
}

// expectClosed reads until the server closes c, failing on any reply.
func expectClosed(t *testing.T, c *replayClient) {
	t.Helper()
	if q := c.read(time.Now().Add(waitLimit)); q != nil {
		t.Errorf("reply to a malformed request: %s", elems(q))
	}
	var b [1]byte
	c.tcp.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := c.tcp.Read(b[:]); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Errorf("connection not closed by the server: %v", err)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

func TestMalformedRequestsEndToEnd(t *testing.T) {
	ts := startServer(t, ServerConfig{}, "", "")
	good := dial(t, ts.tcp(), ClientOptions{})
	goodUDP := dial(t, ts.udp(), ClientOptions{})
	register(t, good, regInfo("ok"))
	stillServed := func() {
		t.Helper()
		if got := lookupAll(t, good, "ok", ""); len(got) != 1 {
			t.Fatalf("good TCP client lost service: %v", got)
		}
		if got := lookupAll(t, goodUDP, "ok", ""); len(got) != 1 {
			t.Fatalf("good UDP client lost service: %v", got)
		}
	}
	cases := malformedCases()
	for name, req := range cases {
		t.Run("tcp "+name, func(t *testing.T) {
			c := rawTCP(t, ts.tcpAddr)
			c.write(req)
			expectClosed(t, c)
			stillServed()
		})
	}
	t.Run("tcp random bytes", func(t *testing.T) {
		c := rawTCP(t, ts.tcpAddr)
		garbage := make([]byte, 4096)
		r := rand.New(rand.NewPCG(1, 2))
		for i := range garbage {
			garbage[i] = byte(r.Uint32())
		}
		c.tcp.Write(garbage)
		expectClosed(t, c)
		stillServed()
	})

	// Over UDP: dropped without a reply; the socket keeps working.
	udp, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	uc := &replayClient{t: t, label: "raw udp", udp: udp, udpTo: ts.udpAddr}
	before := ts.Stats().Rejected
	for _, req := range cases {
		uc.write(req)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		d := make([]byte, 1+r.IntN(300))
		for i := range d {
			d[i] = byte(r.Uint32())
		}
		udp.WriteToUDPAddrPort(d, ts.udpAddr)
	}
	uc.barrier() // everything before it was handled
	if len(uc.got) != 0 {
		t.Errorf("UDP replies to malformed requests: %d", len(uc.got))
	}
	if n := ts.Stats().Rejected - before; n != uint64(len(cases)) {
		t.Errorf("%d UDP requests rejected, want %d", n, len(cases))
	}
	stillServed()
}

// TestNoGoroutineLeak runs servers and clients of every kind and checks
// that closing them leaves no goroutine behind.
func TestNoGoroutineLeak(t *testing.T) {
	leakcheck.Check(t)
	func() {
		s, err := NewServer(ServerConfig{Logger: testutil.Logger(t), Flow: flow.Options{EventLoops: 1}})
		if err != nil {
			t.Fatal(err)
		}
		tcpAddr, err := s.ServeTCP("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		udpAddr, err := s.ServeUDP("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var clients []*Client
		for _, addr := range []string{"tcp:" + tcpAddr.String(), "udp:" + udpAddr.String()} {
			c, err := Dial(addr, ClientOptions{Logger: testutil.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
			register(t, c, regInfo("leak"))
			got := make(chan Info, 4)
			c.Subscribe("leak", SubscribeOptions{}, func(i Info) { got <- i })
			recv(t, got, "answer")
			c.Lookup("leak", LookupOptions{Expiration: time.Hour}, nil, nil) // ended by Close
		}
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Go(func() { c.Close() })
		}
		wg.Wait()
		s.Close()
	}()
}

// TestMulticastServer registers and looks up through the server's
// multicast listener; replies come back unicast.
func TestMulticastServer(t *testing.T) {
	multicast.Need(t)
	ts := startServer(t, ServerConfig{}, "", "")
	group := netip.AddrFrom4([4]byte{239, 77, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
	bound, err := ts.ServeMulticast(group.String() + ":0")
	if err != nil {
		t.Fatalf("serve multicast: %v", err)
	}
	udp, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap("0.0.0.0:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	c := &replayClient{t: t, label: "multicast", udp: udp, udpTo: netip.AddrPortFrom(group, bound.Port())}
	c.write(buildRegister(7, new(regInfo("mc"))))
	udp.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [2048]byte
	n, from, err := udp.ReadFromUDPAddrPort(b[:])
	if err != nil {
		t.Fatalf("no reply to a registration sent to %v: %v", c.udpTo, err)
	}
	if from.Addr().IsMulticast() {
		t.Errorf("reply from %v, want unicast", from)
	}
	if q := decodeDatagram(t, b[:n]); elems(q) != `request 5:0700000000000000 1:"mc"` {
		t.Errorf("register reply %s", elems(q))
	}
	c.write(buildQuery(seq.TypeQuery, 8, "mc", "", true))
	c.barrier()
	if len(c.got) != 2 || c.got[0].Type != seq.TypeQuery || c.got[1].Elements[1].UserType != UTEndOfAnswers {
		t.Errorf("lookup over multicast: %v", c.got)
	}
	if e := ts.Names(); len(e) != 1 || e[0].Transport != flow.Multicast {
		t.Errorf("Names: %+v", e)
	}
}
