package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stk-go/stk/smartbeat"
)

// The monitor, cluster-wide: each node keeps monitoring its own services
// (smartbeats stay local) and publishes a compact summary of each record
// under its lease:
//
//	<prefix>services/<node>/<uid>   one service record (uid: 16 hex digits)
//
// The value (svcValue, JSON) holds the state, checkpoint, last beat,
// verdict and times of the record. Writes are coalesced: a record's state
// change is written at most once per ServicesConfig.Interval, a change of
// its beat fields only (checkpoint, last beat, counters) at most once per
// BeatInterval, in transactions of many puts; so a service beating ten
// times a second costs etcd one put every few seconds. Current records
// are published, and the newest MaxEnded records of the history (so that
// the other nodes see why a service ended, the verdict of a timeout).
//
// Each node watches the other nodes' summaries; a node that dies loses
// its lease and its summaries disappear with its names. A node that
// loses etcd keeps the last view of the others, and re-puts its own
// summaries under its new lease when it joins again.

const servicesDir = "services/"

// Defaults of ServicesConfig.
const (
	DefaultServicesInterval = time.Second
	DefaultBeatInterval     = 5 * time.Second
	DefaultMaxEnded         = 100
)

// ServiceSource is what Services reads of the node's monitor;
// *smartbeat.Monitor implements it.
type ServiceSource interface {
	// Summary returns the current records and the newest ended ones.
	Summary(ended int) smartbeat.Summary
	// Subscribe calls fn for every later event, never blocking the
	// monitor (a slow fn sees a gap in Event.Seq).
	Subscribe(fn func(smartbeat.Event)) (cancel func())
}

// ServicesConfig configures PublishServices.
type ServicesConfig struct {
	// Monitor is the node's service monitor.
	Monitor ServiceSource
	// Interval is the least time between two writes of one record's
	// state changes. Default DefaultServicesInterval.
	Interval time.Duration
	// BeatInterval is the least time between two writes of a record whose
	// beat fields only changed. Default DefaultBeatInterval.
	BeatInterval time.Duration
	// MaxEnded is how many of the newest history records are published.
	// Default DefaultMaxEnded; negative: none.
	MaxEnded int
}

// Services publishes a node's monitored services to the cluster and
// follows the other nodes'. Make it with PublishServices; stop it with
// Close before closing the node.
type Services struct {
	n      *Node
	cfg    ServicesConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	unsub  func()
	wake   chan struct{}
	done   sync.WaitGroup

	// Events handed over by the monitor's subscription.
	mu      sync.Mutex
	pending map[uint64]pendingView
	lastSeq uint64
	gap     bool

	// Publisher state (the publish goroutine only).
	pub   map[uint64]*pubEntry
	lease int64

	// The other nodes' records.
	rmu      sync.Mutex
	remote   map[string]smartbeat.ServiceView // by key
	remoteV  uint64                           // bumped on every change
	lastRead time.Time

	ctr svcCounters
}

type svcCounters struct {
	puts, deletes, txns, errors, watchEvents, resyncs atomic.Uint64
	published                                         atomic.Int64
}

// pendingView is a record's view from its latest event.
type pendingView struct {
	view smartbeat.ServiceView
	seq  uint64
}

// pubEntry is one record of this node's monitor.
type pubEntry struct {
	view    smartbeat.ServiceView
	seq     uint64 // of the event (or summary) view came from
	written *svcValue
	at      time.Time // of the last write
	gone    bool      // left the published set: delete its key
}

// ServicesStats are the counters of Services.
type ServicesStats struct {
	// Published is the number of this node's records in etcd; Remote
	// the other nodes' records held.
	Published, Remote int
	// Puts and Deletes count the keys written, in Txns transactions;
	// Errors the failed transactions.
	Puts, Deletes, Txns, Errors uint64
	// WatchEvents counts the other nodes' changes received; Resyncs the
	// full reads of their records.
	WatchEvents, Resyncs uint64
	// Version changes whenever the remote records change.
	Version uint64
}

