package cluster

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Status is what a node knows of the cluster, for the status pages.
type Status struct {
	// NodeID is this node's id; Endpoints the etcd endpoints it uses.
	NodeID    string
	Endpoints []string
	// EndpointStatus says, per endpoint, whether it answered the last
	// probe (every few seconds), with its etcd version and whether it is
	// the Raft leader.
	EndpointStatus []EndpointStatus
	// Connected is set while the node follows etcd (its lease alive, its
	// watch open). PartitionedSince is when it last heard from etcd
	// before losing it (zero while connected; the start time before the
	// first join). LastError says why it lost etcd.
	Connected        bool
	PartitionedSince time.Time
	LastError        string
	// LastContact is when etcd last answered (a keep-alive, a write, a
	// watch event); LastResync when the node last joined or re-joined.
	LastContact time.Time
	LastResync  time.Time
	// Lease is the node's current etcd lease id; LeaseTTL its TTL.
	Lease    int64
	LeaseTTL time.Duration
	// TxnOps is the number of operations the node puts in one
	// transaction: Config.TxnOps, or less once etcd refused as many.
	TxnOps int
	// Nodes are the live nodes etcd lists (this one included), by id.
	Nodes []NodeStatus
	// Local counts this server's own registrations; Remote the other
	// nodes' registrations it holds.
	Local, Remote int
	// Counters since the node started.
	Counters Counters
}

// EndpointStatus is one etcd endpoint's answer to the last probe.
type EndpointStatus struct {
	Endpoint string
	OK       bool
	Leader   bool
	Version  string
	Error    string
	Checked  time.Time
}

// NodeStatus is one node of the cluster.
type NodeStatus struct {
	ID      string
	Host    string
	Started time.Time
	// LastSync is when a change of this node's registrations was last
	// applied here (or, for this node, when it last wrote to etcd or
	// re-joined); zero if none yet.
	LastSync time.Time
	// Self marks this node.
	Self bool
}

// Counters are a node's cluster counters (for /metrics).
type Counters struct {
	// Puts and Deletes count the keys written and deleted, in Txns
	// transactions.
	Puts, Deletes, Txns uint64
	// WatchEvents counts the watched changes received; Applied the
	// changes of other nodes that altered the server's view.
	WatchEvents, Applied uint64
	// Resyncs counts the full syncs (the first join included); Errors
	// the losses of etcd.
	Resyncs, Errors uint64
	// Lag is the propagation delay of the last watched registration
	// (its node's write to its application here; clocks of different
	// hosts add their skew) and MaxLag the largest seen.
	Lag, MaxLag time.Duration
}

// Counters returns the node's counters.
func (n *Node) Counters() Counters {
	return Counters{
		Puts: n.ctr.puts.Load(), Deletes: n.ctr.deletes.Load(), Txns: n.ctr.txns.Load(),
		WatchEvents: n.ctr.watchEvents.Load(), Applied: n.ctr.applied.Load(),
		Resyncs: n.ctr.resyncs.Load(), Errors: n.ctr.errors.Load(),
		Lag: time.Duration(n.ctr.lagNanos.Load()), MaxLag: time.Duration(n.ctr.maxLagNanos.Load()),
	}
}

// Status returns what the node knows of the cluster. It does not block
// on etcd: endpoint states come from the last probe.
func (n *Node) Status() Status {
	st := n.stat()
	st.Counters = n.Counters()
	st.TxnOps = int(n.txnOps.ops.Load())
	srv := n.srv.Stats()
	st.Local, st.Remote = srv.Registrations, srv.Remote
	synced := n.srv.RemoteNodes()
	n.mu.Lock()
	for id, v := range n.nodeVals {
		ns := NodeStatus{ID: id, Host: v.Host, Started: time.Unix(0, v.Started), LastSync: synced[id], Self: id == n.self}
		if ns.Self {
			ns.LastSync = st.LastContact
		}
		st.Nodes = append(st.Nodes, ns)
	}
	n.mu.Unlock()
	slices.SortFunc(st.Nodes, func(a, b NodeStatus) int { return strings.Compare(a.ID, b.ID) })
	return st
}

func (n *Node) stat() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.st
	st.Endpoints = slices.Clone(st.Endpoints)
	st.EndpointStatus = slices.Clone(st.EndpointStatus)
	return st
}

// probe asks each endpoint for its status every few seconds, so that
// Status can say which answer without waiting.
func (n *Node) probe() {
	defer close(n.probed)
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for {
		out := make([]EndpointStatus, 0, len(n.cfg.Endpoints))
		for _, ep := range n.cfg.Endpoints {
			ctx, cancel := context.WithTimeout(n.ctx, time.Second)
			resp, err := n.cli.Status(ctx, ep)
			cancel()
			es := EndpointStatus{Endpoint: ep, Checked: time.Now()}
			if err != nil {
				es.Error = err.Error()
			} else {
				es.OK, es.Version = true, resp.Version
				es.Leader = resp.Header != nil && resp.Leader == resp.Header.MemberId
			}
			out = append(out, es)
		}
		n.mu.Lock()
		n.st.EndpointStatus = out
		n.mu.Unlock()
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v) // plain types: cannot fail
	return b
}
