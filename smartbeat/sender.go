package smartbeat

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
)

// Sender is a smartbeat controller: it sends one Smartbeat sequence per
// period for all its services, to the union of their monitoring and
// notification flows (each flow once), and one at once whenever a service
// is added (docs/protocol.md §8.4). It runs on its own goroutine and timer, so a
// busy application cannot delay its smartbeats; the goroutine exists only
// while the Sender has services.
//
// As in C, the one smartbeat carries every service of the Sender to every
// flow, so a flow also gets the smartbeats of services that do not report
// there; receivers ignore ids they do not know. Processes that mirror
// services (a Group) and report services of their own should give the
// group a Sender of its own if the ids may collide.
//
// It also owns the flows opened for monitor and notification addresses,
// shared by every service that names the same address and closed with the
// last of them.
type Sender struct {
	period   time.Duration
	now      func() time.Time
	flowOpts flow.Options
	log      *slog.Logger

	// sendMu serialises smartbeat sends with removals, so that no
	// smartbeat of a service follows its DESTROY.
	sendMu sync.Mutex

	mu       sync.Mutex
	services []*Service
	flows    map[string]*managedFlow
	stop     chan struct{} // nil while no loop runs
	done     chan struct{}
	closed   bool

	sent atomic.Uint64
}

// managedFlow is a flow the Sender opened for an address.
type managedFlow struct {
	key      string // the address string
	fl       flow.Flow
	tcp      *flow.TCPClient // nil for UDP
	refs     int             // under Sender.mu
	connects atomic.Int64
}

// ErrSenderClosed is returned when a service is added to a closed Sender.
var ErrSenderClosed = errors.New("smartbeat: sender closed")

var (
	defaultSenderOnce sync.Once
	defaultSender     *Sender
)

// DefaultSender returns the process-wide Sender that services use unless
// Options.Sender names another: all services of a process then travel in
// one smartbeat per period, as in a C environment.
func DefaultSender() *Sender {
	defaultSenderOnce.Do(func() { defaultSender = NewSender(SenderOptions{}) })
	return defaultSender
}

// NewSender returns a Sender; it starts its goroutine with its first service.
func NewSender(opts SenderOptions) *Sender {
	if opts.Period == 0 {
		opts.Period = DefaultPeriod
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	fo := opts.Flow
	if fo.QueueBytes <= 0 {
		// Room for the notifications of thousands of services started at
		// once (a dropped CREATE leaves the service unknown to the monitor
		// until a reconnect) and several periods of beats; beyond that
		// drop, so that a dead monitor never blocks the application.
		fo.QueueBytes = flow.DefaultQueueBytes
		fo.SlowConsumer = flow.Drop
	}
	if fo.SlowConsumerWait <= 0 {
		fo.SlowConsumerWait = time.Microsecond
	}
	if fo.CloseTimeout <= 0 {
		fo.CloseTimeout = time.Second
	}
	if fo.Logger == nil {
		fo.Logger = opts.Logger
	}
	return &Sender{
		period:   opts.Period,
		now:      opts.Now,
		flowOpts: fo,
		log:      opts.Logger,
		flows:    map[string]*managedFlow{},
	}
}

// Period returns the smartbeat period.
func (s *Sender) Period() time.Duration { return s.period }

// Services returns the services the Sender beats for, in the order they
// were added.
func (s *Sender) Services() []*Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.services)
}

// Sent returns the number of smartbeat sequences sent (one per flow).
func (s *Sender) Sent() uint64 { return s.sent.Load() }

// SendNow sends a smartbeat for every service at once, besides the
// periodic ones.
func (s *Sender) SendNow() { s.sendBeats(nil) }

// Close closes every service of the Sender (each sends its DESTROY) and
// refuses new ones. The default Sender should not be closed.
func (s *Sender) Close() error {
	s.mu.Lock()
	s.closed = true
	svcs := slices.Clone(s.services)
	s.mu.Unlock()
	var errs []error
	for _, svc := range svcs {
		errs = append(errs, svc.Close())
	}
	return errors.Join(errs...)
}

func (s *Sender) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// add adds svc and sends a smartbeat at once.
func (s *Sender) add(svc *Service) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrSenderClosed
	}
	s.services = append(s.services, svc)
	if s.stop == nil && s.period > 0 {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.loop(s.stop, s.done)
	}
	s.mu.Unlock()
	s.sendBeats(svc)
	return nil
}

// remove removes svc; after it returns no smartbeat for svc is sent. The
// loop stops with the last service.
func (s *Sender) remove(svc *Service) {
	s.sendMu.Lock()
	s.mu.Lock()
	s.services = slices.DeleteFunc(s.services, func(x *Service) bool { return x == svc })
	var stop, done chan struct{}
	if len(s.services) == 0 && s.stop != nil {
		stop, done = s.stop, s.done
		s.stop, s.done = nil, nil
	}
	s.mu.Unlock()
	s.sendMu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

func (s *Sender) loop(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(s.period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.sendBeats(nil)
		}
	}
}

