package httpd

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/smartbeat"
)

// fakeCluster is a Cluster with a fixed status and remote records.
type fakeCluster struct {
	mu     sync.Mutex
	st     ClusterStatus
	remote []smartbeat.ServiceView
}

func (f *fakeCluster) ClusterStatus() ClusterStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeCluster) RemoteServices() []smartbeat.ServiceView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]smartbeat.ServiceView(nil), f.remote...)
}

func newFakeCluster() *fakeCluster {
	t0 := time.Now().Add(-time.Minute)
	return &fakeCluster{
		st: ClusterStatus{NodeID: "a", Connected: false, PartitionedSince: t0, LastError: "lease keep-alive ended",
			Endpoints: []ClusterEndpoint{{URL: "http://127.0.0.1:2379", OK: true, Leader: true, Version: "3.4.23", Checked: t0},
				{URL: "http://127.0.0.1:2479", Error: "connection refused", Checked: t0}},
			Lease: 0x694d8a1f2b3c4d5e, LeaseTTL: 5 * time.Second,
			Nodes:      []ClusterNode{{ID: "a", Host: "h1", Started: t0, Self: true}, {ID: "b", Host: "h2", Started: t0, LastSync: t0}},
			LocalNames: 3, RemoteNames: 100000, Puts: 11, Deletes: 2, Txns: 4, WatchEvents: 40, Applied: 39, Resyncs: 2, Errors: 1,
			Lag: 3 * time.Millisecond, MaxLag: 40 * time.Millisecond,
			PublishedServices: 2, RemoteServices: 2, ServicePuts: 9, ServiceDeletes: 1, ServicesVersion: 7},
		remote: []smartbeat.ServiceView{
			{UID: 1, Node: "b", Name: "billing", State: smartbeat.Running, StateName: "running", Current: true,
				Peer: netip.MustParseAddrPort("10.0.0.9:4000"), Protocol: "tcp", Created: t0},
			{UID: 2, Node: "b", Name: "crashed", State: smartbeat.TimedOut, EndReason: smartbeat.EndTimedOut, Ended: t0,
				Verdict: &smartbeat.Verdict{Detector: smartbeat.DetectorActivityTimeout, Reason: "silent for 1.2 s"}},
		},
	}
}

// With a Cluster, /api/v1/services lists every node's current records
// with their node, ?node= selects one node, and the cluster has its
// endpoints and metrics; without one, nothing of that shows.
func TestClusterAPI(t *testing.T) {
	_, _, cfg := world(t)
	fc := newFakeCluster()
	cfg.Cluster = fc
	_, ts := newTest(t, cfg)

	var all ServicesJSON
	getJSON(t, ts.URL+"/api/v1/services", &all)
	var local, remote []string
	for _, s := range all.Services {
		switch s.Node {
		case "a":
			local = append(local, s.Name)
		case "b":
			remote = append(remote, s.Name)
		default:
			t.Errorf("service %q has node %q; want a or b", s.Name, s.Node)
		}
	}
	if len(local) != 2 || len(remote) != 1 || remote[0] != "billing" {
		t.Errorf("services: local %q, remote %q; want the 2 current local records and billing (the ended remote one left out)", local, remote)
	}
	var onlyB ServicesJSON
	getJSON(t, ts.URL+"/api/v1/services?node=b", &onlyB)
	if len(onlyB.Services) != 1 || onlyB.Services[0].Name != "billing" || onlyB.Services[0].Peer != "10.0.0.9:4000" {
		t.Errorf("?node=b: %+v; want billing only", onlyB.Services)
	}
	var onlyA ServicesJSON
	getJSON(t, ts.URL+"/api/v1/services?node=a", &onlyA)
	if len(onlyA.Services) != 2 {
		t.Errorf("?node=a: %d services; want this node's 2", len(onlyA.Services))
	}

	var cs ClusterServicesJSON
	getJSON(t, ts.URL+"/api/v1/cluster/services", &cs)
	if cs.Version != 7 || cs.Node != "a" || len(cs.Services) != 2 || cs.Services[1].Verdict == nil || cs.Services[1].EndReason != "timed out" {
		t.Errorf("/api/v1/cluster/services: %+v", cs)
	}

	var cj ClusterJSON
	getJSON(t, ts.URL+"/api/v1/cluster", &cj)
	if cj.Node != "a" || cj.Connected || !cj.Partitioned || cj.PartitionedSince == nil || cj.Lease != "694d8a1f2b3c4d5e" ||
		len(cj.Endpoints) != 2 || !cj.Endpoints[0].Leader || cj.Endpoints[1].OK || len(cj.Nodes) != 2 || cj.RemoteNames != 100000 {
		t.Errorf("/api/v1/cluster: %+v", cj)
	}
	var st StatsJSON
	getJSON(t, ts.URL+"/api/v1/stats", &st)
	if !st.Components.Cluster || st.Cluster == nil || st.Cluster.ServicesVersion != 7 {
		t.Errorf("/api/v1/stats: components %+v, cluster %+v", st.Components, st.Cluster)
	}

	m := get(t, ts.URL+"/metrics").body
	for _, want := range []string{
		`stk_cluster_puts_total{kind="names"} 11`, `stk_cluster_puts_total{kind="services"} 9`,
		"stk_cluster_watch_events_total 40", "stk_cluster_resyncs_total 2", "stk_cluster_partitioned 1",
		"stk_cluster_connected 0", "stk_cluster_remote_names 100000", "stk_cluster_lag_seconds 0.003",
		`stk_cluster_endpoint_up{endpoint="http://127.0.0.1:2479"} 0`, `stk_cluster_endpoint_leader{endpoint="http://127.0.0.1:2379"} 1`,
		"stk_cluster_nodes 2", "stk_cluster_remote_services 2",
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestNoCluster(t *testing.T) {
	_, _, cfg := world(t)
	_, ts := newTest(t, cfg)
	r := get(t, ts.URL+"/api/v1/services")
	if strings.Contains(r.body, `"node"`) {
		t.Errorf("/api/v1/services names a node without a cluster: %s", r.body)
	}
	for _, p := range []string{"/api/v1/cluster", "/api/v1/cluster/services"} {
		if r := get(t, ts.URL+p); r.status != 503 {
			t.Errorf("GET %s without a cluster: %d; want 503", p, r.status)
		}
	}
	var st StatsJSON
	getJSON(t, ts.URL+"/api/v1/stats", &st)
	if st.Components.Cluster || st.Cluster != nil {
		t.Errorf("/api/v1/stats without a cluster: components %+v, cluster %+v", st.Components, st.Cluster)
	}
	if m := get(t, ts.URL+"/metrics").body; strings.Contains(m, "stk_cluster_") {
		t.Errorf("/metrics has cluster metrics without a cluster")
	}
}
