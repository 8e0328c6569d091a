package cluster_test

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/etcdtest"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
)

// stkd processes as nodes: killed with SIGKILL and restarted, as a host
// would.

// stkd is built on first use: most of the package's tests need etcd only.
var stkd = testprog.Binary{Pkg: "../stkd", Name: "stkd"}

func TestMain(m *testing.M) {
	code := m.Run()
	stkd.Remove()
	os.Exit(code)
}

// TestStkdKilledAndRestarted: stkd node a restarted at once after kill -9
// with the same id replaces its old entries (no duplicate answer at any
// time, its client's lingering registration of the old run gone); killed
// for good, its registrations disappear from node c within the lease TTL
// plus a second.
func TestStkdKilledAndRestarted(t *testing.T) {
	bin := stkd.Path(t)
	etcd := etcdtest.Start(t, 1)
	const ttl = 3 * time.Second
	port := strconv.Itoa(testutil.FreePort(t, "tcp"))
	args := []string{"--names-tcp", "127.0.0.1:" + port, "--cluster", etcd.ClusterFlag(), "--node-id", "a",
		"--cluster-lease-ttl", ttl.String(), "--steps=false"}
	a := testprog.StartStkd(t, bin, args...)
	a.WaitFor(t, `cluster: joined`, 20*time.Second)
	c := startNode(t, etcd.Endpoints(), "c", ttl)
	atC := dial(t, c.addr)

	gone := dial(t, a.Names)
	register(t, gone, "x", 6001, time.Minute) // lingers a minute after its client goes
	svc := dial(t, a.Names)
	register(t, svc, "svc", 6002, 0)
	waitPorts(t, atC, "svc", []uint16{6002}, 5*time.Second)
	gone.Close()
	waitPorts(t, atC, "x", []uint16{6001}, 5*time.Second) // lingering: still answered

	// kill -9, restart at once with the same id on the same port: the
	// client registers again with the new process.
	a.Cmd.Process.Signal(syscall.SIGKILL)
	a.Wait(t, 5*time.Second)
	a2 := testprog.StartStkd(t, bin, args...)
	a2.WaitFor(t, `cluster: joined`, 20*time.Second)
	// Until the old run's entries are gone, svc must never be answered
	// twice at c.
	deadline := time.Now().Add(ttl + 2*time.Second)
	for {
		got := ports(t, atC, "svc")
		if len(got) > 1 {
			t.Fatalf("svc answered %d times at c after node a restarted with the same id: %v", len(got), got)
		}
		x := ports(t, atC, "x")
		if len(got) == 1 && len(x) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after node a restarted: svc %v (want one answer), x %v (want none: its client went in a's previous run)", got, x)
		}
		time.Sleep(20 * time.Millisecond) // poll c's view
	}
	if keys := keysOf(t, etcd, "a"); len(keys) != 2 { // svc and the monitor's own name
		t.Fatalf("node a's keys in etcd after its restart: %v, want 2 (svc, monitor)", keys)
	}

	// kill -9 for good: gone at c within the TTL plus a second, and a
	// subscriber at c is told (stkd's removal notices).
	removed := make(chan namesvc.Info, 4)
	synced := make(chan int, 1)
	if _, err := atC.Subscribe("svc", namesvc.SubscribeOptions{
		OnSynced:  func(n int) { synced <- n },
		OnRemoved: func(i namesvc.Info) { removed <- i },
	}, func(namesvc.Info) {}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-synced:
		if n != 1 {
			t.Fatalf("subscription at c answered %d registrations of svc, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscription at c not answered")
	}
	a2.Cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	a2.Wait(t, 5*time.Second)
	waitPorts(t, atC, "svc", nil, ttl+time.Second)
	t.Logf("node a's registrations gone at c %v after kill -9 (lease TTL %v)", time.Since(killed), ttl)
	select {
	case i := <-removed:
		if len(i.Addresses) != 1 || i.Addresses[0].Addr.Port() != 6002 {
			t.Errorf("the subscriber at c was told of the removal of %v, want svc at port 6002", i)
		}
		t.Logf("the subscriber at c told %v after kill -9", time.Since(killed))
	case <-time.After(5 * time.Second):
		t.Fatal("the subscriber at c was not told that node a's svc went")
	}
	if r := c.srv.Stats().Remote; r != 0 {
		t.Fatalf("c still holds %d registrations of the dead node", r)
	}
}
