// Package cluster shares a name server's registrations with the name
// servers of other hosts through etcd: one name space across nodes, with
// no single point of failure of ours (etcd keeps the state, by Raft).
//
// A Node writes its server's own registrations under one etcd lease of
// its own, kept alive while the node lives, and watches every node's
// registrations, applying the others' to its server (namesvc's
// ApplyRemote). Lookups and subscriptions are served from the server's
// memory: no client request waits for etcd. Etcd traffic happens on the
// node's goroutine, beside the server's lock: the server hands its
// changes over through a coalescing queue, and the node writes them in
// transactions of many puts.
//
// Lifetimes: a registration removed at its node (its client gone, then
// its linger) is deleted from etcd and disappears everywhere. A node that
// dies stops renewing its lease; etcd deletes its keys when the lease TTL
// runs out, and the other nodes forget them. A node that loses etcd keeps
// serving from its last view and says since when it is partitioned; when
// etcd answers again it takes a new lease, writes its registrations again,
// reads every node's again and reconciles (nothing lost, doubled or
// left stale). A node restarting with the same id revokes the lease of its
// previous run, so its old entries are replaced rather than doubled; it
// first asks that run whether it is still alive (a probe key that a live
// node answers within ProbeWait), and refuses to join when it is: two live
// nodes with one id would revoke each other's lease forever.
//
// The key layout is documented in keys.go and docs/cluster.md.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/stk-go/stk/namesvc"
)

// Defaults of Config.
const (
	DefaultLeaseTTL = 5 * time.Second
	DefaultPrefix   = "/stk/"
	// DefaultTxnOps is etcd's default --max-txn-ops: the number of
	// operations per transaction a node falls back to when the server
	// refuses a larger one.
	DefaultTxnOps = 128
	// DefaultMaxTxnOps is Config.TxnOps' default: the transaction size a
	// node tries first. Against an etcd with the default limit, its first
	// transaction is refused and it writes DefaultTxnOps from then on.
	DefaultMaxTxnOps = 1024
	// opTimeout bounds each etcd request; a request that takes longer
	// counts as a lost etcd.
	opTimeout = 2 * time.Second
	// applyBatch is how many remote changes are applied per hold of the
	// server's lock.
	applyBatch = 256
	// getPage is how many keys one read of the prefix returns.
	getPage = 25000
	// reconnectMax caps the etcd client's wait between two attempts to
	// connect to an endpoint, and the node's between two sessions.
	reconnectMax = time.Second
)

// ProbeWait is how long a node that finds its id held by another run
// waits for that run to answer its probe before it takes the id over.
// A live node answers within milliseconds (a watch event and a put); a
// run killed with -9 never does.
var ProbeWait = 2 * time.Second

// ErrDuplicateID is the error (Node.Err) of a node that refused to join
// because a live node already has its id.
var ErrDuplicateID = errors.New("cluster: duplicate node id")

// Config configures a Node.
type Config struct {
	// Endpoints are the etcd client URLs (ParseURL makes them from
	// "etcd://host:port,...").
	Endpoints []string
	// NodeID names this node in the cluster; it must be unique among
	// the live nodes and stay the same across restarts of one node.
	// Empty: the host name.
	NodeID string
	// LeaseTTL is how long after this node's death its registrations
	// disappear from the others (etcd's lease TTL, whole seconds, at
	// least 1 s). Default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Prefix is where the keys live in etcd. Default DefaultPrefix.
	Prefix string
	// Server is the name server whose registrations are shared.
	Server *namesvc.Server
	// Logger receives the node's log lines; nil means slog.Default().
	Logger *slog.Logger
	// TxnOps is the largest number of puts and deletes per transaction.
	// The node lowers it to what the etcd server accepts (its
	// --max-txn-ops) at the first transaction refused. Default
	// DefaultMaxTxnOps.
	TxnOps int
}

// Node is one name server's membership in the cluster.
type Node struct {
	cfg  Config
	srv  *namesvc.Server
	cli  *clientv3.Client
	log  *slog.Logger
	self string
	// instance tells this run of the node id from the others (a restart,
	// a second process started with the same id by mistake).
	instance string

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // run returned
	probed chan struct{} // probe returned

	// Loop state (the run goroutine only).
	own       map[uint64]string // the keys of our registrations written, by serial
	remote    map[string]remoteEntry
	lease     clientv3.LeaseID
	prevLease clientv3.LeaseID
	rev       int64
	nodeVals  map[string]nodeValue

	ctr    counters
	txnOps txnLimit // operations per transaction the server accepts

	mu     sync.Mutex // guards st and err
	st     Status
	err    error         // why the node gave up (ErrDuplicateID)
	synced chan struct{} // closed at the first full sync
	once   sync.Once
	failed chan struct{} // closed when the node gives up for good
}

