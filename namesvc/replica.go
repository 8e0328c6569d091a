package namesvc

import (
	"sync"
	"time"

	"github.com/stk-go/stk/seq"
)

// Replication: a Server that shares its name space with other nodes (the
// cluster package, over etcd) does two things beside its protocol core,
// both without blocking under its lock:
//
//   - It reports every change of its own registrations (stored, replaced,
//     lingering from a given time, removed once their linger ran out) to
//     one observer, through a
//     coalescing hand-off: StartExport returns a channel that is signalled
//     when there is something to take, and TakeLocalChanges takes the
//     latest state of each changed registration. The observer (which talks
//     to etcd) drains it beside the lock; a slow observer only makes the
//     hand-off coalesce more, never the server wait.
//   - It accepts the registrations of other nodes (ApplyRemote). They have
//     no owner here and no linger of their own (they go when their node
//     says so), are answered by lookups, listed by Names and NamesPage, and
//     pushed to name subscriptions exactly as local ones. A lingering one
//     carries its expiry from its node: lookups here stop answering it at
//     the same moment as its node does (clock skew between the hosts
//     aside), before its node's removal arrives. They are kept
//     apart from the Store, so they are never reported back to the
//     observer (no echo), never count against the local limits, and the
//     access policy's registration rules never see them.
//
// Order of answers: a lookup (and a subscription's first answers) gets
// this server's own registrations first, in registration order, then the
// other nodes' registrations in the order this server learned of them
// (a replacement keeps its place). After a full sync (start, or a return
// from a partition) that order is by node id, then by the node's serial,
// since the cluster applies its snapshot in key order.

// remoteSerialBase starts the serials given to other nodes' registrations,
// so that they sort after every local one in a name's listing: page
// cursors rely on serials growing along a name's registrations.
const remoteSerialBase = 1 << 62

// maxPendingExport bounds the coalescing hand-off: past that many changed
// registrations not yet taken, the server drops them and asks the
// observer for a full resync instead (TakeLocalChanges' resync).
var maxPendingExport = 1 << 20 // a variable: tests lower it

// LocalChange is the latest state of one of this server's own
// registrations, for the export observer.
type LocalChange struct {
	// Serial identifies the registration for its life in this server:
	// a replacement keeps the serial of the registration it replaces.
	Serial uint64
	// Group and Name are the registration's.
	Group, Name string
	// Reg is the registration now stored; nil when it was removed. It is
	// immutable: the observer may keep it.
	Reg *Registration
	// Expires is when the registration goes, once it lingers (its
	// registrant's connection closed, or a datagram registrant went
	// silent): zero while its registrant is there. It is taken with the
	// change, since Reg's own expiry may change under the server's lock.
	Expires time.Time
}

// RemoteKey identifies a registration of another node: the node's id and
// the registration's serial there (its LocalChange.Serial), with its group
// and name.
type RemoteKey struct {
	Node        string
	Group, Name string
	Serial      uint64
}

// RemoteChange is one change of another node's registrations.
type RemoteChange struct {
	Key RemoteKey
	// Reg is the registration (Name and Group must match Key; Elements,
	// Linger, Registrant, Transport and Registered as stored at its node),
	// nil when it was removed. The server keeps it: the caller must not
	// change it afterwards.
	Reg *Registration
	// Expires is the registration's expiry at its node (LocalChange's):
	// lookups stop answering it then. Zero: not lingering.
	Expires time.Time
}

// replicaState is the Server's replication state (see above).
type replicaState struct {
	// Export hand-off, guarded by exportMu (taken under s.mu by the
	// server, never the other way round by the observer).
	exportMu  sync.Mutex
	exporting bool
	notify    chan struct{}
	pending   map[uint64]LocalChange
	overflow  bool

	// Other nodes' registrations, guarded by s.mu: a MemStore for order
	// and listing, and the index by key.
	remote   *MemStore
	byKey    map[RemoteKey]*Registration
	serial   uint64               // the last remote serial given, past remoteSerialBase
	lastNode map[string]time.Time // when a change of each node was last applied
	groups   int                  // groups created by other nodes' registrations (in Stats.Groups)
}

// StartExport starts reporting this server's own registration changes and
// returns the channel signalled (capacity one, never closed) when there are
// changes to take with TakeLocalChanges. Changes made before the call are
// not reported: take a snapshot with LocalRegistrations after it. Calling
// it again returns the same channel.
func (s *Server) StartExport() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := &s.rep
	rp.exportMu.Lock()
	defer rp.exportMu.Unlock()
	if !rp.exporting {
		rp.exporting = true
		rp.notify = make(chan struct{}, 1)
		rp.pending = map[uint64]LocalChange{}
	}
	return rp.notify
}

