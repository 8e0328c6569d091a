package smartbeat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/flow"
)

// ErrServiceClosed is returned by the methods of a closed Service.
var ErrServiceClosed = errors.New("smartbeat: service closed")

// Service is a service of this process that reports its state and
// liveness (docs/protocol.md §8.1). NewService sends its CREATE and adds it to
// a Sender, which sends its smartbeats; SetState sends STATE; Close sends
// DESTROY.
//
// Notifications go to the monitoring flow and to the notification flow
// when they differ, in the C library's order: CREATE to the notification
// flow first, STATE and DESTROY to the monitoring flow first. All methods
// are safe for concurrent use.
type Service struct {
	name     string
	id       uint64
	typ      ServiceType
	activity time.Duration
	group    string
	sender   *Sender
	now      func() time.Time
	log      *slog.Logger
	onState  func(*Service, State, State)

	monitor, notify flow.Flow    // nil when absent
	monRef, notRef  *managedFlow // set when the Sender opened the flow

	checkpoint atomic.Uint64

	mu     sync.Mutex
	state  State
	names  map[State]string
	closed bool
	beats  bool // added to the Sender
}

// NewService creates a service in state Starting, sends its CREATE and,
// when it has a monitoring or notification flow, adds it to its Sender,
// which sends a smartbeat at once and then every period. A service with
// neither flow sends nothing, as in C.
//
// A "lookup:" address is resolved first, with a bounded wait
// (Options.LookupTimeout); an address that cannot be resolved or opened is
// an error. A monitor that is down is not: a TCP monitoring flow keeps
// reconnecting, and then the service announces itself again.
func NewService(name string, opts Options) (*Service, error) {
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return nil, fmt.Errorf("smartbeat: service name %q: want a non-empty name without NUL bytes", name)
	}
	if opts.Sender == nil {
		opts.Sender = DefaultSender()
	}
	if opts.Type == 0 {
		opts.Type = TypeData
	}
	if opts.ActivityTimeout == 0 {
		opts.ActivityTimeout = DefaultActivityTimeout
	}
	if !opts.mirror && opts.ActivityTimeout < opts.Sender.period && opts.Sender.period > 0 {
		return nil, fmt.Errorf("smartbeat: service %q: activity timeout %v is shorter than the smartbeat period %v", name, opts.ActivityTimeout, opts.Sender.period)
	}
	if opts.ActivityTimeout < 0 || opts.ActivityTimeout/time.Millisecond > 1<<32-1 {
		return nil, fmt.Errorf("smartbeat: service %q: activity timeout %v out of range", name, opts.ActivityTimeout)
	}
	for opts.ID == 0 {
		opts.ID = uint64(rand.Uint32() >> 1) // a C rand(): 31 bits
	}
	if opts.LookupTimeout <= 0 {
		opts.LookupTimeout = DefaultLookupTimeout
	}
	if opts.ConnectWait == 0 {
		opts.ConnectWait = DefaultConnectWait
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	svc := &Service{
		name:     name,
		id:       opts.ID,
		typ:      opts.Type,
		activity: opts.ActivityTimeout,
		group:    opts.groupName,
		sender:   opts.Sender,
		now:      opts.Sender.now,
		onState:  opts.OnStateChange,
		state:    Starting,
		log:      opts.Logger.With("service", name, "service_id", fmt.Sprintf("%#x", opts.ID)),
	}
	svc.checkpoint.Store(opts.checkpoint)
	for st, n := range opts.StateNames {
		svc.SetStateName(st, n)
	}
	if svc.sender.isClosed() {
		return nil, ErrSenderClosed
	}
	if err := svc.openFlows(&opts); err != nil {
		return nil, err
	}
	if svc.monitor == nil && svc.notify == nil {
		return svc, nil
	}
	svc.monRef.waitConnected(opts.ConnectWait)
	svc.notRef.waitConnected(opts.ConnectWait)
	svc.announceCreate(nil)
	svc.mu.Lock()
	svc.beats = true
	svc.mu.Unlock()
	if err := svc.sender.add(svc); err != nil {
		svc.releaseFlows()
		return nil, err
	}
	return svc, nil
}

// openFlows sets the monitoring and notification flows from opts.
func (svc *Service) openFlows(opts *Options) error {
	r := resolver{client: opts.NameServer, addr: opts.NameServerAddr, log: svc.log}
	open := func(fl flow.Flow, addr, what string) (flow.Flow, *managedFlow, error) {
		if fl != nil {
			return fl, nil, nil
		}
		if addr == "" {
			return nil, nil, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), opts.LookupTimeout)
		defer cancel()
		a, err := r.parse(ctx, addr)
		if err != nil {
			return nil, nil, fmt.Errorf("smartbeat: service %q: %s address %q: %w", svc.name, what, addr, err)
		}
		mf, _, err := svc.sender.acquire(a)
		if err != nil {
			return nil, nil, fmt.Errorf("smartbeat: service %q: %s flow %v: %w", svc.name, what, a, err)
		}
		return mf.fl, mf, nil
	}
	var err error
	if svc.monitor, svc.monRef, err = open(opts.MonitorFlow, opts.Monitor, "monitor"); err != nil {
		return err
	}
	if svc.notify, svc.notRef, err = open(opts.NotifyFlow, opts.Notify, "notification"); err != nil {
		svc.releaseFlows()
		return err
	}
	return nil
}

func (svc *Service) releaseFlows() error {
	err := errors.Join(svc.sender.release(svc.monRef), svc.sender.release(svc.notRef))
	svc.monRef, svc.notRef = nil, nil
	return err
}

