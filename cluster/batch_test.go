package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/stk-go/stk/cluster"
	"github.com/stk-go/stk/internal/etcdtest"
	"github.com/stk-go/stk/internal/servetest"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// Registrations with large meta-data replicate: the node splits its
// writes into transactions under etcd's request limit (1.5 MiB by
// default) instead of failing the whole batch and rejoining forever.
func TestLargeRegistrationsReplicate(t *testing.T) {
	etcd := etcdtest.Start(t, 1)
	eps := etcd.Endpoints()

	log := testutil.Logger(t)
	srv, client := startUnlimited(t, log)

	// Registered before the node joins: its first sync writes them all at
	// once (about 3.6 MiB of meta-data).
	const names, metaSize = 60, 60 << 10
	meta := make([]byte, metaSize)
	for i := range meta {
		meta[i] = 'a' + byte(i%26)
	}
	meta[len(meta)-1] = 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range names {
		info := namesvc.Info{Name: fmt.Sprintf("big%02d", i), FT: namesvc.FTActive,
			Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:7100")}},
			Meta:      []seq.Element{{UserType: 0x1000, Data: meta}}}
		if err := client.Register(ctx, info); err != nil {
			t.Fatalf("register %s: %v", info.Name, err)
		}
	}
	n := joinNode(t, cluster.Config{Endpoints: eps, NodeID: "big", LeaseTTL: 3 * time.Second, Server: srv, Logger: log},
		fmt.Sprintf("the node with %d MiB of registrations", names*metaSize>>20))

	other := startNode(t, eps, "other", 3*time.Second)
	waitFor(t, 20*time.Second, func() bool { return other.srv.RemoteLen() == names },
		func() string {
			return fmt.Sprintf("%d of %d remote registrations at the other node", other.srv.RemoteLen(), names)
		})
	at := dial(t, other.addr)
	got, err := at.LookupAll(ctx, "big59", namesvc.LookupOptions{})
	if err != nil || len(got) != 1 || len(got[0].Meta) != 1 || len(got[0].Meta[0].Data) != metaSize {
		t.Fatalf("lookup of a large registration at the other node: %v %+v", err, got)
	}
	if st := n.Status(); st.Counters.Txns < 3 {
		t.Errorf("%d transactions wrote %d MiB: want several under etcd's request limit", st.Counters.Txns, names*metaSize>>20)
	}
}

// A node writes its registrations in transactions as large as etcd
// accepts: Config.TxnOps (1024 by default) against an etcd started with
// --max-txn-ops 1024, and etcd's default of 128 once an etcd with the
// default limit refused the first transaction (nothing lost meanwhile).
func TestTxnSizeAdapts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantOps int
	}{
		{"default-limit", nil, cluster.DefaultTxnOps},
		{"max-txn-ops-1024", []string{"--max-txn-ops", "1024"}, cluster.DefaultMaxTxnOps},
	} {
		t.Run(tc.name, func(t *testing.T) {
			etcd := etcdtest.StartArgs(t, 1, "127.0.0.1", tc.args...)
			eps := etcd.Endpoints()
			log := testutil.Logger(t)
			srv, client := startUnlimited(t, log)
			// Registered before the node joins: its first sync writes
			// them in as few transactions as etcd takes.
			const names = 600
			for i := range names {
				register(t, client, fmt.Sprintf("n%03d", i), uint16(7000+i), time.Second)
			}
			n := joinNode(t, cluster.Config{Endpoints: eps, NodeID: "writer", LeaseTTL: 3 * time.Second, Server: srv, Logger: log}, "the writer node")
			other := startNode(t, eps, "other", 3*time.Second)
			waitFor(t, 20*time.Second, func() bool { return other.srv.RemoteLen() == names },
				func() string {
					return fmt.Sprintf("%d of %d registrations at the other node", other.srv.RemoteLen(), names)
				})
			st := n.Status()
			if st.TxnOps != tc.wantOps {
				t.Errorf("%d operations per transaction, want %d (etcd flags %q)", st.TxnOps, tc.wantOps, tc.args)
			}
			if min := uint64((names + tc.wantOps - 1) / tc.wantOps); st.Counters.Txns < min || st.Counters.Txns > min+2 {
				t.Errorf("%d registrations in %d transactions: want about %d", names, st.Counters.Txns, min)
			}
		})
	}
}

// A registration with a linger of 0 whose registrant goes costs one
// delete in etcd: it is not written again as lingering first (nor is the
// server's later removal of it a second write).
func TestLingerZeroOneDelete(t *testing.T) {
	etcd := etcdtest.Start(t, 1)
	eps := etcd.Endpoints()
	a := startNode(t, eps, "a", 3*time.Second)
	b := startNode(t, eps, "b", 3*time.Second)
	before := a.node.Counters()
	reg := dial(t, a.addr)
	const names = 100
	for i := range names {
		register(t, reg, fmt.Sprintf("z%03d", i), uint16(7000+i), 0)
	}
	waitFor(t, 20*time.Second, func() bool { return b.srv.RemoteLen() == names },
		func() string { return fmt.Sprintf("%d of %d registrations at b", b.srv.RemoteLen(), names) })
	reg.Close()
	waitFor(t, 20*time.Second, func() bool { return b.srv.RemoteLen() == 0 && a.srv.Stats().Registrations == 0 },
		func() string {
			return fmt.Sprintf("%d remote registrations at b, %d at a, after their registrant left", b.srv.RemoteLen(), a.srv.Stats().Registrations)
		})
	// A last registration, written after every change before it: once b
	// has it, a wrote all it was going to write about the others.
	last := dial(t, a.addr)
	register(t, last, "sentinel", 7999, 0)
	waitFor(t, 20*time.Second, func() bool { return b.srv.RemoteLen() == 1 },
		func() string {
			return fmt.Sprintf("%d remote registrations at b, want the sentinel", b.srv.RemoteLen())
		})
	// a counts a transaction once etcd confirmed it: maybe after b saw it.
	waitFor(t, 5*time.Second, func() bool { return a.node.Counters().Puts-before.Puts >= names+1 },
		func() string {
			return fmt.Sprintf("a counted %d puts, want %d", a.node.Counters().Puts-before.Puts, names+1)
		})
	after := a.node.Counters()
	if puts, dels := after.Puts-before.Puts, after.Deletes-before.Deletes; puts != names+1 || dels != names {
		t.Errorf("%d registrations with linger 0 registered and left (and one more registered): %d puts and %d deletes, want %d and %d",
			names, puts, dels, names+1, names)
	}
}

// startUnlimited starts a name server without limits (registrations as
// large and many as a test needs) that is not in a cluster yet, and a
// client of it.
func startUnlimited(t *testing.T, log *slog.Logger) (*namesvc.Server, *namesvc.Client) {
	t.Helper()
	srv, ap := servetest.Names(t, namesvc.ServerConfig{Logger: log, Limits: namesvc.NoLimits()}, "127.0.0.1:0")
	return srv, dial(t, "tcp:"+ap.String())
}
