package httpd

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
)

// The JSON documents of the API. Times are RFC 3339 strings (null when
// unknown), durations are float milliseconds in fields ending in _ms,
// 64-bit ids are also given in hex.

// ServiceJSON is one service record (smartbeat.ServiceView).
type ServiceJSON struct {
	UID uint64 `json:"uid"`
	// Node is the cluster node whose monitor holds the record (stkd
	// --cluster); omitted otherwise.
	Node     string `json:"node,omitempty"`
	Key      string `json:"key"`
	ID       uint64 `json:"id"`
	HexID    string `json:"hid"`
	Name     string `json:"name"`
	Type     uint16 `json:"type"`
	TypeName string `json:"type_name"`
	// State is the number; StateName the name the service reported (or
	// the default name); StateDefault the default name of the number ("" for
	// application states).
	State        uint8  `json:"state"`
	StateName    string `json:"state_name"`
	StateDefault string `json:"state_default"`
	Group        string `json:"group"`

	Checkpoint        uint64  `json:"checkpoint"`
	ActivityTimeoutMS float64 `json:"activity_timeout_ms"`

	Peer     string `json:"peer"` // "ip:port", "" if unknown
	Host     string `json:"host"`
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"`

	Created      *time.Time `json:"created"`
	LastBeat     *time.Time `json:"last_beat"`     // the sender's clock
	LastReceived *time.Time `json:"last_received"` // the monitor's clock
	Beats        uint64     `json:"beats"`
	IntervalMS   float64    `json:"interval_ms"`
	StdDevMS     float64    `json:"stddev_ms"`
	Phi          *float64   `json:"phi"` // null when not finite

	Current       bool         `json:"current"`
	Ended         *time.Time   `json:"ended"`
	EndReason     string       `json:"end_reason"` // "", "destroyed", "displaced", "timed out"
	Displaced     bool         `json:"displaced"`
	Inactive      bool         `json:"inactive"`
	Destroyed     bool         `json:"destroyed"`
	Verdict       *VerdictJSON `json:"verdict"`
	Resurrections int          `json:"resurrections"`
	// States is the state history, oldest first; omitted in beat
	// events (unchanged by a smartbeat).
	States []StateJSON `json:"states,omitempty"`

	// BeatIntervals are the latest intervals between smartbeats seen by
	// this server, oldest first, in ms (the sparkline). Not in events:
	// a client appends the "intervals_ms" of each event (see the package
	// documentation, Live updates).
	BeatIntervals []float64 `json:"beat_intervals_ms,omitempty"`
}

// VerdictJSON says why a record was declared failed.
type VerdictJSON struct {
	Detector          string    `json:"detector"`
	At                time.Time `json:"at"`
	SilenceMS         float64   `json:"silence_ms"`
	ActivityTimeoutMS float64   `json:"activity_timeout_ms"`
	Phi               *float64  `json:"phi"`
	PhiThreshold      *float64  `json:"phi_threshold"`
	IntervalMS        float64   `json:"interval_ms"`
	StdDevMS          float64   `json:"stddev_ms"`
	Samples           int       `json:"samples"`
	StallCreditMS     float64   `json:"stall_credit_ms"`
	Reason            string    `json:"reason"`
}

// StateJSON is one entry of a record's state history.
type StateJSON struct {
	At    time.Time `json:"at"`
	State uint8     `json:"state"`
	Name  string    `json:"name"`
}

// EventJSON is the data of a monitor event on the event stream.
type EventJSON struct {
	Seq     uint64      `json:"seq"`
	Kind    string      `json:"kind"`
	At      time.Time   `json:"at"`
	Service ServiceJSON `json:"service"`
}

// SnapshotJSON is /api/v1/snapshot: what the Services page loads before
// it follows /api/v1/events?since=seq.
type SnapshotJSON struct {
	Instance string           `json:"instance"`
	Seq      uint64           `json:"seq"`
	Now      time.Time        `json:"now"`
	Services []ServiceJSON    `json:"services"`
	History  []ServiceJSON    `json:"history"`
	Stats    MonitorStatsJSON `json:"stats"`
}

