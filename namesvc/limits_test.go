package namesvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/syncbuf"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
)

// Tests of ServerConfig.Limits over loopback: a real server, Go clients
// and raw frames. A refused request gets no reply (the raw client's
// barrier proves nothing came before the echo), is counted by kind, and
// every other client keeps its service.

// limitServer starts a server with every limit off but lim's.
func limitServer(t *testing.T, lim Limits, logs *syncbuf.Buffer) *testServer {
	t.Helper()
	base := NoLimits()
	base.Addresses = lim.Addresses
	set := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	set(&base.RegistrationsPerClient, lim.RegistrationsPerClient)
	set(&base.RegistrationsPerIP, lim.RegistrationsPerIP)
	set(&base.Registrations, lim.Registrations)
	set(&base.SubscriptionsPerClient, lim.SubscriptionsPerClient)
	set(&base.SubscriptionsPerIP, lim.SubscriptionsPerIP)
	set(&base.Subscriptions, lim.Subscriptions)
	set(&base.Groups, lim.Groups)
	set(&base.MetaBytes, lim.MetaBytes)
	set(&base.DisconnectAfter, lim.DisconnectAfter)
	if lim.MaxStoredBytes != 0 {
		base.MaxStoredBytes = lim.MaxStoredBytes
	}
	if lim.MaxLinger != 0 {
		base.MaxLinger = lim.MaxLinger
	}
	cfg := ServerConfig{Limits: base}
	if logs != nil {
		cfg.Logger = slogTo(logs)
	}
	return startServer(t, cfg, "", "")
}

// refusedRegister registers info with a deadline it expects to pass: a
// refusal is silence.
func refusedRegister(t *testing.T, c *Client, info Info) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Register(ctx, info); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("register %s: %v, want no reply (deadline exceeded)", info.Name, err)
	}
}

