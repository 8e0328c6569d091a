package smartbeat

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
)

// Invoke is service-group automation, the C stk_sga_invoke (docs/protocol.md
// §8.6): hand it every non-data sequence received on the group's data
// flows, with the peer it came from. Other sequences are ignored (nil).
//
//   - CREATE creates a mirror service (name, id, type, activity timeout and
//     checkpoint from INST), adds it as a member (OnAdded) and sets its
//     state to INST's (OnStateChange; the mirror sends STATE to the group's
//     monitor). A CREATE for a member that exists replaces it.
//   - STATE finds the member by peer and name (case-insensitive), learns a
//     state name it did not know, and sets the state.
//   - DESTROY finds the member by peer and id (or name), removes it
//     (OnRemoved), takes INST's checkpoint and destroys the mirror with
//     state Stopped.
//   - SMARTBEAT updates every member it names (by peer and id) with the
//     checkpoint and this process's receive time (OnSmartbeat). C only
//     looks at the last service of a smartbeat (docs/differences.md B26).
//
// A member is identified by the peer's address and protocol plus the
// service id: the same id from two connections makes two members.
// Malformed notifications return an error wrapping errMalformed.
func (g *Group) Invoke(from flow.Peer, s *seq.Sequence) error {
	if !isServiceSequence(s) {
		return nil
	}
	var n notice
	if err := parseNotice(s, &n); err != nil {
		return err
	}
	if n.tooLong {
		return fmt.Errorf("%w: %s of %d bytes, longer than %d (prefix %q)", errMalformed,
			refusedWhat[n.refused.reason], n.refused.size, refusedLimit[n.refused.reason], n.refused.prefix)
	}
	proto, peer := from.Protocol(), from.RemoteAddr()
	switch s.ID {
	case seq.IDCreateNotification:
		return g.created(proto, &n, from)
	case seq.IDStateNotification:
		if m := g.findByName(proto, peer, n.name); m != nil {
			if n.hasStateName && n.stateName != m.svc.StateName(n.state) {
				m.svc.SetStateName(n.state, n.stateName)
			}
			m.svc.SetState(n.state)
		}
	case seq.IDDestroyNotification:
		m := g.remove(memberKey{proto, peer, n.inst.id}, n.name)
		if m == nil {
			return nil
		}
		if g.opts.OnRemoved != nil {
			g.opts.OnRemoved(g, m)
		}
		m.svc.SetCheckpoint(n.inst.checkpoint)
		m.svc.CloseWithState(Stopped)
	case seq.IDSmartbeat:
		now := g.now()
		for _, b := range n.beats {
			g.mu.Lock()
			m := g.members[memberKey{proto, peer, b.id}]
			if m != nil {
				m.lastBeat, m.deadline = now, now
				m.remoteBeat = partsTime(b.sec, b.usec)
				m.beats++
				m.svc.SetCheckpoint(b.checkpoint)
			}
			g.mu.Unlock()
			if m != nil && g.opts.OnSmartbeat != nil {
				g.opts.OnSmartbeat(g, m)
			}
		}
	}
	return nil
}

// created handles a CREATE.
func (g *Group) created(proto flow.Protocol, n *notice, from flow.Peer) error {
	key := memberKey{proto, from.RemoteAddr(), n.inst.id}
	if old := g.remove(key, ""); old != nil {
		if g.opts.OnRemoved != nil {
			g.opts.OnRemoved(g, old)
		}
		old.svc.Close()
	}
	now := g.now()
	m := &Member{g: g, key: key, joined: now, lastBeat: now, deadline: now}
	svc, err := NewService(n.name, Options{
		ID:              n.inst.id,
		Type:            n.inst.typ,
		ActivityTimeout: msDuration(n.inst.activityMS),
		MonitorFlow:     g.monitor,
		Sender:          g.sender,
		Logger:          g.opts.Logger,
		OnStateChange: func(_ *Service, old, new State) {
			if g.opts.OnStateChange != nil {
				g.opts.OnStateChange(g, m, old, new)
			}
		},
		groupName:  g.name,
		mirror:     true,
		checkpoint: n.inst.checkpoint,
	})
	if err != nil {
		return err
	}
	m.svc = svc
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		svc.Close()
		return ErrGroupClosed
	}
	g.joinSeq++
	m.order = g.joinSeq
	g.members[key] = m
	g.mu.Unlock()
	g.log.Debug("service added", "service", n.name, "peer", key.peer, "id", key.id)
	if g.opts.OnAdded != nil {
		g.opts.OnAdded(g, m)
	}
	svc.SetState(n.inst.state)
	return nil
}

// findByName finds a member of peer by service name, case-insensitively.
func (g *Group) findByName(proto flow.Protocol, peer netip.AddrPort, name string) *Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	var found *Member
	for k, m := range g.members {
		if k.proto == proto && k.peer == peer && strings.EqualFold(m.svc.name, name) {
			if found == nil || m.order > found.order {
				found = m
			}
		}
	}
	return found
}

// remove removes and returns the member with key, or else (name != "") the
// member of the same peer with that name.
func (g *Group) remove(key memberKey, name string) *Member {
	g.mu.Lock()
	m := g.members[key]
	g.mu.Unlock()
	if m == nil && name != "" {
		m = g.findByName(key.proto, key.peer, name)
	}
	if m == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.members[m.key] != m {
		return nil // removed meanwhile
	}
	delete(g.members, m.key)
	return m
}

// msDuration converts a wire activity timeout in ms; 0 means the default.
func msDuration(ms uint32) time.Duration {
	return time.Duration(ms) * time.Millisecond
}
