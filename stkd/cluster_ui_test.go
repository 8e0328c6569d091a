package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/httpd"
	"github.com/stk-go/stk/internal/etcdtest"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/smartbeat"
)

// TestClusterUI: two stkd nodes in this process on a real etcd; a service
// reporting to node a's monitor shows in node b's /api/v1/services with
// its node, and b's /api/v1/cluster and /metrics show the cluster.
func TestClusterUI(t *testing.T) {
	etcd := etcdtest.Start(t, 1)
	nodes := map[string]*daemon{}
	for _, id := range []string{"a", "b"} {
		c := testConfig(t.TempDir())
		c.cluster = clusterSettings{url: etcd.ClusterFlag(), nodeID: id, leaseTTL: 2 * time.Second}
		d, err := start(c, testutil.Discard())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.close() })
		nodes[id] = d
	}
	svc, err := smartbeat.NewService("billing", smartbeat.Options{Monitor: "tcp:" + nodes["a"].monTCP, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	svc.SetState(smartbeat.Running)

	getJSON := func(d *daemon, path string, v any) string {
		res, err := http.Get("http://" + d.http + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if v != nil {
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatalf("GET %s: %v\n%s", path, err, b)
			}
		}
		return string(b)
	}
	find := func(d *daemon, query string) (httpd.ServiceJSON, bool) {
		var r httpd.ServicesJSON
		getJSON(d, "/api/v1/services"+query, &r)
		for _, s := range r.Services {
			if s.Name == "billing" {
				return s, true
			}
		}
		return httpd.ServiceJSON{}, false
	}
	testutil.WaitFor(t, 10*time.Second, "billing (node a, running) in b's /api/v1/services", func() bool {
		s, ok := find(nodes["b"], "")
		return ok && s.Node == "a" && s.StateName == "running"
	})
	if s, ok := find(nodes["a"], ""); !ok || s.Node != "a" {
		t.Errorf("a's own /api/v1/services: billing %+v (found %v); want node a", s, ok)
	}
	if _, ok := find(nodes["b"], "?node=b"); ok {
		t.Errorf("b's /api/v1/services?node=b lists a's billing")
	}
	// b learns of each node (itself included) from etcd on its own,
	// apart from a's services: seeing billing does not imply b lists both
	// nodes yet (CI saw Nodes [a] here), so the cluster view is waited for.
	var cj httpd.ClusterJSON
	testutil.WaitForf(t, 10*time.Second, func() bool {
		cj = httpd.ClusterJSON{}
		getJSON(nodes["b"], "/api/v1/cluster", &cj)
		return len(cj.Nodes) == 2 && cj.RemoteServices == 1
	}, func() string { return fmt.Sprintf("b's /api/v1/cluster to list 2 nodes and 1 remote service: %+v", cj) })
	if cj.Node != "b" || !cj.Connected || len(cj.Endpoints) != 1 {
		t.Errorf("b's /api/v1/cluster: %+v", cj)
	}
	m := getJSON(nodes["b"], "/metrics", nil)
	for _, want := range []string{"stk_cluster_connected 1\n", "stk_cluster_remote_services 1\n", "stk_cluster_nodes 2\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("b's /metrics lacks %q", want)
		}
	}
}