// PublishServices starts publishing the records of cfg.Monitor under the
// node's lease and following the other nodes' records.
func (n *Node) PublishServices(cfg ServicesConfig) (*Services, error) {
	if cfg.Monitor == nil {
		return nil, errors.New("cluster: ServicesConfig.Monitor is nil")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultServicesInterval
	}
	if cfg.BeatInterval <= 0 {
		cfg.BeatInterval = DefaultBeatInterval
	}
	if cfg.BeatInterval < cfg.Interval {
		cfg.BeatInterval = cfg.Interval
	}
	if cfg.MaxEnded == 0 {
		cfg.MaxEnded = DefaultMaxEnded
	}
	s := &Services{n: n, cfg: cfg, log: n.log.With("component", "cluster-services"),
		wake: make(chan struct{}, 1), pending: map[uint64]pendingView{},
		pub: map[uint64]*pubEntry{}, remote: map[string]smartbeat.ServiceView{}}
	s.ctx, s.cancel = context.WithCancel(n.ctx)
	// Subscribe before the first Summary: events after it are not missed,
	// events before it are older than it (by Seq) and skipped.
	s.unsub = cfg.Monitor.Subscribe(s.onEvent)
	s.resync()
	s.done.Add(2)
	go s.publish()
	go s.follow()
	return s, nil
}

// Close stops publishing and following, and deletes this node's records
// from etcd (best effort: the node's lease takes them with it anyway).
func (s *Services) Close() error {
	s.unsub()
	s.cancel()
	s.done.Wait()
	var ops []clientv3.Op
	for _, e := range s.pub {
		if e.written != nil {
			ops = append(ops, clientv3.OpDelete(s.key(e.view.UID)))
		}
	}
	for len(ops) > 0 {
		m := min(len(ops), int(s.n.txnOps.ops.Load()))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := s.n.cli.Txn(ctx).Then(ops[:m]...).Commit()
		cancel()
		if err != nil {
			return nil // etcd gone or the lease revoked: nothing to do
		}
		ops = ops[m:]
	}
	return nil
}

