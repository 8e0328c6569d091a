package stk

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// fromRecorder records which publisher address each sequence came from.
type fromRecorder struct {
	mu   sync.Mutex
	from map[uint64]namesvc.Endpoint // by sequence ID
}

func (r *fromRecorder) handle(from namesvc.Endpoint, q *seq.Sequence) {
	r.mu.Lock()
	r.from[q.ID] = from
	r.mu.Unlock()
}

func (r *fromRecorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.from)
}

// TestSubscribeFrom: two publishers of one name; the handler is told, for
// each sequence, the registered address of the publisher that sent it;
// Status and Flows show both addresses with what each sent.
func TestSubscribeFrom(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	env := connect(t, ns)
	a, err := env.Publish("from", PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Publish("from", PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &fromRecorder{from: map[uint64]namesvc.Endpoint{}}
	if _, err := env.SubscribeFrom("from", nil, SubscribeOptions{}); err == nil {
		t.Error("a nil handler was accepted")
	}
	sub, err := env.SubscribeFrom("from", rec.handle, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, p := range []*Publisher{a, b} {
		if err := p.WaitSubscribers(ctxT(t, 10*time.Second), 1); err != nil {
			t.Fatal(err)
		}
	}
	sender := map[uint64]namesvc.Endpoint{}
	for i := range uint64(10) {
		p := a
		if i%3 == 0 {
			p = b
		}
		sender[i] = p.Addr()
		if err := p.Send(makeSeq(i, "from")); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "10 sequences", func() bool { return rec.len() == 10 })
	rec.mu.Lock()
	for id, want := range sender {
		if got := rec.from[id]; got != want {
			t.Errorf("sequence %d from %v, sent by %v", id, got, want)
		}
	}
	rec.mu.Unlock()

	st := sub.Status()
	want := []namesvc.Endpoint{a.Addr(), b.Addr()}
	slices.SortFunc(want, func(x, y namesvc.Endpoint) int { return cmp.Compare(x.String(), y.String()) })
	if len(st) != 2 || st[0].Endpoint != want[0] || st[1].Endpoint != want[1] {
		t.Fatalf("status %+v, want %v", st, want)
	}
	sent := map[namesvc.Endpoint]uint64{a.Addr(): 6, b.Addr(): 4}
	for _, s := range st {
		if !s.Connected || s.Since.IsZero() || s.Announced.IsZero() || s.Stats.SequencesIn != sent[s.Endpoint] {
			t.Errorf("status of %v: %+v, want connected with %d sequences in", s.Endpoint, s, sent[s.Endpoint])
		}
	}
	fs := sub.Flows()
	if len(fs) != 2 || fs[0].Stats().SequencesIn != sent[want[0]] || fs[1].Stats().SequencesIn != sent[want[1]] {
		t.Errorf("%d flows, want 2 in the order of Status", len(fs))
	}
}

// TestAcceptEndpoint: AcceptEndpoint keeps the subscription off the
// addresses it refuses, before Accept is asked, and says so
// (EndpointFiltered); the others are received from.
func TestAcceptEndpoint(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	env := connect(t, ns)
	keep, err := env.Publish("filter", PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	skip, err := env.Publish("filter", PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []namesvc.Endpoint
	notSkip := func(ep namesvc.Endpoint) bool {
		mu.Lock()
		asked = append(asked, ep)
		mu.Unlock()
		return ep != skip.Addr()
	}

	t.Run("before Accept", func(t *testing.T) {
		ev := make(events, 16)
		sub, err := env.Subscribe("filter", func(*seq.Sequence) {}, SubscribeOptions{
			AcceptEndpoint: notSkip, Accept: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, OnEndpoint: ev.on})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		got := ev.collect(t, 10*time.Second, EndpointFiltered, EndpointRefused)
		if got[EndpointFiltered].Endpoint != skip.Addr() || got[EndpointRefused].Endpoint != keep.Addr() {
			t.Errorf("filtered %v and refused %v, want %v and %v", got[EndpointFiltered].Endpoint, got[EndpointRefused].Endpoint, skip.Addr(), keep.Addr())
		}
	})

	t.Run("received", func(t *testing.T) {
		ev := make(events, 16)
		ch := make(chan *seq.Sequence, 4)
		sub, err := env.Subscribe("filter", received(ch), SubscribeOptions{AcceptEndpoint: notSkip, OnEndpoint: ev.on})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		got := ev.collect(t, 10*time.Second, EndpointFiltered, EndpointOpened)
		if got[EndpointFiltered].Endpoint != skip.Addr() || got[EndpointOpened].Endpoint != keep.Addr() {
			t.Errorf("filtered %v and opened %v, want %v and %v", got[EndpointFiltered].Endpoint, got[EndpointOpened].Endpoint, skip.Addr(), keep.Addr())
		}
		if eps := sub.Endpoints(); !slices.Equal(eps, []string{keep.Addr().String()}) {
			t.Errorf("receiving from %v, want %v only", eps, keep.Addr())
		}
		if err := sub.WaitConnected(ctxT(t, 10*time.Second), 1); err != nil {
			t.Fatal(err)
		}
		if err := keep.WaitSubscribers(ctxT(t, 10*time.Second), 1); err != nil {
			t.Fatal(err)
		}
		if err := keep.Send(makeSeq(3, "filter")); err != nil {
			t.Fatal(err)
		}
		if q := recv(t, ch, 10*time.Second); q.ID != 3 {
			t.Errorf("received %v", q)
		}
		if n := skip.Subscribers(); n != 0 {
			t.Errorf("the filtered publisher has %d subscribers", n)
		}
	})
	mu.Lock()
	defer mu.Unlock()
	for _, ep := range asked {
		if ep.Protocol != "tcp" {
			t.Errorf("AcceptEndpoint asked about %v: want the protocol said", ep)
		}
	}
}

// TestEndpointLifecycle: the events of one address, in order (opened,
// connected, registered again, disconnected, closed), and the pruning
// rule: an address down but still registered is kept (its Announced moves
// on at each lookup); once its registration goes it is closed.
func TestEndpointLifecycle(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	env := connect(t, ns)
	pub, err := env.Publish("life", PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := pub.Addr()
	ev := make(events, 64)
	sub, err := env.Subscribe("life", func(*seq.Sequence) {}, SubscribeOptions{PruneInterval: 100 * time.Millisecond, OnEndpoint: ev.on})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// next returns the next event but a repeated EndpointAnnounced (the
	// name server pushes the address again when its registrations change)
	// and EndpointUnregistered (one of its two registrations going: told
	// before or after the disconnection; TestUnregisteredAddress has them).
	next := func(want EndpointEventKind) EndpointEvent {
		t.Helper()
		for {
			select {
			case e := <-ev:
				if (e.Kind == EndpointAnnounced || e.Kind == EndpointUnregistered) && want != e.Kind && e.Endpoint == addr {
					continue
				}
				if e.Kind != want || e.Endpoint != addr {
					t.Fatalf("event %v of %v, want %v of %v", e.Kind, e.Endpoint, want, addr)
				}
				return e
			case <-time.After(10 * time.Second):
				t.Fatalf("no %v event", want)
				return EndpointEvent{}
			}
		}
	}
	next(EndpointOpened)
	next(EndpointConnected)
	st := sub.Status()
	if len(st) != 1 || !st[0].Connected {
		t.Fatalf("status %+v, want %v connected", st, addr)
	}
	first := st[0].Announced

	// The same address registered a second time, by another registrant:
	// the subscription hears of it again.
	again, err := env.Register(ctxT(t, 10*time.Second), namesvc.Info{Name: "life", Addresses: []namesvc.Endpoint{addr}})
	if err != nil {
		t.Fatal(err)
	}
	next(EndpointAnnounced)
	if st := sub.Status(); !st[0].Announced.After(first) {
		t.Errorf("announced at %v, then %v: want later", first, st[0].Announced)
	}

	// The publisher goes; the hand registration keeps the address.
	pub.Close()
	if e := next(EndpointDisconnected); e.Err == nil {
		t.Error("disconnected without a reason")
	}
	var down time.Time
	testutil.WaitFor(t, 10*time.Second, "the status says down", func() bool {
		st := sub.Status()
		if len(st) == 1 && !st[0].Connected {
			down = st[0].Since
			return true
		}
		return false
	})
	// A lookup after the prune interval finds it registered: kept.
	testutil.WaitFor(t, 10*time.Second, "a lookup finding the address registered", func() bool {
		st := sub.Status()
		return len(st) == 1 && st[0].Announced.Sub(down) >= 100*time.Millisecond
	})
	if eps := sub.Endpoints(); len(eps) != 1 {
		t.Fatalf("endpoints %v: an address still registered was dropped", eps)
	}

	again.Close()
	next(EndpointClosed)
	if eps := sub.Endpoints(); len(eps) != 0 || len(sub.Flows()) != 0 {
		t.Errorf("endpoints %v after the address went", eps)
	}
}