type remoteEntry struct {
	key namesvc.RemoteKey
	rev int64 // mod revision of the value applied
}

type counters struct {
	puts, deletes, txns, watchEvents, resyncs, applied, errors atomic.Uint64
	lagNanos, maxLagNanos                                      atomic.Int64
}

// Start connects to etcd and joins the cluster in the background: it
// returns at once (a node starting while etcd is down serves its own
// clients and joins when etcd answers). Stop it with Close.
func Start(cfg Config) (*Node, error) {
	if cfg.Server == nil {
		return nil, errors.New("cluster: Config.Server is nil")
	}
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("cluster: no etcd endpoint (want etcd://host:port[,host:port...])")
	}
	if cfg.NodeID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, fmt.Errorf("cluster: no node id given and the host name is unknown (%v): set --node-id", err)
		}
		cfg.NodeID = h
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.LeaseTTL < time.Second {
		return nil, fmt.Errorf("cluster: lease TTL %v is under etcd's minimum of 1s", cfg.LeaseTTL)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.TxnOps <= 0 {
		cfg.TxnOps = DefaultMaxTxnOps
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          2 * time.Second,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
		MaxCallRecvMsgSize:   256 << 20,
		// gRPC's reconnect backoff grows to 120 s by default: after an
		// outage of 20 s the client would try again up to ~17 s after etcd
		// is back. Capped at reconnectMax, a node rejoins within about a
		// second.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: reconnectMax},
			// A connection attempt to a stopped host must not wait
			// gRPC's default 20 s either.
			MinConnectTimeout: 2 * time.Second,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd client for %v: %w", cfg.Endpoints, err)
	}
	n := &Node{cfg: cfg, srv: cfg.Server, cli: cli, self: cfg.NodeID,
		log:    cfg.Logger.With("node", cfg.NodeID),
		own:    map[uint64]string{},
		remote: map[string]remoteEntry{}, nodeVals: map[string]nodeValue{},
		done: make(chan struct{}), probed: make(chan struct{}), synced: make(chan struct{}), failed: make(chan struct{}),
		instance: newInstance()}
	n.txnOps.ops.Store(int64(cfg.TxnOps))
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.st = Status{NodeID: cfg.NodeID, Endpoints: slices.Clone(cfg.Endpoints), PartitionedSince: time.Now(), LeaseTTL: cfg.LeaseTTL}
	notify := n.srv.StartExport()
	go n.run(notify)
	go n.probe()
	n.log.Info("cluster node starting", "etcd", cfg.Endpoints, "lease_ttl", cfg.LeaseTTL, "prefix", cfg.Prefix)
	return n, nil
}

// ID returns the node id.
func (n *Node) ID() string { return n.self }

// Synced is closed once the node has joined: its registrations written
// and every other node's applied.
func (n *Node) Synced() <-chan struct{} { return n.synced }

// Failed is closed when the node gives up joining for good: another live
// node has its id (Err says which). The name server keeps serving its own
// clients, outside the cluster; stkd exits.
func (n *Node) Failed() <-chan struct{} { return n.failed }

// Err returns why the node gave up (wrapping ErrDuplicateID), nil while it
// has not.
func (n *Node) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