func (s *Services) onEvent(ev smartbeat.Event) {
	s.mu.Lock()
	if s.lastSeq != 0 && ev.Seq != s.lastSeq+1 && ev.Seq > s.lastSeq {
		s.gap = true // the subscription dropped events: read a Summary
	}
	if ev.Seq > s.lastSeq {
		s.lastSeq = ev.Seq
	}
	s.pending[ev.Service.UID] = pendingView{ev.Service, ev.Seq}
	s.mu.Unlock()
	if ev.Kind != smartbeat.EventBeat {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// resync makes the published set that of a fresh Summary.
func (s *Services) resync() {
	sum := s.cfg.Monitor.Summary(max(s.cfg.MaxEnded, 0))
	s.mu.Lock()
	s.gap = false
	s.lastSeq = max(s.lastSeq, sum.Seq)
	// Events up to sum.Seq are in the summary; later ones stay pending.
	s.mu.Unlock()
	seen := make(map[uint64]bool, len(sum.Current)+len(sum.Ended))
	for _, l := range [][]smartbeat.ServiceView{sum.Current, sum.Ended} {
		for _, v := range l {
			seen[v.UID] = true
			s.take(v, sum.Seq)
		}
	}
	for uid, e := range s.pub {
		if !seen[uid] && e.seq <= sum.Seq {
			e.gone = true
		}
	}
}

// take records v (of event sequence number seq) as the latest view of its
// record, unless a later one is known.
func (s *Services) take(v smartbeat.ServiceView, seq uint64) {
	e := s.pub[v.UID]
	if e == nil {
		e = &pubEntry{}
		s.pub[v.UID] = e
	} else if e.seq > seq {
		return
	}
	e.view, e.seq, e.gone = v, seq, false
}

// publish is the writing loop.
func (s *Services) publish() {
	defer s.done.Done()
	tick := time.NewTicker(max(s.cfg.Interval/4, 50*time.Millisecond))
	defer tick.Stop()
	var lastErr time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
		st := s.n.stat()
		if !st.Connected || st.Lease == 0 {
			continue // partitioned: the next lease gets everything
		}
		if st.Lease != s.lease {
			// A new lease (a join or re-join): the keys of the old
			// one are gone or going; write every record again.
			s.lease = st.Lease
			for _, e := range s.pub {
				e.written = nil
			}
			s.resync()
		}
		s.mu.Lock()
		gap := s.gap
		var pend map[uint64]pendingView
		if len(s.pending) > 0 {
			pend = s.pending
			s.pending = make(map[uint64]pendingView, len(pend))
		}
		s.mu.Unlock()
		for _, p := range pend {
			s.take(p.view, p.seq)
		}
		if gap {
			s.resync()
		}
		s.trimEnded()
		if err := s.flush(time.Now()); err != nil {
			s.ctr.errors.Add(1)
			if time.Since(lastErr) > 10*time.Second {
				s.log.Warn("cluster: publishing the services failed; retrying", "err", err)
				lastErr = time.Now()
			}
		}
	}
}

// trimEnded marks gone the ended records beyond the newest MaxEnded.
func (s *Services) trimEnded() {
	var ended []*pubEntry
	for _, e := range s.pub {
		if !e.gone && !e.view.Current {
			ended = append(ended, e)
		}
	}
	limit := max(s.cfg.MaxEnded, 0)
	if len(ended) <= limit {
		return
	}
	slices.SortFunc(ended, func(a, b *pubEntry) int {
		return cmp.Or(b.view.Ended.Compare(a.view.Ended), cmp.Compare(b.view.UID, a.view.UID))
	})
	for _, e := range ended[limit:] {
		e.gone = true
	}
}

// flush writes the records that changed and are due, and deletes the
// gone ones.
func (s *Services) flush(now time.Time) error {
	var ops []clientv3.Op
	type put struct {
		e *pubEntry
		v *svcValue
	}
	var puts []put
	var dels []uint64
	for uid, e := range s.pub {
		if e.gone {
			if e.written != nil {
				ops = append(ops, clientv3.OpDelete(s.key(uid)))
			}
			dels = append(dels, uid)
			continue
		}
		v := encodeService(&e.view)
		if w := e.written; w != nil {
			if w.sameState(v) {
				if w.sameBeat(v) || now.Sub(e.at) < s.cfg.BeatInterval {
					continue
				}
			} else if now.Sub(e.at) < s.cfg.Interval {
				continue
			}
		}
		v.W = now.UnixNano()
		b, _ := json.Marshal(v) // plain types: cannot fail
		ops = append(ops, clientv3.OpPut(s.key(uid), string(b), clientv3.WithLease(clientv3.LeaseID(s.lease))))
		puts = append(puts, put{e, v})
	}
	if err := s.n.commit(s.ctx, ops, &s.ctr.puts, &s.ctr.deletes, &s.ctr.txns); err != nil {
		return fmt.Errorf("write %d service records: %w", len(ops), err)
	}
	// Everything is written: only now does the state say so (a failed
	// transaction leaves the records to write again).
	for _, p := range puts {
		p.e.written, p.e.at = p.v, now
	}
	for _, uid := range dels {
		delete(s.pub, uid)
	}
	var n int64
	for _, e := range s.pub {
		if e.written != nil {
			n++
		}
	}
	s.ctr.published.Store(n)
	return nil
}

func (s *Services) key(uid uint64) string {
	return fmt.Sprintf("%s%s%s/%016x", s.n.cfg.Prefix, servicesDir, esc(s.n.self), uid)
}

// follow reads and watches the other nodes' records while the node is
// connected.
func (s *Services) follow() {
	defer s.done.Done()
	prefix := s.n.cfg.Prefix + servicesDir
	for s.ctx.Err() == nil {
		if !s.n.stat().Connected {
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond): // the node has no join signal to wait on
			}
			continue
		}
		rev, err := s.readRemote(prefix)
		if err != nil {
			s.log.Debug("cluster: reading the other nodes' services failed; retrying", "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(s.ctx))
		for wr := range s.n.cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
			if wr.Err() != nil || wr.Canceled {
				break
			}
			s.applyRemote(prefix, wr.Events)
		}
		cancel()
	}
}

