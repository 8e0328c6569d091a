package stepbus

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
)

// TestFollowAcceptNetworks: two publishers register under the directory,
// one on 127.0.0.1 and one on 127.0.0.2. A bus accepting 127.0.0.1/32
// follows the first only and counts the second as ignored; a bus
// accepting any follows both, and every STEP it keeps carries the source
// (the publisher's registered address) it came from.
func TestFollowAcceptNetworks(t *testing.T) {
	leakcheck.Check(t)
	names := startNames(t)
	one := newFakePublisherAt(t, names, "127.0.0.1", DefaultDirectory)
	two := newFakePublisherAt(t, names, "127.0.0.2", DefaultDirectory)

	strict := newBus(t, Config{NameServer: names, AcceptNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	open := newBus(t, Config{NameServer: names})
	for _, b := range []*Bus{strict, open} {
		if err := b.Follow(); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "the strict bus connected to 127.0.0.1 and ignoring 127.0.0.2, the open one connected to both", func() bool {
		s, o := strict.Stats(), open.Stats()
		return s.PublishersConnected == 1 && s.PublishersIgnored == 1 && o.PublishersConnected == 2 && o.PublishersIgnored == 0
	})

	if p := strict.Publishers(); len(p) != 1 || p[0].Addr != one.addr.String() {
		t.Fatalf("the strict bus follows %+v, want %v only", p, one.addr)
	}
	// The open bus's connection is the only one 127.0.0.2 gets (the
	// server side may see it a moment after the bus does); checked again
	// at the end.
	testutil.WaitFor(t, 10*time.Second, "the publisher on 127.0.0.2 sees the open bus", func() bool { return two.srv.Conns() == 1 })
	testutil.WaitFor(t, 10*time.Second, "both publishers see both buses", func() bool { return one.srv.Conns() == 2 })

	one.send(t, mk("app.one", "host-one", 1000))
	two.send(t, mk("app.two", "host-two", 2000))
	wantSource := map[string]string{"app.one": "tcp:" + one.addr.String(), "app.two": "tcp:" + two.addr.String()}
	testutil.WaitFor(t, 10*time.Second, "both STEPs on the open bus", func() bool { return len(open.Query(Query{})) == 2 })
	steps, sources := open.QueryWithSources(Query{})
	for i, s := range steps {
		if sources[i] != wantSource[s.Event.Type] {
			t.Errorf("%s has source %q, want %q", s.Event.Type, sources[i], wantSource[s.Event.Type])
		}
	}
	if st := open.Stats(); st.BySource[wantSource["app.one"]] != 1 || st.BySource[wantSource["app.two"]] != 1 {
		t.Errorf("BySource %v, want one STEP from each publisher", st.BySource)
	}
	testutil.WaitFor(t, 10*time.Second, "app.one on the strict bus", func() bool { return len(strict.Query(Query{})) == 1 })
	steps, sources = strict.QueryWithSources(Query{})
	if len(steps) != 1 || steps[0].Event.Type != "app.one" || !slices.Equal(sources, []string{wantSource["app.one"]}) {
		t.Errorf("the strict bus holds %d STEPs from %v, want app.one from %s", len(steps), sources, wantSource["app.one"])
	}
	if n := two.srv.Conns(); n != 1 {
		t.Errorf("the publisher on 127.0.0.2 has %d connections, want 1 (the open bus's): the strict bus connected", n)
	}
	// A STEP published directly keeps the source it was given.
	publish(t, open, mk("app.http", "host-three", 3000))
	_, sources = open.QueryWithSources(Query{Host: "host-three"})
	if !slices.Equal(sources, []string{"test"}) {
		t.Errorf("a STEP published with source %q came back with %v", "test", sources)
	}
}
