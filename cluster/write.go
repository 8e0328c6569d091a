package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stk-go/stk/namesvc"
)

// The write path: the server's changes are written by a writer goroutine
// of the session, beside the watch (a node busy writing its own
// registrations keeps applying the others'), in transactions of up to the
// server's limit of operations, several in flight at once.

const (
	// txnInflight is how many transactions a node has in flight at once:
	// one at a time, a node's write rate is one transaction per round trip
	// through etcd's Raft (a few milliseconds on a loaded host).
	txnInflight = 4
	// writeTimeout bounds one transaction; longer counts as a lost etcd.
	// It is also how long a write proposed just before the etcd leader
	// died waits (the proposal is lost, not refused): failover resumes
	// propagation after about this long.
	writeTimeout = opTimeout
	// txnBytes bounds the keys and values of one transaction, under etcd's
	// default request limit (1.5 MiB): registrations with large meta-data
	// must not make every batch fail, and the node reconnect over and over.
	txnBytes = 1 << 20
)

// txnLimit is the number of operations per transaction: Config.TxnOps
// at first, lowered to what the server accepts when it refuses a
// transaction as too large (its --max-txn-ops, or its request size
// limit). It is shared by the node's names and services writers.
type txnLimit struct {
	ops    atomic.Int64
	logged atomic.Bool
}

// writer writes the server's changes of its own registrations while a
// session lasts. It owns n.own meanwhile.
func (n *Node) writer(ctx context.Context, notify <-chan struct{}) error {
	var changes []namesvc.LocalChange
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-notify:
		}
		var resync bool
		changes, resync = n.srv.TakeLocalChanges(changes[:0])
		var err error
		if resync {
			err = n.writeAllOwn(ctx, nil)
		} else {
			err = n.writeOwn(ctx, changes)
		}
		clear(changes)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// ownKV is one of this node's keys as read from etcd.
type ownKV struct {
	val   []byte
	lease clientv3.LeaseID
}

// writeAllOwn makes this node's keys in etcd equal to the server's
// registrations under the current lease: it writes each registration
// unless inEtcd (this node's keys read from etcd) holds it already under
// that lease (a lease kept across a loss of etcd), and deletes this
// node's other keys: those of inEtcd and those written before that the
// server no longer has.
func (n *Node) writeAllOwn(ctx context.Context, inEtcd map[string]ownKV) error {
	regs := n.srv.LocalRegistrations(nil)
	keep := make(map[string]bool, len(regs))
	now := time.Now()
	var ops []clientv3.Op
	newOwn := make(map[uint64]string, len(regs))
	var buf []byte
	for _, c := range regs {
		if expired(c, now) {
			continue // gone: its removal is on its way
		}
		k := nameKey(n.cfg.Prefix, c.Group, c.Name, n.self, c.Serial)
		keep[k] = true
		newOwn[c.Serial] = k
		if e, ok := inEtcd[k]; ok && e.lease == n.lease && sameReg(c, e.val, &buf) {
			continue
		}
		buf = appendReg(buf[:0], c, now)
		ops = append(ops, clientv3.OpPut(k, string(buf), clientv3.WithLease(n.lease)))
	}
	stale := map[string]bool{}
	for k := range inEtcd {
		if !keep[k] {
			stale[k] = true
		}
	}
	for _, k := range n.own {
		if !keep[k] {
			stale[k] = true
		}
	}
	for k := range stale {
		ops = append(ops, clientv3.OpDelete(k))
	}
	if len(inEtcd) > 0 || len(ops) > 0 {
		n.log.Debug("cluster: writing this node's registrations", "registrations", len(regs), "in_etcd", len(inEtcd), "operations", len(ops))
	}
	if err := n.commit(ctx, ops, &n.ctr.puts, &n.ctr.deletes, &n.ctr.txns); err != nil {
		return err
	}
	n.own = newOwn
	return nil
}

// sameReg reports whether val, a value read from etcd, is c's (but for
// the time it was written). buf is scratch space.
func sameReg(c namesvc.LocalChange, val []byte, buf *[]byte) bool {
	if len(val) == 0 || val[0] != regFormat {
		return false
	}
	// The write time is the second varint, after the registration time.
	_, n1 := binary.Varint(val[1:])
	if n1 <= 0 {
		return false
	}
	w, n2 := binary.Varint(val[1+n1:])
	if n2 <= 0 {
		return false
	}
	*buf = appendReg((*buf)[:0], c, time.Unix(0, w))
	return bytes.Equal(*buf, val)
}