func newInstance() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// Close leaves the cluster: it revokes the node's lease, so that the
// other nodes forget its registrations at once rather than after the TTL,
// and closes the etcd client.
func (n *Node) Close() error {
	n.cancel()
	<-n.done
	<-n.probed
	if n.lease != 0 {
		// Revoking a lease deletes its keys in one Raft entry: a second or
		// more with 100,000 registrations on a loaded host. Partitioned,
		// the node does not wait that long for an etcd it cannot reach.
		wait := 3 * time.Second
		if !n.stat().Connected {
			wait = time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		_, err := n.cli.Revoke(ctx, n.lease)
		cancel()
		if err != nil {
			n.log.Warn("cluster: lease not revoked on close; the other nodes forget this node's registrations when it expires", "err", err)
		}
	}
	return n.cli.Close()
}

// run is the node's loop: a session while etcd answers, a partition
// while it does not.
func (n *Node) run(notify <-chan struct{}) {
	defer close(n.done)
	retry := 100 * time.Millisecond
	for n.ctx.Err() == nil {
		start := time.Now()
		err := n.session(notify)
		if n.ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrDuplicateID) {
			n.giveUp(err, notify)
			return
		}
		n.ctr.errors.Add(1)
		n.mu.Lock()
		if n.st.PartitionedSince.IsZero() {
			n.st.PartitionedSince = n.st.LastContact
			if n.st.PartitionedSince.IsZero() {
				n.st.PartitionedSince = time.Now()
			}
		}
		n.st.Connected = false
		n.st.LastError = err.Error()
		n.mu.Unlock()
		n.log.Warn("cluster: etcd lost; serving from the last view until it answers again", "err", err)
		if time.Since(start) > 5*time.Second {
			retry = 100 * time.Millisecond
		}
		t := time.NewTimer(retry)
	wait:
		for {
			select {
			case <-n.ctx.Done():
				t.Stop()
				return
			case <-notify:
				// Partitioned: the next session writes everything
				// from LocalRegistrations; drop the queued changes.
				n.srv.TakeLocalChanges(nil)
			case <-t.C:
				break wait
			}
		}
		retry = min(2*retry, reconnectMax)
	}
}

func (n *Node) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(clientv3.WithRequireLeader(n.ctx), opTimeout)
}

// session joins (or joins again) and follows the cluster until etcd is
// lost.
func (n *Node) session(notify <-chan struct{}) error {
	kept, err := n.resumeLease()
	if err != nil {
		return err
	}
	if !kept {
		ctx, cancel := n.opCtx()
		g, err := n.cli.Grant(ctx, int64(n.cfg.LeaseTTL/time.Second))
		cancel()
		if err != nil {
			return fmt.Errorf("grant lease: %w", err)
		}
		if n.lease != 0 {
			n.prevLease = n.lease
		}
		n.lease = g.ID
	}
	sessCtx, endSession := context.WithCancel(n.ctx)
	defer endSession()
	ka, err := n.cli.KeepAlive(sessCtx, n.lease)
	if err != nil {
		return fmt.Errorf("keep lease alive: %w", err)
	}
	if err := n.sync(notify); err != nil {
		return err
	}
	// Watch from right after the snapshot: nothing is missed between.
	wch := n.cli.Watch(clientv3.WithRequireLeader(sessCtx), n.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(n.rev+1))
	n.contact()
	n.mu.Lock()
	n.st.Connected, n.st.PartitionedSince, n.st.LastError, n.st.Lease = true, time.Time{}, "", int64(n.lease)
	n.st.LastResync = time.Now()
	n.mu.Unlock()
	n.once.Do(func() { close(n.synced) })
	n.log.Info("cluster: joined", "lease", fmt.Sprintf("%x", int64(n.lease)), "revision", n.rev,
		"own", len(n.own), "remote", len(n.remote))

	// The writer writes this server's changes beside the watch: a node
	// busy writing its own registrations keeps applying the others'.
	wctx, endWriter := context.WithCancel(sessCtx)
	werr := make(chan error, 1)
	go func() { werr <- n.writer(wctx, notify) }()
	defer func() {
		// The run loop drains notify and resyncs n.own: not before the
		// writer is gone.
		endWriter()
		<-werr
	}()
	for {
		select {
		case <-n.ctx.Done():
			return n.ctx.Err()
		case _, ok := <-ka:
			if !ok {
				return errors.New("lease keep-alive ended (etcd unreachable for the lease TTL, or the lease expired)")
			}
			n.contact()
		case err := <-werr:
			werr <- err // for the deferred wait
			if err == nil {
				err = n.ctx.Err()
			}
			if err == nil {
				err = errors.New("writer ended")
			}
			return err
		case wr, ok := <-wch:
			if !ok {
				return errors.New("watch ended")
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("watch: %w", err)
			}
			if wr.Canceled {
				return errors.New("watch canceled")
			}
			n.contact()
			for _, p := range n.applyEvents(wr.Events) {
				// Another process started with this node's id: it waits
				// for this answer, and refuses to join.
				if err := n.putNodeKey(&p); err != nil {
					return err
				}
			}
		}
	}
}