// TakeLocalChanges appends the changes reported since the last call to
// dst, one per registration (its latest state), in no particular order.
// resync reports that the hand-off overflowed (more than a million
// registrations changed between two calls) and dropped changes: the
// observer must then replace what it exported with LocalRegistrations.
func (s *Server) TakeLocalChanges(dst []LocalChange) (changes []LocalChange, resync bool) {
	rp := &s.rep
	rp.exportMu.Lock()
	p := rp.pending
	resync, rp.overflow = rp.overflow, false
	if len(p) > 0 {
		rp.pending = make(map[uint64]LocalChange, min(len(p), 1024))
	} else {
		p = nil // still the server's map: not ours to read past the lock
	}
	rp.exportMu.Unlock()
	for _, c := range p {
		dst = append(dst, c)
	}
	return dst, resync
}

// LocalRegistrations appends every registration of this server's own
// clients (lingering ones included) to dst, as LocalChanges. It holds the
// read lock while it copies pointers.
func (s *Server) LocalRegistrations(dst []LocalChange) []LocalChange {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.store.Ascend("", "", func(g, n string, regs []*Registration) bool {
		for _, r := range regs {
			dst = append(dst, LocalChange{Serial: r.serial, Group: g, Name: n, Reg: r, Expires: r.expires})
		}
		return true
	})
	return dst
}

// exportLocked reports that r (one of this server's own) was stored,
// started to linger (its expiry set) or, with removed, removed. s.mu is
// held.
func (s *Server) exportLocked(r *Registration, removed bool) {
	rp := &s.rep
	rp.exportMu.Lock()
	defer rp.exportMu.Unlock()
	if !rp.exporting {
		return
	}
	if !rp.overflow {
		c := LocalChange{Serial: r.serial, Group: r.Group, Name: r.Name, Reg: r, Expires: r.expires}
		if removed {
			c.Reg, c.Expires = nil, time.Time{}
		}
		rp.pending[r.serial] = c
		if len(rp.pending) > maxPendingExport {
			rp.overflow = true
			rp.pending = map[uint64]LocalChange{}
		}
	}
	select {
	case rp.notify <- struct{}{}:
	default:
	}
}

// ApplyRemote applies changes of other nodes' registrations, in order:
// a put stores (or replaces in place) the registration of its key and
// pushes it to the name's subscribers as its node did: a new
// registration, or a replacement (another Registered time or other
// elements), is pushed; a change of expiry alone (its registrant gone, so
// it lingers) is not, and a re-put of what is held (a resync) changes
// nothing. A removal forgets it (STK has no message for that: lookups stop
// answering it, as for a local registration whose linger ran out). It
// returns how many changes altered the view. Callers batch changes (a few
// hundred per call) so that the lock is held briefly.
func (s *Server) ApplyRemote(changes []RemoteChange) int {
	now := s.now()
	var pushes []delivery
	n := 0
	s.mu.Lock()
	rp := &s.rep
	if rp.remote == nil {
		rp.remote = NewMemStore()
		rp.byKey = map[RemoteKey]*Registration{}
		rp.lastNode = map[string]time.Time{}
	}
	for _, c := range changes {
		rp.lastNode[c.Key.Node] = now
		old := rp.byKey[c.Key]
		if c.Reg == nil {
			if old != nil {
				rp.remote.Delete(old)
				delete(rp.byKey, c.Key)
				n++
				pushes = s.removalPushesLocked(old, pushes)
			}
			continue
		}
		r := c.Reg
		if old != nil && old.Linger == r.Linger && old.Registered.Equal(r.Registered) && seq.ElementsEqual(old.Elements, r.Elements) {
			// The same registration: a re-put after a resync, or its
			// expiry set (lingering) or cleared. Not pushed: its node
			// pushes nothing for either.
			if !old.expires.Equal(c.Expires) {
				old.expires = c.Expires
				n++
			}
			continue
		}
		r.Group, r.Name, r.node = c.Key.Group, c.Key.Name, c.Key.Node
		r.owner, r.expires = nil, c.Expires
		if old != nil {
			r.serial = old.serial
			rp.remote.Put(r, func(o *Registration) bool { return o == old })
			if !seq.ElementsEqual(old.Elements, r.Elements) {
				pushes = s.removalPushesLocked(old, pushes)
			}
		} else {
			if !s.store.HasGroup(r.Group) {
				// Lookups of the group must find it. It counts in
				// Stats.Groups, not against the local Groups limit.
				s.store.AddGroup(r.Group)
				rp.groups++
			}
			rp.serial++
			r.serial = remoteSerialBase + rp.serial
			rp.remote.Put(r, nil)
		}
		rp.byKey[c.Key] = r
		n++
		pushes = s.pushesLocked(subKey{r.Group, r.Name}, r, pushes)
	}
	if n > 0 {
		s.version.Add(1)
	}
	s.mu.Unlock()
	for _, d := range pushes {
		s.send(d.to, d.q)
	}
	return n
}

