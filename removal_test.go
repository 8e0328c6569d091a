package stk

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// TestUnregisteredAddress: stkd tells a subscription when a registration
// goes, so an address that is no longer registered is closed as soon as
// its connection is down, not after PruneInterval (an hour here); a
// publisher still connected keeps delivering until it goes.
func TestUnregisteredAddress(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	subEnv := connect(t, ns)
	ev := make(events, 64)
	got := make(chan string, 16)
	sub, err := subEnv.Subscribe("moving", func(q *seq.Sequence) { got <- q.Name },
		SubscribeOptions{PruneInterval: time.Hour, OnEndpoint: ev.on})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	// An address nothing listens at, registered by a client that then goes
	// (linger 0): its flow never connects.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := namesvc.Endpoint{Protocol: "tcp", Addr: netip.MustParseAddrPort(l.Addr().String())}
	l.Close()
	regEnv, err := Connect(ns, Options{Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := regEnv.Register(ctxT(t, 10*time.Second), namesvc.Info{Name: "moving", Addresses: []namesvc.Endpoint{dead}}); err != nil {
		t.Fatal(err)
	}
	if e := ev.next(t, EndpointOpened, 10*time.Second); e.Endpoint != dead {
		t.Fatalf("opened %v, want %v", e.Endpoint, dead)
	}
	regEnv.Close()
	for _, kind := range []EndpointEventKind{EndpointUnregistered, EndpointClosed} {
		if e := ev.next(t, kind, 10*time.Second); e.Endpoint != dead {
			t.Fatalf("%v of %v, want of %v", kind, e.Endpoint, dead)
		}
	}
	if eps := sub.Endpoints(); len(eps) != 0 {
		t.Fatalf("endpoints %v after the only registration went", eps)
	}

	// A live publisher whose registration goes while it is connected.
	pub, err := Listen("127.0.0.1:0", ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	annEnv, err := Connect(ns, Options{Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := annEnv.Announce(pub, "moving", AnnounceOptions{Linger: -1}); err != nil {
		t.Fatal(err)
	}
	live := pub.Addr()
	ev.next(t, EndpointConnected, 10*time.Second)
	annEnv.Close()
	if e := ev.next(t, EndpointUnregistered, 10*time.Second); e.Endpoint != live {
		t.Fatalf("unregistered %v, want %v", e.Endpoint, live)
	}
	if err := pub.Send(seq.New(1, "after", seq.TypeData)); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-got:
		if name != "after" {
			t.Fatalf("received %q", name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a connected publisher's sequence was not delivered after its registration went")
	}
	if st := sub.Status(); len(st) != 1 || !st[0].Connected {
		t.Fatalf("status %+v: the live connection was dropped", st)
	}
	pub.Close()
	ev.next(t, EndpointClosed, 10*time.Second)
	testutil.WaitFor(t, 10*time.Second, "no endpoints", func() bool { return len(sub.Endpoints()) == 0 })
}