// refusedSubscribe subscribes and expects no confirmation.
func refusedSubscribe(t *testing.T, c *Client, name string) {
	t.Helper()
	synced := make(chan struct{}, 1)
	sub, err := c.Subscribe(name, SubscribeOptions{OnSynced: func(int) { synced <- struct{}{} }}, func(Info) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	select {
	case <-synced:
		t.Fatalf("subscription to %s confirmed, want it refused", name)
	case <-time.After(300 * time.Millisecond):
	}
}

func subscribeSynced(t *testing.T, c *Client, name string, onAnswer func(Info)) *Subscription {
	t.Helper()
	if onAnswer == nil {
		onAnswer = func(Info) {}
	}
	synced := make(chan struct{}, 1)
	sub, err := c.Subscribe(name, SubscribeOptions{OnSynced: func(int) { synced <- struct{}{} }}, onAnswer)
	if err != nil {
		t.Fatal(err)
	}
	recv(t, synced, "the subscription of "+name)
	return sub
}

// stillServed checks that a client of its own registers and looks up.
func stillServed(t *testing.T, ts *testServer, name string) {
	t.Helper()
	c := dial(t, ts.tcp(), ClientOptions{})
	register(t, c, regInfo(name))
	if got := lookupAll(t, c, name, ""); len(got) != 1 {
		t.Fatalf("another client lost its service: lookup of %s answered %d", name, len(got))
	}
}

func wantRefused(t *testing.T, ts *testServer, kind Refusal, n uint64) {
	t.Helper()
	if got := ts.Stats().Refused[kind]; got != n {
		t.Errorf("refused %s: %d, want %d (all: %v)", kind, got, n, ts.Stats().Refused)
	}
}

func TestLimitRegistrationsPerClient(t *testing.T) {
	var logs syncbuf.Buffer
	ts := limitServer(t, Limits{RegistrationsPerClient: 3}, &logs)
	c := dial(t, ts.tcp(), ClientOptions{})
	for i := range 3 {
		register(t, c, regInfo(fmt.Sprint("a", i)))
	}
	refusedRegister(t, c, regInfo("a3"))
	register(t, c, regInfo("a1")) // a replacement is always allowed
	wantRefused(t, ts, RefusedClientRegistrations, 1)
	if got := lookupAll(t, c, "a3", ""); len(got) != 0 {
		t.Errorf("the refused name is answered: %v", got)
	}
	stillServed(t, ts, "other")
	if st := ts.Stats(); st.Registrations != 4 {
		t.Errorf("%d registrations stored, want 4", st.Registrations)
	}
	if !strings.Contains(logs.String(), "reason=client_registrations") {
		t.Errorf("no log line for the refusal:\n%s", logs.String())
	}
}

func TestLimitRegistrationsPerIPCountsLingering(t *testing.T) {
	ts := limitServer(t, Limits{RegistrationsPerIP: 3}, nil)
	a := dial(t, ts.tcp(), ClientOptions{})
	register(t, a, regInfo("a0"))
	register(t, a, regInfo("a1"))
	a.Close()
	recv(t, ts.gone, "a's disconnect")
	if st := ts.Stats(); st.Lingering != 2 {
		t.Fatalf("%d lingering, want 2", st.Lingering)
	}
	b := dial(t, ts.tcp(), ClientOptions{})
	register(t, b, regInfo("b0"))
	refusedRegister(t, b, regInfo("b1")) // a's lingering names still count
	wantRefused(t, ts, RefusedIPRegistrations, 1)
	// A's service coming back replaces its lingering twin: no new count.
	a2 := dial(t, ts.tcp(), ClientOptions{})
	register(t, a2, regInfo("a0"))
	if st := ts.Stats(); st.Registrations != 3 || st.Lingering != 1 {
		t.Errorf("stats %+v, want 3 registrations, 1 lingering", st)
	}
}

func TestLimitRegistrationsTotalAndBytes(t *testing.T) {
	ts := limitServer(t, Limits{Registrations: 2}, nil)
	a := dial(t, ts.tcp(), ClientOptions{})
	register(t, a, regInfo("x0"))
	register(t, a, regInfo("x1"))
	b := dial(t, ts.tcp(), ClientOptions{})
	refusedRegister(t, b, regInfo("y0"))
	wantRefused(t, ts, RefusedRegistrations, 1)
	if got := lookupAll(t, b, "x0", ""); len(got) != 1 {
		t.Errorf("lookups lost at the limit: %v", got)
	}

	big := Info{Name: "big", Meta: []seq.Element{{UserType: 0x1000, Data: make([]byte, 900)}}}
	ts2 := limitServer(t, Limits{MaxStoredBytes: 2000}, nil)
	c := dial(t, ts2.tcp(), ClientOptions{})
	register(t, c, big)
	big.Name = "big2"
	register(t, c, big)
	big.Name = "big3"
	refusedRegister(t, c, big)
	wantRefused(t, ts2, RefusedStoredBytes, 1)
	big.Name = "big"
	big.Meta[0].Data = make([]byte, 100) // a smaller replacement fits
	register(t, c, big)
	if st := ts2.Stats(); st.StoredBytes > 2000 || st.StoredBytes < 1000 {
		t.Errorf("stored bytes %d", st.StoredBytes)
	}
}

func TestLimitSubscriptions(t *testing.T) {
	ts := limitServer(t, Limits{SubscriptionsPerClient: 2, SubscriptionsPerIP: 3, Subscriptions: 4}, nil)
	a := dial(t, ts.tcp(), ClientOptions{})
	got := make(chan Info, 4)
	subscribeSynced(t, a, "s0", func(i Info) { got <- i })
	subscribeSynced(t, a, "s1", nil)
	refusedSubscribe(t, a, "s2")
	wantRefused(t, ts, RefusedClientSubscriptions, 1)
	b := dial(t, ts.tcp(), ClientOptions{})
	subscribeSynced(t, b, "s0", nil)
	refusedSubscribe(t, b, "s1")
	wantRefused(t, ts, RefusedIPSubscriptions, 1)
	// A subscription still gets its pushes at the limit.
	stillServed(t, ts, "s0")
	if i := recv(t, got, "the push of s0"); i.Name != "s0" {
		t.Errorf("push %v", i.Name)
	}
	if st := ts.Stats(); st.Subscriptions != 3 {
		t.Errorf("%d subscriptions, want 3", st.Subscriptions)
	}

	// The total, over UDP (another client and address, same IP).
	ts2 := limitServer(t, Limits{Subscriptions: 1}, nil)
	u := dial(t, ts2.udp(), ClientOptions{})
	subscribeSynced(t, u, "u0", nil)
	refusedSubscribe(t, u, "u1")
	wantRefused(t, ts2, RefusedSubscriptions, 1)
}

func TestLimitGroups(t *testing.T) {
	ts := limitServer(t, Limits{Groups: 2}, nil) // the default group and one more
	c := dial(t, ts.tcp(), ClientOptions{})
	info := regInfo("g")
	info.Group = "g1"
	register(t, c, info)
	info.Group = "g2"
	refusedRegister(t, c, info)
	sub, err := c.Subscribe("g", SubscribeOptions{Group: "g3"}, func(Info) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	lookupAll(t, c, "barrier", "") // answered after the subscription was handled
	wantRefused(t, ts, RefusedGroups, 2)
	if st := ts.Stats(); st.Groups != 2 {
		t.Errorf("%d groups", st.Groups)
	}
}

func TestLimitMetaBytesAndAddresses(t *testing.T) {
	ts := limitServer(t, Limits{MetaBytes: 100, Addresses: 2}, nil)
	c := dial(t, ts.tcp(), ClientOptions{})
	info := regInfo("m")
	info.Meta = []seq.Element{{UserType: 0x1000, Data: make([]byte, 60)}, {UserType: 0x1001, Data: make([]byte, 40)}}
	register(t, c, info) // exactly at the limit
	info.Meta[1].Data = make([]byte, 41)
	refusedRegister(t, c, info)
	wantRefused(t, ts, RefusedMetaBytes, 1)

	three := regInfo("addrs")
	for range 2 {
		three.Addresses = append(three.Addresses, three.Addresses[0])
	}
	refusedRegister(t, c, three)
	wantRefused(t, ts, RefusedAddresses, 1)
	three.Addresses = three.Addresses[:2]
	register(t, c, three)
	stillServed(t, ts, "other")
}

// refusedCases are registrations over a C buffer or C's address array:
// well formed but never stored.
func refusedCases() map[string]struct {
	q    *seq.Sequence
	kind Refusal
} {
	good := func() *seq.Sequence { return buildRegister(1, new(regInfo("x"))) }
	name96 := good()
	name96.Elements[1].Data = cStringBytes(strings.Repeat("n", 96))
	group48 := good()
	group48.Add(seq.UTNSGroupName, cStringBytes(strings.Repeat("g", 48)))
	many := good()
	for range 249 {
		many.Add(seq.UTNSConnectIPv4, make([]byte, 16))
	}
	return map[string]struct {
		q    *seq.Sequence
		kind Refusal
	}{
		"name 96 chars":  {name96, RefusedNameLength},
		"group 48 chars": {group48, RefusedGroupLength},
		"250 addresses":  {many, RefusedAddresses},
		"six addresses": {func() *seq.Sequence {
			s := good()
			s.Elements = append(s.Elements, many.Elements[len(many.Elements)-5:]...)
			return s
		}(), RefusedAddresses},
		"name 1000 chars!": {func() *seq.Sequence {
			s := good()
			s.Elements[1].Data = cStringBytes(strings.Repeat("n", 1000))
			return s
		}(), RefusedNameLength},
	}
}

func TestLimitCBuffersRawFrames(t *testing.T) {
	ts := limitServer(t, Limits{}, nil)
	cases := refusedCases()
	c := rawTCP(t, ts.tcpAddr)
	want := map[Refusal]uint64{}
	for name, tc := range cases {
		c.write(tc.q)
		c.barrier()
		if len(c.got) != 0 {
			t.Errorf("%s: answered %s", name, elems(c.got[0]))
			c.got = nil
		}
		want[tc.kind]++
	}
	stillServed(t, ts, "x") // the connection stays; nothing was stored
	if st := ts.Stats(); st.Registrations != 1 || st.Rejected != 0 {
		t.Errorf("stats %+v", st)
	}
	for k, n := range want {
		wantRefused(t, ts, k, n)
	}
	// The connection is still open and served.
	c.write(buildQuery(seq.TypeQuery, 7, "x", "", true))
	c.barrier()
	if len(c.got) != 2 {
		t.Errorf("raw client after its refusals: %d answers, want answer and end marker", len(c.got))
	}
}

func TestLimitLingerClamped(t *testing.T) {
	ts := limitServer(t, Limits{MaxLinger: time.Hour}, nil)
	c := dial(t, ts.tcp(), ClientOptions{})
	info := regInfo("forever")
	info.Linger = (1<<31 - 1) * time.Second
	register(t, c, info)
	got := lookupAll(t, c, "forever", "")
	if len(got) != 1 || got[0].Linger != time.Hour {
		t.Fatalf("answered %v, want linger 1h", got)
	}
	if st := ts.Stats(); st.LingerClamped != 1 {
		t.Errorf("LingerClamped %d", st.LingerClamped)
	}
	c.Close()
	recv(t, ts.gone, "the disconnect")
	for _, e := range ts.Names() {
		if e.Name == "forever" && (!e.Lingering || e.Expires.Sub(ts.clk.Now()) != time.Hour) {
			t.Errorf("lingering %v until %v (now %v), want 1h", e.Lingering, e.Expires, ts.clk.Now())
		}
	}
}

func TestLimitDisconnectAfterRefusalsAndRateLimitedLog(t *testing.T) {
	var logs syncbuf.Buffer
	ts := limitServer(t, Limits{RegistrationsPerClient: 1, DisconnectAfter: 50}, &logs)
	c := rawTCP(t, ts.tcpAddr)
	var frames []byte
	for i := range 60 {
		info := regInfo(fmt.Sprint("n", i))
		frames, _ = seq.AppendTCP(frames, buildRegister(uint64(i), &info))
	}
	c.tcp.Write(frames) // at once: the server may close before reading more
	// The reply to the first may be lost with the close (the flow drops
	// what it had not written yet); the registration itself is stored.
	if n := repliesUntilClosed(c); n > 1 {
		t.Errorf("%d replies before the close, want at most 1", n)
	}
	recv(t, ts.gone, "the disconnect")
	st := ts.Stats()
	// The frames after the 50th refusal may or may not be read before the close.
	if r := st.Refused[RefusedClientRegistrations]; st.RefusalDisconnects != 1 || r < 50 || r > 59 || st.Registrations != 1 {
		t.Errorf("stats %+v", st)
	}
	if n := strings.Count(logs.String(), "reason=client_registrations"); n < 1 || n > 2 {
		t.Errorf("%d log lines for 50+ refusals within a second or so, want 1 (2 across a second boundary)", n)
	}
	stillServed(t, ts, "other")
}

// repliesUntilClosed reads until the server closes the connection (or
// waitLimit passes) and returns how many sequences came.
func repliesUntilClosed(c *replayClient) int {
	n := 0
	for c.read(time.Now().Add(waitLimit)) != nil {
		n++
	}
	return n
}

func TestLimitsUDPDatagramClient(t *testing.T) {
	ts := limitServer(t, Limits{RegistrationsPerClient: 2}, nil)
	// The client re-sends unanswered requests, as it would on a real
	// network: a loaded loopback can drop a datagram. So the refused u2 is
	// refused once per re-send, and u0 or u1 may come twice (a replacement).
	u := dial(t, ts.udp(), ClientOptions{RetryInterval: 50 * time.Millisecond})
	register(t, u, regInfo("u0"))
	register(t, u, regInfo("u1"))
	refusedRegister(t, u, regInfo("u2"))
	if n := ts.Stats().Refused[RefusedClientRegistrations]; n < 1 {
		t.Errorf("refused %s: %d, want at least 1", RefusedClientRegistrations, n)
	}
	// 250 addresses are refused; 1000 fit in a datagram but not in a
	// name request (more than 255 elements): malformed.
	pc := rawUDP(t, ts.udpAddr)
	pc.write(refusedCases()["250 addresses"].q)
	thousand := buildRegister(1, new(regInfo("x")))
	for range 999 {
		thousand.Add(seq.UTNSConnectIPv4, make([]byte, 16))
	}
	pc.write(thousand)
	pc.barrier()
	if len(pc.got) != 0 {
		t.Errorf("answered: %s", elems(pc.got[0]))
	}
	wantRefused(t, ts, RefusedAddresses, 1)
	if st := ts.Stats(); st.Rejected != 1 || st.Registrations != 2 {
		t.Errorf("stats %+v, want 1 rejected, 2 registrations", st)
	}
	stillServed(t, ts, "other")
}

func rawUDP(t *testing.T, to netip.AddrPort) *replayClient {
	t.Helper()
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &replayClient{t: t, label: "raw udp", udp: conn, udpTo: to}
}

// TestSubscriptions80kOneConnection: with the limits off, one raw
// connection pipelines 80,000 subscriptions while another client keeps
// looking a name up; every subscription is confirmed and no lookup fails.
// It logs the time taken (and asserts none: the machine decides).
func TestSubscriptions80kOneConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("80,000 subscriptions")
	}
	ts := startServer(t, ServerConfig{Limits: NoLimits(), Logger: testutil.Discard(), Now: time.Now}, "", "")
	other := dial(t, ts.tcp(), ClientOptions{Logger: testutil.Discard()})
	register(t, other, regInfo("probe"))
	const n = 80_000
	var frames []byte
	for i := range n {
		var err error
		if frames, err = seq.AppendTCP(frames, buildQuery(seq.TypeSubscribe, uint64(i), fmt.Sprintf("sub-%06d", i), "", false)); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	lookups, failed := 0, 0
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := other.LookupAll(context.Background(), "probe", LookupOptions{Expiration: time.Second})
			lookups++
			if err != nil || len(got) != 1 {
				failed++
			}
		}
	}()
	c := rawTCP(t, ts.tcpAddr)
	start := time.Now()
	go c.tcp.Write(frames)
	for got := 0; got < n; {
		q := c.read(time.Now().Add(waitLimit))
		if q == nil {
			t.Fatalf("%d of %d subscriptions confirmed", got, n)
		}
		if q.Type == seq.TypeRequest {
			got++
		}
	}
	el := time.Since(start)
	close(stop)
	<-probeDone
	if st := ts.Stats(); st.Subscriptions != n {
		t.Errorf("%d subscriptions", st.Subscriptions)
	}
	c.tcp.Close()
	recv(t, ts.gone, "the disconnect")
	if st := ts.Stats(); st.Subscriptions != 0 {
		t.Errorf("%d subscriptions after the disconnect", st.Subscriptions)
	}
	t.Logf("80,000 subscriptions on one connection confirmed in %v; %d lookups by another client meanwhile, %d failed", el.Round(time.Millisecond), lookups, failed)
	if failed > 0 {
		t.Errorf("%d of %d lookups by another client failed", failed, lookups)
	}
}