// readRemote reads every other node's records and replaces the view with
// them.
func (s *Services) readRemote(prefix string) (int64, error) {
	ctx, cancel := s.n.opCtx()
	resp, err := s.n.cli.Get(ctx, prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return 0, err
	}
	s.ctr.resyncs.Add(1)
	m := make(map[string]smartbeat.ServiceView, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if v, ok := s.decodeRemote(prefix, kv.Key, kv.Value); ok {
			m[string(kv.Key)] = v
		}
	}
	s.rmu.Lock()
	s.remote = m
	s.remoteV++
	s.lastRead = time.Now()
	s.rmu.Unlock()
	return resp.Header.Revision, nil
}

func (s *Services) applyRemote(prefix string, evs []*clientv3.Event) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for _, ev := range evs {
		s.ctr.watchEvents.Add(1)
		key := string(ev.Kv.Key)
		if ev.Type == clientv3.EventTypeDelete {
			if _, ok := s.remote[key]; ok {
				delete(s.remote, key)
				s.remoteV++
			}
			continue
		}
		if v, ok := s.decodeRemote(prefix, ev.Kv.Key, ev.Kv.Value); ok {
			s.remote[key] = v
			s.remoteV++
		}
	}
}

// decodeRemote decodes another node's record; ok is false for this
// node's own records and malformed ones.
func (s *Services) decodeRemote(prefix string, key, val []byte) (smartbeat.ServiceView, bool) {
	node, _, ok := strings.Cut(strings.TrimPrefix(string(key), prefix), "/")
	if !ok || node == esc(s.n.self) {
		return smartbeat.ServiceView{}, false
	}
	var v svcValue
	if err := json.Unmarshal(val, &v); err != nil {
		s.log.Warn("cluster: ignoring a malformed service record", "key", string(key), "err", err)
		return smartbeat.ServiceView{}, false
	}
	sv := v.view()
	sv.Node = node
	if u, err := url.PathUnescape(node); err == nil {
		sv.Node = u
	}
	return sv, true
}

// Remote returns the other nodes' records, by node and uid: current and
// ended ones (ServiceView.Current says which), each with its Node. While
// the node is partitioned they are the last ones known.
func (s *Services) Remote() []smartbeat.ServiceView {
	s.rmu.Lock()
	out := make([]smartbeat.ServiceView, 0, len(s.remote))
	for _, v := range s.remote {
		out = append(out, v)
	}
	s.rmu.Unlock()
	slices.SortFunc(out, func(a, b smartbeat.ServiceView) int {
		return cmp.Or(strings.Compare(a.Node, b.Node), cmp.Compare(a.UID, b.UID))
	})
	return out
}

// Stats returns the counters.
func (s *Services) Stats() ServicesStats {
	s.rmu.Lock()
	remote, ver := len(s.remote), s.remoteV
	s.rmu.Unlock()
	return ServicesStats{Published: int(s.ctr.published.Load()), Remote: remote,
		Puts: s.ctr.puts.Load(), Deletes: s.ctr.deletes.Load(), Txns: s.ctr.txns.Load(), Errors: s.ctr.errors.Load(),
		WatchEvents: s.ctr.watchEvents.Load(), Resyncs: s.ctr.resyncs.Load(), Version: ver}
}

// svcValue is the JSON value of a service key: a compact ServiceView
// (times in Unix nanoseconds, durations in nanoseconds).
type svcValue struct {
	UID       uint64 `json:"u"`
	Key       string `json:"k"`
	ID        uint64 `json:"i"`
	Name      string `json:"n"`
	Type      uint16 `json:"ty"`
	State     uint8  `json:"s"`
	StateName string `json:"sn,omitempty"`
	Group     string `json:"g,omitempty"`
	Timeout   int64  `json:"to,omitempty"`
	Peer      string `json:"p,omitempty"`
	Proto     string `json:"pr,omitempty"`
	Created   int64  `json:"cr,omitempty"`
	Current   bool   `json:"cur,omitempty"`
	Ended     int64  `json:"e,omitempty"`
	EndReason uint8  `json:"er,omitempty"`
	Flags     uint8  `json:"f,omitempty"` // 1 displaced, 2 inactive, 4 destroyed
	Resurr    int    `json:"rs,omitempty"`
	// The verdict of a timed-out record.
	VDetector string `json:"vd,omitempty"`
	VReason   string `json:"vr,omitempty"`
	VAt       int64  `json:"va,omitempty"`
	VSilence  int64  `json:"vs,omitempty"`
	// The beat fields: written at most every BeatInterval.
	Checkpoint uint64 `json:"c,omitempty"`
	LastBeat   int64  `json:"lb,omitempty"`
	LastRecv   int64  `json:"lr,omitempty"`
	Beats      uint64 `json:"b,omitempty"`
	Interval   int64  `json:"iv,omitempty"`
	StdDev     int64  `json:"sd,omitempty"`
	// W is when the node wrote it.
	W int64 `json:"w"`
}

