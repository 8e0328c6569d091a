package smartbeat

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
)

// Defaults of this package. Each is STK's value unless its comment says
// otherwise.
const (
	// DefaultPeriod is the smartbeat period (STK_SMB_TIMER_IVL).
	DefaultPeriod = 500 * time.Millisecond
	// DefaultActivityTimeout is a service's activity timeout: a receiver
	// declares it failed after this long without a smartbeat.
	DefaultActivityTimeout = 1200 * time.Millisecond
	// DefaultMonitorPort is the web monitor's data port (TCP and UDP).
	DefaultMonitorPort = 20001
	// DefaultMonitorName is the name the monitor registers.
	DefaultMonitorName = "monitor"
	// DefaultMonitorLinger is the linger of the monitor's registration.
	DefaultMonitorLinger = 300 * time.Second
	// DefaultRefreshInterval is how often the monitor registers again.
	DefaultRefreshInterval = 30 * time.Second
	// DefaultGroupCheckInterval is how often a service group looks for
	// members that timed out.
	DefaultGroupCheckInterval = 500 * time.Millisecond
	// DefaultCheckInterval is how often the monitor looks for services that
	// timed out. C's stkhttpd checks every 800 ms; a shorter period costs
	// little and detects failures up to 700 ms sooner.
	DefaultCheckInterval = 100 * time.Millisecond
	// DefaultStallThreshold: a check that comes this much later than its
	// period means the monitor was stalled (descheduled, paused, swapping).
	DefaultStallThreshold = 250 * time.Millisecond
	// DefaultMaxHistory bounds the history list (C: 100, badly, docs/differences.md B7).
	DefaultMaxHistory = 1000
	// DefaultMaxStateHistory bounds each record's state history.
	DefaultMaxStateHistory = 32
	// DefaultEventBuffer is the size of the event ring kept for
	// EventsSince, and of each subscriber's queue.
	DefaultEventBuffer = 4096
	// DefaultConnectWait bounds how long NewService waits for a new TCP
	// monitoring connection, so that the CREATE carries the local address
	// (§8.3). The service works regardless; the CREATE waits in the queue.
	DefaultConnectWait = 250 * time.Millisecond
	// DefaultLookupTimeout bounds the name-service lookup of a
	// "lookup:name" monitor address.
	DefaultLookupTimeout = 2 * time.Second
	// DefaultNameServer is where "lookup:" addresses are resolved when no
	// client is given.
	DefaultNameServer = "tcp:127.0.0.1:20002"
)

// Options configure a Service. The zero value makes a service of type Data
// that reports nowhere; set Monitor (or MonitorFlow) to have it monitored.
type Options struct {
	// ID is the service id; 0 picks a random 31-bit one, as the C examples.
	ID uint64
	// Type is the service type; 0 means TypeData.
	Type ServiceType
	// ActivityTimeout is how long receivers wait for a smartbeat before
	// declaring the service failed; whole milliseconds on the wire. Default
	// DefaultActivityTimeout (1.2 s). It may not be shorter than the
	// sender's period (C refuses that too).
	ActivityTimeout time.Duration

	// Monitor is the monitoring address: "tcp:ip:port", "udp:ip:port",
	// "multicast:group:port", "tls:ip:port" (a monitor's ServeTLS; see
	// SenderOptions.Flow.TLS) or "lookup:name" (see package doc; C's
	// stkhttpd is "tcp:127.0.0.1:20001"). "" and no MonitorFlow: the
	// service is not monitored. Services of one Sender with the same
	// address share one flow, as the services of a C environment share its
	// monitoring flow.
	Monitor string
	// MonitorFlow is an existing monitoring flow; it wins over Monitor. The
	// service never closes it.
	MonitorFlow flow.Flow
	// Notify is the notification address, normally a service group; same
	// forms as Monitor.
	Notify string
	// NotifyFlow is an existing notification flow, typically the data
	// connection to a service group's server (in-band notifications,
	// §8.6); it wins over Notify. The service never closes it.
	NotifyFlow flow.Flow

	// OnStateChange is called on every state change (SetState, Close),
	// synchronously, after the notifications are sent.
	OnStateChange func(svc *Service, old, new State)
	// StateNames names application states (and may rename default ones);
	// see Service.SetStateName.
	StateNames map[State]string

	// Sender sends the service's smartbeats; nil means DefaultSender(),
	// shared by the whole process.
	Sender *Sender

	// NameServer resolves "lookup:" addresses; nil dials NameServerAddr for
	// the lookup and closes it after.
	NameServer *namesvc.Client
	// NameServerAddr is the name server of lookups when NameServer is nil;
	// default DefaultNameServer.
	NameServerAddr string
	// LookupTimeout bounds a lookup; default DefaultLookupTimeout.
	LookupTimeout time.Duration
	// ConnectWait bounds the wait for a new TCP monitoring connection (see
	// DefaultConnectWait); negative: do not wait.
	ConnectWait time.Duration

	// Logger receives the service's log lines; default slog.Default().
	Logger *slog.Logger

	// groupName is set for the mirrors of a service group: their CREATE to
	// the monitor carries it (0x8110).
	groupName string
	// mirror: a service group's copy of a remote service, which takes the
	// remote's activity timeout as it is.
	mirror bool
	// checkpoint is the initial checkpoint (mirrors).
	checkpoint uint64
}

