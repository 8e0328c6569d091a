package stk

import (
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// events collects a subscription's EndpointEvents on a channel.
type events chan EndpointEvent

func (ev events) on(e EndpointEvent) {
	select {
	case ev <- e:
	default: // a test that floods them reads only the first ones
	}
}

// next returns the next event of kind, failing the test after d.
func (ev events) next(t *testing.T, kind EndpointEventKind, d time.Duration) EndpointEvent {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e := <-ev:
			if e.Kind == kind {
				return e
			}
		case <-deadline:
			t.Fatalf("no %q event within %v", kind, d)
		}
	}
}

// collect returns the first event of each of kinds, in whatever order they
// come, failing the test after d.
func (ev events) collect(t *testing.T, d time.Duration, kinds ...EndpointEventKind) map[EndpointEventKind]EndpointEvent {
	t.Helper()
	got := map[EndpointEventKind]EndpointEvent{}
	deadline := time.After(d)
	for len(got) < len(kinds) {
		select {
		case e := <-ev:
			if _, seen := got[e.Kind]; !seen && slices.Contains(kinds, e.Kind) {
				got[e.Kind] = e
			}
		case <-deadline:
			t.Fatalf("events within %v: %v, want one of each of %v", d, got, kinds)
		}
	}
	return got
}

// received hands the sequences of a subscription to the test.
func received(ch chan *seq.Sequence) func(*seq.Sequence) {
	return func(q *seq.Sequence) { ch <- q.Clone() }
}

func recv(t *testing.T, ch chan *seq.Sequence, d time.Duration) *seq.Sequence {
	t.Helper()
	select {
	case q := <-ch:
		return q
	case <-time.After(d):
		t.Fatalf("nothing received within %v", d)
		return nil
	}
}

// TestSubscribeFilters: Accept, Protocols and MaxEndpoints keep a
// subscription off addresses it was not meant to use, and OnEndpoint says
// so; an accepted publisher is received from.
func TestSubscribeFilters(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	env := connect(t, ns)
	pub, err := env.Publish("filtered", PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A UDP address registered under the same name, by hand.
	udp := namesvc.Endpoint{Protocol: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:9")}
	if _, err := env.Register(ctxT(t, 10*time.Second), namesvc.Info{Name: "filtered", Addresses: []namesvc.Endpoint{udp}}); err != nil {
		t.Fatal(err)
	}

	t.Run("refused", func(t *testing.T) {
		ev := make(events, 16)
		sub, err := env.Subscribe("filtered", func(*seq.Sequence) {}, SubscribeOptions{
			Accept: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, OnEndpoint: ev.on})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		e := ev.next(t, EndpointRefused, 10*time.Second)
		if e.Name != "filtered" {
			t.Errorf("event of %q", e.Name)
		}
		ev.next(t, EndpointRefused, 10*time.Second) // both addresses
		if got := sub.Endpoints(); len(got) != 0 {
			t.Errorf("receiving from %v", got)
		}
	})

	t.Run("tcp only", func(t *testing.T) {
		ev := make(events, 16)
		ch := make(chan *seq.Sequence, 4)
		sub, err := env.Subscribe("filtered", received(ch), SubscribeOptions{
			Accept: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Protocols: []string{"tcp"}, OnEndpoint: ev.on})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		got := ev.collect(t, 10*time.Second, EndpointSkipped, EndpointOpened)
		if e := got[EndpointSkipped]; e.Endpoint != udp || e.Err == nil {
			t.Errorf("skipped %v (%v), want %v and why", e.Endpoint, e.Err, udp)
		}
		if e := got[EndpointOpened]; e.Endpoint != pub.Addr() {
			t.Errorf("opened %v, want %v", e.Endpoint, pub.Addr())
		}
		if err := sub.WaitConnected(ctxT(t, 10*time.Second), 1); err != nil {
			t.Fatal(err)
		}
		if err := pub.WaitSubscribers(ctxT(t, 10*time.Second), 1); err != nil {
			t.Fatal(err)
		}
		if err := pub.Send(makeSeq(7, "filtered")); err != nil {
			t.Fatal(err)
		}
		if q := recv(t, ch, 10*time.Second); checkSeq(q, "filtered") != "" || q.ID != 7 {
			t.Errorf("received %v", q)
		}
	})

	t.Run("too many", func(t *testing.T) {
		ev := make(events, 16)
		sub, err := env.Subscribe("filtered", func(*seq.Sequence) {}, SubscribeOptions{MaxEndpoints: 1, OnEndpoint: ev.on})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		ev.collect(t, 10*time.Second, EndpointOpened, EndpointTooMany)
		if got := sub.Endpoints(); len(got) != 1 {
			t.Errorf("receiving from %v, want one address", got)
		}
	})
}

// TestDatagramAccept: over UDP, Accept also drops datagrams whose source
// is outside it, though the registered address is inside.
func TestDatagramAccept(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	env := connect(t, ns)
	port := strconv.Itoa(testutil.FreePort(t, "udp"))
	pub, err := env.Publish("dgram", PublishOptions{Listen: "udp:127.0.0.1:" + port})
	if err != nil {
		t.Fatal(err)
	}
	ev := make(events, 64)
	ch := make(chan *seq.Sequence, 64)
	sub, err := env.Subscribe("dgram", received(ch), SubscribeOptions{
		Accept: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, OnEndpoint: ev.on})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ev.next(t, EndpointOpened, 10*time.Second)

	// A sender on 127.0.0.2, another loopback address: outside Accept.
	stranger, err := flow.NewUDP(flow.UDPConfig{Bind: "127.0.0.2:0", Destination: "127.0.0.1:" + port}, flow.Options{Logger: testLog()})
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2 (loopback alias): %v", err)
	}
	defer stranger.Close()
	// The subscriber's socket may not be bound yet when the event comes
	// (it is: NewUDP binds before returning), so one datagram suffices;
	// repeat a few in case the first ones raced the join anyway.
	deadline := time.Now().Add(10 * time.Second)
	var refused EndpointEvent
	for refused.Kind != DatagramRefused {
		if time.Now().After(deadline) {
			t.Fatal("no DatagramRefused event")
		}
		if err := stranger.Send(makeSeq(1, "stranger")); err != nil {
			t.Fatal(err)
		}
		select {
		case refused = <-ev:
		case <-time.After(50 * time.Millisecond):
		}
	}
	if src := refused.Endpoint.Addr.Addr(); src != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("refused source %v, want 127.0.0.2", src)
	}
	// The publisher's own datagrams come from 127.0.0.1: received.
	for q := (*seq.Sequence)(nil); q == nil || q.Name != "dgram"; {
		if err := pub.Send(makeSeq(2, "dgram")); err != nil {
			t.Fatal(err)
		}
		select {
		case q = <-ch:
			if q.Name == "stranger" {
				t.Fatal("a datagram from outside Accept was delivered")
			}
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the publisher's datagrams were not received")
		}
	}
}