const (
	flagDisplaced = 1 << iota
	flagInactive
	flagDestroyed
)

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func encodeService(v *smartbeat.ServiceView) *svcValue {
	sv := &svcValue{UID: v.UID, Key: v.Key, ID: v.ID, Name: v.Name, Type: uint16(v.Type), State: uint8(v.State),
		StateName: v.StateName, Group: v.GroupName, Timeout: int64(v.ActivityTimeout), Proto: v.Protocol,
		Created: unixNano(v.Created), Current: v.Current, Ended: unixNano(v.Ended), EndReason: uint8(v.EndReason),
		Resurr: v.Resurrections, Checkpoint: v.Checkpoint, LastBeat: unixNano(v.LastBeat), LastRecv: unixNano(v.LastReceived),
		Beats: v.Beats, Interval: int64(v.Interval), StdDev: int64(v.StdDev)}
	if v.Peer.IsValid() {
		sv.Peer = v.Peer.String()
	}
	if v.Displaced {
		sv.Flags |= flagDisplaced
	}
	if v.Inactive {
		sv.Flags |= flagInactive
	}
	if v.Destroyed {
		sv.Flags |= flagDestroyed
	}
	if vd := v.Verdict; vd != nil {
		sv.VDetector, sv.VReason, sv.VAt, sv.VSilence = vd.Detector, vd.Reason, unixNano(vd.At), int64(vd.Silence)
	}
	return sv
}

// sameState reports whether v differs from w in beat fields at most.
func (w *svcValue) sameState(v *svcValue) bool {
	a, b := *w, *v
	a.Checkpoint, a.LastBeat, a.LastRecv, a.Beats, a.Interval, a.StdDev, a.W = 0, 0, 0, 0, 0, 0, 0
	b.Checkpoint, b.LastBeat, b.LastRecv, b.Beats, b.Interval, b.StdDev, b.W = 0, 0, 0, 0, 0, 0, 0
	return a == b
}

// sameBeat reports whether v has w's beat fields.
func (w *svcValue) sameBeat(v *svcValue) bool {
	return w.Checkpoint == v.Checkpoint && w.LastBeat == v.LastBeat && w.LastRecv == v.LastRecv &&
		w.Beats == v.Beats && w.Interval == v.Interval && w.StdDev == v.StdDev
}

func (sv *svcValue) view() smartbeat.ServiceView {
	v := smartbeat.ServiceView{UID: sv.UID, Key: sv.Key, ID: sv.ID, Name: sv.Name, Type: smartbeat.ServiceType(sv.Type),
		State: smartbeat.State(sv.State), StateName: sv.StateName, GroupName: sv.Group, Checkpoint: sv.Checkpoint,
		ActivityTimeout: time.Duration(sv.Timeout), Protocol: sv.Proto, Created: fromNano(sv.Created),
		LastBeat: fromNano(sv.LastBeat), LastReceived: fromNano(sv.LastRecv), Beats: sv.Beats,
		Interval: time.Duration(sv.Interval), StdDev: time.Duration(sv.StdDev), Current: sv.Current,
		Ended: fromNano(sv.Ended), EndReason: smartbeat.EndReason(sv.EndReason),
		Displaced: sv.Flags&flagDisplaced != 0, Inactive: sv.Flags&flagInactive != 0, Destroyed: sv.Flags&flagDestroyed != 0,
		Resurrections: sv.Resurr}
	v.Peer, _ = netip.ParseAddrPort(sv.Peer) // informative only
	if sv.VDetector != "" || sv.VReason != "" {
		v.Verdict = &smartbeat.Verdict{Detector: sv.VDetector, Reason: sv.VReason, At: fromNano(sv.VAt), Silence: time.Duration(sv.VSilence)}
	}
	return v
}
