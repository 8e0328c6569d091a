package cluster_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stk-go/stk/cluster"
	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/etcdtest"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/smartbeat"
)

// monitorNode is a test node with a real monitor on a loopback port whose
// records it publishes.
type monitorNode struct {
	*testNode
	mon     *smartbeat.Monitor
	monAddr string
	svcs    *cluster.Services
}

func startMonitorNode(t *testing.T, eps []string, id string, ttl time.Duration, cfg cluster.ServicesConfig) *monitorNode {
	t.Helper()
	tn := startNode(t, eps, id, ttl)
	mon, err := smartbeat.NewMonitor(smartbeat.MonitorConfig{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := mon.ServeTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Monitor = mon
	svcs, err := tn.node.PublishServices(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mn := &monitorNode{testNode: tn, mon: mon, monAddr: "tcp:" + ap.String(), svcs: svcs}
	t.Cleanup(func() { svcs.Close(); mon.Close() }) // before the node's cleanup (LIFO)
	return mn
}

// remote returns the record named name of node among s's remote records.
func remote(s *cluster.Services, node, name string) (smartbeat.ServiceView, bool) {
	for _, v := range s.Remote() {
		if v.Node == node && v.Name == name {
			return v, true
		}
	}
	return smartbeat.ServiceView{}, false
}

func describe(s *cluster.Services) string {
	var out string
	for _, v := range s.Remote() {
		out += fmt.Sprintf("\n  %s/%d %q %s current=%v end=%q checkpoint=%d", v.Node, v.UID, v.Name, v.StateName, v.Current, v.EndReason, v.Checkpoint)
	}
	return fmt.Sprintf("stats %+v, remote:%s", s.Stats(), out)
}

// A service reporting to node A's monitor is seen at node B with its
// state, checkpoint, end and verdict; beats are coalesced; A leaving takes
// its records with it.
func TestServicesAcrossNodes(t *testing.T) {
	etcd := etcdtest.Start(t, 1)
	eps := etcd.Endpoints()
	cfg := cluster.ServicesConfig{Interval: 200 * time.Millisecond, BeatInterval: time.Second}
	a := startMonitorNode(t, eps, "a", 2*time.Second, cfg)
	b := startMonitorNode(t, eps, "b", 2*time.Second, cfg)

	sender := smartbeat.NewSender(smartbeat.SenderOptions{Period: 50 * time.Millisecond})
	defer sender.Close()
	billing, err := smartbeat.NewService("billing", smartbeat.Options{Monitor: a.monAddr, Sender: sender, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	billing.SetState(smartbeat.Running)
	billing.SetCheckpoint(7)
	testutil.WaitFor(t, 5*time.Second, "billing running at checkpoint 7 seen at B", func() bool {
		v, ok := remote(b.svcs, "a", "billing")
		return ok && v.Current && v.State == smartbeat.Running && v.Checkpoint == 7 && v.Peer.IsValid()
	})
	if _, ok := remote(a.svcs, "a", "billing"); ok {
		t.Fatalf("A lists its own record among the remote ones: %s", describe(a.svcs))
	}
	if len(b.svcs.Remote()) != 1 {
		t.Fatalf("B holds other records than billing: %s", describe(b.svcs))
	}

	// Beats every 50 ms for 2 s: at most one write per BeatInterval (1 s)
	// for the beat fields, not 40.
	puts := a.svcs.Stats().Puts
	time.Sleep(2 * time.Second) // let beats flow: what is measured is how few writes they cause
	if d := a.svcs.Stats().Puts - puts; d > 4 {
		t.Errorf("%d puts for 2 s of smartbeats every 50 ms of one service; want at most 4 (BeatInterval 1 s)", d)
	}

	// A state change goes out within the Interval, not the BeatInterval.
	billing.SetState(smartbeat.Stopping)
	changed := time.Now()
	testutil.WaitFor(t, 5*time.Second, "billing stopping seen at B", func() bool {
		v, ok := remote(b.svcs, "a", "billing")
		return ok && v.State == smartbeat.Stopping
	})
	if d := time.Since(changed); d > 900*time.Millisecond {
		t.Errorf("the state change took %v to reach B; want within the Interval (200 ms) plus etcd", d)
	}

	// A service that stops beating times out at A; B sees the verdict.
	// Its own flow to the monitor, closed to silence it as a killed
	// process would be (no DESTROY).
	crashFlow, err := flow.DialTCP(strings.TrimPrefix(a.monAddr, "tcp:"), flow.Options{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	crash, err := smartbeat.NewService("crashy", smartbeat.Options{MonitorFlow: crashFlow, Sender: sender,
		ActivityTimeout: 300 * time.Millisecond, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	crash.SetState(smartbeat.Running)
	testutil.WaitFor(t, 5*time.Second, "crashy seen at B", func() bool { _, ok := remote(b.svcs, "a", "crashy"); return ok })
	crashFlow.Close() // silent from now on, without a DESTROY
	testutil.WaitFor(t, 5*time.Second, "crashy timed out with a verdict at B", func() bool {
		v, ok := remote(b.svcs, "a", "crashy")
		return ok && !v.Current && v.EndReason == smartbeat.EndTimedOut && v.Verdict != nil && v.Verdict.Reason != ""
	})

	// A destroyed service is listed as ended (destroyed) at B.
	billing.Close()
	testutil.WaitFor(t, 5*time.Second, "billing destroyed at B", func() bool {
		v, ok := remote(b.svcs, "a", "billing")
		return ok && !v.Current && v.EndReason == smartbeat.EndDestroyed
	})

	// A leaving: its records go with it.
	a.svcs.Close()
	a.node.Close()
	testutil.WaitFor(t, 5*time.Second, "A's records gone at B", func() bool { return len(b.svcs.Remote()) == 0 })
}

// Only the newest MaxEnded ended records are published.
func TestServicesMaxEnded(t *testing.T) {
	etcd := etcdtest.Start(t, 1)
	eps := etcd.Endpoints()
	cfg := cluster.ServicesConfig{Interval: 100 * time.Millisecond, MaxEnded: 2}
	a := startMonitorNode(t, eps, "a", 2*time.Second, cfg)
	b := startMonitorNode(t, eps, "b", 2*time.Second, cfg)
	sender := smartbeat.NewSender(smartbeat.SenderOptions{})
	defer sender.Close()
	for i := range 5 {
		s, err := smartbeat.NewService(fmt.Sprintf("s%d", i), smartbeat.Options{Monitor: a.monAddr, Sender: sender, Logger: testutil.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		name := s.Name()
		testutil.WaitFor(t, 5*time.Second, name+" at A's monitor", func() bool {
			for _, v := range a.mon.Services() {
				if v.Name == name {
					return true
				}
			}
			return false
		})
		s.Close()
		testutil.WaitFor(t, 5*time.Second, name+" ended at A's monitor", func() bool { return len(a.mon.Services()) == 0 })
	}
	testutil.WaitFor(t, 5*time.Second, "B holds s3 and s4 only", func() bool {
		r := b.svcs.Remote()
		return len(r) == 2 && r[0].Name == "s3" && r[1].Name == "s4"
	})
	// A counts its records after its flush's transactions return, which
	// can be after B saw the deletion: wait for it too.
	testutil.WaitForf(t, 5*time.Second, func() bool { return a.svcs.Stats().Published == 2 }, func() string {
		st := a.svcs.Stats()
		return fmt.Sprintf("A publishes %d records; want 2: %+v", st.Published, st)
	})
}

// After an etcd outage a node's records are there once again (under its
// lease, kept or new) and the others read them again.
func TestServicesAfterOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the outage outlasts the lease TTL")
	}
	t.Parallel() // it mostly waits out the outage
	etcd := etcdtest.Start(t, 1)
	eps := etcd.Endpoints()
	cfg := cluster.ServicesConfig{Interval: 100 * time.Millisecond}
	a := startMonitorNode(t, eps, "a", time.Second, cfg)
	b := startMonitorNode(t, eps, "b", time.Second, cfg)
	svc, err := smartbeat.NewService("steady", smartbeat.Options{Monitor: a.monAddr, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	testutil.WaitFor(t, 5*time.Second, "steady at B", func() bool { _, ok := remote(b.svcs, "a", "steady"); return ok })
	etcd.StopAll()
	testutil.WaitFor(t, 8*time.Second, "both nodes partitioned", func() bool {
		return !a.node.Status().Connected && !b.node.Status().Connected
	})
	// B keeps its last view while partitioned.
	if _, ok := remote(b.svcs, "a", "steady"); !ok {
		t.Fatalf("B forgot steady while partitioned: %s", describe(b.svcs))
	}
	time.Sleep(2 * time.Second) // past the lease TTL: etcd would expire A's lease if it were up
	etcd.RestartAll()
	testutil.WaitFor(t, 15*time.Second, "both nodes joined again", func() bool {
		return a.node.Status().Connected && b.node.Status().Connected
	})
	// The old lease is revoked by A's re-join: the record must be there
	// under the new one, once.
	testutil.WaitFor(t, 10*time.Second, "steady at B after the outage, once", func() bool {
		n := 0
		for _, v := range b.svcs.Remote() {
			if v.Name == "steady" && v.Current {
				n++
			}
		}
		return n == 1 && len(b.svcs.Remote()) == 1
	})
	cli, err := etcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// Wait a few Intervals, then check etcd itself holds one record of A.
	testutil.WaitFor(t, 5*time.Second, "one record of A in etcd", func() bool {
		resp, err := cli.Get(t.Context(), cluster.DefaultPrefix+"services/a/", clientv3.WithPrefix())
		return err == nil && len(resp.Kvs) == 1
	})
}
