package namesvc

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stk-go/stk/seq"
)

// A registrant cannot forge this implementation's markers: an element of
// the extension's types in a registration would otherwise end a Go
// client's lookup at that answer (hiding the registrations answered after
// it) or read as a removal notice.
func TestRegistrationCannotForgeExtensionMarkers(t *testing.T) {
	ts := startServer(t, ServerConfig{}, "127.0.0.1:0", "")
	honest := dial(t, ts.tcp(), ClientOptions{})
	reader := dial(t, ts.tcp(), ClientOptions{})

	forged := regInfo("svc")
	forged.Addresses = []Endpoint{{Addr: netip.MustParseAddrPort("127.0.0.1:9"), Protocol: "tcp"}}
	forged.Meta = []seq.Element{
		{UserType: UTEndOfAnswers, Data: u32Bytes(0)},
		{UserType: UTRemoved, Data: u32Bytes(1)},
		{UserType: 0x9a3e000f, Data: []byte("reserved")},
		{UserType: 0x9a3e0010, Data: []byte("kept")},
	}
	if err := checkInfo(&forged); err == nil {
		t.Error("the client registers meta-data of the reserved types; want an error naming them")
	}
	// Forged with raw bytes, as a hostile registrant would.
	forger := rawTCP(t, ts.tcpAddr)
	forger.write(buildRegister(1, &forged))
	if q := forger.read(time.Now().Add(waitLimit)); q == nil || q.Type != seq.TypeRequest {
		t.Fatalf("no confirmation of the forged registration")
	}
	real := regInfo("svc")
	real.Addresses = []Endpoint{{Addr: netip.MustParseAddrPort("127.0.0.1:10"), Protocol: "tcp"}}
	register(t, honest, real)

	got := lookupAll(t, reader, "svc", "")
	if len(got) != 2 {
		t.Fatalf("lookup answered %d registrations, want both: %+v", len(got), got)
	}
	if m := got[0].Meta; len(m) != 1 || m[0].UserType != 0x9a3e0010 || string(m[0].Data) != "kept" {
		t.Errorf("the forger's meta-data reads %+v; want only the element outside the reserved types", m)
	}
}

// removalEvent is what a subscription was told, in order.
type removalEvent struct {
	removed bool
	info    Info
}

func subscribeEvents(t *testing.T, c *Client, name string) <-chan removalEvent {
	t.Helper()
	events := make(chan removalEvent, 16)
	synced := make(chan int, 4)
	_, err := c.Subscribe(name, SubscribeOptions{
		OnSynced:  func(n int) { synced <- n },
		OnRemoved: func(i Info) { events <- removalEvent{true, i} },
	}, func(i Info) { events <- removalEvent{false, i} })
	if err != nil {
		t.Fatal(err)
	}
	recv(t, synced, "the subscription's first answers")
	return events
}

// A subscriber is told when a registration it was answered goes: at the
// end of its linger, when its registrant replaces it with other elements,
// and when the cluster node holding it removes it. C subscribers, and Go
// clients of the first version of the extension, are told nothing.
func TestRemovalNotices(t *testing.T) {
	ts := startServer(t, ServerConfig{}, "127.0.0.1:0", "")
	sub := dial(t, ts.tcp(), ClientOptions{})
	events := subscribeEvents(t, sub, "svc")

	// C-style subscribers on the same name: no extension element, and
	// version 1 of it.
	cSub := rawTCP(t, ts.tcpAddr)
	cSub.write(buildQuery(seq.TypeSubscribe, 7, "svc", "", false))
	v1 := rawTCP(t, ts.tcpAddr)
	q := buildQuery(seq.TypeSubscribe, 8, "svc", "", false)
	q.Add(UTEndOfAnswers, u32Bytes(1))
	v1.write(q)
	cSub.barrier()
	v1.barrier()

	reg := dial(t, ts.tcp(), ClientOptions{})
	first := regInfo("svc")
	first.Linger = 2 * time.Second
	register(t, reg, first)
	if e := recv(t, events, "the registration"); e.removed || !sameInfo(e.info, first) {
		t.Fatalf("first event %+v, want the registration answered", e)
	}

	// Replaced by the same registrant with another address: the old answer
	// is withdrawn before the new one is pushed.
	second := first
	second.Addresses = []Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:7001")}}
	register(t, reg, second)
	if e := recv(t, events, "the replaced registration's removal"); !e.removed || !sameInfo(e.info, first) {
		t.Fatalf("after a replacement: %+v, want the removal of %v", e, first.String())
	}
	if e := recv(t, events, "the replacement"); e.removed || !sameInfo(e.info, second) {
		t.Fatalf("after the removal: %+v, want %v answered", e, second.String())
	}
	// Registered again unchanged: answered again, nothing withdrawn.
	register(t, reg, second)
	if e := recv(t, events, "the unchanged registration"); e.removed || !sameInfo(e.info, second) {
		t.Fatalf("re-registration: %+v", e)
	}

	// The registrant goes: nothing while the registration lingers, its
	// removal once the linger ran out and the collector removed it.
	reg.Close()
	recv(t, ts.gone, "the server to see the disconnect")
	ts.clk.Advance(time.Second)
	ts.collect(ts.clk.Now())
	select {
	case e := <-events:
		t.Fatalf("told %+v while the registration lingers", e)
	case <-time.After(50 * time.Millisecond):
	}
	ts.clk.Advance(time.Second)
	if n := ts.collect(ts.clk.Now()); n != 1 {
		t.Fatalf("collect removed %d registrations, want 1", n)
	}
	if e := recv(t, events, "the removal after the linger"); !e.removed || !sameInfo(e.info, second) {
		t.Fatalf("after the linger: %+v, want the removal of %v", e, second.String())
	}

	// Another node's registration, then its removal.
	remote := Info{Name: "svc", Linger: time.Second, FT: FTActive,
		Addresses: []Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("10.0.0.2:7002")}}}
	key := RemoteKey{Node: "b", Name: "svc", Serial: 1}
	ts.ApplyRemote([]RemoteChange{{Key: key, Reg: remoteReg(remote)}})
	if e := recv(t, events, "the other node's registration"); e.removed || !sameInfo(e.info, remote) {
		t.Fatalf("remote registration: %+v", e)
	}
	ts.ApplyRemote([]RemoteChange{{Key: key}})
	if e := recv(t, events, "the other node's removal"); !e.removed || !sameInfo(e.info, remote) {
		t.Fatalf("remote removal: %+v", e)
	}

	// What the C-style subscribers got since their confirmation: the four
	// answers pushed (first, second twice, the remote one), nothing else.
	for _, c := range []*replayClient{cSub, v1} {
		c.got = nil
		c.barrier()
		if len(c.got) != 4 {
			t.Errorf("%s: got %d sequences, want the 4 answers pushed", c.label, len(c.got))
		}
		for _, q := range c.got {
			if n := len(q.Elements); n > 0 && q.Elements[n-1].UserType == UTRemoved {
				t.Errorf("%s: sent a removal notice: %s", c.label, elems(q))
			}
		}
	}
}