// GroupJSON is one service group.
type GroupJSON struct {
	Name    string        `json:"name"`
	Current []ServiceJSON `json:"current"`
	History int           `json:"history"`
}

// MonitorStatsJSON are the monitor's counters (smartbeat.MonitorStats).
type MonitorStatsJSON struct {
	Started         *time.Time `json:"started"`
	Current         int        `json:"current"`
	History         int        `json:"history"`
	Sequences       uint64     `json:"sequences"`
	Notifications   uint64     `json:"notifications"`
	Smartbeats      uint64     `json:"smartbeats"`
	Beats           uint64     `json:"beats"`
	UnknownBeats    uint64     `json:"unknown_beats"`
	Ignored         uint64     `json:"ignored"`
	Malformed       uint64     `json:"malformed"`
	Created         uint64     `json:"created"`
	Destroyed       uint64     `json:"destroyed"`
	Displaced       uint64     `json:"displaced"`
	TimedOut        uint64     `json:"timed_out"`
	TimedOutByPhi   uint64     `json:"timed_out_by_phi"`
	Resurrected     uint64     `json:"resurrected"`
	Evicted         uint64     `json:"evicted"`
	Stalls          uint64     `json:"stalls"`
	StallTimeMS     float64    `json:"stall_time_ms"`
	LastEvent       uint64     `json:"last_event"`
	EventsDropped   uint64     `json:"events_dropped"`
	Registered      bool       `json:"registered"`
	RegistrationErr string     `json:"registration_error"`
	Listeners       []string   `json:"listeners"`
}

// NameJSON is one registration (namesvc.Entry).
type NameJSON struct {
	Name        string         `json:"name"`
	Group       string         `json:"group"`
	Addresses   []EndpointJSON `json:"addresses"`
	LingerMS    float64        `json:"linger_ms"`
	FT          string         `json:"ft"`
	Meta        []MetaJSON     `json:"meta"`
	Registrant  string         `json:"registrant"`
	Transport   string         `json:"transport"`
	Registered  *time.Time     `json:"registered"`
	Lingering   bool           `json:"lingering"`
	Expires     *time.Time     `json:"expires"`
	Subscribers int            `json:"subscribers"`
}

// EndpointJSON is one registered address.
type EndpointJSON struct {
	Protocol string `json:"protocol"`
	Addr     string `json:"addr"`
	Text     string `json:"text"` // "[protocol:]ip:port"
}

// MetaJSON is one meta-data element of a registration.
type MetaJSON struct {
	Type string `json:"type"` // user type, hex
	Len  int    `json:"len"`
	Text string `json:"text,omitempty"` // the data as a C string, when printable
}

// NamesJSON is /api/v1/names: one page of the registrations, sorted by
// group, name and registration order.
type NamesJSON struct {
	Now    time.Time `json:"now"`
	Query  string    `json:"q"`
	Prefix string    `json:"prefix"`
	Limit  int       `json:"limit"` // the page size used
	Total  int       `json:"total"` // registrations stored
	// Matches counts the registrations matching q, prefix and group; -1
	// when not counted (a later page, or a search of a store larger than
	// one page's scan can cover).
	Matches int `json:"matches"`
	// Truncated is set when more pages follow: NextCursor fetches the
	// next one (?cursor=). A search that examined its bound of names
	// without filling the page also gives a cursor to go on.
	Truncated  bool       `json:"truncated"`
	NextCursor string     `json:"next_cursor"`
	Scanned    int        `json:"scanned"` // registrations examined for this page
	Names      []NameJSON `json:"names"`
}