// RemoteLen returns the number of other nodes' registrations held.
func (s *Server) RemoteLen() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.rep.remote == nil {
		return 0
	}
	return s.rep.remote.Len()
}

// RemoteNodes returns, for each node whose registrations were applied,
// when a change of it was last applied (lookups and listings are up to
// date with that node as of then).
func (s *Server) RemoteNodes() map[string]time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]time.Time, len(s.rep.lastNode))
	for n, t := range s.rep.lastNode {
		out[n] = t
	}
	return out
}

// Node returns the cluster node that holds the registration: "" for this
// server's own, else the id of the node it came from (ApplyRemote).
func (r *Registration) Node() string { return r.node }

// Serial returns the registration's serial in its server (LocalChange.Serial).
func (r *Registration) Serial() uint64 { return r.serial }

// pushesLocked appends to pushes an answer for r to every subscription of
// key; subscriptions still sending their first answers queue it instead.
// s.mu is held.
func (s *Server) pushesLocked(key subKey, r *Registration, pushes []delivery) []delivery {
	if l := s.subs[key]; l != nil {
		for _, sub := range l.subs {
			a := answerSequence(r, sub.id)
			if sub.pending {
				sub.queued = append(sub.queued, a)
				continue
			}
			pushes = append(pushes, delivery{sub.owner.peer, a})
		}
	}
	return pushes
}

// remoteGetLocked appends the other nodes' registrations of name in group
// to dst. s.mu is held.
func (s *Server) remoteGetLocked(dst []*Registration, group, name string) []*Registration {
	if s.rep.remote == nil {
		return dst
	}
	return s.rep.remote.Get(dst, group, name)
}

// remoteLenLocked returns the number of other nodes' registrations.
func (s *Server) remoteLenLocked() int {
	if s.rep.remote == nil {
		return 0
	}
	return s.rep.remote.Len()
}

// ascendLocked is Store.Ascend over the local store and the other nodes'
// registrations merged: each name once, its local registrations first.
// s.mu is held (read or write).
func (s *Server) ascendLocked(group, name string, fn func(group, name string, regs []*Registration) bool) {
	rp := &s.rep
	if rp.remote == nil || rp.remote.Len() == 0 {
		s.store.Ascend(group, name, fn)
		return
	}
	c := rp.remote.index.seek(nameKey{group, name})
	var buf []*Registration
	stopped := false
	s.store.Ascend(group, name, func(g, n string, regs []*Registration) bool {
		k := nameKey{g, n}
		for l := c.peek(); l != nil && l.key.compare(k) < 0; l = c.peek() {
			c.next()
			if !fn(l.key.group, l.key.name, l.regs) {
				stopped = true
				return false
			}
		}
		if l := c.peek(); l != nil && l.key == k {
			c.next()
			buf = append(append(buf[:0], regs...), l.regs...)
			regs = buf
		}
		if !fn(g, n, regs) {
			stopped = true
			return false
		}
		return true
	})
	for l := c.peek(); !stopped && l != nil; l = c.peek() {
		c.next()
		if !fn(l.key.group, l.key.name, l.regs) {
			return
		}
	}
}

// indexCursor walks a nameIndex in order; the index must not change
// meanwhile.
type indexCursor struct {
	x     *nameIndex
	ci, i int
}

// seek returns a cursor at the first list with a key >= k.
func (x *nameIndex) seek(k nameKey) indexCursor {
	ci := x.chunkFor(k)
	c := indexCursor{x: x, ci: ci}
	if ci < len(x.chunks) {
		c.i = searchChunk(x.chunks[ci], k)
	}
	return c
}

// peek returns the list at the cursor, nil at the end.
func (c *indexCursor) peek() *nameList {
	if c.ci >= len(c.x.chunks) {
		return nil
	}
	return c.x.chunks[c.ci][c.i]
}

func (c *indexCursor) next() {
	if c.i++; c.i >= len(c.x.chunks[c.ci]) {
		c.ci, c.i = c.ci+1, 0
	}
}