// SenderOptions configure a Sender.
type SenderOptions struct {
	// Period is the smartbeat period; default DefaultPeriod (500 ms).
	// Negative: no periodic smartbeats, only the one sent when a service
	// is added and those of SendNow (tests).
	Period time.Duration
	// Now is the clock of the smartbeat timestamps; default time.Now.
	Now func() time.Time
	// Flow is the base of the options of the flows the Sender opens for
	// monitor and notification addresses. Unless set, their outbound queue
	// is small (256 KiB) and drops instead of waiting, so a dead monitor
	// never blocks the application or the smartbeat timer. Flow.TLS
	// configures the flows to "tls:" addresses (the CAs to trust and, for
	// a monitor asking for mutual TLS, the client certificate:
	// flow.NewClientTLS builds it from files); other flows ignore it.
	Flow flow.Options
	// Logger receives the sender's log lines; default slog.Default().
	Logger *slog.Logger
}

// GroupOptions configure a service Group. Every callback runs
// synchronously on the goroutine that caused it (Invoke's caller, or the
// group's timeout checker) and must not block for long.
type GroupOptions struct {
	// OnAdded is called when a member joins (a CREATE was received).
	OnAdded func(g *Group, m *Member)
	// OnRemoved is called when a member leaves: destroyed, replaced, or
	// timed out (then after OnTimedOut).
	OnRemoved func(g *Group, m *Member)
	// OnTimedOut is called when a member's smartbeats stopped for its
	// activity timeout; its mirror is then destroyed with state TimedOut.
	OnTimedOut func(g *Group, m *Member)
	// OnSmartbeat is called for every smartbeat of a member.
	OnSmartbeat func(g *Group, m *Member)
	// OnStateChange is called when a member's state changes.
	OnStateChange func(g *Group, m *Member, old, new State)

	// Monitor, MonitorFlow: where the mirror services report, with the
	// group name in their CREATE (the C group passes its options on to the
	// services it creates). Empty: the mirrors report nowhere.
	Monitor     string
	MonitorFlow flow.Flow
	// Sender sends the mirrors' smartbeats; nil means DefaultSender().
	Sender *Sender
	// NameServer, NameServerAddr: to resolve a "lookup:" Monitor.
	NameServer     *namesvc.Client
	NameServerAddr string

	// CheckInterval is how often members are checked for timeouts; default
	// DefaultGroupCheckInterval (500 ms, as C). Negative: never (tests call
	// Check).
	CheckInterval time.Duration
	// StallThreshold: see MonitorConfig.StallThreshold.
	StallThreshold time.Duration
	// Now is the group's receive clock; default time.Now.
	Now func() time.Time
	// Logger receives the group's log lines; default slog.Default().
	Logger *slog.Logger

	// manualChecks keeps CheckInterval for stall detection but runs no
	// checker (tests call check with an injected clock).
	manualChecks bool
}

// PhiConfig configures the φ-accrual failure detectors of the monitor
// (Hayashibara et al., "The φ Accrual Failure Detector", 2004; the
// parameters are those of Akka's implementation).
//
// For each record the detector keeps the last WindowSize intervals between
// smartbeats, on the monitor's clock. φ(t) = -log10(P(interval > t)) for
// the normal distribution of those intervals, shifted by AcceptablePause
// and widened to at least MinStdDev. A record is declared failed when φ
// exceeds Threshold, after MinSamples intervals.
//
// The defaults never fire before the fixed activity timeout of a default
// service (1.2 s; with 500 ms beats φ reaches 8 after about 2 s of
// silence): the φ detector catches services whose activity timeout is long
// for the rate at which they actually beat, and grows tolerant of services
// that are irregular.
type PhiConfig struct {
	// Threshold is the φ at which a record is declared failed. Default 8
	// (a false positive rate near 1e-8 when intervals are normal).
	// Negative: the φ detector never declares anything (φ is still shown).
	Threshold float64
	// MinStdDev is the smallest standard deviation used, so that very
	// regular senders are not declared failed by a few ms of jitter.
	// Default 100 ms.
	MinStdDev time.Duration
	// AcceptablePause is added to the mean interval: the silence tolerated
	// beyond what the history predicts (GC pauses, short network glitches).
	// Default 1 s.
	AcceptablePause time.Duration
	// WindowSize is how many intervals are kept. Default 100.
	WindowSize int
	// MinSamples is how many intervals are needed before φ may declare a
	// failure. Default 3.
	MinSamples int
}