// sendBeats sends one smartbeat (split every 254 services, for C TCP
// receivers) to every flow of every service; with only set, for that
// service alone. C sends every service's beat when one is added; sending
// just the new one is the same on the wire to receivers (they handle each
// element on its own) and keeps starting n services linear instead of
// quadratic in traffic.
func (s *Sender) sendBeats(only *Service) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	svcs := s.services
	if only != nil {
		svcs = []*Service{only}
	}
	if len(svcs) == 0 {
		s.mu.Unlock()
		return
	}
	sec, usec := timeParts(s.now())
	beats := make([]beat, 0, len(svcs))
	var dests []flow.Flow
	for _, svc := range svcs {
		beats = append(beats, beat{id: svc.id, sec: sec, usec: usec, checkpoint: svc.checkpoint.Load()})
		for _, f := range [2]flow.Flow{svc.monitor, svc.notify} {
			if f != nil && !slices.Contains(dests, f) {
				dests = append(dests, f)
			}
		}
	}
	s.mu.Unlock()
	for chunk := range slices.Chunk(beats, maxBeatsPerSequence) {
		q := smartbeatSequence(chunk)
		for _, f := range dests {
			setReportingIP(q, f.LocalAddr())
			if err := f.Send(q); err != nil {
				s.log.Debug("smartbeat not sent", "err", err, "flow", fmt.Sprintf("%v", f.LocalAddr()))
				continue
			}
			s.sent.Add(1)
		}
	}
}

// acquire returns the shared flow for address a, opening it on first use.
// fresh is true when this call opened it.
func (s *Sender) acquire(a flow.Address) (mf *managedFlow, fresh bool, err error) {
	key := a.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false, ErrSenderClosed
	}
	if mf := s.flows[key]; mf != nil {
		mf.refs++
		return mf, false, nil
	}
	ap, err := a.HostAddrPort() // a "tls:" address is dialled with TLS below
	if err != nil {
		return nil, false, err
	}
	mf = &managedFlow{key: key, refs: 1}
	opts := s.flowOpts
	if opts.Name == "" {
		opts.Name = "smartbeat " + key
	}
	switch a.Protocol {
	case flow.TCP:
		user := opts.OnConnect // the application's, from SenderOptions.Flow
		opts.OnConnect = func(p flow.Peer) {
			if mf.connects.Add(1) > 1 {
				s.reconnected(mf)
			}
			if user != nil {
				user(p)
			}
		}
		// Flow.TLS (the CAs to trust, a client certificate for mutual
		// TLS) is for "tls:" addresses only: a plain "tcp:" monitor
		// cannot speak TLS. A "tls:" address without one trusts the
		// system's roots.
		switch {
		case !a.TLS:
			opts.TLS = nil
		case opts.TLS == nil:
			opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		t, err := flow.DialTCP(ap.String(), opts)
		if err != nil {
			return nil, false, err
		}
		mf.fl, mf.tcp = t, t
	case flow.UDP, flow.Multicast:
		u, err := flow.NewUDP(flow.UDPConfig{Destination: ap.String()}, opts)
		if err != nil {
			return nil, false, err
		}
		mf.fl = u
	default:
		return nil, false, fmt.Errorf("smartbeat: address %v: protocol %v cannot carry notifications (use tcp, tls, udp or multicast)", a, a.Protocol)
	}
	s.flows[key] = mf
	return mf, true, nil
}

// release drops a reference to mf and closes it with the last one, after
// delivering what was queued (at most the flow's CloseTimeout).
func (s *Sender) release(mf *managedFlow) error {
	if mf == nil {
		return nil
	}
	s.mu.Lock()
	mf.refs--
	last := mf.refs == 0
	if last {
		delete(s.flows, mf.key)
	}
	s.mu.Unlock()
	if !last {
		return nil
	}
	return mf.fl.Close()
}

// reconnected runs when a managed TCP flow connects again: the monitor
// may have restarted and forgotten everything, and it keys services by
// connection anyway, so every service on the flow announces itself again
// (CREATE with its current state, then STATE). The C library does not,
// and its services vanish from a restarted monitor.
func (s *Sender) reconnected(mf *managedFlow) {
	s.mu.Lock()
	var svcs []*Service
	for _, svc := range s.services {
		if svc.monitor == mf.fl || svc.notify == mf.fl {
			svcs = append(svcs, svc)
		}
	}
	s.mu.Unlock()
	for _, svc := range svcs {
		svc.announce(mf.fl)
	}
}

// waitConnected waits up to d for a fresh TCP flow to connect.
func (mf *managedFlow) waitConnected(d time.Duration) {
	if mf == nil || mf.tcp == nil || d <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	mf.tcp.WaitConnected(ctx)
}

// sendTo sends q to f with the reporting IP of f; errors are logged.
func sendTo(log *slog.Logger, f flow.Flow, q *seq.Sequence) {
	setReportingIP(q, f.LocalAddr())
	if err := f.Send(q); err != nil {
		log.Debug("notification not sent", "err", err, "seq", q.Name)
	}
}
