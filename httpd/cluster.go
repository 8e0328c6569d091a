package httpd

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/stk-go/stk/smartbeat"
)

// Cluster is what the UI shows of a clustered stkd (stkd --cluster): the
// node's view of the cluster and the other nodes' services. stkd fills it
// from package cluster, which httpd does not import: the UI stays free of
// the etcd client, and any other source can feed it.
type Cluster interface {
	// ClusterStatus returns the node's view of the cluster; it must not
	// wait for etcd.
	ClusterStatus() ClusterStatus
	// RemoteServices returns the other nodes' service records, current
	// and ended, each with its ServiceView.Node.
	RemoteServices() []smartbeat.ServiceView
}

// ClusterStatus is a node's view of the cluster.
type ClusterStatus struct {
	// NodeID is this node's id.
	NodeID string
	// Endpoints are the etcd endpoints, with the last probe's answer.
	Endpoints []ClusterEndpoint
	// Connected is set while the node follows etcd; PartitionedSince is
	// when it lost it (zero while connected) and LastError why.
	Connected        bool
	PartitionedSince time.Time
	LastError        string
	// LastContact is when etcd last answered; LastResync when the node
	// last joined.
	LastContact, LastResync time.Time
	// Lease is the node's etcd lease, LeaseTTL its TTL.
	Lease    int64
	LeaseTTL time.Duration
	// Nodes are the live nodes, this one included.
	Nodes []ClusterNode
	// LocalNames are this server's own registrations, RemoteNames the
	// other nodes' it holds.
	LocalNames, RemoteNames int
	// Counters of the name replication.
	Puts, Deletes, Txns, WatchEvents, Applied, Resyncs, Errors uint64
	// Lag is the propagation delay of the latest registration received,
	// MaxLag the largest seen.
	Lag, MaxLag time.Duration
	// Services: this node's records published, the other nodes' held, and
	// the keys written for them.
	PublishedServices, RemoteServices int
	ServicePuts, ServiceDeletes       uint64
	// ServicesVersion changes whenever the other nodes' records change (a
	// UI fetches them again then).
	ServicesVersion uint64
}

// ClusterEndpoint is one etcd endpoint's answer to the node's last probe.
type ClusterEndpoint struct {
	URL     string
	OK      bool
	Leader  bool
	Version string
	Error   string
	Checked time.Time
}

// ClusterNode is one node of the cluster.
type ClusterNode struct {
	ID, Host string
	Started  time.Time
	// LastSync is when a change of the node's registrations was last
	// applied here (for this node: when it last wrote to etcd).
	LastSync time.Time
	Self     bool
}

// ClusterJSON is /api/v1/cluster and the "cluster" of /api/v1/stats.
type ClusterJSON struct {
	Node             string                `json:"node"`
	Endpoints        []ClusterEndpointJSON `json:"endpoints"`
	Connected        bool                  `json:"connected"`
	Partitioned      bool                  `json:"partitioned"`
	PartitionedSince *time.Time            `json:"partitioned_since"`
	LastError        string                `json:"last_error"`
	LastContact      *time.Time            `json:"last_contact"`
	LastResync       *time.Time            `json:"last_resync"`
	Lease            string                `json:"lease"` // hex
	LeaseTTLMS       float64               `json:"lease_ttl_ms"`
	Nodes            []ClusterNodeJSON     `json:"nodes"`
	LocalNames       int                   `json:"local_names"`
	RemoteNames      int                   `json:"remote_names"`
	Puts             uint64                `json:"puts"`
	Deletes          uint64                `json:"deletes"`
	Txns             uint64                `json:"txns"`
	WatchEvents      uint64                `json:"watch_events"`
	Applied          uint64                `json:"applied"`
	Resyncs          uint64                `json:"resyncs"`
	Errors           uint64                `json:"errors"`
	LagMS            float64               `json:"lag_ms"`
	MaxLagMS         float64               `json:"max_lag_ms"`
	Services         int                   `json:"services_published"`
	RemoteServices   int                   `json:"remote_services"`
	ServicePuts      uint64                `json:"service_puts"`
	ServiceDeletes   uint64                `json:"service_deletes"`
	ServicesVersion  uint64                `json:"services_version"`
}

// ClusterEndpointJSON is one etcd endpoint.
type ClusterEndpointJSON struct {
	URL     string     `json:"url"`
	OK      bool       `json:"ok"`
	Leader  bool       `json:"leader"`
	Version string     `json:"version"`
	Error   string     `json:"error"`
	Checked *time.Time `json:"checked"`
}

