package cluster_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stk-go/stk/cluster"
	"github.com/stk-go/stk/internal/etcdtest"
	"github.com/stk-go/stk/internal/servetest"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
)

// Nodes are in-process name servers on real loopback sockets, each with
// its cluster node, against real etcd child processes (internal/etcdtest).

type testNode struct {
	id   string
	srv  *namesvc.Server
	node *cluster.Node
	addr string // "tcp:ip:port"
}

func startNode(t *testing.T, eps []string, id string, ttl time.Duration) *testNode {
	t.Helper()
	return startNodeWith(t, eps, id, ttl, namesvc.ServerConfig{GCInterval: 100 * time.Millisecond})
}

// startNodeWith is startNode with the name server's configuration.
func startNodeWith(t *testing.T, eps []string, id string, ttl time.Duration, cfg namesvc.ServerConfig) *testNode {
	t.Helper()
	log := testutil.Logger(t).With("test_node", id)
	cfg.Logger = log
	srv, ap := servetest.Names(t, cfg, "127.0.0.1:0") // closed after the node: cleanups run last first
	n := joinNode(t, cluster.Config{Endpoints: eps, NodeID: id, LeaseTTL: ttl, Server: srv, Logger: log}, "node "+id)
	return &testNode{id: id, srv: srv, node: n, addr: "tcp:" + ap.String()}
}

// joinNode starts a node with cfg, closed when the test ends, and waits at
// most 20 s for its first sync with etcd; the test fails if it does not
// join then (what names the node in the failure).
func joinNode(t *testing.T, cfg cluster.Config, what string) *cluster.Node {
	t.Helper()
	n, err := cluster.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	select {
	case <-n.Synced():
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not join within 20 s: %+v", what, n.Status())
	}
	return n
}

func dial(t *testing.T, addr string) *namesvc.Client {
	t.Helper()
	c, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func register(t *testing.T, c *namesvc.Client, name string, port uint16, linger time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info := namesvc.Info{Name: name, Linger: linger, FT: namesvc.FTActive,
		Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}}}
	if err := c.Register(ctx, info); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
}

// ports looks name up with c and returns the first port of each answer,
// in answer order.
func ports(t *testing.T, c *namesvc.Client, name string) []uint16 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	infos, err := c.LookupAll(ctx, name, namesvc.LookupOptions{})
	if err != nil {
		t.Fatalf("lookup %s: %v", name, err)
	}
	var out []uint16
	for _, i := range infos {
		if len(i.Addresses) > 0 {
			out = append(out, i.Addresses[0].Addr.Port())
		}
	}
	return out
}

// waitPorts waits at most d until a lookup of name with c answers want
// (in order), and fails with the last answer otherwise.
func waitPorts(t *testing.T, c *namesvc.Client, name string, want []uint16, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var got []uint16
	for time.Since(start) < d {
		if got = ports(t, c, name); slices.Equal(got, want) {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond) // poll the view: lookups are cheap and local
	}
	t.Fatalf("lookup of %s answered ports %v after %v, want %v", name, got, d, want)
	return 0
}