// NamesStatsJSON are the name server's counters (namesvc.ServerStats).
type NamesStatsJSON struct {
	ID            string `json:"id"`
	Registrations int    `json:"registrations"`
	Lingering     int    `json:"lingering"`
	Subscriptions int    `json:"subscriptions"`
	Clients       int    `json:"clients"`
	Registers     uint64 `json:"registers"`
	Lookups       uint64 `json:"lookups"`
	Subscribes    uint64 `json:"subscribes"`
	Answers       uint64 `json:"answers"`
	Keepalives    uint64 `json:"keepalives"`
	Rejected      uint64 `json:"rejected"`
}

// FlowJSON is one data flow.
type FlowJSON struct {
	Name          string `json:"name"`
	Protocol      string `json:"protocol"`
	Addr          string `json:"addr"`
	SequencesIn   uint64 `json:"sequences_in"`
	SequencesOut  uint64 `json:"sequences_out"`
	BytesIn       uint64 `json:"bytes_in"`
	BytesOut      uint64 `json:"bytes_out"`
	Dropped       uint64 `json:"dropped"`
	SlowConsumers uint64 `json:"slow_consumers"`
	Malformed     uint64 `json:"malformed"`
	Reconnects    uint64 `json:"reconnects"`
	Connections   int    `json:"connections"`
	AcceptErrors  uint64 `json:"accept_errors"`
	Refused       uint64 `json:"refused"`
	TimedOut      uint64 `json:"timed_out"`
	Error         string `json:"error,omitempty"` // why the flow cannot serve now
}

// DaemonJSON describes the daemon process.
type DaemonJSON struct {
	Version        string    `json:"version"`
	Started        time.Time `json:"started"`
	UptimeMS       float64   `json:"uptime_ms"`
	GoVersion      string    `json:"go_version"`
	OS             string    `json:"os"`
	Arch           string    `json:"arch"`
	NumCPU         int       `json:"num_cpu"`
	GOMAXPROCS     int       `json:"gomaxprocs"`
	Goroutines     uint64    `json:"goroutines"`
	HeapBytes      uint64    `json:"heap_bytes"`  // live and unswept heap objects
	TotalBytes     uint64    `json:"total_bytes"` // all memory mapped by the Go runtime
	GCCycles       uint64    `json:"gc_cycles"`
	AllocatedBytes uint64    `json:"allocated_bytes"` // cumulative
}

// HTTPStatsJSON are this server's own counters.
type HTTPStatsJSON struct {
	StreamClients int    `json:"stream_clients"`
	StreamDropped uint64 `json:"stream_dropped"`
	StreamResets  uint64 `json:"stream_resets"`
	EventsSent    uint64 `json:"events_sent"`
}

// ComponentsJSON says which components run in the daemon.
type ComponentsJSON struct {
	Monitor bool `json:"monitor"`
	Names   bool `json:"names"`
	Flows   bool `json:"flows"`
	Steps   bool `json:"steps"`
	Cluster bool `json:"cluster"`
}

// StatsJSON is /api/v1/stats and the data of the "stats" event. A
// component that is not running is null.
type StatsJSON struct {
	Instance   string            `json:"instance"`
	Now        time.Time         `json:"now"`
	Components ComponentsJSON    `json:"components"`
	Daemon     DaemonJSON        `json:"daemon"`
	Monitor    *MonitorStatsJSON `json:"monitor"`
	Names      *NamesStatsJSON   `json:"names"`
	Flows      []FlowJSON        `json:"flows"`
	HTTP       HTTPStatsJSON     `json:"http"`
	// Cluster is the node's view of the cluster; null without one.
	Cluster *ClusterJSON `json:"cluster"`
}

