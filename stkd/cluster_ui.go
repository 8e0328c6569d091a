package main

import (
	"github.com/stk-go/stk/cluster"
	"github.com/stk-go/stk/httpd"
	"github.com/stk-go/stk/smartbeat"
)

// The monitor, cluster-wide: with --cluster and a monitor, the node
// publishes its monitored services to the cluster (cluster.Services),
// and the UI shows every node's services and the cluster itself through
// clusterUI (httpd does not import package cluster).

// startClusterServices publishes the monitor's services when this stkd
// is a node of a cluster and runs a monitor.
func (d *daemon) startClusterServices() error {
	if d.cluster == nil || d.monitor == nil {
		return nil
	}
	s, err := d.cluster.PublishServices(cluster.ServicesConfig{Monitor: d.monitor})
	if err != nil {
		return err
	}
	d.clusterSvcs = s
	return nil
}

// clusterUI is the httpd.Cluster of a node: its status and the other
// nodes' services (none without a monitor).
type clusterUI struct {
	node *cluster.Node
	svcs *cluster.Services // nil without a monitor
}

func (c clusterUI) RemoteServices() []smartbeat.ServiceView {
	if c.svcs == nil {
		return nil
	}
	return c.svcs.Remote()
}

func (c clusterUI) ClusterStatus() httpd.ClusterStatus {
	st := c.node.Status()
	out := httpd.ClusterStatus{
		NodeID: st.NodeID, Connected: st.Connected, PartitionedSince: st.PartitionedSince, LastError: st.LastError,
		LastContact: st.LastContact, LastResync: st.LastResync, Lease: st.Lease, LeaseTTL: st.LeaseTTL,
		LocalNames: st.Local, RemoteNames: st.Remote,
		Puts: st.Counters.Puts, Deletes: st.Counters.Deletes, Txns: st.Counters.Txns, WatchEvents: st.Counters.WatchEvents,
		Applied: st.Counters.Applied, Resyncs: st.Counters.Resyncs, Errors: st.Counters.Errors,
		Lag: st.Counters.Lag, MaxLag: st.Counters.MaxLag,
	}
	eps := st.EndpointStatus
	if len(eps) == 0 { // not probed yet
		for _, e := range st.Endpoints {
			eps = append(eps, cluster.EndpointStatus{Endpoint: e})
		}
	}
	for _, e := range eps {
		out.Endpoints = append(out.Endpoints, httpd.ClusterEndpoint{URL: e.Endpoint, OK: e.OK, Leader: e.Leader,
			Version: e.Version, Error: e.Error, Checked: e.Checked})
	}
	for _, n := range st.Nodes {
		out.Nodes = append(out.Nodes, httpd.ClusterNode{ID: n.ID, Host: n.Host, Started: n.Started, LastSync: n.LastSync, Self: n.Self})
	}
	if c.svcs != nil {
		ss := c.svcs.Stats()
		out.PublishedServices, out.RemoteServices = ss.Published, ss.Remote
		out.ServicePuts, out.ServiceDeletes, out.ServicesVersion = ss.Puts, ss.Deletes, ss.Version
	}
	return out
}