func TestReplication(t *testing.T) {
	etcd := etcdtest.Start(t, 1)
	eps := etcd.Endpoints()
	a := startNode(t, eps, "a", 2*time.Second)
	b := startNode(t, eps, "b", 2*time.Second)
	c := startNode(t, eps, "c", 2*time.Second)

	atA, atC := dial(t, a.addr), dial(t, c.addr)
	var mu sync.Mutex
	var heard []uint16
	if _, err := atC.Subscribe("late", namesvc.SubscribeOptions{}, func(i namesvc.Info) {
		mu.Lock()
		heard = append(heard, i.Addresses[0].Addr.Port())
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}

	// A registers, C looks it up: the same answer as at A.
	register(t, atA, "svc", 7001, time.Second)
	took := waitPorts(t, atC, "svc", []uint16{7001}, 5*time.Second)
	t.Logf("A→C propagation seen by polling lookups within %v", took)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fromA, err := atA.LookupOnce(ctx, "svc", namesvc.LookupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fromC, err := atC.LookupOnce(ctx, "svc", namesvc.LookupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fromA.String() != fromC.String() {
		t.Fatalf("answer at C %s differs from the answer at A %s", fromC.String(), fromA.String())
	}

	// A subscription at C hears a later registration at A.
	register(t, atA, "late", 7002, time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		h := slices.Clone(heard)
		mu.Unlock()
		if slices.Equal(h, []uint16{7002}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber at C heard %v, want [7002]", h)
		}
		time.Sleep(10 * time.Millisecond) // poll what the callback recorded
	}

	// Order at a node: its own registrations first, then the others'.
	atB := dial(t, b.addr)
	register(t, atB, "svc", 7003, time.Second)
	register(t, dial(t, c.addr), "svc", 7004, time.Second)
	waitPorts(t, atC, "svc", []uint16{7004, 7001, 7003}, 5*time.Second)
	waitPorts(t, atB, "svc", []uint16{7003, 7001, 7004}, 5*time.Second)

	// A's client goes: its registrations linger 1 s at A, then go
	// everywhere.
	closed := time.Now()
	atA.Close()
	if got := ports(t, atC, "late"); !slices.Equal(got, []uint16{7002}) && time.Since(closed) < 900*time.Millisecond {
		t.Fatalf("registration gone at C %v after its client closed, before its linger of 1 s: %v", time.Since(closed), got)
	}
	waitPorts(t, atC, "late", nil, 5*time.Second)
	if gone := time.Since(closed); gone < time.Second {
		t.Fatalf("gone at C %v after the client closed: before its linger", gone)
	} else {
		t.Logf("gone at C %v after A's client closed (linger 1 s)", gone)
	}

	st := c.node.Status()
	if !st.Connected || len(st.Nodes) != 3 || st.Counters.Puts == 0 || st.Counters.WatchEvents == 0 || st.Remote == 0 {
		t.Fatalf("status of C: %+v", st)
	}
	if len(st.EndpointStatus) == 1 && st.EndpointStatus[0].Error != "" {
		t.Errorf("endpoint status: %+v", st.EndpointStatus)
	}
}

// keysOf returns the registration keys of node under the default prefix.
func keysOf(t *testing.T, etcd *etcdtest.Cluster, node string) []string {
	t.Helper()
	cli, err := etcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, cluster.DefaultPrefix+"names/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Key), "/"+node+"/") {
			out = append(out, string(kv.Key))
		}
	}
	return out
}

// TestEtcdOutage: etcd stops for 10 s; both nodes keep serving from their
// last view, then re-sync: every registration present exactly once, the
// ones removed meanwhile gone. Etcd restores its leases when it is back,
// with a full TTL: the nodes keep theirs, and a node writes only what
// changed meanwhile, not every registration again.
func TestEtcdOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the outage lasts 10 s")
	}
	// In parallel with the other slow ones (it mostly waits): the
	// package's tests run on every push.
	t.Parallel()
	etcd := etcdtest.Start(t, 1)
	eps := etcd.Endpoints()
	// The lease must outlive the node's reconnection (a second or two
	// after etcd is back, on a loaded host) to be kept.
	a := startNode(t, eps, "a", 4*time.Second)
	b := startNode(t, eps, "b", 4*time.Second)
	atA, atB := dial(t, a.addr), dial(t, b.addr)
	register(t, atA, "keep", 8001, 0)
	goes := dial(t, a.addr)
	register(t, goes, "goes", 8002, 0)
	register(t, atB, "fromb", 8003, 0)
	waitPorts(t, atB, "goes", []uint16{8002}, 5*time.Second)
	waitPorts(t, atA, "fromb", []uint16{8003}, 5*time.Second)

	leaseA, putsA := a.node.Status().Lease, a.node.Counters().Puts
	etcd.StopAll()
	stopped := time.Now()
	// Partitioned: each node notices within the lease TTL and keeps
	// answering from its last view.
	for _, n := range []*testNode{a, b} {
		for !(n.node.Status().PartitionedSince.After(time.Time{}) && !n.node.Status().Connected) {
			if time.Since(stopped) > 8*time.Second {
				t.Fatalf("node %s not partitioned 8 s after etcd stopped: %+v", n.id, n.node.Status())
			}
			time.Sleep(50 * time.Millisecond) // poll the status
		}
	}
	waitPorts(t, atB, "goes", []uint16{8002}, time.Second) // the last view
	goes.Close()                                           // linger 0: gone at A now, at B after the re-sync
	waitPorts(t, atA, "goes", nil, 3*time.Second)
	register(t, atA, "new", 8004, 0) // made while partitioned
	time.Sleep(time.Until(stopped.Add(10 * time.Second)))
	etcd.RestartAll()

	waitPorts(t, atB, "new", []uint16{8004}, 15*time.Second)
	waitPorts(t, atB, "goes", nil, 5*time.Second)
	waitPorts(t, atB, "keep", []uint16{8001}, 5*time.Second)
	waitPorts(t, atA, "fromb", []uint16{8003}, 5*time.Second)
	for _, n := range []*testNode{a, b} {
		waitFor(t, 10*time.Second, func() bool { st := n.node.Status(); return st.Connected && st.Counters.Resyncs >= 2 },
			func() string { return fmt.Sprintf("node %s after the outage: %+v", n.id, n.node.Status()) })
		t.Logf("node %s rejoined %v after etcd restarted", n.id, n.node.Status().LastResync.Sub(stopped.Add(10*time.Second)))
	}
	// Exactly once in etcd too, after the old leases are gone.
	if k := keysOf(t, etcd, "a"); len(k) != 2 {
		t.Fatalf("keys of node a in etcd: %v, want 2 (keep, new)", k)
	}
	if got := b.srv.Stats().Remote; got != 2 {
		t.Fatalf("b holds %d remote registrations, want 2", got)
	}
	// Its lease kept, a wrote "new" and its node key, and deleted "goes".
	if st := a.node.Status(); st.Lease != leaseA || st.Counters.Puts-putsA != 2 {
		t.Errorf("node a after the outage: lease %x (before: %x), %d puts (want 2: \"new\" and its node key)",
			st.Lease, leaseA, st.Counters.Puts-putsA)
	}
}

