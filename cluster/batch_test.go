package cluster_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stk-go/stk/cluster"
	"github.com/stk-go/stk/internal/etcdtest"
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
	srv, err := namesvc.NewServer(namesvc.ServerConfig{Logger: log, Limits: namesvc.NoLimits()})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := srv.ServeTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	client := dial(t, "tcp:"+ap.String())

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
	n, err := cluster.Start(cluster.Config{Endpoints: eps, NodeID: "big", LeaseTTL: 3 * time.Second, Server: srv, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	select {
	case <-n.Synced():
	case <-time.After(20 * time.Second):
		t.Fatalf("node with %d MiB of registrations did not join: %+v", names*metaSize>>20, n.Status())
	}

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
