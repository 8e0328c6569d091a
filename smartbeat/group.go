package smartbeat

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// Group is a service group (docs/protocol.md §8.5, §8.6): an application-side
// registry of remote services, kept up to date by service-group automation
// (Invoke) from the notifications and smartbeats those services send on the
// group's data flows.
//
// Each member is a local mirror Service with the remote's name, id, type,
// activity timeout, state and checkpoint. Mirrors report to the group's
// own monitor (GroupOptions.Monitor) with the group name in their CREATE,
// which is how the web monitor lists service groups. A member whose
// smartbeats stop for its activity timeout, measured on this process's
// receive clock, is timed out: removed from the group and destroyed with
// state TimedOut.
type Group struct {
	name   string
	opts   GroupOptions
	log    *slog.Logger
	now    func() time.Time
	sender *Sender

	monitor flow.Flow
	monRef  *managedFlow

	mu        sync.Mutex
	members   map[memberKey]*Member
	joinSeq   uint64
	lastCheck time.Time
	closed    bool
	stalls    uint64

	stop chan struct{}
	done chan struct{}
}

// memberKey identifies a member as C does: the peer address of the
// connection or datagram, and the service id.
type memberKey struct {
	proto flow.Protocol
	peer  netip.AddrPort
	id    uint64
}

// Member is a remote service in a Group.
type Member struct {
	g      *Group
	key    memberKey
	svc    *Service
	order  uint64
	joined time.Time

	// Under g.mu.
	lastBeat   time.Time // receive clock of the CREATE or latest smartbeat
	deadline   time.Time // lastBeat plus stall credit: silence is measured from here
	remoteBeat time.Time // the sender's timestamp of its latest smartbeat
	beats      uint64
}

// ErrGroupClosed is returned by Invoke on a closed Group.
var ErrGroupClosed = errors.New("smartbeat: service group closed")

// NewGroup creates a service group named name and starts its timeout
// checker.
func NewGroup(name string, opts GroupOptions) (*Group, error) {
	if name == "" {
		return nil, errors.New("smartbeat: a service group needs a name")
	}
	if opts.Sender == nil {
		opts.Sender = DefaultSender()
	}
	if opts.CheckInterval == 0 {
		opts.CheckInterval = DefaultGroupCheckInterval
	}
	if opts.StallThreshold <= 0 {
		opts.StallThreshold = DefaultStallThreshold
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	g := &Group{
		name:    name,
		opts:    opts,
		log:     opts.Logger.With("service_group", name),
		now:     opts.Now,
		sender:  opts.Sender,
		monitor: opts.MonitorFlow,
		members: map[memberKey]*Member{},
	}
	if g.monitor == nil && opts.Monitor != "" {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultLookupTimeout)
		a, err := resolver{client: opts.NameServer, addr: opts.NameServerAddr}.parse(ctx, opts.Monitor)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("smartbeat: service group %q: monitor %q: %w", name, opts.Monitor, err)
		}
		mf, _, err := g.sender.acquire(a)
		if err != nil {
			return nil, fmt.Errorf("smartbeat: service group %q: monitor flow %v: %w", name, a, err)
		}
		g.monitor, g.monRef = mf.fl, mf
	}
	g.lastCheck = g.now()
	if opts.CheckInterval > 0 && !opts.manualChecks {
		g.stop, g.done = make(chan struct{}), make(chan struct{})
		go g.loop()
	}
	return g, nil
}

// Name returns the group's name.
func (g *Group) Name() string { return g.name }

// Members returns the members, in the order they joined.
func (g *Group) Members() []*Member {
	g.mu.Lock()
	ms := make([]*Member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	g.mu.Unlock()
	slices.SortFunc(ms, func(a, b *Member) int { return cmp.Compare(a.order, b.order) })
	return ms
}

// Stalls returns how many checks found the group's own process stalled.
func (g *Group) Stalls() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stalls
}

func (g *Group) loop() {
	defer close(g.done)
	t := time.NewTicker(g.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			g.check(true)
		}
	}
}

// Check times out the members whose smartbeats stopped, now. The periodic
// check runs without it.
func (g *Group) Check() { g.check(false) }