// TestLeaderKilled: in a 3-member etcd, the leader dies; no registration
// is lost and propagation resumes.
func TestLeaderKilled(t *testing.T) {
	t.Parallel() // it mostly waits for etcd's election and the write timeout
	etcd := etcdtest.Start(t, 3)
	eps := etcd.Endpoints()
	a := startNode(t, eps, "a", 2*time.Second)
	c := startNode(t, eps, "c", 2*time.Second)
	atA, atC := dial(t, a.addr), dial(t, c.addr)
	for i := range 20 {
		register(t, atA, fmt.Sprint("before", i), uint16(9000+i), 0)
	}
	waitPorts(t, atC, "before19", []uint16{9019}, 5*time.Second)
	leader, err := etcd.Leader()
	if err != nil {
		t.Fatal(err)
	}
	etcd.Kill(leader)
	killed := time.Now()
	for i := range 20 {
		register(t, atA, fmt.Sprint("after", i), uint16(9100+i), 0)
	}
	took := waitPorts(t, atC, "after19", []uint16{9119}, 15*time.Second)
	t.Logf("propagation resumed %v after the leader (member %d) was killed", time.Since(killed), leader)
	_ = took
	for i := range 20 {
		waitPorts(t, atC, fmt.Sprint("before", i), []uint16{uint16(9000 + i)}, time.Second)
		waitPorts(t, atC, fmt.Sprint("after", i), []uint16{uint16(9100 + i)}, time.Second)
	}
	if got := c.srv.Stats().Remote; got != 40 {
		t.Fatalf("c holds %d remote registrations, want 40", got)
	}
}

// waitFor waits at most d for cond, failing with msg() otherwise: it is
// testutil.WaitForf, under the name these tests call it by.
var waitFor = testutil.WaitForf
