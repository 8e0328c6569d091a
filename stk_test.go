package stk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/servetest"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/smartbeat"
)

// testLog shows warnings and errors only, so a failing test's log is short.
func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startNames starts a real name server on a free loopback port and returns
// it with its "tcp:ip:port" address.
func startNames(t testing.TB) (*namesvc.Server, string) {
	t.Helper()
	return startNamesAt(t, "127.0.0.1:0")
}

func startNamesAt(t testing.TB, addr string) (*namesvc.Server, string) {
	t.Helper()
	srv, ap := servetest.Names(t, namesvc.ServerConfig{Logger: testLog()}, addr)
	return srv, "tcp:" + ap.String()
}

// connect starts an Env on ns, closed when the test ends.
func connect(t testing.TB, ns string) *Env {
	t.Helper()
	env, err := Connect(ns, Options{Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	return env
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// payload is sequence i's data: i in the first 8 bytes, then a pattern
// depending on i, of a length varying with i (0..4095 extra bytes).
func payload(i uint64) []byte {
	b := make([]byte, 8+int(i*7919%4096))
	binary.BigEndian.PutUint64(b, i)
	for j := 8; j < len(b); j++ {
		b[j] = byte(uint64(j)*31 + i)
	}
	return b
}

func makeSeq(i uint64, name string) *seq.Sequence {
	s := seq.New(i, name, seq.TypeData)
	s.Add(0x100+i%7, payload(i))
	return s
}

// checkSeq returns what is wrong with a received sequence i, or "".
func checkSeq(q *seq.Sequence, name string) string {
	i := q.ID
	switch {
	case q.Name != name || q.Type != seq.TypeData || len(q.Elements) != 1:
		return fmt.Sprintf("sequence %d: name %q type %v, %d elements", i, q.Name, q.Type, len(q.Elements))
	case q.Elements[0].UserType != 0x100+i%7:
		return fmt.Sprintf("sequence %d: user type %#x", i, q.Elements[0].UserType)
	case !bytes.Equal(q.Elements[0].Data, payload(i)):
		return fmt.Sprintf("sequence %d: data differs (%d bytes)", i, len(q.Elements[0].Data))
	}
	return ""
}

// collector records received sequences by name and their faults.
type collector struct {
	mu     sync.Mutex
	ids    map[string][]uint64
	faults []string
	n      atomic.Int64
}

func newCollector() *collector { return &collector{ids: map[string][]uint64{}} }

func (c *collector) handle(q *seq.Sequence) {
	c.mu.Lock()
	if f := checkSeq(q, q.Name); f != "" && len(c.faults) < 10 {
		c.faults = append(c.faults, f)
	}
	c.ids[q.Name] = append(c.ids[q.Name], q.ID)
	c.mu.Unlock()
	c.n.Add(1)
}

func (c *collector) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.faults {
		t.Error(f)
	}
}

func (c *collector) idsOf(name string) []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ids[name])
}

