package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/cluster"
	"github.com/stk-go/stk/namesvc"
)

// Clustering: with --cluster, the name server shares its name space with
// the stkd of other hosts through etcd (package cluster). Without it
// nothing changes and no etcd is needed.

// clusterSettings are --cluster, --node-id and --cluster-lease-ttl (or a
// config file's "cluster:" line; the environment's STK_CLUSTER and
// STK_NODE_ID when neither sets them).
type clusterSettings struct {
	url      string        // "etcd://host:port[,host:port...]", "" for none
	nodeID   string        // "" for $STK_NODE_ID, else the host name
	leaseTTL time.Duration // 0 for cluster.DefaultLeaseTTL
}

// Environment variables read when neither a flag nor the config file
// sets the value.
const (
	envCluster = "STK_CLUSTER"
	envNodeID  = "STK_NODE_ID"
)

func addClusterFlags(fs *pflag.FlagSet, s *clusterSettings) {
	fs.StringVar(&s.url, "cluster", s.url, "share the name space with the stkd of other hosts through etcd: etcd://host:port[,host:port...] (default $"+envCluster+"; \"\": this host only, no etcd needed)")
	fs.StringVar(&s.nodeID, "node-id", s.nodeID, "this node's id in the cluster, unique and the same across restarts (default $"+envNodeID+", else the host name)")
	fs.DurationVar(&s.leaseTTL, "cluster-lease-ttl", cluster.DefaultLeaseTTL, "how long after this node dies its names disappear from the other nodes (etcd lease TTL, whole seconds)")
}

func init() {
	flagFields["cluster"] = func(d, s *config) { d.cluster.url = s.cluster.url }
	flagFields["node-id"] = func(d, s *config) { d.cluster.nodeID = s.cluster.nodeID }
	flagFields["cluster-lease-ttl"] = func(d, s *config) { d.cluster.leaseTTL = s.cluster.leaseTTL }
}

// cfgClusterLine applies a config file's "cluster: etcd://host:port,...
// [node-id=ID] [lease-ttl=5s]" line to s.
func cfgClusterLine(b []byte, path string, s *clusterSettings) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := 0
	var errs []error
	for n := 1; sc.Scan(); n++ {
		key, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(key), "cluster") {
			continue
		}
		if first != 0 {
			return fmt.Errorf("%s:%d: a second cluster: line (the first is line %d): keep one", path, n, first)
		}
		first = n
		f := strings.Fields(rest)
		if len(f) == 0 {
			return fmt.Errorf("%s:%d: cluster: want etcd://host:port[,host:port...] [node-id=ID] [lease-ttl=5s]", path, n)
		}
		s.url = f[0]
		if _, err := cluster.ParseURL(s.url); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", path, n, err))
		}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "node-id":
				s.nodeID = v
			case "lease-ttl":
				d, err := time.ParseDuration(v)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s:%d: cluster: lease-ttl=%q: %w", path, n, v, err))
				}
				s.leaseTTL = d
			default:
				errs = append(errs, fmt.Errorf("%s:%d: cluster: unknown setting %q (want node-id=ID or lease-ttl=DURATION)", path, n, kv))
			}
		}
	}
	return errors.Join(errs...)
}

// startCluster joins the cluster s names, sharing srv's names; it
// returns nil when s names none. The node joins in the background: an
// etcd that does not answer yet leaves stkd serving this host's names.
func startCluster(s clusterSettings, srv *namesvc.Server, log *slog.Logger) (*cluster.Node, error) {
	if s.url == "" {
		s.url = os.Getenv(envCluster)
	}
	if s.url == "" {
		return nil, nil
	}
	if srv == nil {
		return nil, errors.New("--cluster shares the name server's names, but this stkd runs none (a config file without a named: line?)")
	}
	eps, err := cluster.ParseURL(s.url)
	if err != nil {
		return nil, fmt.Errorf("--cluster: %w", err)
	}
	if s.nodeID == "" {
		s.nodeID = os.Getenv(envNodeID)
	}
	if s.leaseTTL != 0 && (s.leaseTTL < time.Second || s.leaseTTL%time.Second != 0) {
		return nil, fmt.Errorf("--cluster-lease-ttl %v: want whole seconds, at least 1s", s.leaseTTL)
	}
	return cluster.Start(cluster.Config{Endpoints: eps, NodeID: s.nodeID, LeaseTTL: s.leaseTTL, Server: srv,
		Logger: log.With("component", "cluster")})
}

// clusterNode is the node id for the "stkd running" line, "" without
// --cluster.
func (d *daemon) clusterNode() string {
	if d.cluster == nil {
		return ""
	}
	return d.cluster.ID()
}

// clusterFailed is closed when the cluster node gives up for good
// (another live node has its id); nil (never ready) without --cluster.
func (d *daemon) clusterFailed() <-chan struct{} {
	if d.cluster == nil {
		return nil
	}
	return d.cluster.Failed()
}