// check times out silent members. A periodic check that comes late means
// this process was stalled: the lateness is credited to every member, as
// in the Monitor, instead of timing them out for our own fault.
func (g *Group) check(periodic bool) {
	now := g.now()
	var dead []*Member
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	if periodic {
		gap := now.Sub(g.lastCheck)
		if stall := gap - g.opts.CheckInterval; g.opts.CheckInterval > 0 && stall > g.opts.StallThreshold {
			g.stalls++
			for _, m := range g.members {
				m.deadline = m.deadline.Add(stall)
			}
			// Our own stall, credited above so nobody times out for it: worth
			// a warning only if a member would otherwise have been timed out
			// (as the Monitor does); a busy machine is not news.
			saved := 0
			for _, m := range g.members {
				if now.Sub(m.deadline.Add(-stall)) > m.svc.activity && now.Sub(m.deadline) <= m.svc.activity {
					saved++
				}
			}
			if saved > 0 {
				g.log.Warn("service group checks were stalled; extended member deadlines so they are not timed out", "stall", stall, "saved", saved)
			} else {
				g.log.Debug("service group checks were stalled; extended member deadlines", "stall", stall, "members", len(g.members))
			}
		}
		g.lastCheck = now
	}
	for k, m := range g.members {
		if now.Sub(m.deadline) > m.svc.activity {
			delete(g.members, k)
			dead = append(dead, m)
		}
	}
	g.mu.Unlock()
	slices.SortFunc(dead, func(a, b *Member) int { return cmp.Compare(a.order, b.order) })
	for _, m := range dead {
		g.log.Info("service timed out", "service", m.svc.name, "peer", m.key.peer, "activity_timeout", m.svc.activity)
		if g.opts.OnTimedOut != nil {
			g.opts.OnTimedOut(g, m)
		}
		if g.opts.OnRemoved != nil {
			g.opts.OnRemoved(g, m)
		}
		m.svc.CloseWithState(TimedOut)
	}
}

// Close stops the checker, destroys every mirror (state Stopped) and
// closes the group's monitoring flow if it opened one.
func (g *Group) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	ms := make([]*Member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	clear(g.members)
	g.mu.Unlock()
	if g.stop != nil {
		close(g.stop)
		<-g.done
	}
	slices.SortFunc(ms, func(a, b *Member) int { return cmp.Compare(a.order, b.order) })
	var errs []error
	for _, m := range ms {
		errs = append(errs, m.svc.Close())
	}
	errs = append(errs, g.sender.release(g.monRef))
	return errors.Join(errs...)
}

// Service returns the member's local mirror service.
func (m *Member) Service() *Service { return m.svc }

// Name returns the remote service's name.
func (m *Member) Name() string { return m.svc.name }

// ID returns the remote service's id.
func (m *Member) ID() uint64 { return m.svc.id }

// State returns the remote service's latest state.
func (m *Member) State() State { return m.svc.State() }

// Checkpoint returns the checkpoint of the latest smartbeat.
func (m *Member) Checkpoint() uint64 { return m.svc.Checkpoint() }

// Peer returns the address the remote service reports from.
func (m *Member) Peer() netip.AddrPort { return m.key.peer }

// Protocol returns the transport it reports over.
func (m *Member) Protocol() flow.Protocol { return m.key.proto }

// Joined returns when its CREATE arrived (the group's clock).
func (m *Member) Joined() time.Time { return m.joined }

// LastBeat returns when its CREATE or latest smartbeat arrived (the
// group's clock).
func (m *Member) LastBeat() time.Time {
	m.g.mu.Lock()
	defer m.g.mu.Unlock()
	return m.lastBeat
}

// RemoteTime returns the sender's own timestamp of its latest smartbeat.
func (m *Member) RemoteTime() time.Time {
	m.g.mu.Lock()
	defer m.g.mu.Unlock()
	return m.remoteBeat
}

// Beats returns how many smartbeats arrived for the member.
func (m *Member) Beats() uint64 {
	m.g.mu.Lock()
	defer m.g.mu.Unlock()
	return m.beats
}

// Data-flow types of the 0x8003 registration meta-data (§7.12).
const (
	dataFlowTCPServer   uint16 = 1
	dataFlowUDPListener uint16 = 5
)

// Register registers the group's name with the name service, as a C
// service group created with a listening data flow does (§7.12), so that
// clients can find it with "lookup:<group name>": linger 5 s, the listening
// address and protocol, and meta-data 0x8003 = the data-flow type (1 TCP
// server, 5 UDP listener). listen must not be 0.0.0.0 (C registers nothing
// then). The namesvc client keeps the registration across reconnects.
func (g *Group) Register(ctx context.Context, c *namesvc.Client, listen netip.AddrPort, proto flow.Protocol) error {
	if listen.Addr().IsUnspecified() || !listen.IsValid() {
		return fmt.Errorf("smartbeat: service group %q: cannot register the unspecified address %v; listen on a specific IP", g.name, listen)
	}
	dft := dataFlowTCPServer
	switch proto {
	case flow.TCP:
	case flow.UDP, flow.Multicast:
		dft = dataFlowUDPListener
	default:
		return fmt.Errorf("smartbeat: service group %q: protocol %v cannot carry notifications", g.name, proto)
	}
	return c.Register(ctx, namesvc.Info{
		Name:      g.name,
		Linger:    5 * time.Second,
		Addresses: []namesvc.Endpoint{{Protocol: proto.String(), Addr: listen}},
		Meta:      []seq.Element{{UserType: seq.UTMDDataFlowType, Data: binary.LittleEndian.AppendUint16(nil, dft)}},
	})
}