// TestPublishSubscribe sends 10,000 sequences of 8 B to 4 KiB by name and
// checks each, byte for byte and in order.
func TestPublishSubscribe(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	pubEnv, subEnv := connect(t, ns), connect(t, ns)
	pub, err := pubEnv.Publish("prices", PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a := pub.Addr(); a.Protocol != "tcp" || !a.Addr.Addr().IsLoopback() || a.Addr.Port() == 0 {
		t.Fatalf("registered address %v: want tcp on loopback, a port", a)
	}
	c := newCollector()
	sub, err := subEnv.Subscribe("prices", c.handle, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.WaitSubscribers(ctxT(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	const n = 10_000
	batch := make([]*seq.Sequence, 0, 100)
	for i := uint64(0); i < n; i++ {
		if i < n/2 {
			if err := pub.Send(makeSeq(i, "prices")); err != nil {
				t.Fatal(err)
			}
			continue
		}
		batch = append(batch, makeSeq(i, "prices"))
		if len(batch) == cap(batch) {
			if k, err := pub.SendBatch(batch); err != nil || k != len(batch) {
				t.Fatalf("SendBatch: %d, %v", k, err)
			}
			batch = batch[:0]
		}
	}
	testutil.WaitFor(t, 30*time.Second, "10,000 sequences", func() bool { return c.n.Load() >= n })
	c.check(t)
	ids := c.idsOf("prices")
	for i, id := range ids {
		if id != uint64(i) {
			t.Fatalf("sequence %d arrived as number %d: out of order or lost", id, i)
		}
	}
	if len(ids) != n || sub.Received() != n {
		t.Fatalf("received %d (counter %d), want %d", len(ids), sub.Received(), n)
	}
	if st := pub.Stats(); st.SequencesOut != n || st.Dropped != 0 {
		t.Errorf("publisher stats %+v: want %d out, none dropped", st, n)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Send(makeSeq(0, "prices")); !errors.Is(err, flow.ErrClosed) {
		t.Errorf("Send after Close: %v, want flow.ErrClosed", err)
	}
}

// TestCloseDelivers: what Send accepted reaches the subscriber although
// Close follows at once.
func TestCloseDelivers(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	env := connect(t, ns)
	pub, err := env.Publish("burst", PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	if _, err := env.Subscribe("burst", c.handle, SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pub.WaitSubscribers(ctxT(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for i := uint64(0); i < n; i++ {
		if err := pub.Send(makeSeq(i, "burst")); err != nil {
			t.Fatal(err)
		}
	}
	pub.Close()
	testutil.WaitFor(t, 10*time.Second, "every accepted sequence", func() bool { return c.n.Load() >= n })
	c.check(t)
}

// TestSecondPublisher: a publisher that registers the name later is
// connected to, and both are received.
func TestSecondPublisher(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	env := connect(t, ns)
	p1, err := env.Publish("feed", PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	sub, err := env.Subscribe("feed", c.handle, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.WaitConnected(ctxT(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	p2, err := connect(t, ns).Publish("feed", PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.WaitSubscribers(ctxT(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	if err := p1.WaitSubscribers(ctxT(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 100; i++ {
		if err := p1.Send(makeSeq(i, "one")); err != nil {
			t.Fatal(err)
		}
		if err := p2.Send(makeSeq(i, "two")); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "200 sequences", func() bool { return c.n.Load() >= 200 })
	c.check(t)
	if a, b := len(c.idsOf("one")), len(c.idsOf("two")); a != 100 || b != 100 {
		t.Fatalf("received %d from the first publisher and %d from the second, want 100 each", a, b)
	}
	want := []string{p1.Addr().String(), p2.Addr().String()}
	slices.Sort(want)
	if got := sub.Endpoints(); !slices.Equal(got, want) {
		t.Fatalf("endpoints %v, want %v", got, want)
	}
}

// TestPublisherRestart: a publisher closed and started again on a new port
// is followed; nothing sent after the subscriber reconnected is lost, and
// the old address is dropped.
func TestPublisherRestart(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	subEnv := connect(t, ns)
	c := newCollector()
	sub, err := subEnv.Subscribe("svc", c.handle, SubscribeOptions{PruneInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for round, crash := range []bool{false, true} {
		name := fmt.Sprintf("round%d", round)
		pubEnv, err := Connect(ns, Options{Logger: testLog()})
		if err != nil {
			t.Fatal(err)
		}
		// A crash leaves the registration for its linger: keep it short.
		pub, err := pubEnv.Publish("svc", PublishOptions{Linger: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.WaitSubscribers(ctxT(t, 10*time.Second), 1); err != nil {
			t.Fatal(err)
		}
		for i := uint64(0); i < 500; i++ {
			if err := pub.Send(makeSeq(i, name)); err != nil {
				t.Fatal(err)
			}
		}
		testutil.WaitFor(t, 10*time.Second, "500 sequences of "+name, func() bool { return len(c.idsOf(name)) == 500 })
		// The previous publisher's address goes once the subscription has
		// looked the name up and not found it.
		testutil.WaitFor(t, 10*time.Second, name+": only the new address", func() bool {
			got := sub.Endpoints()
			return len(got) == 1 && got[0] == pub.Addr().String()
		})

		if crash {
			// No Close of the registration: the name server's connection
			// breaks, as when the process dies.
			pub.reg.client.Close()
			pub.flow.Close()
		}
		pubEnv.Close()
	}
	c.check(t)
	testutil.WaitFor(t, 10*time.Second, "the dead publishers' addresses dropped", func() bool { return len(sub.Endpoints()) == 0 })
}

// TestSubscribeChan: the channel carries clones, counts what a full buffer
// drops, and is closed by Close.
func TestSubscribeChan(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	env := connect(t, ns)
	pub, err := env.Publish("chan", PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := env.SubscribeChan("chan", 100, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.WaitSubscribers(ctxT(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	const n = 150 // 50 more than the buffer, not read meanwhile
	for i := uint64(0); i < n; i++ {
		if err := pub.Send(makeSeq(i, "chan")); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "100 received and 50 dropped", func() bool { return sub.Received() == 100 && sub.Dropped() == 50 })
	for i := uint64(0); i < 100; i++ {
		q := <-sub.C()
		if q.ID != i {
			t.Fatalf("got sequence %d, want %d", q.ID, i)
		}
		if f := checkSeq(q, "chan"); f != "" {
			t.Fatal(f) // a clone: still intact after 50 more were read
		}
	}
	sub.Close()
	if _, ok := <-sub.C(); ok {
		t.Fatal("the channel holds a sequence after Close")
	}
}

// TestNames: Register, Lookup, WatchName, and Close of a registration
// taking the name off.
func TestNames(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	env := connect(t, ns)
	var mu sync.Mutex
	var seen []namesvc.Info
	w, err := env.WatchName("db", func(i namesvc.Info) {
		mu.Lock()
		seen = append(seen, i)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	info := namesvc.Info{
		Name:      "db",
		Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("10.0.0.7:5432")}},
		Linger:    time.Second,
		Meta:      []seq.Element{{UserType: 0x2000, Data: []byte("primary\x00")}},
	}
	reg, err := env.Register(ctxT(t, 10*time.Second), info)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := env.Lookup(ctxT(t, 10*time.Second), "db")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Addresses[0] != info.Addresses[0] {
		t.Fatalf("lookup: %v", infos)
	}
	if s, _ := infos[0].MetaString(0x2000); s != "primary" {
		t.Fatalf("meta-data %q", s)
	}
	testutil.WaitFor(t, 10*time.Second, "the watch to see the registration", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 1 && seen[0].Addresses[0] == info.Addresses[0]
	})

	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the name to go", func() bool {
		infos, err := env.Lookup(ctxT(t, 10*time.Second), "db")
		return err == nil && len(infos) == 0
	})

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Register(ctxT(t, time.Second), namesvc.Info{}); err == nil {
		t.Fatal("registered an empty name")
	}
}

// TestNameServerRestart: after the name server restarts (same address,
// new id) the publisher registers again by itself and a new subscriber
// finds it.
func TestNameServerRestart(t *testing.T) {
	leakcheck.Check(t)
	srv, ns := startNames(t)
	env := connect(t, ns)
	pub, err := env.Publish("survivor", PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	// The port is free again at once for a listener (SO_REUSEADDR); retry
	// briefly in case the old listener is still going.
	var srv2 *namesvc.Server
	testutil.WaitFor(t, 10*time.Second, "the name server to restart on its port", func() bool {
		s, err := namesvc.NewServer(namesvc.ServerConfig{Logger: testLog()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ServeTCP(ns[len("tcp:"):]); err != nil {
			s.Close()
			return false
		}
		srv2 = s
		return true
	})

	t.Cleanup(func() { srv2.Close() })
	testutil.WaitFor(t, 20*time.Second, "the registration on the new server", func() bool {
		infos, err := env.Lookup(ctxT(t, 5*time.Second), "survivor")
		return err == nil && len(infos) == 1 && infos[0].Addresses[0] == pub.Addr()
	})

	c := newCollector()
	if _, err := connect(t, ns).Subscribe("survivor", c.handle, SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pub.WaitSubscribers(ctxT(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
}

// TestService: Env.Service finds the monitor through the name server
// (lookup:monitor) and shows in it.
func TestService(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	m, _ := servetest.Monitor(t, smartbeat.MonitorConfig{NameServerAddr: ns, Logger: testLog()}, "127.0.0.1:0")
	env := connect(t, ns)
	testutil.WaitFor(t, 10*time.Second, "the monitor's registration", func() bool {
		infos, err := env.Lookup(ctxT(t, 5*time.Second), "monitor")
		return err == nil && len(infos) == 1
	})

	svc, err := env.Service("billing", smartbeat.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.SetState(smartbeat.Running); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "billing running in the monitor", func() bool {
		for _, v := range m.Services() {
			if v.Name == "billing" && v.StateName == "running" {
				return true
			}
		}
		return false
	})

	env.Close() // closes the service: DESTROY
	testutil.WaitFor(t, 10*time.Second, "billing destroyed", func() bool {
		for _, v := range m.History() {
			if v.Name == "billing" {
				return true
			}
		}
		return false
	})

}

// TestPublishUDP: a UDP publisher registers the address it sends to, and
// the subscriber listens there.
func TestPublishUDP(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	env := connect(t, ns)
	// A free UDP port: bind one, note it, free it.
	probe, err := flow.NewUDP(flow.UDPConfig{Bind: "127.0.0.1:0"}, flow.Options{Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().Port()
	probe.Close()
	pub, err := env.Publish("udpfeed", PublishOptions{Listen: fmt.Sprintf("udp:127.0.0.1:%d", port)})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.WaitSubscribers(ctxT(t, time.Second), 1); !errors.Is(err, ErrNoConnections) {
		t.Fatalf("WaitSubscribers over UDP: %v", err)
	}
	c := newCollector()
	sub, err := env.Subscribe("udpfeed", c.handle, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the subscriber's UDP flow", func() bool { return len(sub.Endpoints()) == 1 })
	// Datagrams sent before the socket was bound are lost: send until some
	// arrive, then check what did.
	testutil.WaitFor(t, 10*time.Second, "a datagram", func() bool {
		pub.Send(makeSeq(1, "udpfeed"))
		return c.n.Load() > 0
	})

	c.check(t)
}

// TestConnectErrors: bad addresses and names are refused with errors that
// say what to give.
func TestConnectErrors(t *testing.T) {
	leakcheck.Check(t)
	if _, err := Connect("lookup:names", Options{}); err == nil {
		t.Error("Connect took a lookup: address")
	}
	// A name server nobody runs: Publish fails within RegisterWait and says
	// to start stkd.
	env, err := Connect("tcp:127.0.0.1:1", Options{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	_, err = env.Publish("x", PublishOptions{RegisterWait: 200 * time.Millisecond})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("is stkd running")) {
		t.Errorf("Publish without a name server: %v", err)
	}
	if _, err := env.Publish("x", PublishOptions{Listen: "udp:127.0.0.1:0"}); err == nil {
		t.Error("a UDP publisher without a port")
	}
	p, err := env.Publish("x", PublishOptions{RegisterWait: -1})
	if err != nil {
		t.Fatalf("Publish not waiting for the name server: %v", err)
	}
	p.Close()
}
