package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stk-go/stk/cluster"
	"github.com/stk-go/stk/internal/etcdtest"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
)

// entry returns srv's listing of name, nil if it lists none.
func entry(srv *namesvc.Server, name string) *namesvc.Entry {
	for _, e := range srv.Names() {
		if e.Name == name {
			return &e
		}
	}
	return nil
}

// TestLingeringReplicated: a registration lingering at its node lingers
// at the others with the same expiry, and they stop answering it at that
// expiry, as its node does, even though its node (whose collector is off
// here) has not removed it yet. Groups made by another node's
// registrations count in the server's Groups.
func TestLingeringReplicated(t *testing.T) {
	etcd := etcdtest.Start(t, 1)
	eps := etcd.Endpoints()
	// a's collector never runs: only the replicated expiry can end the
	// answers at c.
	a := startNodeWith(t, eps, "a", 2*time.Second, namesvc.ServerConfig{GCInterval: time.Hour})
	c := startNode(t, eps, "c", 2*time.Second)
	atC := dial(t, c.addr)

	groupsBefore := c.srv.Stats().Groups
	registrant := dial(t, a.addr)
	register(t, registrant, "lingers", 7101, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := registrant.Register(ctx, namesvc.Info{Name: "grouped", Group: "g1", FT: namesvc.FTActive,
		Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:7102")}}}); err != nil {
		t.Fatal(err)
	}
	waitPorts(t, atC, "lingers", []uint16{7101}, 5*time.Second)
	waitFor(t, 5*time.Second, func() bool { return entry(c.srv, "grouped") != nil },
		func() string { return fmt.Sprintf("c has no grouped: %+v", c.srv.Names()) })
	if g := c.srv.Stats().Groups; g != groupsBefore+1 {
		t.Errorf("c counts %d groups after a's registration in group g1, want %d", g, groupsBefore+1)
	}
	if e := entry(c.srv, "lingers"); e.Lingering || !e.Expires.IsZero() || e.Node != "a" {
		t.Fatalf("c lists a's registration as %+v before its client went, want it active", e)
	}

	registrant.Close()
	waitFor(t, 5*time.Second, func() bool { e := entry(a.srv, "lingers"); return e != nil && e.Lingering },
		func() string { return fmt.Sprintf("a: %+v", entry(a.srv, "lingers")) })
	expires := entry(a.srv, "lingers").Expires
	waitFor(t, 5*time.Second, func() bool { e := entry(c.srv, "lingers"); return e != nil && e.Lingering },
		func() string {
			return fmt.Sprintf("c lists a's lingering registration as %+v, want it lingering", entry(c.srv, "lingers"))
		})
	if e := entry(c.srv, "lingers"); !e.Expires.Equal(expires) {
		t.Fatalf("c has it expiring at %v, a at %v", e.Expires, expires)
	}
	// Answered within the linger, at c as at a.
	if time.Until(expires) > 200*time.Millisecond {
		if got := ports(t, atC, "lingers"); !slices.Equal(got, []uint16{7101}) {
			t.Fatalf("c answered %v within the linger, want [7101]", got)
		}
	}
	waitPorts(t, atC, "lingers", nil, time.Until(expires)+2*time.Second)
	if early := time.Until(expires); early > 0 {
		t.Fatalf("c stopped answering %v before the expiry", early)
	}
	t.Logf("gone at c %v after its expiry", -time.Until(expires))
	if st := a.srv.Stats(); st.Registrations != 2 || st.Lingering != 2 {
		t.Fatalf("a holds %d registrations (%d lingering): want both, its collector is off", st.Registrations, st.Lingering)
	}
}

// TestDuplicateNodeID: a second live node with the id of a running one
// refuses to join, with an error naming the id and the holder; the
// running node keeps its lease and its registrations. A run whose lease is
// alive but which no longer answers (killed with -9) is taken over after
// ProbeWait.
func TestDuplicateNodeID(t *testing.T) {
	etcd := etcdtest.Start(t, 1)
	eps := etcd.Endpoints()
	first := startNode(t, eps, "dup", 3*time.Second)
	c := startNode(t, eps, "c", 3*time.Second)
	register(t, dial(t, first.addr), "held", 7201, 0)
	atC := dial(t, c.addr)
	waitPorts(t, atC, "held", []uint16{7201}, 5*time.Second)
	before := first.node.Status()

	log := testutil.Logger(t).With("test_node", "dup-2")
	srv, err := namesvc.NewServer(namesvc.ServerConfig{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	second, err := cluster.Start(cluster.Config{Endpoints: eps, NodeID: "dup", LeaseTTL: 3 * time.Second, Server: srv, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	select {
	case <-second.Failed():
	case <-second.Synced():
		t.Fatalf("a second node with the id of a live one joined: %+v", second.Status())
	case <-time.After(cluster.ProbeWait + 10*time.Second):
		t.Fatalf("the second node neither refused nor joined: %+v", second.Status())
	}
	err = second.Err()
	if !errors.Is(err, cluster.ErrDuplicateID) || !strings.Contains(err.Error(), `"dup"`) || !strings.Contains(err.Error(), "--node-id") {
		t.Fatalf("second node's error %v: want ErrDuplicateID naming the id and --node-id", err)
	}
	if st := second.Status(); st.Connected || st.LastError != err.Error() {
		t.Fatalf("second node's status %+v: want not connected, saying why", st)
	}
	t.Logf("second node: %v", err)

	// The first one lost nothing: same lease, never lost etcd, its
	// registration still answered at c and once in etcd.
	after := first.node.Status()
	if !after.Connected || after.Lease != before.Lease || after.Counters.Errors != before.Counters.Errors {
		t.Fatalf("first node after the duplicate: %+v (before: lease %x, errors %d)", after, before.Lease, before.Counters.Errors)
	}
	if got := ports(t, atC, "held"); !slices.Equal(got, []uint16{7201}) {
		t.Fatalf("c answers %v for the first node's registration, want [7201]", got)
	}
	if k := keysOf(t, etcd, "dup"); len(k) != 1 {
		t.Fatalf("node dup's keys: %v, want one", k)
	}

	// A run that holds the id but never answers (as after kill -9: its
	// lease alive until the TTL): taken over after ProbeWait, its lease
	// revoked at once.
	cli, err := etcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf(`{"node":"gone","lease":%d,"started":1,"pid":1,"host":"elsewhere","instance":"0123456789abcdef"}`, lease.ID)
	if _, err := cli.Put(ctx, cluster.DefaultPrefix+"nodes/gone", dead, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, cluster.DefaultPrefix+"names//old/gone/0000000000000001", `{"e":[],"l":0,"at":1,"w":1}`, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	g := startNode(t, eps, "gone", 3*time.Second)
	took := time.Since(start)
	if took < cluster.ProbeWait {
		t.Fatalf("joined %v after start, before ProbeWait (%v): it did not wait for the other run's answer", took, cluster.ProbeWait)
	}
	if ttl, err := cli.TimeToLive(ctx, lease.ID); err != nil || ttl.TTL > 0 {
		t.Fatalf("the dead run's lease: %+v %v, want revoked", ttl, err)
	}
	if k := keysOf(t, etcd, "gone"); len(k) != 0 {
		t.Fatalf("the dead run's keys: %v, want none", k)
	}
	if !g.node.Status().Connected {
		t.Fatalf("the new run: %+v", g.node.Status())
	}
	t.Logf("took over a silent run's id %v after start", took)
}

// TestStkdDuplicateNodeID: a second stkd started with the --node-id of a
// running one exits with an error saying so; the first keeps running.
func TestStkdDuplicateNodeID(t *testing.T) {
	bin := stkd.Path(t)
	etcd := etcdtest.Start(t, 1)
	args := []string{"--cluster", etcd.ClusterFlag(), "--node-id", "twin", "--cluster-lease-ttl", "3s", "--steps=false"}
	first := testprog.StartStkd(t, bin, args...)
	first.WaitFor(t, `cluster: joined`, 20*time.Second)
	second := testprog.Start(t, bin, append([]string{"--names-tcp", "127.0.0.1:0", "--names-udp", "", "--monitor-tcp", "127.0.0.1:0",
		"--monitor-udp", "", "--http", ""}, args...)...)
	out := second.Wait(t, cluster.ProbeWait+20*time.Second)
	if code := second.Cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(out, `node id \"twin\" is held by a live node`) {
		t.Fatalf("second stkd with the same --node-id exited with status %d:\n%s", code, out)
	}
	first.WaitFor(t, `another process tried to join with this node's id`, 5*time.Second)
	if strings.Contains(first.Output(), "etcd lost") {
		t.Fatalf("the first stkd lost etcd:\n%s", first.Output())
	}
}
