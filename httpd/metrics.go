package httpd

import (
	"bytes"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
)

// prom writes the Prometheus text exposition format (version 0.0.4).
type prom struct{ b bytes.Buffer }

// family starts a metric family: its HELP and TYPE lines.
func (p *prom) family(name, typ, help string) {
	p.b.WriteString("# HELP ")
	p.b.WriteString(name)
	p.b.WriteByte(' ')
	p.b.WriteString(escapeHelp(help))
	p.b.WriteString("\n# TYPE ")
	p.b.WriteString(name)
	p.b.WriteByte(' ')
	p.b.WriteString(typ)
	p.b.WriteByte('\n')
}

// sample writes one sample; labels are name, value pairs.
func (p *prom) sample(name string, v float64, labels ...string) {
	p.b.WriteString(name)
	if len(labels) > 0 {
		p.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				p.b.WriteByte(',')
			}
			p.b.WriteString(labels[i])
			p.b.WriteString(`="`)
			p.b.WriteString(escapeLabel(labels[i+1]))
			p.b.WriteByte('"')
		}
		p.b.WriteByte('}')
	}
	p.b.WriteByte(' ')
	p.b.WriteString(formatValue(v))
	p.b.WriteByte('\n')
}

// one writes a family with a single unlabelled sample.
func (p *prom) one(name, typ, help string, v float64) {
	p.family(name, typ, help)
	p.sample(name, v)
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	if a := math.Abs(v); a < 1e15 {
		if v == math.Trunc(v) {
			return strconv.FormatInt(int64(v), 10) // counters read best as integers
		}
		if a >= 1e-4 {
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// serveMetrics is /metrics.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	var p prom
	d := s.daemonJSON()
	p.family("stk_build_info", "gauge", "The daemon's version and Go version; always 1.")
	p.sample("stk_build_info", 1, "version", d.Version, "go_version", runtime.Version())
	p.one("stk_start_time_seconds", "gauge", "When the daemon started, in seconds since the Unix epoch.", float64(d.Started.UnixNano())/1e9)
	p.one("stk_daemon_goroutines", "gauge", "Goroutines of the daemon.", float64(d.Goroutines))
	p.one("stk_daemon_heap_bytes", "gauge", "Bytes of heap objects, live and not yet swept.", float64(d.HeapBytes))
	p.one("stk_daemon_memory_bytes", "gauge", "Bytes of memory mapped by the Go runtime.", float64(d.TotalBytes))
	p.one("stk_daemon_gc_cycles_total", "counter", "Completed garbage collection cycles.", float64(d.GCCycles))
	p.one("stk_daemon_allocated_bytes_total", "counter", "Bytes allocated on the heap since the daemon started.", float64(d.AllocatedBytes))

	if m := s.cfg.Monitor; m != nil {
		s.monitorMetrics(&p, m)
	}
	if n := s.cfg.Names; n != nil {
		st := n.Stats()
		p.one("stk_names_registrations", "gauge", "Names registered with the name server, lingering ones included.", float64(st.Registrations))
		p.one("stk_names_lingering", "gauge", "Registrations whose registrant's connection closed, kept until their linger ends.", float64(st.Lingering))
		p.one("stk_names_subscriptions", "gauge", "Active name subscriptions.", float64(st.Subscriptions))
		p.one("stk_names_clients", "gauge", "Connections and datagram sources with registrations or subscriptions.", float64(st.Clients))
		p.family("stk_names_requests_total", "counter", "Name-service requests handled, by request.")
		p.sample("stk_names_requests_total", float64(st.Registers), "request", "register")
		p.sample("stk_names_requests_total", float64(st.Lookups), "request", "lookup")
		p.sample("stk_names_requests_total", float64(st.Subscribes), "request", "subscribe")
		p.one("stk_names_answers_total", "counter", "Query answers sent (subscription pushes not included).", float64(st.Answers))
		p.one("stk_names_keepalives_total", "counter", "Name-service keep-alive smartbeats echoed.", float64(st.Keepalives))
		p.one("stk_names_rejected_total", "counter", "Malformed name-service requests and foreign sequences dropped.", float64(st.Rejected))
		p.family("stk_names_refused_total", "counter", "Name-service requests refused, by reason: a limit of the name server, or its access policy (policy_*).")
		for k, n := range st.Refused {
			p.sample("stk_names_refused_total", float64(n), "reason", namesvc.Refusal(k).String())
		}
		p.one("stk_names_refusal_disconnects_total", "counter", "Name-service connections closed for exceeding the limits again and again.", float64(st.RefusalDisconnects))
		p.one("stk_names_linger_clamped_total", "counter", "Registrations whose linger was cut to the name server's maximum.", float64(st.LingerClamped))
		p.one("stk_names_stored_bytes", "gauge", "Element bytes of the stored registrations.", float64(st.StoredBytes))
		p.one("stk_names_groups", "gauge", "Name groups created, the default one included.", float64(st.Groups))
		p.one("stk_names_policy_rules", "gauge", "Rules of the name server's access policy (0: none, or no policy).", float64(st.PolicyRules))
		p.one("stk_names_authenticated_clients", "gauge", "Name-service connections and datagram sources that showed a token of the access policy.", float64(st.Authenticated))
	}
	if s.cfg.Flows != nil {
		s.flowMetrics(&p, s.cfg.Flows())
	}
	if s.cfg.Steps != nil {
		s.stepMetrics(&p)
	}
	if c := s.cfg.Cluster; c != nil {
		s.clusterMetrics(&p, c)
	}
	hs := s.hub.httpStats()
	p.family("stk_http_refused_total", "counter", "Requests the HTTP guard refused: a Host that does not name this server (421), a foreign Origin (403), a missing or wrong token (401).")
	p.sample("stk_http_refused_total", float64(s.guard.refusedHost.Load()), "reason", "host")
	p.sample("stk_http_refused_total", float64(s.guard.refusedOrigin.Load()), "reason", "origin")
	p.sample("stk_http_refused_total", float64(s.guard.refusedToken.Load()), "reason", "token")
	p.one("stk_http_event_streams", "gauge", "Open event streams of the status UI.", float64(hs.StreamClients))
	p.one("stk_http_event_streams_dropped_total", "counter", "Event-stream clients dropped for reading too slowly.", float64(hs.StreamDropped))
	p.one("stk_http_event_stream_resets_total", "counter", "Resets sent to event-stream clients that could not resume.", float64(hs.StreamResets))
	p.one("stk_http_events_sent_total", "counter", "Monitor events written to event streams.", float64(hs.EventsSent))

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(p.b.Bytes())
}

func (s *Server) monitorMetrics(p *prom, m Monitor) {
	// Current services by state: the five STK states always, application
	// states (by number) when some service is in one.
	counts := map[smartbeat.State]int{}
	for _, v := range m.Services() {
		counts[v.State]++
	}
	states := []smartbeat.State{smartbeat.Starting, smartbeat.Running, smartbeat.Stopping, smartbeat.Stopped, smartbeat.TimedOut}
	for st := range counts {
		if !slices.Contains(states, st) {
			states = append(states, st)
		}
	}
	slices.Sort(states)
	p.family("stk_services", "gauge", "Monitored services in the current list, by state.")
	for _, st := range states {
		p.sample("stk_services", float64(counts[st]), "state", st.String())
	}

	st := m.Stats()
	p.one("stk_services_history", "gauge", "Service records in the monitor's history (destroyed, displaced or timed out).", float64(st.History))
	p.one("stk_monitor_sequences_total", "counter", "Sequences received by the monitor.", float64(st.Sequences))
	p.one("stk_monitor_notifications_total", "counter", "CREATE, STATE and DESTROY notifications received.", float64(st.Notifications))
	p.one("stk_monitor_smartbeat_sequences_total", "counter", "Smartbeat sequences received.", float64(st.Smartbeats))
	p.one("stk_monitor_beats_total", "counter", "Smartbeats matched to a service record.", float64(st.Beats))
	p.one("stk_monitor_unknown_beats_total", "counter", "Smartbeats matching no service record.", float64(st.UnknownBeats))
	p.one("stk_monitor_ignored_total", "counter", "Sequences of another type or id, ignored.", float64(st.Ignored))
	p.one("stk_monitor_malformed_total", "counter", "Notifications the monitor could not use.", float64(st.Malformed))
	p.family("stk_monitor_refused_total", "counter", "Notifications the monitor refused for a limit, by reason: a service, state or group name over its bound, or a CREATE beyond the records allowed per source or in total.")
	for r := range smartbeat.NumRefuseReasons {
		p.sample("stk_monitor_refused_total", float64(st.Refused[r]), "reason", r.String())
	}
	p.one("stk_service_creates_total", "counter", "Service records created.", float64(st.Created))
	p.one("stk_service_destroys_total", "counter", "Services destroyed (DESTROY received).", float64(st.Destroyed))
	p.one("stk_service_displacements_total", "counter", "Service records replaced by a newer CREATE with the same identity.", float64(st.Displaced))
	p.family("stk_service_timeouts_total", "counter", "Services declared failed, by the detector that fired.")
	byPhi := min(st.TimedOutByPhi, st.TimedOut)
	p.sample("stk_service_timeouts_total", float64(st.TimedOut-byPhi), "detector", smartbeat.DetectorActivityTimeout)
	p.sample("stk_service_timeouts_total", float64(byPhi), "detector", smartbeat.DetectorPhiAccrual)
	p.one("stk_service_resurrections_total", "counter", "Timed-out services brought back by a smartbeat.", float64(st.Resurrected))
	p.one("stk_monitor_history_evictions_total", "counter", "Oldest history records dropped to keep the history bounded.", float64(st.Evicted))
	p.one("stk_monitor_stalls_total", "counter", "Timeout checks that came late because the monitor itself was stalled.", float64(st.Stalls))
	p.one("stk_monitor_stall_seconds_total", "counter", "Time credited to deadlines for monitor stalls.", st.StallTime.Seconds())
	p.one("stk_monitor_last_event", "gauge", "Sequence number of the monitor's latest event.", float64(st.LastEvent))
	p.one("stk_monitor_events_dropped_total", "counter", "Events a slow subscriber of the monitor missed.", float64(st.EventsDropped))
	p.one("stk_monitor_registered", "gauge", "1 when the name server confirmed the monitor's registration.", b2f(st.Registered))
}

func (s *Server) flowMetrics(p *prom, flows []FlowInfo) {
	type metric struct {
		name, typ, help string
		val             func(*FlowInfo) float64
	}
	ms := []metric{
		{"stk_flow_sequences_in_total", "counter", "Sequences received on the flow.", func(f *FlowInfo) float64 { return float64(f.Stats.SequencesIn) }},
		{"stk_flow_sequences_out_total", "counter", "Sequences sent on the flow.", func(f *FlowInfo) float64 { return float64(f.Stats.SequencesOut) }},
		{"stk_flow_bytes_in_total", "counter", "Wire bytes received on the flow, headers included.", func(f *FlowInfo) float64 { return float64(f.Stats.BytesIn) }},
		{"stk_flow_bytes_out_total", "counter", "Wire bytes sent on the flow, headers included.", func(f *FlowInfo) float64 { return float64(f.Stats.BytesOut) }},
		{"stk_flow_dropped_total", "counter", "Sequences not delivered: queue full, undeliverable or lost with a connection.", func(f *FlowInfo) float64 { return float64(f.Stats.Dropped) }},
		{"stk_flow_slow_consumers_total", "counter", "Peers disconnected for not reading.", func(f *FlowInfo) float64 { return float64(f.Stats.SlowConsumers) }},
		{"stk_flow_malformed_total", "counter", "Undecodable frames or datagrams received.", func(f *FlowInfo) float64 { return float64(f.Stats.Malformed) }},
		{"stk_flow_reconnects_total", "counter", "Connections a client flow re-established.", func(f *FlowInfo) float64 { return float64(f.Stats.Reconnects) }},
		{"stk_flow_connections", "gauge", "Open connections of the flow.", func(f *FlowInfo) float64 { return float64(f.Stats.Connections) }},
		{"stk_flow_accept_errors_total", "counter", "Failed accepts of a listening flow (each retried with back-off).", func(f *FlowInfo) float64 { return float64(f.Stats.AcceptErrors) }},
		{"stk_flow_refused_total", "counter", "Connections a listening flow closed at once: its connection limit (in total or per source IP) was reached.", func(f *FlowInfo) float64 { return float64(f.Stats.Refused) }},
		{"stk_flow_lost_sequences_total", "counter", "STK-UDP sequences known lost: given up half-received, or missing from a sender's numbering.", func(f *FlowInfo) float64 { return float64(f.Stats.LostSequences) }},
		{"stk_flow_lost_fragments_total", "counter", "STK-UDP fragments the lost sequences were missing.", func(f *FlowInfo) float64 { return float64(f.Stats.LostFragments) }},
		{"stk_flow_receive_drops_total", "counter", "Datagrams the kernel dropped at the flow's socket for a full receive buffer (Linux).", func(f *FlowInfo) float64 { return float64(f.Stats.ReceiveDrops) }},
		{"stk_flow_timed_out_total", "counter", "Connections a listening flow closed for its idle or frame timeout.", func(f *FlowInfo) float64 { return float64(f.Stats.TimedOut) }},
		{"stk_flow_up", "gauge", "1 while the flow can serve; 0 while a listener cannot accept connections.", func(f *FlowInfo) float64 { return b2f(f.Error == "") }},
	}
	for _, m := range ms {
		p.family(m.name, m.typ, m.help)
		for i := range flows {
			f := &flows[i]
			addr := ""
			if f.Addr.IsValid() {
				addr = f.Addr.String()
			}
			p.sample(m.name, m.val(f), "flow", f.Name, "protocol", f.Protocol, "addr", addr)
		}
	}
}