// ---- conversions ----

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func finite(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

func serviceJSON(v *smartbeat.ServiceView) ServiceJSON {
	def, _ := v.State.DefaultName()
	j := ServiceJSON{
		UID: v.UID, Node: v.Node, Key: v.Key, ID: v.ID, HexID: fmt.Sprintf("%#x", v.ID), Name: v.Name,
		Type: uint16(v.Type), TypeName: v.Type.String(),
		State: uint8(v.State), StateName: v.StateName, StateDefault: def, Group: v.GroupName,
		Checkpoint: v.Checkpoint, ActivityTimeoutMS: ms(v.ActivityTimeout),
		Protocol: v.Protocol,
		Created:  timePtr(v.Created), LastBeat: timePtr(v.LastBeat), LastReceived: timePtr(v.LastReceived),
		Beats: v.Beats, IntervalMS: ms(v.Interval), StdDevMS: ms(v.StdDev), Phi: finite(v.Phi),
		Current: v.Current, Ended: timePtr(v.Ended), EndReason: v.EndReason.String(),
		Displaced: v.Displaced, Inactive: v.Inactive, Destroyed: v.Destroyed,
		Resurrections: v.Resurrections,
	}
	if j.StateName == "" {
		j.StateName = v.State.String()
	}
	if v.Peer.IsValid() {
		j.Peer = v.Peer.String()
		j.Host = v.Peer.Addr().Unmap().String()
		j.Port = v.Peer.Port()
	}
	if vd := v.Verdict; vd != nil {
		j.Verdict = &VerdictJSON{
			Detector: vd.Detector, At: vd.At, SilenceMS: ms(vd.Silence), ActivityTimeoutMS: ms(vd.ActivityTimeout),
			Phi: finite(vd.Phi), PhiThreshold: finite(vd.PhiThreshold), IntervalMS: ms(vd.Interval), StdDevMS: ms(vd.StdDev),
			Samples: vd.Samples, StallCreditMS: ms(vd.StallCredit), Reason: vd.Reason,
		}
	}
	for _, sc := range v.States {
		name := sc.Name
		if name == "" {
			name = sc.State.String()
		}
		j.States = append(j.States, StateJSON{At: sc.At, State: uint8(sc.State), Name: name})
	}
	return j
}

func monitorStatsJSON(st *smartbeat.MonitorStats) MonitorStatsJSON {
	l := st.Listeners
	if l == nil {
		l = []string{}
	}
	return MonitorStatsJSON{
		Started: timePtr(st.Started), Current: st.Current, History: st.History,
		Sequences: st.Sequences, Notifications: st.Notifications, Smartbeats: st.Smartbeats,
		Beats: st.Beats, UnknownBeats: st.UnknownBeats, Ignored: st.Ignored, Malformed: st.Malformed,
		Created: st.Created, Destroyed: st.Destroyed, Displaced: st.Displaced, TimedOut: st.TimedOut,
		TimedOutByPhi: st.TimedOutByPhi, Resurrected: st.Resurrected, Evicted: st.Evicted,
		Stalls: st.Stalls, StallTimeMS: ms(st.StallTime), LastEvent: st.LastEvent, EventsDropped: st.EventsDropped,
		Registered: st.Registered, RegistrationErr: st.RegistrationErr, Listeners: l,
	}
}

func nameJSON(e *namesvc.Entry) NameJSON {
	j := NameJSON{
		Name: e.Name, Group: e.Group, LingerMS: ms(e.Linger), FT: e.FT.String(),
		Addresses: make([]EndpointJSON, 0, len(e.Addresses)), Meta: make([]MetaJSON, 0, len(e.Meta)),
		Transport: e.Transport.String(), Registered: timePtr(e.Registered),
		Lingering: e.Lingering, Expires: timePtr(e.Expires), Subscribers: e.Subscribers,
	}
	if e.Transport == 0 {
		j.Transport = ""
	}
	if e.Registrant.IsValid() {
		j.Registrant = e.Registrant.String()
	}
	for _, a := range e.Addresses {
		ep := EndpointJSON{Protocol: a.Protocol, Text: a.String()}
		if a.Addr.IsValid() {
			ep.Addr = a.Addr.String()
		}
		j.Addresses = append(j.Addresses, ep)
	}
	for _, m := range e.Meta {
		mj := MetaJSON{Type: fmt.Sprintf("%#x", m.UserType), Len: len(m.Data)}
		if s := m.CString(); s != "" && printable(s) {
			mj.Text = s
		}
		j.Meta = append(j.Meta, mj)
	}
	return j
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

func namesStatsJSON(st *namesvc.ServerStats) NamesStatsJSON {
	return NamesStatsJSON{
		ID: fmt.Sprintf("%#x", st.ID), Registrations: st.Registrations, Lingering: st.Lingering,
		Subscriptions: st.Subscriptions, Clients: st.Clients, Registers: st.Registers, Lookups: st.Lookups,
		Subscribes: st.Subscribes, Answers: st.Answers, Keepalives: st.Keepalives, Rejected: st.Rejected,
	}
}

func flowJSON(f *FlowInfo) FlowJSON {
	j := FlowJSON{
		Name: f.Name, Protocol: f.Protocol,
		SequencesIn: f.Stats.SequencesIn, SequencesOut: f.Stats.SequencesOut,
		BytesIn: f.Stats.BytesIn, BytesOut: f.Stats.BytesOut, Dropped: f.Stats.Dropped,
		SlowConsumers: f.Stats.SlowConsumers, Malformed: f.Stats.Malformed,
		Reconnects: f.Stats.Reconnects, Connections: f.Stats.Connections,
		AcceptErrors: f.Stats.AcceptErrors, Refused: f.Stats.Refused, TimedOut: f.Stats.TimedOut, Error: f.Error,
	}
	if f.Addr.IsValid() {
		j.Addr = f.Addr.String()
	}
	return j
}

// runtimeSamples are read with runtime/metrics, which does not stop the
// world (runtime.ReadMemStats does).
var runtimeSampleNames = []string{
	"/sched/goroutines:goroutines",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/total:bytes",
	"/gc/cycles/total:gc-cycles",
	"/gc/heap/allocs:bytes",
}

func (s *Server) daemonJSON() DaemonJSON {
	now := s.cfg.Now()
	d := DaemonJSON{
		Version: s.cfg.Version, Started: s.cfg.Started, UptimeMS: ms(now.Sub(s.cfg.Started)),
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	samples := make([]metrics.Sample, len(runtimeSampleNames))
	for i, n := range runtimeSampleNames {
		samples[i].Name = n
	}
	metrics.Read(samples)
	val := func(i int) uint64 {
		if samples[i].Value.Kind() == metrics.KindUint64 {
			return samples[i].Value.Uint64()
		}
		return 0
	}
	d.Goroutines, d.HeapBytes, d.TotalBytes, d.GCCycles, d.AllocatedBytes = val(0), val(1), val(2), val(3), val(4)
	if d.Goroutines == 0 {
		d.Goroutines = uint64(runtime.NumGoroutine())
	}
	return d
}

func (s *Server) flows() []FlowJSON {
	if s.cfg.Flows == nil {
		return nil
	}
	fl := s.cfg.Flows()
	out := make([]FlowJSON, 0, len(fl))
	for i := range fl {
		out = append(out, flowJSON(&fl[i]))
	}
	return out
}

func (s *Server) stats() StatsJSON {
	st := StatsJSON{
		Instance: s.instance, Now: s.cfg.Now(),
		Components: ComponentsJSON{Monitor: s.cfg.Monitor != nil, Names: s.cfg.Names != nil, Flows: s.cfg.Flows != nil, Steps: s.cfg.Steps != nil,
			Cluster: s.cfg.Cluster != nil},
		Daemon:  s.daemonJSON(),
		Flows:   s.flows(),
		HTTP:    s.hub.httpStats(),
		Cluster: s.clusterStats(),
	}
	if m := s.cfg.Monitor; m != nil {
		ms := m.Stats()
		j := monitorStatsJSON(&ms)
		st.Monitor = &j
	}
	if n := s.cfg.Names; n != nil {
		ns := n.Stats()
		j := namesStatsJSON(&ns)
		st.Names = &j
	}
	return st
}

// ---- handlers ----

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// ErrorJSON is the body of every API error.
type ErrorJSON struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(ErrorJSON{Error: msg})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func (s *Server) needMonitor(w http.ResponseWriter) bool {
	if s.cfg.Monitor == nil {
		writeError(w, http.StatusServiceUnavailable, "the service monitor is not running in this daemon")
		return false
	}
	return true
}

func (s *Server) servicesJSON(views []smartbeat.ServiceView, spark bool) []ServiceJSON {
	out := make([]ServiceJSON, len(views))
	for i := range views {
		out[i] = serviceJSON(&views[i])
	}
	if spark {
		s.hub.addSparks(out)
	}
	return out
}

func (s *Server) snapshotJSON() SnapshotJSON {
	snap := s.cfg.Monitor.Snapshot()
	return SnapshotJSON{
		Instance: s.instance, Seq: snap.Seq, Now: s.cfg.Now(),
		Services: s.servicesJSON(snap.Services, true),
		History:  s.servicesJSON(snap.History, true),
		Stats:    monitorStatsJSON(&snap.Stats),
	}
}

func (s *Server) apiSnapshot(w http.ResponseWriter, r *http.Request) {
	if s.needMonitor(w) {
		writeJSON(w, http.StatusOK, s.snapshotJSON())
	}
}

// ServicesJSON is /api/v1/services and /api/v1/history.
type ServicesJSON struct {
	Seq      uint64        `json:"seq"`
	Now      time.Time     `json:"now"`
	Services []ServiceJSON `json:"services"`
}

// apiServices is GET /api/v1/services: the current records. On a node of
// a cluster, every node's (each with its "node"), ?node= selecting one.
func (s *Server) apiServices(w http.ResponseWriter, r *http.Request) {
	if !s.needMonitor(w) {
		return
	}
	snap := s.cfg.Monitor.Snapshot()
	if s.cfg.Cluster == nil {
		writeJSON(w, http.StatusOK, ServicesJSON{Seq: snap.Seq, Now: s.cfg.Now(), Services: s.servicesJSON(snap.Services, true)})
		return
	}
	writeJSON(w, http.StatusOK, ServicesJSON{Seq: snap.Seq, Now: s.cfg.Now(),
		Services: s.clusterServicesJSON(snap.Services, r.URL.Query().Get("node"))})
}

// HistoryJSON is /api/v1/history: a page of the history, newest first.
type HistoryJSON struct {
	Seq uint64    `json:"seq"`
	Now time.Time `json:"now"`
	// Total is the number of records in the history, matching or not.
	Total int `json:"total"`
	// Limit is the page size applied.
	Limit int `json:"limit"`
	// Next is the cursor of the next (older) page: pass it as ?cursor=.
	// "" when this is the last page.
	Next     string        `json:"next"`
	Services []ServiceJSON `json:"services"`
}

// historyPager is the paged history read of smartbeat.Monitor: a page
// costs its own records, not the whole history.
type historyPager interface {
	HistoryPage(q smartbeat.HistoryQuery) smartbeat.HistoryPage
}

// apiHistory is GET /api/v1/history?limit=&cursor=&name=&group=&state=: a
// page of at most limit records (default smartbeat.DefaultHistoryPage, at
// most smartbeat.MaxHistoryPage), newest first, older than cursor, whose
// name contains name (any case), of group, in state (number or name).
func (s *Server) apiHistory(w http.ResponseWriter, r *http.Request) {
	if !s.needMonitor(w) {
		return
	}
	v := r.URL.Query()
	if err := checkParams(v, "limit", "cursor", "name", "group", "state"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q := smartbeat.HistoryQuery{Limit: smartbeat.DefaultHistoryPage, Name: v.Get("name"), Group: v.Get("group"), State: v.Get("state")}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit=%q: want a number from 1 to %d", l, smartbeat.MaxHistoryPage))
			return
		}
		q.Limit = min(n, smartbeat.MaxHistoryPage)
	}
	if c := v.Get("cursor"); c != "" {
		n, err := strconv.ParseUint(c, 10, 64)
		if err != nil || n == 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("cursor=%q: pass the \"next\" of the previous page", c))
			return
		}
		q.Before = n
	}
	var page smartbeat.HistoryPage
	if hp, ok := s.cfg.Monitor.(historyPager); ok {
		page = hp.HistoryPage(q)
	} else {
		page = pageViews(s.cfg.Monitor.Snapshot(), q)
	}
	out := HistoryJSON{Seq: page.Seq, Now: s.cfg.Now(), Total: page.Total, Limit: q.Limit, Services: s.servicesJSON(page.Records, true)}
	if page.Next != 0 {
		out.Next = strconv.FormatUint(page.Next, 10)
	}
	writeJSON(w, http.StatusOK, out)
}