// expired reports whether c lingers with its expiry passed: the other
// nodes stop answering it then, and its removal follows at the server's
// next collection, so its key is deleted now rather than written again
// with its expiry (a registration that lingers 0 costs one delete, not a
// put and a delete).
func expired(c namesvc.LocalChange, now time.Time) bool {
	return c.Reg != nil && !c.Expires.IsZero() && !now.Before(c.Expires)
}

// writeOwn writes the changes of the server's registrations (one per
// registration, as TakeLocalChanges coalesces them). A removal of a
// registration never written (registered and removed between two takes,
// or already deleted as expired) writes nothing.
func (n *Node) writeOwn(ctx context.Context, changes []namesvc.LocalChange) error {
	now := time.Now()
	ops := make([]clientv3.Op, 0, len(changes))
	var buf []byte
	for _, c := range changes {
		if c.Reg == nil || expired(c, now) {
			if k, ok := n.own[c.Serial]; ok {
				delete(n.own, c.Serial)
				ops = append(ops, clientv3.OpDelete(k))
			}
			continue
		}
		k := nameKey(n.cfg.Prefix, c.Group, c.Name, n.self, c.Serial)
		if old, ok := n.own[c.Serial]; ok && old != k { // cannot happen: a serial keeps its name
			ops = append(ops, clientv3.OpDelete(old))
		}
		n.own[c.Serial] = k
		buf = appendReg(buf[:0], c, now)
		ops = append(ops, clientv3.OpPut(k, string(buf), clientv3.WithLease(n.lease)))
	}
	return n.commit(ctx, ops, &n.ctr.puts, &n.ctr.deletes, &n.ctr.txns)
}

// commit runs ops in transactions of at most the txn limit and about
// txnBytes bytes (one operation larger than that goes alone), up to
// txnInflight at once, and counts them. Its transactions may commit in
// any order: ops must hold at most one operation per key (the callers
// write one per registration or record), and a later commit starts only
// once this one has returned.
func (n *Node) commit(ctx context.Context, ops []clientv3.Op, puts, deletes, txns *atomic.Uint64) error {
	if len(ops) == 0 {
		return nil
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, txnInflight)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	for len(ops) > 0 && cctx.Err() == nil {
		m := n.chunk(ops)
		part := ops[:m]
		ops = ops[m:]
		select {
		case sem <- struct{}{}:
		case <-cctx.Done():
		}
		if cctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := n.txn(cctx, part, puts, deletes, txns); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return firstErr
	}
	n.contact()
	return nil
}

// chunk returns how many of ops go in the next transaction.
func (n *Node) chunk(ops []clientv3.Op) int {
	limit := int(n.txnOps.ops.Load())
	m, size := 0, 0
	for m < len(ops) && m < limit {
		size += len(ops[m].KeyBytes()) + len(ops[m].ValueBytes())
		if m > 0 && size > txnBytes {
			break
		}
		m++
	}
	return m
}

// txn commits ops in one transaction; one the server refuses as too
// large is split (and, refused for its number of operations, the limit
// lowered for the next ones).
func (n *Node) txn(ctx context.Context, ops []clientv3.Op, puts, deletes, txns *atomic.Uint64) error {
	tctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), writeTimeout)
	_, err := n.cli.Txn(tctx).Then(ops...).Commit()
	cancel()
	if err != nil && len(ops) > 1 && (errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge)) {
		lower := len(ops) / 2
		if errors.Is(err, rpctypes.ErrTooManyOps) {
			// The server's --max-txn-ops: every later transaction would be
			// refused as well.
			if len(ops) > DefaultTxnOps {
				lower = DefaultTxnOps // etcd's default: the likely limit
			}
			for {
				cur := n.txnOps.ops.Load()
				if int64(lower) >= cur || n.txnOps.ops.CompareAndSwap(cur, int64(lower)) {
					break
				}
			}
			if !n.txnOps.logged.Swap(true) {
				n.log.Info("cluster: etcd refused a transaction of too many operations; writing smaller ones (raise etcd's --max-txn-ops for fewer round trips)",
					"ops", len(ops), "now", lower)
			}
		} else {
			// Too many bytes (a server whose --max-request-bytes is under
			// txnBytes): only this transaction is split.
			n.log.Debug("cluster: etcd refused a transaction as too large; splitting it", "ops", len(ops), "err", err)
		}
		for len(ops) > 0 {
			m := min(lower, len(ops))
			if err := n.txn(ctx, ops[:m], puts, deletes, txns); err != nil {
				return err
			}
			ops = ops[m:]
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("write %d changes: %w", len(ops), err)
	}
	txns.Add(1)
	var p uint64
	for _, op := range ops {
		if op.IsPut() {
			p++
		}
	}
	puts.Add(p)
	deletes.Add(uint64(len(ops)) - p)
	return nil
}