// ClusterNodeJSON is one node.
type ClusterNodeJSON struct {
	ID       string     `json:"id"`
	Host     string     `json:"host"`
	Started  *time.Time `json:"started"`
	LastSync *time.Time `json:"last_sync"`
	Self     bool       `json:"self"`
}

func clusterJSON(st *ClusterStatus) ClusterJSON {
	j := ClusterJSON{
		Node: st.NodeID, Endpoints: make([]ClusterEndpointJSON, 0, len(st.Endpoints)),
		Connected: st.Connected, Partitioned: !st.Connected, PartitionedSince: timePtr(st.PartitionedSince), LastError: st.LastError,
		LastContact: timePtr(st.LastContact), LastResync: timePtr(st.LastResync), LeaseTTLMS: ms(st.LeaseTTL),
		Nodes: make([]ClusterNodeJSON, 0, len(st.Nodes)), LocalNames: st.LocalNames, RemoteNames: st.RemoteNames,
		Puts: st.Puts, Deletes: st.Deletes, Txns: st.Txns, WatchEvents: st.WatchEvents, Applied: st.Applied,
		Resyncs: st.Resyncs, Errors: st.Errors, LagMS: ms(st.Lag), MaxLagMS: ms(st.MaxLag),
		Services: st.PublishedServices, RemoteServices: st.RemoteServices, ServicePuts: st.ServicePuts,
		ServiceDeletes: st.ServiceDeletes, ServicesVersion: st.ServicesVersion,
	}
	if st.Lease != 0 {
		j.Lease = strings.TrimPrefix(hex64(st.Lease), "0x")
	}
	for _, e := range st.Endpoints {
		j.Endpoints = append(j.Endpoints, ClusterEndpointJSON{URL: e.URL, OK: e.OK, Leader: e.Leader, Version: e.Version,
			Error: e.Error, Checked: timePtr(e.Checked)})
	}
	for _, n := range st.Nodes {
		j.Nodes = append(j.Nodes, ClusterNodeJSON{ID: n.ID, Host: n.Host, Started: timePtr(n.Started), LastSync: timePtr(n.LastSync), Self: n.Self})
	}
	return j
}

func hex64(v int64) string {
	const digits = "0123456789abcdef"
	u := uint64(v)
	var b [16]byte
	i := len(b)
	for {
		i--
		b[i] = digits[u&15]
		u >>= 4
		if u == 0 {
			break
		}
	}
	return "0x" + string(b[i:])
}

// clusterStats is the "cluster" of /api/v1/stats: null without a cluster.
func (s *Server) clusterStats() *ClusterJSON {
	if s.cfg.Cluster == nil {
		return nil
	}
	st := s.cfg.Cluster.ClusterStatus()
	j := clusterJSON(&st)
	return &j
}