// pageViews pages a snapshot's history for a Monitor without HistoryPage
// (it copies the whole history: only for other implementations of
// Monitor). Its cursor is a position in the history plus one.
func pageViews(snap smartbeat.Snapshot, q smartbeat.HistoryQuery) smartbeat.HistoryPage {
	h := snap.History
	page := smartbeat.HistoryPage{Seq: snap.Seq, Total: len(h)}
	end := len(h)
	if q.Before > 0 && q.Before-1 < uint64(end) {
		end = int(q.Before - 1)
	}
	name := strings.ToLower(q.Name)
	for i := end - 1; i >= 0; i-- {
		v := &h[i]
		if q.Group != "" && v.GroupName != q.Group || name != "" && !strings.Contains(strings.ToLower(v.Name), name) ||
			q.State != "" && strconv.Itoa(int(v.State)) != q.State && !strings.EqualFold(v.StateName, q.State) {
			continue
		}
		if len(page.Records) == q.Limit {
			page.Next = uint64(i + 2) // the record after i is the last one returned
			break
		}
		page.Records = append(page.Records, *v)
	}
	return page
}

// findService looks uid up among the current records, then in history.
func (s *Server) findService(uid uint64) (smartbeat.ServiceView, bool) {
	snap := s.cfg.Monitor.Snapshot()
	for _, l := range [][]smartbeat.ServiceView{snap.Services, snap.History} {
		for i := range l {
			if l[i].UID == uid {
				return l[i], true
			}
		}
	}
	return smartbeat.ServiceView{}, false
}

