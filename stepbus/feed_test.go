package stepbus

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/servetest"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/step"
)

// startNames runs a name server on loopback and returns its address for
// namesvc.Dial.
func startNames(t testing.TB) string {
	t.Helper()
	_, ap := servetest.Names(t, namesvc.ServerConfig{GCInterval: 10 * time.Millisecond}, "127.0.0.1:0")
	return "tcp:" + ap.String()
}

func dialNames(t testing.TB, addr string) *namesvc.Client {
	t.Helper()
	c, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fakePublisher is a host monitor as the bus sees it: a TCP server flow
// registered under the directory name (and its own name), sending STEP
// sequences.
type fakePublisher struct {
	srv  *flow.TCPServer
	ns   *namesvc.Client
	addr netip.AddrPort
	once sync.Once
}

func newFakePublisher(t testing.TB, names string, regs ...string) *fakePublisher {
	t.Helper()
	return newFakePublisherAt(t, names, "127.0.0.1", regs...)
}

// newFakePublisherAt is newFakePublisher listening (and registered) on ip.
func newFakePublisherAt(t testing.TB, names, ip string, regs ...string) *fakePublisher {
	t.Helper()
	srv, err := flow.ListenTCP(ip+":0", flow.Options{Logger: testutil.Discard(), Name: "fake stepmon"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := namesvc.Dial(names, namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePublisher{srv: srv, ns: c, addr: srv.LocalAddr()}
	t.Cleanup(p.close)
	for _, name := range regs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Register(ctx, namesvc.Info{Name: name, Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: p.addr}}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *fakePublisher) send(t testing.TB, s *step.Step) {
	t.Helper()
	var q seq.Sequence
	if err := step.Encode(&q, s); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Send(&q); err != nil {
		t.Fatal(err)
	}
}

// close takes the publisher away: its flow and its name-service
// connection (its registrations then expire).
func (p *fakePublisher) close() {
	p.once.Do(func() {
		p.srv.Close()
		p.ns.Close()
	})
}

// feedReader receives the feed like the subscribe example does: it
// subscribes to the feed's name and connects to its addresses.
type feedReader struct {
	mu  sync.Mutex
	got []*step.Step
	bad int
	fl  *flow.TCPClient
}

func readFeed(t testing.TB, names, feedName string) *feedReader {
	t.Helper()
	r := &feedReader{}
	c := dialNames(t, names)
	info := lookupEventually(t, c, feedName)
	var err error
	r.fl, err = flow.DialTCP(info.Addresses[0].Addr.String(), flow.Options{Logger: testutil.Discard(), Handler: func(_ flow.Peer, q *seq.Sequence) {
		s, err := step.Decode(q)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.bad++
			return
		}
		r.got = append(r.got, s)
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.fl.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.fl.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

// lookupEventually looks name up until it is registered (registration
// is asynchronous).
func lookupEventually(t testing.TB, c *namesvc.Client, name string) namesvc.Info {
	t.Helper()
	var info namesvc.Info
	var err error
	testutil.WaitForf(t, 10*time.Second, func() bool {
		info, err = c.LookupOnce(context.Background(), name, namesvc.LookupOptions{})
		return err == nil
	}, func() string { return fmt.Sprintf("look up %q: %v", name, err) })
	return info
}

func (r *feedReader) steps() []*step.Step {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// End to end over loopback: publishers registered under "step" are
// followed, their STEPs reach the history, subscribers and the feed; bad
// sequences are counted; a publisher that goes away is dropped after the
// grace period, one that stays registered is kept.
func TestFeedAndFollower(t *testing.T) {
	leakcheck.Check(t)
	names := startNames(t)
	b := newBus(t, Config{NameServer: names, PublisherGrace: 200 * time.Millisecond})
	feedAddr, err := b.ServeFeed("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !feedAddr.IsValid() || feedAddr.Port() == 0 {
		t.Fatalf("feed address %v", feedAddr)
	}
	if _, err := b.ServeFeed("127.0.0.1:0"); err == nil {
		t.Fatal("a second feed was started")
	}
	testutil.WaitFor(t, 10*time.Second, "feed registered", func() bool { return b.Stats().Feed.Registered })
	feed := readFeed(t, names, DefaultFeedName)
	testutil.WaitFor(t, 10*time.Second, "feed reader connected", func() bool { return b.Stats().Feed.Conns == 1 })

	p1 := newFakePublisher(t, names, "step.web-1", DefaultDirectory)
	if err := b.Follow(); err != nil {
		t.Fatal(err)
	}
	if err := b.Follow(); err == nil {
		t.Fatal("Follow twice accepted")
	}
	testutil.WaitFor(t, 10*time.Second, "publisher 1 followed", func() bool { return p1.srv.Conns() == 1 })
	sub := b.Subscribe(step.MustPattern("system.*"), "", 100)

	var sent []*step.Step
	for i := range 5 {
		s := metric("system.cpu", "web-1", int64(1000+i), "cpu_percent", float64(10*i))
		sent = append(sent, s)
		p1.send(t, s)
	}
	// Not STEPs: another sequence id, and a STEP sequence without its type.
	p1.srv.Send(&seq.Sequence{ID: 42, Type: seq.TypeData, Name: "other"})
	var broken seq.Sequence
	step.Encode(&broken, mk("system.cpu", "web-1", 1))
	broken.Elements = slices.DeleteFunc(broken.Elements, func(e seq.Element) bool { return e.UserType == step.UTType })
	p1.srv.Send(&broken)

	// A second publisher, registered after Follow.
	p2 := newFakePublisher(t, names, DefaultDirectory)
	testutil.WaitFor(t, 10*time.Second, "publisher 2 followed", func() bool { return p2.srv.Conns() == 1 })
	late := mk("system.memory", "db-2", 2000)
	p2.send(t, late)
	sent = append(sent, late)

	testutil.WaitFor(t, 10*time.Second, "all STEPs published", func() bool { return b.Stats().Published == 6 })
	testutil.WaitFor(t, 10*time.Second, "invalid counted", func() bool { return b.Stats().Invalid == 2 })
	got := b.Query(Query{})
	if len(got) != 6 {
		t.Fatalf("history %s", describe(got))
	}
	for i, s := range got {
		if jsonOf(t, s) != jsonOf(t, sent[i]) {
			t.Fatalf("STEP %d came through as %s, sent %s", i, jsonOf(t, s), jsonOf(t, sent[i]))
		}
	}
	if n := len(recv(sub)); n != 6 {
		t.Fatalf("subscriber got %d STEPs", n)
	}
	testutil.WaitFor(t, 10*time.Second, "feed delivers", func() bool { return len(feed.steps()) == 6 })
	// The feed is in arrival order (the history above, in time order): p1's
	// STEPs in the order sent, p2's anywhere among them, as the two
	// connections are independent (p1's last ones may still be in flight
	// when p2's arrives).
	var fed1 []*step.Step
	for _, s := range feed.steps() {
		if s.Space.Hostname == late.Space.Hostname {
			if jsonOf(t, s) != jsonOf(t, late) {
				t.Fatalf("feed STEP of p2 is %s, sent %s", jsonOf(t, s), jsonOf(t, late))
			}
			continue
		}
		fed1 = append(fed1, s)
	}
	if len(fed1) != 5 {
		t.Fatalf("the feed has %d STEPs of p1, want 5", len(fed1))
	}
	for i, s := range fed1 {
		if jsonOf(t, s) != jsonOf(t, sent[i]) {
			t.Fatalf("feed STEP %d of p1 is %s, sent %s", i, jsonOf(t, s), jsonOf(t, sent[i]))
		}
	}
	st := b.Stats()
	src := "tcp:" + p1.addr.String()
	if st.BySource[src] != 5 || st.Publishers != 2 || st.PublishersConnected != 2 || st.Feed.Sent != 6 || st.Received != 8 {
		t.Fatalf("stats %+v", st)
	}
	pubs := b.Publishers()
	if len(pubs) != 2 || !pubs[0].Connected || pubs[0].Received+pubs[1].Received != 8 || pubs[0].Invalid+pubs[1].Invalid != 2 {
		t.Fatalf("publishers %+v", pubs)
	}
	if len(b.Flows()) != 3 {
		t.Fatalf("flows %v", b.Flows())
	}

	// p2's flow goes down but its name-service client stays: still
	// registered, so it is kept (and reconnected to if it comes back).
	p2.srv.Close()
	testutil.WaitFor(t, 10*time.Second, "p2 seen down", func() bool { return b.Stats().PublishersConnected == 1 })
	time.Sleep(600 * time.Millisecond) // three grace periods
	if n := b.Stats().Publishers; n != 2 {
		t.Fatalf("a publisher still registered was dropped (%d left)", n)
	}
	// p1 goes away altogether: dropped once down for the grace period and
	// its registration is gone.
	p1.close()
	testutil.WaitFor(t, 10*time.Second, "p1 dropped", func() bool { return b.Stats().Publishers == 1 })
	if pubs := b.Publishers(); pubs[0].Addr != p2.addr.String() {
		t.Fatalf("the wrong publisher was dropped: %+v", pubs)
	}
	if len(b.Flows()) != 2 {
		t.Fatalf("flows after the drop: %d", len(b.Flows()))
	}
}

// The bus never follows its own feed, even when it is registered under
// the directory name.
func TestFollowerSkipsOwnFeed(t *testing.T) {
	leakcheck.Check(t)
	names := startNames(t)
	b := newBus(t, Config{NameServer: names})
	addr, err := b.ServeFeed("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := dialNames(t, names)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Register(ctx, namesvc.Info{Name: DefaultDirectory, Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: addr}}}); err != nil {
		t.Fatal(err)
	}
	p := newFakePublisher(t, names, DefaultDirectory)
	if err := b.Follow(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "publisher followed", func() bool { return p.srv.Conns() == 1 })
	time.Sleep(50 * time.Millisecond) // the subscription's answers all arrived with the publisher's
	if pubs := b.Publishers(); len(pubs) != 1 || pubs[0].Addr != p.addr.String() {
		t.Fatalf("publishers %+v", pubs)
	}
	if _, err := New(Config{FeedName: "x", Directory: "x"}); err == nil {
		t.Fatal("a feed name equal to the directory was accepted")
	}
}

// Without a name server the feed still serves and Follow says why it
// cannot work.
func TestFeedWithoutNameServer(t *testing.T) {
	leakcheck.Check(t)
	b := newBus(t, Config{})
	addr, err := b.ServeFeed("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Follow(); err == nil {
		t.Fatal("Follow without a name server succeeded")
	}
	got := make(chan *step.Step, 10)
	c, err := flow.DialTCP(addr.String(), flow.Options{Logger: testutil.Discard(), Handler: func(_ flow.Peer, q *seq.Sequence) {
		if s, err := step.Decode(q); err == nil {
			got <- s
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testutil.WaitFor(t, 10*time.Second, "feed connection", func() bool { return b.Stats().Feed.Conns == 1 })
	s := mk("system.cpu", "h", 1)
	publish(t, b, s)
	select {
	case r := <-got:
		if r.ID != s.ID {
			t.Fatalf("feed sent %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing on the feed")
	}
	if st := b.Stats().Feed; st.Registered || st.Addr != "tcp:"+addr.String() {
		t.Fatalf("feed stats %+v", st)
	}
	b.Close()
	if _, err := b.ServeFeed("127.0.0.1:0"); err == nil {
		t.Fatal("ServeFeed on a closed bus")
	}
}

// A feed on 0.0.0.0 registers an address other hosts can reach:
// AdvertiseHost, else the address of the interface toward the name server
// (the host's primary address when that is loopback); a feed on a specific
// IP registers it.
func TestFeedAdvertisedAddress(t *testing.T) {
	leakcheck.Check(t)
	_, nsAP := servetest.Names(t, namesvc.ServerConfig{}, "0.0.0.0:0")
	loopback := fmt.Sprintf("tcp:127.0.0.1:%d", nsAP.Port())
	network, networkIP := loopback, netip.MustParseAddr("127.0.0.1")
	if ip, ok := flow.PrimaryIP(); ok {
		network, networkIP = fmt.Sprintf("tcp:%v:%d", ip, nsAP.Port()), ip
	}
	c := dialNames(t, loopback)
	for i, tc := range []struct {
		ns, bind, advertise string
		wantIP              netip.Addr
	}{
		{loopback, "0.0.0.0:0", "", flow.AdvertiseIP(netip.IPv4Unspecified(), netip.MustParseAddr("127.0.0.1"))},
		{network, "0.0.0.0:0", "", networkIP},
		{network, "0.0.0.0:0", "10.1.2.3", netip.MustParseAddr("10.1.2.3")},
		{network, "127.0.0.1:0", "10.1.2.3", netip.MustParseAddr("127.0.0.1")},
	} {
		name := fmt.Sprintf("steps-%d", i) // the previous case's registration lingers
		b := newBus(t, Config{NameServer: tc.ns, FeedName: name, AdvertiseHost: tc.advertise})
		addr, err := b.ServeFeed(tc.bind)
		if err != nil {
			t.Fatal(err)
		}
		info := lookupEventually(t, c, name)
		want := "tcp:" + netip.AddrPortFrom(tc.wantIP, addr.Port()).String()
		if len(info.Addresses) != 1 || info.Addresses[0].String() != want || b.Stats().Feed.Addr != want {
			t.Errorf("feed on %s, name server %s, AdvertiseHost %q: registered %v (stats %s), want %s",
				tc.bind, tc.ns, tc.advertise, info.Addresses, b.Stats().Feed.Addr, want)
		}
		b.Close()
	}
}

// A second ServeFeed is refused before it listens or registers anything:
// it used to listen, register its address under the feed's name and then
// close, and that registration (kept for the linger, as the feed's own is)
// could replace the feed's and send subscribers to a closed port
// (TestFeedAndFollower failed now and then: its reader dialled the second
// feed's port).
func TestServeFeedTwiceRegistersNothing(t *testing.T) {
	leakcheck.Check(t)
	srv, ap := servetest.Names(t, namesvc.ServerConfig{GCInterval: 10 * time.Millisecond}, "127.0.0.1:0")
	names := "tcp:" + ap.String()
	b := newBus(t, Config{NameServer: names})
	feedAddr, err := b.ServeFeed("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "feed registered", func() bool { return b.Stats().Feed.Registered })
	before := srv.Stats()
	for range 20 {
		if _, err := b.ServeFeed("127.0.0.1:0"); err == nil {
			t.Fatal("a second feed was started")
		}
	}
	time.Sleep(100 * time.Millisecond) // for a registration on its way
	c := dialNames(t, names)
	info, err := c.LookupOnce(context.Background(), DefaultFeedName, namesvc.LookupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Addresses) != 1 || info.Addresses[0].Addr != feedAddr {
		t.Fatalf("%s is registered at %v, want only the feed's %v", DefaultFeedName, info.Addresses, feedAddr)
	}
	if after := srv.Stats(); after.Registers != before.Registers {
		t.Fatalf("the refused feeds reached the name server: %d registrations handled before them, %d after",
			before.Registers, after.Registers)
	}
}