// resumeLease renews the previous session's lease, if any, and reports
// whether it is still alive: after a short loss of etcd (a restart of
// every member: etcd restores its leases with a full TTL when a leader is
// elected) the node's keys are still there under it, and it writes only
// what changed meanwhile rather than every registration again. A lease
// gone (expired: its keys with it) is not an error: the caller grants a
// new one.
func (n *Node) resumeLease() (bool, error) {
	if n.lease == 0 {
		return false, nil
	}
	ctx, cancel := n.opCtx()
	_, err := n.cli.KeepAliveOnce(ctx, n.lease)
	cancel()
	switch {
	case err == nil:
		n.log.Info("cluster: the previous session's lease is still alive; keeping it", "lease", fmt.Sprintf("%x", int64(n.lease)))
		return true, nil
	case isLeaseNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("renew lease: %w", err)
	}
}

func (n *Node) contact() {
	n.mu.Lock()
	n.st.LastContact = time.Now()
	n.mu.Unlock()
}

// sync reads every key under the prefix, writes this node's
// registrations under the new lease (deleting its stale ones), revokes
// the previous lease (of this run or, at start, of the previous run of
// this node id) and makes the server's view of the other nodes equal to
// what it read.
func (n *Node) sync(notify <-chan struct{}) error {
	n.ctr.resyncs.Add(1)
	t0 := time.Now()
	// Drop the queued changes before the snapshot: the snapshot has them,
	// and changes after it come through the queue.
	select {
	case <-notify:
	default:
	}
	n.srv.TakeLocalChanges(nil)

	seen := map[string]int64{} // remote keys read, with mod revisions
	var values []remoteKV
	ownInEtcd := map[string]ownKV{}
	nodes := map[string]nodeValue{}
	var probe *probeValue // another run probing this node id
	rev, err := n.readAll(func(key string, val []byte, modRev, lease int64) {
		rest := strings.TrimPrefix(key, n.cfg.Prefix)
		switch {
		case strings.HasPrefix(rest, namesDir):
			k, err := parseNameKey(rest[len(namesDir):])
			if err != nil {
				n.log.Warn("cluster: ignoring a malformed key", "key", key, "err", err)
				return
			}
			if k.Node == n.self {
				ownInEtcd[key] = ownKV{val: val, lease: clientv3.LeaseID(lease)}
				return
			}
			seen[key] = modRev
			if e, ok := n.remote[key]; !ok || e.rev != modRev {
				values = append(values, remoteKV{key: key, k: k, val: val, rev: modRev})
			}
		case strings.HasPrefix(rest, nodesDir):
			var v nodeValue
			if json.Unmarshal(val, &v) == nil {
				nodes[v.Node] = v
			}
		case rest == probesDir+esc(n.self):
			var v probeValue
			if json.Unmarshal(val, &v) == nil && v.Instance != n.instance {
				probe = &v
			}
		}
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", n.cfg.Prefix, err)
	}
	n.rev = rev
	tRead := time.Now()
	// Another run holds this node id (its lease is alive, or its key
	// would be gone): the previous run of this node, or a second live
	// node started with the same id by mistake. Only a live one answers.
	var otherLease clientv3.LeaseID
	if v, ok := nodes[n.self]; ok && v.Instance != n.instance {
		if err := n.probeOther(v, rev); err != nil {
			return err
		}
		otherLease = clientv3.LeaseID(v.Lease)
	}
	// Our own keys: write the current registrations, delete the rest.
	if err := n.writeAllOwn(n.ctx, ownInEtcd); err != nil {
		return err
	}
	tWrite := time.Now()
	if err := n.putNodeKey(probe); err != nil {
		return err
	}
	for _, l := range []clientv3.LeaseID{n.prevLease, otherLease} {
		if l == 0 || l == n.lease {
			continue
		}
		ctx, cancel := n.opCtx()
		_, err := n.cli.Revoke(ctx, l)
		cancel()
		if err != nil && !isLeaseNotFound(err) {
			return fmt.Errorf("revoke previous lease %x: %w", int64(l), err)
		}
	}
	n.prevLease = 0
	// Other nodes: apply what changed, forget what is gone.
	var batch []namesvc.RemoteChange
	flush := func() {
		if len(batch) > 0 {
			n.ctr.applied.Add(uint64(n.srv.ApplyRemote(batch)))
			batch = batch[:0]
		}
	}
	for key, e := range n.remote {
		if _, ok := seen[key]; !ok {
			delete(n.remote, key)
			batch = append(batch, namesvc.RemoteChange{Key: e.key})
			if len(batch) >= applyBatch {
				flush()
			}
		}
	}
	for _, kv := range values {
		rc, _, err := decodeReg(kv.k, kv.val)
		if err != nil {
			n.log.Warn("cluster: ignoring a malformed registration", "key", kv.key, "err", err)
			continue
		}
		n.remote[kv.key] = remoteEntry{key: kv.k, rev: kv.rev}
		batch = append(batch, rc)
		if len(batch) >= applyBatch {
			flush()
		}
	}
	flush()
	n.mu.Lock()
	n.nodeVals = nodes
	n.mu.Unlock()
	n.log.Debug("cluster: synced", "read", tRead.Sub(t0), "write_own", tWrite.Sub(tRead), "apply", time.Since(tWrite),
		"own", len(n.own), "remote", len(n.remote), "applied", len(values))
	return nil
}

type remoteKV struct {
	key string
	k   namesvc.RemoteKey
	val []byte
	rev int64
}

// readAll reads every key under the prefix at one revision, a page at a
// time, in key order, and returns that revision.
func (n *Node) readAll(fn func(key string, val []byte, modRev, lease int64)) (int64, error) {
	from, end := n.cfg.Prefix, clientv3.GetPrefixRangeEnd(n.cfg.Prefix)
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(getPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		ctx, cancel := n.opCtx()
		resp, err := n.cli.Get(ctx, from, opts...)
		cancel()
		if err != nil {
			return 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			fn(string(kv.Key), kv.Value, kv.ModRevision, kv.Lease)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// applyEvents applies watched changes of the other nodes to the server,
// and returns the probes of other runs of this node id among them.
func (n *Node) applyEvents(evs []*clientv3.Event) (probes []probeValue) {
	now := time.Now()
	var batch []namesvc.RemoteChange
	for _, ev := range evs {
		n.ctr.watchEvents.Add(1)
		key := string(ev.Kv.Key)
		if ev.Kv.ModRevision > n.rev {
			n.rev = ev.Kv.ModRevision
		}
		rest := strings.TrimPrefix(key, n.cfg.Prefix)
		if node, ok := strings.CutPrefix(rest, nodesDir); ok {
			n.nodeEvent(node, ev)
			continue
		}
		if rest == probesDir+esc(n.self) && ev.Type == clientv3.EventTypePut {
			var v probeValue
			if json.Unmarshal(ev.Kv.Value, &v) == nil && v.Instance != n.instance {
				probes = append(probes, v)
			}
			continue
		}
		if !strings.HasPrefix(rest, namesDir) {
			continue
		}
		k, err := parseNameKey(rest[len(namesDir):])
		if err != nil || k.Node == n.self {
			continue // ours: written by this node (or a previous run, revoked)
		}
		if ev.Type == clientv3.EventTypeDelete {
			if _, ok := n.remote[key]; ok {
				delete(n.remote, key)
				batch = append(batch, namesvc.RemoteChange{Key: k})
			}
		} else {
			rc, written, err := decodeReg(k, ev.Kv.Value)
			if err != nil {
				n.log.Warn("cluster: ignoring a malformed registration", "key", key, "err", err)
				continue
			}
			lag := now.Sub(written).Nanoseconds()
			n.ctr.lagNanos.Store(lag)
			if lag > n.ctr.maxLagNanos.Load() {
				n.ctr.maxLagNanos.Store(lag)
			}
			n.remote[key] = remoteEntry{key: k, rev: ev.Kv.ModRevision}
			batch = append(batch, rc)
		}
		if len(batch) >= applyBatch {
			n.ctr.applied.Add(uint64(n.srv.ApplyRemote(batch)))
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		n.ctr.applied.Add(uint64(n.srv.ApplyRemote(batch)))
	}
	return probes
}

func (n *Node) nodeEvent(escNode string, ev *clientv3.Event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ev.Type == clientv3.EventTypeDelete {
		for id := range n.nodeVals {
			if esc(id) == escNode {
				delete(n.nodeVals, id)
			}
		}
		return
	}
	var v nodeValue
	if json.Unmarshal(ev.Kv.Value, &v) == nil {
		n.nodeVals[v.Node] = v
	}
}

var startTime = time.Now()

func (n *Node) started() time.Time { return startTime }

func isLeaseNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), "requested lease not found")
}

// putNodeKey writes this node's key under its lease; probe, if not nil,
// is another run's probe of this node id, answered by naming it in
// Refuted (the probing run then refuses to join).
func (n *Node) putNodeKey(probe *probeValue) error {
	host, _ := os.Hostname()
	nv := nodeValue{Node: n.self, Lease: int64(n.lease), Started: n.started().UnixNano(), PID: os.Getpid(), Host: host,
		Instance: n.instance}
	if probe != nil {
		nv.Refuted = probe.Instance
		n.log.Error("cluster: another process tried to join with this node's id; it is told to refuse: give it another --node-id",
			"other_host", probe.Host, "other_pid", probe.PID)
	}
	ctx, cancel := n.opCtx()
	_, err := n.cli.Put(ctx, nodeKey(n.cfg.Prefix, n.self), string(mustJSON(nv)), clientv3.WithLease(n.lease))
	cancel()
	if err != nil {
		return fmt.Errorf("write node key: %w", err)
	}
	n.ctr.puts.Add(1)
	return nil
}

// probeOther asks the run of this node id that holds its node key (other,
// read at revision rev) whether it is alive: it writes a probe key and
// waits at most ProbeWait for that run to answer (its node key naming this
// run in Refuted). An answer means a live node has the id: the error wraps
// ErrDuplicateID. No answer, or the other run's key gone (its lease
// expired), means it is dead: nil, and this run takes the id over.
func (n *Node) probeOther(other nodeValue, rev int64) error {
	host, _ := os.Hostname()
	pk := probeKey(n.cfg.Prefix, n.self)
	ctx, cancel := n.opCtx()
	_, err := n.cli.Put(ctx, pk, string(mustJSON(probeValue{Instance: n.instance, Host: host, PID: os.Getpid()})), clientv3.WithLease(n.lease))
	cancel()
	if err != nil {
		return fmt.Errorf("write probe key: %w", err)
	}
	n.ctr.puts.Add(1)
	defer func() {
		ctx, cancel := n.opCtx()
		n.cli.Delete(ctx, pk) // best effort: it goes with the lease anyway
		cancel()
	}()
	n.log.Info("cluster: another run holds this node id; asking whether it is alive",
		"other_host", other.Host, "other_pid", other.PID, "other_started", time.Unix(0, other.Started), "wait", ProbeWait)
	wctx, wcancel := context.WithTimeout(clientv3.WithRequireLeader(n.ctx), ProbeWait)
	defer wcancel()
	wch := n.cli.Watch(wctx, nodeKey(n.cfg.Prefix, n.self), clientv3.WithRev(rev+1))
	for wr := range wch {
		if err := wr.Err(); err != nil && wctx.Err() == nil {
			return fmt.Errorf("watch node key: %w", err)
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				n.log.Info("cluster: the previous run of this node id is gone (its lease expired); joining")
				return nil
			}
			var v nodeValue
			if json.Unmarshal(ev.Kv.Value, &v) == nil && v.Refuted == n.instance {
				return fmt.Errorf("%w: node id %q is held by a live node (host %q, pid %d, started %s) that answered this one's probe; "+
					"give each node its own --node-id (or stop the other one)",
					ErrDuplicateID, n.self, v.Host, v.PID, time.Unix(0, v.Started).Format(time.RFC3339))
			}
		}
	}
	if n.ctx.Err() != nil {
		return n.ctx.Err()
	}
	n.log.Info("cluster: the previous run of this node id did not answer: taking its place (its registrations are replaced)",
		"waited", ProbeWait)
	return nil
}

// giveUp ends the node's membership for good (err wraps ErrDuplicateID):
// it revokes its lease, says why everywhere, and keeps draining the
// server's export hand-off until closed.
func (n *Node) giveUp(err error, notify <-chan struct{}) {
	// This run's leases (the current one, and a previous session's after
	// a partition): its keys go, the other run keeps the id.
	for _, l := range []clientv3.LeaseID{n.lease, n.prevLease} {
		if l != 0 {
			ctx, cancel := n.opCtx()
			n.cli.Revoke(ctx, l)
			cancel()
		}
	}
	n.lease, n.prevLease = 0, 0
	n.log.Error("cluster: not joining; this stkd serves its own clients only", "err", err)
	n.mu.Lock()
	n.err = err
	n.st.Connected, n.st.LastError, n.st.Lease = false, err.Error(), 0
	if n.st.PartitionedSince.IsZero() {
		n.st.PartitionedSince = time.Now()
	}
	n.mu.Unlock()
	close(n.failed)
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-notify:
			n.srv.TakeLocalChanges(nil)
		}
	}
}