func (s *Server) apiService(w http.ResponseWriter, r *http.Request) {
	if !s.needMonitor(w) {
		return
	}
	uid, err := strconv.ParseUint(r.PathValue("uid"), 10, 64)
	if err != nil {
		writeError(w, http.StatusNotFound, "no such service: the uid is a decimal number")
		return
	}
	v, ok := s.findService(uid)
	if !ok {
		writeError(w, http.StatusNotFound, "no such service: "+strconv.FormatUint(uid, 10))
		return
	}
	j := []ServiceJSON{serviceJSON(&v)}
	s.hub.addSparks(j)
	writeJSON(w, http.StatusOK, j[0])
}

// GroupsJSON is /api/v1/groups.
type GroupsJSON struct {
	Now    time.Time   `json:"now"`
	Groups []GroupJSON `json:"groups"`
}

func (s *Server) apiGroups(w http.ResponseWriter, r *http.Request) {
	if !s.needMonitor(w) {
		return
	}
	gs := s.cfg.Monitor.Groups()
	out := GroupsJSON{Now: s.cfg.Now(), Groups: make([]GroupJSON, 0, len(gs))}
	for i := range gs {
		out.Groups = append(out.Groups, GroupJSON{Name: gs[i].Name, Current: s.servicesJSON(gs[i].Current, true), History: gs[i].History})
	}
	writeJSON(w, http.StatusOK, out)
}