// inst returns the service instance for a notification.
func (svc *Service) inst(op uint32, st State) inst {
	sec, usec := timeParts(svc.now())
	return inst{
		op: op, id: svc.id, typ: svc.typ, state: st,
		sec: sec, usec: usec, checkpoint: svc.checkpoint.Load(),
		activityMS: uint32(svc.activity / time.Millisecond),
	}
}

// announceCreate sends CREATE: to the notification flow first, then to
// the monitoring flow, which alone gets the group name. only, when set,
// limits it to that flow (a reconnected one); the INST then carries the
// current state instead of Starting.
func (svc *Service) announceCreate(only flow.Flow) {
	svc.mu.Lock()
	st := svc.state
	svc.mu.Unlock()
	if only == nil {
		st = Starting
	}
	in := svc.inst(opCreate, st)
	if svc.notify != nil && svc.notify != svc.monitor && (only == nil || only == svc.notify) {
		sendTo(svc.log, svc.notify, createSequence(in, svc.name, ""))
	}
	if svc.monitor != nil && (only == nil || only == svc.monitor) {
		sendTo(svc.log, svc.monitor, createSequence(in, svc.name, svc.group))
	}
}

// announce sends CREATE and the current STATE again on f.
func (svc *Service) announce(f flow.Flow) {
	svc.mu.Lock()
	closed, st, name := svc.closed, svc.state, svc.stateNameLocked(svc.state)
	svc.mu.Unlock()
	if closed {
		return
	}
	svc.log.Debug("announcing the service again on a new connection")
	svc.announceCreate(f)
	sendTo(svc.log, f, stateSequence(svc.name, st, name))
}

// Name returns the service name.
func (svc *Service) Name() string { return svc.name }

// ID returns the service id.
func (svc *Service) ID() uint64 { return svc.id }

// Type returns the service type.
func (svc *Service) Type() ServiceType { return svc.typ }

// ActivityTimeout returns the activity timeout receivers apply.
func (svc *Service) ActivityTimeout() time.Duration { return svc.activity }

// State returns the current state.
func (svc *Service) State() State {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.state
}

// Checkpoint returns the current checkpoint.
func (svc *Service) Checkpoint() uint64 { return svc.checkpoint.Load() }

// SetCheckpoint sets the checkpoint, an application-defined u64 (say, the
// number of items processed) that travels in every smartbeat.
func (svc *Service) SetCheckpoint(n uint64) { svc.checkpoint.Store(n) }

// AddCheckpoint adds delta to the checkpoint and returns the new value;
// safe to call from many goroutines.
func (svc *Service) AddCheckpoint(delta uint64) uint64 { return svc.checkpoint.Add(delta) }

// SetStateName names state st for this service (or renames a default
// state); the name travels with STATE and DESTROY. An empty name removes
// it: the default name, or the number, is used again.
func (svc *Service) SetStateName(st State, name string) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if name == "" {
		delete(svc.names, st)
		return
	}
	if svc.names == nil {
		svc.names = map[State]string{}
	}
	svc.names[st] = name
}

// StateName returns the name of st for this service: its own name, the
// default name, or the number (as C's stk_get_service_state_str).
func (svc *Service) StateName(st State) string {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.stateNameLocked(st)
}

func (svc *Service) stateNameLocked(st State) string {
	if n, ok := svc.names[st]; ok {
		return n
	}
	return st.String()
}

// SetState sets the state, calls Options.OnStateChange and sends STATE to
// the monitoring flow, then to the notification flow. Every call sends,
// even when the state does not change, as in C.
func (svc *Service) SetState(st State) error {
	svc.mu.Lock()
	if svc.closed {
		svc.mu.Unlock()
		return ErrServiceClosed
	}
	old := svc.state
	svc.state = st
	name := svc.stateNameLocked(st)
	svc.mu.Unlock()
	if svc.onState != nil {
		svc.onState(svc, old, st)
	}
	q := stateSequence(svc.name, st, name)
	if svc.monitor != nil {
		sendTo(svc.log, svc.monitor, q)
	}
	if svc.notify != nil && svc.notify != svc.monitor {
		sendTo(svc.log, svc.notify, q)
	}
	return nil
}

// Close destroys the service with last state Stopped: see CloseWithState.
func (svc *Service) Close() error { return svc.CloseWithState(Stopped) }

// CloseWithState destroys the service: it stops its smartbeats, sets its
// state to last (calling OnStateChange), sends DESTROY with that state to
// the monitoring flow, then to the notification flow, and closes the flows
// the service opened unless other services share them (after delivering
// what was queued, for at most the flows' CloseTimeout). Later calls do
// nothing.
func (svc *Service) CloseWithState(last State) error {
	svc.mu.Lock()
	if svc.closed {
		svc.mu.Unlock()
		return nil
	}
	svc.closed = true
	old := svc.state
	svc.state = last
	name := svc.stateNameLocked(last)
	beats := svc.beats
	svc.mu.Unlock()
	if beats {
		svc.sender.remove(svc) // no smartbeat may follow the DESTROY
	}
	if svc.onState != nil {
		svc.onState(svc, old, last)
	}
	q := destroySequence(name, svc.inst(opDestroy, last), svc.name)
	if svc.monitor != nil {
		sendTo(svc.log, svc.monitor, q)
	}
	if svc.notify != nil && svc.notify != svc.monitor {
		sendTo(svc.log, svc.notify, q)
	}
	return svc.releaseFlows()
}

// Closed reports whether the service was closed.
func (svc *Service) Closed() bool {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.closed
}

// crash stops the service's smartbeats and closes its flows without a
// DESTROY, as a killed process would (tests).
func (svc *Service) crash() {
	svc.mu.Lock()
	svc.closed = true
	beats := svc.beats
	svc.mu.Unlock()
	if beats {
		svc.sender.remove(svc)
	}
	svc.releaseFlows()
}