// apiCluster is GET /api/v1/cluster.
func (s *Server) apiCluster(w http.ResponseWriter, r *http.Request) {
	j := s.clusterStats()
	if j == nil {
		writeError(w, http.StatusServiceUnavailable, "this daemon is not part of a cluster (stkd --cluster etcd://host:port,...)")
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// ClusterServicesJSON is /api/v1/cluster/services: the other nodes'
// records, current and ended, by node and uid.
type ClusterServicesJSON struct {
	Now      time.Time     `json:"now"`
	Node     string        `json:"node"`    // this node
	Version  uint64        `json:"version"` // ClusterJSON.ServicesVersion
	Services []ServiceJSON `json:"services"`
}

// apiClusterServices is GET /api/v1/cluster/services?node=: the other
// nodes' service records (of one node with node=).
func (s *Server) apiClusterServices(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Cluster == nil {
		writeError(w, http.StatusServiceUnavailable, "this daemon is not part of a cluster (stkd --cluster etcd://host:port,...)")
		return
	}
	v := r.URL.Query()
	if err := checkParams(v, "node"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	st := s.cfg.Cluster.ClusterStatus()
	views := filterNode(s.cfg.Cluster.RemoteServices(), v.Get("node"))
	writeJSON(w, http.StatusOK, ClusterServicesJSON{Now: s.cfg.Now(), Node: st.NodeID, Version: st.ServicesVersion,
		Services: s.servicesJSON(views, false)})
}

func filterNode(views []smartbeat.ServiceView, node string) []smartbeat.ServiceView {
	if node == "" {
		return views
	}
	return slices.DeleteFunc(views, func(v smartbeat.ServiceView) bool { return v.Node != node })
}

// clusterServicesJSON returns the current records of every node for
// /api/v1/services: this monitor's (marked with this node's id, with
// their sparklines) then the others', by node and uid; node selects one
// node ("" all).
func (s *Server) clusterServicesJSON(local []smartbeat.ServiceView, node string) []ServiceJSON {
	self := s.cfg.Cluster.ClusterStatus().NodeID
	out := []ServiceJSON{}
	if node == "" || node == self {
		out = s.servicesJSON(local, true) // the sparklines are of this monitor's UIDs
		for i := range out {
			out[i].Node = self
		}
	}
	var remote []smartbeat.ServiceView
	for _, v := range s.cfg.Cluster.RemoteServices() {
		if v.Current && (node == "" || v.Node == node) {
			remote = append(remote, v)
		}
	}
	slices.SortStableFunc(remote, func(a, b smartbeat.ServiceView) int {
		return cmp.Or(strings.Compare(a.Node, b.Node), cmp.Compare(a.UID, b.UID))
	})
	return append(out, s.servicesJSON(remote, false)...)
}

// clusterMetrics writes the stk_cluster_* families.
func (s *Server) clusterMetrics(p *prom, c Cluster) {
	st := c.ClusterStatus()
	p.one("stk_cluster_connected", "gauge", "1 while this node follows etcd (its lease alive, its watch open).", b2f(st.Connected))
	p.one("stk_cluster_partitioned", "gauge", "1 while this node has lost etcd and serves from its last view.", b2f(!st.Connected))
	since := 0.0
	if !st.Connected && !st.PartitionedSince.IsZero() {
		since = float64(st.PartitionedSince.UnixNano()) / 1e9
	}
	p.one("stk_cluster_partitioned_since_seconds", "gauge", "When this node lost etcd, in seconds since the Unix epoch; 0 while connected.", since)
	p.one("stk_cluster_nodes", "gauge", "Live nodes of the cluster, this one included.", float64(len(st.Nodes)))
	p.one("stk_cluster_remote_names", "gauge", "Registrations of the other nodes held by this node.", float64(st.RemoteNames))
	p.one("stk_cluster_local_names", "gauge", "Registrations of this node's own clients, shared with the others.", float64(st.LocalNames))
	p.family("stk_cluster_puts_total", "counter", "Keys this node wrote to etcd, by kind: names (registrations and the node key) or services (monitor summaries).")
	p.sample("stk_cluster_puts_total", float64(st.Puts), "kind", "names")
	p.sample("stk_cluster_puts_total", float64(st.ServicePuts), "kind", "services")
	p.family("stk_cluster_deletes_total", "counter", "Keys this node deleted from etcd, by kind.")
	p.sample("stk_cluster_deletes_total", float64(st.Deletes), "kind", "names")
	p.sample("stk_cluster_deletes_total", float64(st.ServiceDeletes), "kind", "services")
	p.one("stk_cluster_txns_total", "counter", "Etcd transactions of this node's registration writes.", float64(st.Txns))
	p.one("stk_cluster_watch_events_total", "counter", "Changes received from etcd's watch of the cluster's keys.", float64(st.WatchEvents))
	p.one("stk_cluster_applied_total", "counter", "Changes of other nodes' registrations applied to this node's name server.", float64(st.Applied))
	p.one("stk_cluster_resyncs_total", "counter", "Full syncs with etcd: the first join and every re-join after etcd was lost.", float64(st.Resyncs))
	p.one("stk_cluster_errors_total", "counter", "Times this node lost etcd.", float64(st.Errors))
	p.one("stk_cluster_lag_seconds", "gauge", "Propagation delay of the latest registration received: its node's write to etcd to its use here (host clocks' skew included).", st.Lag.Seconds())
	p.one("stk_cluster_max_lag_seconds", "gauge", "Largest propagation delay seen.", st.MaxLag.Seconds())
	p.one("stk_cluster_services_published", "gauge", "This node's monitored service records published to the cluster.", float64(st.PublishedServices))
	p.one("stk_cluster_remote_services", "gauge", "Other nodes' service records held by this node.", float64(st.RemoteServices))
	p.family("stk_cluster_endpoint_up", "gauge", "1 when the etcd endpoint answered this node's last probe.")
	for _, e := range st.Endpoints {
		p.sample("stk_cluster_endpoint_up", b2f(e.OK), "endpoint", e.URL)
	}
	p.family("stk_cluster_endpoint_leader", "gauge", "1 for the etcd endpoint that said it is the Raft leader.")
	for _, e := range st.Endpoints {
		p.sample("stk_cluster_endpoint_leader", b2f(e.Leader), "endpoint", e.URL)
	}
}