// TestSubscribeAddress: an unregistered publisher is received from by
// address, and the subscription's Stats count what came.
func TestSubscribeAddress(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	env := connect(t, ns)
	pub, err := Listen("tcp:127.0.0.1:0", ListenOptions{Name: "direct", Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if infos, err := env.Lookup(ctxT(t, 10*time.Second), "direct"); err != nil || len(infos) != 0 {
		t.Fatalf("lookup of an unregistered publisher: %v, %v", infos, err)
	}
	ch := make(chan *seq.Sequence, 8)
	sub, err := SubscribeAddress("tcp:"+pub.LocalAddr().String(), received(ch), SubscribeOptions{Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := pub.WaitSubscribers(ctxT(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	for i := range uint64(3) {
		if err := pub.Send(makeSeq(i, "direct")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range uint64(3) {
		if q := recv(t, ch, 10*time.Second); q.ID != i || checkSeq(q, "direct") != "" {
			t.Fatalf("sequence %d: got %d %q", i, q.ID, q.Name)
		}
	}
	if st := sub.Stats(); st.SequencesIn != 3 || st.Connections != 1 {
		t.Errorf("stats %+v: want 3 sequences in, 1 connection", st)
	}
	if _, err := SubscribeAddress("lookup:x", received(ch), SubscribeOptions{}); err == nil {
		t.Error("SubscribeAddress of a lookup: no error")
	}
	if _, err := SubscribeAddress("tcp:127.0.0.1", received(ch), SubscribeOptions{}); err == nil {
		t.Error("SubscribeAddress without a port: no error")
	}
}

// TestPublishRegistration: AdvertiseIP is what is registered, KeepOnClose
// leaves the registration for its linger, and SubscriberCounts counts the
// subscribers that came and went.
func TestPublishRegistration(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	env := connect(t, ns)
	lookup := func(name string) []namesvc.Info {
		t.Helper()
		infos, err := env.Lookup(ctxT(t, 10*time.Second), name)
		if err != nil {
			t.Fatal(err)
		}
		return infos
	}

	adv := netip.MustParseAddr("192.0.2.7") // documentation range: never dialled here
	pub, err := env.Publish("kept", PublishOptions{Listen: "tcp:0.0.0.0:0", AdvertiseIP: adv, KeepOnClose: true, Linger: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !pub.LocalAddr().Addr().IsUnspecified() || pub.Addr().Addr != netip.AddrPortFrom(adv, pub.LocalAddr().Port()) {
		t.Fatalf("listening on %v, registered %v: want 0.0.0.0 and %v, same port", pub.LocalAddr(), pub.Addr(), adv)
	}
	if infos := lookup("kept"); len(infos) != 1 || infos[0].Addresses[0] != pub.Addr() {
		t.Fatalf("lookup: %+v", infos)
	}

	// A subscriber by address comes and goes.
	sub, err := SubscribeAddress("tcp:127.0.0.1:"+strconv.Itoa(int(pub.LocalAddr().Port())), func(*seq.Sequence) {}, SubscribeOptions{Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.WaitSubscribers(ctxT(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	sub.Close()
	ctx := ctxT(t, 10*time.Second)
	for _, left := pub.SubscriberCounts(); left != 1; _, left = pub.SubscriberCounts() {
		select {
		case <-ctx.Done():
			t.Fatalf("the subscriber's leaving was not counted")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if joined, left := pub.SubscriberCounts(); joined != 1 || left != 1 {
		t.Errorf("SubscriberCounts %d, %d: want 1, 1", joined, left)
	}

	pub.Close()
	if infos := lookup("kept"); len(infos) != 1 {
		t.Errorf("KeepOnClose: %d registrations after Close, want 1 (lingering)", len(infos))
	}
	pub2, err := env.Publish("removed", PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pub2.Close()
	if infos := lookup("removed"); len(infos) != 0 {
		t.Errorf("without KeepOnClose: %d registrations after Close, want 0", len(infos))
	}
	if err := pub2.Send(makeSeq(1, "removed")); !errors.Is(err, flow.ErrClosed) {
		t.Errorf("Send after Close: %v, want flow.ErrClosed", err)
	}
}