// MonitorConfig configures a Monitor. The zero value works: no name-service
// registration, default timing.
type MonitorConfig struct {
	// Name is the name registered with the name service; default
	// DefaultMonitorName ("monitor").
	Name string
	// NameServer registers the name with an existing client, which the
	// monitor does not close. When nil, NameServerAddr is dialled (and
	// closed by Close); when both are empty, the monitor registers nothing.
	NameServer     *namesvc.Client
	NameServerAddr string
	// NameServerTLS configures the client dialled for a "tls:ip:port"
	// NameServerAddr: the CAs to trust and, for a name server asking for
	// mutual TLS, the client certificate (flow.NewClientTLS builds it from
	// files). nil: the system's roots, no certificate. Other addresses
	// ignore it.
	NameServerTLS *tls.Config
	// Linger is the linger of the registration; default
	// DefaultMonitorLinger (300 s, stkhttpd's -L).
	Linger time.Duration
	// RefreshInterval is how often the registration is sent again; default
	// DefaultRefreshInterval (30 s). The namesvc client also sends it again
	// after every reconnect.
	RefreshInterval time.Duration
	// AdvertiseHost is the IP registered (in the 0x1000/0x1001 meta-data
	// strings) for listeners bound to 0.0.0.0; default: the address of
	// this host's interface toward the name server, else its primary
	// address (flow.AdvertiseIP). Listeners bound to a specific IP are
	// registered at that IP; multicast groups as they are.
	AdvertiseHost string

	// CheckInterval is how often records are checked for timeouts; default
	// DefaultCheckInterval. Negative: never (tests drive checks by hand).
	CheckInterval time.Duration
	// StallThreshold: a check that comes later than CheckInterval plus this
	// means the monitor itself was stalled; every deadline is then
	// extended by the lateness instead of timing services out for the
	// monitor's own fault. Default DefaultStallThreshold.
	StallThreshold time.Duration
	// Phi configures the φ-accrual detectors.
	Phi PhiConfig
	// DefaultActivityTimeout applies to records whose INST gives none (0).
	// Default DefaultActivityTimeout.
	DefaultActivityTimeout time.Duration

	// MaxHistory bounds the history: the oldest record is evicted when a
	// new one arrives at the bound, whatever the reason it is there.
	// Default DefaultMaxHistory.
	MaxHistory int
	// MaxStateHistory bounds each record's state history. Default
	// DefaultMaxStateHistory.
	MaxStateHistory int
	// MaxRecordsPerSource bounds the current records of one source: a TCP
	// connection, or a UDP/multicast peer ip:port. A CREATE beyond it is
	// refused (MonitorStats.Refused), so that one peer cannot fill the
	// monitor. Default DefaultMaxRecordsPerSource.
	MaxRecordsPerSource int
	// MaxRecords bounds the current records of all sources together; a
	// CREATE beyond it is refused. Default DefaultMaxRecords.
	MaxRecords int
	// EventBuffer is the number of events kept for EventsSince and queued
	// per subscriber. Default DefaultEventBuffer.
	EventBuffer int

	// Now is the monitor's clock; default time.Now. Tests inject a fake.
	Now func() time.Time
	// Flow is the base of the options of the flows the Serve methods open
	// (Handler and connection callbacks are the monitor's own). Unset, its
	// MaxSequenceSize is DefaultMaxNotificationSize, and its TCP
	// listeners close connections silent for DefaultMonitorIdleTimeout or
	// holding an incomplete frame for DefaultMonitorFrameTimeout, and take
	// at most DefaultMonitorMaxConnsPerIP from one address (a negative
	// value turns each off).
	Flow flow.Options
	// Logger receives the monitor's log lines; default slog.Default().
	Logger *slog.Logger

	// manualChecks keeps CheckInterval for stall detection but runs no
	// check loop: tests call tick with an injected clock.
	manualChecks bool
}