// matchName reports whether e matches the lower-case query q: a substring
// of its name, group, an address or its registrant, case-insensitively.
func matchName(e *namesvc.Entry, q string) bool {
	if q == "" {
		return true
	}
	if strings.Contains(strings.ToLower(e.Name), q) || strings.Contains(strings.ToLower(e.Group), q) {
		return true
	}
	for _, a := range e.Addresses {
		if strings.Contains(strings.ToLower(a.String()), q) {
			return true
		}
	}
	return e.Registrant.IsValid() && strings.Contains(e.Registrant.String(), q)
}

// namesPager lists names a page at a time; *namesvc.Server does it from
// its ordered index. Other Names implementations are paged from a copy
// of Names().
type namesPager interface {
	NamesPage(namesvc.NamesQuery) (namesvc.NamesPage, error)
}

// apiNames serves one page of names: ?limit= (default 100, at most 1000
// and NamesLimit), ?cursor= (the next_cursor of the previous page),
// ?prefix= (names starting with it), ?q= (a substring of the name, group,
// an address or the registrant, any case), ?group= (one group; empty: the
// default group).
func (s *Server) apiNames(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Names == nil {
		writeError(w, http.StatusServiceUnavailable, "the name server is not running in this daemon")
		return
	}
	qv := r.URL.Query()
	maxLimit := min(s.cfg.NamesLimit, namesvc.MaxPageLimit)
	limit := min(namesvc.DefaultPageLimit, maxLimit)
	if v := qv.Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a page size from 1 to %d", v, maxLimit))
			return
		}
		limit = min(l, maxLimit)
	}
	_, groupGiven := qv["group"]
	query := namesvc.NamesQuery{
		Group: qv.Get("group"), HasGroup: groupGiven,
		Prefix:   qv.Get("prefix"),
		Contains: strings.TrimSpace(qv.Get("q")),
		Cursor:   qv.Get("cursor"),
		Limit:    limit,
	}
	var page namesvc.NamesPage
	var err error
	if p, ok := s.cfg.Names.(namesPager); ok {
		page, err = p.NamesPage(query)
	} else {
		page, err = pageNames(s.cfg.Names.Names(), query)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out := NamesJSON{Now: s.cfg.Now(), Query: query.Contains, Prefix: query.Prefix, Limit: limit,
		Total: page.Total, Matches: page.Matches, Truncated: page.Next != "", NextCursor: page.Next,
		Scanned: page.Scanned, Names: make([]NameJSON, 0, len(page.Entries))}
	for i := range page.Entries {
		out.Names = append(out.Names, nameJSON(&page.Entries[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

// pageNames pages a copy of the names, for a Names without NamesPage:
// the same filters, a cursor that is the offset of the next match.
func pageNames(all []namesvc.Entry, q namesvc.NamesQuery) (namesvc.NamesPage, error) {
	start := 0
	if q.Cursor != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(q.Cursor, "o"))
		if err != nil || n < 0 || !strings.HasPrefix(q.Cursor, "o") {
			return namesvc.NamesPage{}, namesvc.ErrBadCursor
		}
		start = n
	}
	lq := strings.ToLower(q.Contains)
	page := namesvc.NamesPage{Total: len(all), Entries: []namesvc.Entry{}}
	for i := range all {
		e := &all[i]
		page.Scanned++
		if q.HasGroup && e.Group != q.Group || !strings.HasPrefix(e.Name, q.Prefix) || !matchName(e, lq) {
			continue
		}
		if page.Matches++; page.Matches <= start {
			continue
		}
		if len(page.Entries) < q.Limit {
			page.Entries = append(page.Entries, *e)
		} else if page.Next == "" {
			page.Next = "o" + strconv.Itoa(start+len(page.Entries))
		}
	}
	return page, nil
}

// FlowsJSON is /api/v1/flows.
type FlowsJSON struct {
	Now   time.Time  `json:"now"`
	Flows []FlowJSON `json:"flows"`
}

func (s *Server) apiFlows(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Flows == nil {
		writeError(w, http.StatusServiceUnavailable, "data flows are not reported by this daemon")
		return
	}
	writeJSON(w, http.StatusOK, FlowsJSON{Now: s.cfg.Now(), Flows: s.flows()})
}

func (s *Server) apiStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.stats())
}
