package smartbeat

import (
	"errors"
	"net/netip"
	"sync"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
)

// ErrMonitorClosed is returned by the Serve methods of a closed Monitor.
var ErrMonitorClosed = errors.New("smartbeat: monitor closed")

// Monitor tracks services as stkhttpd does (PROTOCOL.md §9.1) and detects
// their failures. Feed it with the Serve methods, or call Handle from flows
// of your own. All methods are safe for concurrent use.
type Monitor struct {
	cfg MonitorConfig
	mu  sync.Mutex
}

// NewMonitor returns a monitor with no listeners yet; add them with
// ServeTCP, ServeUDP and ServeMulticast. When cfg names a name server, the
// monitor registers cfg.Name there as soon as it has a listener.
func NewMonitor(cfg MonitorConfig) (*Monitor, error) {
	return &Monitor{cfg: cfg}, nil
}

// ServeTCP accepts STK TCP connections on addr ("ip:port"; port 0 picks one)
// and returns the bound address.
func (m *Monitor) ServeTCP(addr string) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("smartbeat: not implemented yet")
}

// ServeUDP receives STK-UDP datagrams on addr ("ip:port") and returns the
// bound address.
func (m *Monitor) ServeUDP(addr string) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("smartbeat: not implemented yet")
}

// ServeMulticast joins the group of groupPort ("group[:port]", port
// DefaultMonitorPort by default) and receives the STK-UDP datagrams sent to
// it.
func (m *Monitor) ServeMulticast(groupPort string) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("smartbeat: not implemented yet")
}

// Handle ingests one received sequence; from identifies the sender. It is
// the monitor's protocol core, the Handler of the flows the Serve methods
// open.
func (m *Monitor) Handle(from flow.Peer, s *seq.Sequence) {}

// Check runs the timeout check now (stkhttpd also checks on every data
// page request). The periodic check runs without it.
func (m *Monitor) Check() {}

// Services returns the current records, oldest first.
func (m *Monitor) Services() []ServiceView { return nil }

// History returns the history records (destroyed, displaced, timed out),
// oldest first.
func (m *Monitor) History() []ServiceView { return nil }

// Groups returns the service groups named by records, sorted by name.
func (m *Monitor) Groups() []GroupView { return nil }

// Stats returns the monitor's counters.
func (m *Monitor) Stats() MonitorStats { return MonitorStats{} }

// Snapshot returns the lists and counters at one instant, with the sequence
// number of the latest event they include.
func (m *Monitor) Snapshot() Snapshot { return Snapshot{} }

// Subscribe calls fn for every later event, in order, on a goroutine of
// its own (one per subscription), so a slow fn never delays the monitor. Up
// to MonitorConfig.EventBuffer events wait for fn; beyond that events are
// dropped for this subscriber, which sees a gap in Event.Seq and can fetch
// what it missed with EventsSince. cancel stops the deliveries; it may be
// called from fn and more than once.
func (m *Monitor) Subscribe(fn func(Event)) (cancel func()) { return func() {} }

// EventsSince returns the events after sequence number seq, oldest first.
// ok is false when the ring no longer holds all of them (the caller must
// start again from a Snapshot); events then holds what is left.
func (m *Monitor) EventsSince(seq uint64) (events []Event, ok bool) { return nil, true }

// Close stops the listeners, the checks and the subscriptions, and
// withdraws the name registration (the name lingers on the server).
func (m *Monitor) Close() error { return nil }
