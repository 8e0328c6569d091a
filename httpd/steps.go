package httpd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/step"
	"github.com/stk-go/stk/stepbus"
)

// The STEP endpoints serve the STEP bus (Config.Steps); see the package
// documentation for what they take and answer.

// Limits of the STEP endpoints.
const (
	// MaxStepBody bounds the body of a POST holding one STEP (the step
	// package's own limit of an encoded STEP).
	MaxStepBody = step.MaxJSONSize
	// MaxStepBatchBody bounds the body of a POST holding an array of STEPs.
	MaxStepBatchBody = 4 << 20
	// MaxStepBatch is the most STEPs one POST may hold.
	MaxStepBatch = 1000
	// DefaultStepLimit is how many STEPs /api/v1/steps returns without
	// limit=; MaxStepLimit the most it returns.
	DefaultStepLimit = 100
	MaxStepLimit     = 10000
)

// stepStats are the HTTP side's counters of the STEP endpoints.
type stepStats struct {
	accepted  atomic.Uint64 // STEPs accepted by POST /api/v1/step
	rejected  atomic.Uint64 // POST requests refused (4xx)
	sseOpen   atomic.Int64  // open /api/v1/steps/stream streams
	wsOpen    atomic.Int64  // open /api/v1/steps/ws connections
	sent      atomic.Uint64 // STEPs written to streams and WebSockets
	sseCut    atomic.Uint64 // streams ended because the client fell behind
	wsCut     atomic.Uint64 // WebSockets closed because the client fell behind
	wsControl atomic.Uint64 // WebSocket control messages answered
}

// StepStreamStatsJSON are the HTTP side's counters of the STEP endpoints
// (also in /metrics).
type StepStreamStatsJSON struct {
	Accepted        uint64 `json:"accepted"`
	Rejected        uint64 `json:"rejected"`
	Streams         int64  `json:"streams"`
	WebSockets      int64  `json:"websockets"`
	Sent            uint64 `json:"sent"`
	StreamsCut      uint64 `json:"streams_cut"`
	WebSocketsCut   uint64 `json:"websockets_cut"`
	ControlMessages uint64 `json:"control_messages"`
}

func (st *stepStats) json() StepStreamStatsJSON {
	return StepStreamStatsJSON{
		Accepted: st.accepted.Load(), Rejected: st.rejected.Load(),
		Streams: st.sseOpen.Load(), WebSockets: st.wsOpen.Load(), Sent: st.sent.Load(),
		StreamsCut: st.sseCut.Load(), WebSocketsCut: st.wsCut.Load(), ControlMessages: st.wsControl.Load(),
	}
}

// stopping reports whether Shutdown or Close began.
func (s *Server) stopping() bool {
	select {
	case <-s.hub.stop:
		return true
	default:
		return false
	}
}

// needSteps answers 503 when the daemon runs no STEP bus.
func (s *Server) needSteps(w http.ResponseWriter) bool {
	if s.cfg.Steps == nil {
		writeError(w, http.StatusServiceUnavailable, "the STEP bus is not running in this daemon")
		return false
	}
	return true
}

// StepAcceptedJSON answers a POST of one STEP.
type StepAcceptedJSON struct {
	ID string `json:"id"`
}

// StepsAcceptedJSON answers a POST of an array of STEPs.
type StepsAcceptedJSON struct {
	IDs   []string `json:"ids"`
	Count int      `json:"count"`
}

// errStepTooLarge marks a body over the limits (413).
var errStepTooLarge = errors.New("too large")

// apiPostStep is POST /api/v1/step.
func (s *Server) apiPostStep(w http.ResponseWriter, r *http.Request) {
	if !s.needSteps(w) {
		return
	}
	fail := func(status int, msg string) {
		s.stepStats.rejected.Add(1)
		writeError(w, status, msg)
	}
	if err := needJSON(r); err != nil {
		fail(http.StatusUnsupportedMediaType, err.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxStepBatchBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", MaxStepBatchBody))
			return
		}
		fail(http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	steps, batch, err := parseSteps(body, s.cfg.Now())
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errStepTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		fail(status, err.Error())
		return
	}
	ids := make([]string, 0, len(steps))
	for i, st := range steps {
		if err := s.cfg.Steps.Publish(st, "http"); err != nil {
			if errors.Is(err, stepbus.ErrClosed) {
				writeError(w, http.StatusServiceUnavailable, "the STEP bus is closed")
				return
			}
			// Validated already, so this is the bus's own rule.
			if batch {
				err = fmt.Errorf("STEP %d: %w (the %d before it were published)", i, err, i)
			}
			fail(http.StatusBadRequest, err.Error())
			return
		}
		s.stepStats.accepted.Add(1)
		ids = append(ids, st.ID)
	}
	if batch {
		writeJSON(w, http.StatusAccepted, StepsAcceptedJSON{IDs: ids, Count: len(ids)})
		return
	}
	writeJSON(w, http.StatusAccepted, StepAcceptedJSON{ID: ids[0]})
}

// needJSON checks that a request body is declared as JSON. Requiring it
// also keeps other sites' pages from posting: a browser sends
// application/json across origins only after a CORS preflight, which this
// server does not grant.
func needJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return errors.New("Content-Type application/json is required")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("unreadable Content-Type %q: %v", ct, err)
	}
	if mt != "application/json" {
		return fmt.Errorf("Content-Type %q is not accepted: send application/json", mt)
	}
	return nil
}

// parseSteps reads the body of a POST: one STEP object or an array of
// them (batch). Every STEP is checked before any is published, so a batch
// is taken whole or not at all.
func parseSteps(body []byte, now time.Time) (steps []*step.Step, batch bool, err error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, false, errors.New("the body is empty: send one STEP as a JSON object, or a JSON array of STEPs")
	}
	if body[0] != '[' {
		if len(body) > MaxStepBody {
			return nil, false, fmt.Errorf("%w: a STEP is at most %d bytes, this one has %d", errStepTooLarge, MaxStepBody, len(body))
		}
		st, err := parseStep(body, now)
		if err != nil {
			return nil, false, err
		}
		return []*step.Step{st}, false, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, true, fmt.Errorf("not an array of STEPs: %s", jsonError(err))
	}
	switch {
	case len(raws) == 0:
		return nil, true, errors.New("the array holds no STEP")
	case len(raws) > MaxStepBatch:
		return nil, true, fmt.Errorf("%w: %d STEPs in one request, at most %d", errStepTooLarge, len(raws), MaxStepBatch)
	}
	steps = make([]*step.Step, 0, len(raws))
	for i, raw := range raws {
		if len(raw) > MaxStepBody {
			return nil, true, fmt.Errorf("%w: STEP %d has %d bytes, at most %d", errStepTooLarge, i, len(raw), MaxStepBody)
		}
		st, err := parseStep(raw, now)
		if err != nil {
			return nil, true, fmt.Errorf("STEP %d: %w (nothing was published)", i, err)
		}
		steps = append(steps, st)
	}
	return steps, true, nil
}

// parseStep decodes one STEP as step.Parse does (unknown keys refused),
// gives it an id and a start time when it has none, and validates it.
func parseStep(raw []byte, now time.Time) (*step.Step, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var st step.Step
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("not a STEP: %s", jsonError(err))
	}
	switch _, err := dec.Token(); {
	case err == nil:
		return nil, errors.New("not a STEP: more than one JSON value")
	case err != io.EOF:
		return nil, fmt.Errorf("not a STEP: bad JSON after the object: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if !bytes.HasPrefix(raw, []byte("{")) {
		return nil, errors.New("not a STEP: want a JSON object")
	}
	if st.ID == "" {
		st.ID = step.NewID()
	}
	if st.Time.Start == 0 {
		st.Time.Start = now.UnixMilli()
	}
	if err := st.Validate(); err != nil {
		return nil, err
	}
	return &st, nil
}

// jsonError words a decoding error for a 400 reply, naming the field.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("%s must be %s, not a JSON %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return fmt.Sprintf("want %s, not a JSON %s", jsonKind(te.Type.Kind().String()), te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("bad JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends too early"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "true or false"
	}
	return "a number"
}

// stepFilter is what a query or a stream selects.
type stepFilter struct {
	pattern step.Pattern
	host    string
	kind    string // "", "metric" or "event"
}

// match reports whether st passes the filter. The bus applies pattern
// and host already; they are checked again for STEPs queued before a
// WebSocket changed its filter.
func (f *stepFilter) match(st *step.Step) bool {
	if !f.pattern.Match(st.Event.Type) {
		return false
	}
	if f.host != "" && st.Space.IP != f.host && !strings.EqualFold(st.Space.Hostname, f.host) {
		return false
	}
	switch f.kind {
	case "metric":
		return isMetric(st)
	case "event":
		return !isMetric(st)
	}
	return true
}

// isMetric reports whether st is a periodic metric STEP: "kind": "metric"
// in its space, as hostmon.Env.NewMetric makes them.
func isMetric(st *step.Step) bool {
	k, _ := st.Space.Fields["kind"].(string)
	return k == "metric"
}

// StepFilterJSON describes a filter in stream and WebSocket messages.
type StepFilterJSON struct {
	Pattern string `json:"pattern"`
	Host    string `json:"host"`
	Kind    string `json:"kind"`
}

func (f *stepFilter) json() StepFilterJSON {
	return StepFilterJSON{Pattern: f.pattern.String(), Host: f.host, Kind: f.kind}
}

func newStepFilter(pattern, host, kind string) (stepFilter, error) {
	p, err := step.ParsePattern(pattern)
	if err != nil {
		return stepFilter{}, fmt.Errorf("type: %v", err)
	}
	host = strings.TrimSpace(host)
	if len(host) > step.MaxHostnameLen {
		return stepFilter{}, fmt.Errorf("host is longer than %d bytes", step.MaxHostnameLen)
	}
	switch kind = strings.TrimSpace(kind); kind {
	case "", "metric", "event":
	default:
		return stepFilter{}, fmt.Errorf("kind %q: want metric or event (or nothing for both)", kind)
	}
	return stepFilter{pattern: p, host: host, kind: kind}, nil
}

// checkParams refuses parameters the endpoint does not know, so that a
// misspelt filter is an error rather than everything.
func checkParams(v url.Values, known ...string) error {
	for k := range v {
		if !slices.Contains(known, k) {
			return fmt.Errorf("unknown parameter %q (known: %s)", k, strings.Join(known, ", "))
		}
	}
	for _, k := range known {
		if len(v[k]) > 1 {
			return fmt.Errorf("parameter %q is given %d times", k, len(v[k]))
		}
	}
	return nil
}

// parseStepTime reads since= or until=: RFC 3339 or Unix milliseconds.
func parseStepTime(name, v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return time.Time{}, fmt.Errorf("%s is negative", name)
		}
		return time.UnixMilli(n), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want RFC 3339 (2006-01-02T15:04:05Z) or Unix milliseconds", name, v)
	}
	return t, nil
}

// stepQuery reads the parameters of /api/v1/steps.
func stepQuery(v url.Values) (q stepbus.Query, f stepFilter, err error) {
	if err := checkParams(v, "type", "host", "kind", "since", "until", "limit"); err != nil {
		return q, f, err
	}
	if f, err = newStepFilter(v.Get("type"), v.Get("host"), v.Get("kind")); err != nil {
		return q, f, err
	}
	q = stepbus.Query{Pattern: f.pattern, Host: f.host, Limit: DefaultStepLimit}
	if q.Since, err = parseStepTime("since", v.Get("since")); err != nil {
		return q, f, err
	}
	if q.Until, err = parseStepTime("until", v.Get("until")); err != nil {
		return q, f, err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return q, f, errors.New("until is before since")
	}
	if l := strings.TrimSpace(v.Get("limit")); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxStepLimit {
			return q, f, fmt.Errorf("limit %q: want a number from 1 to %d", l, MaxStepLimit)
		}
		q.Limit = n
	}
	return q, f, nil
}

// StepsJSON is /api/v1/steps: the newest matching STEPs, oldest first.
type StepsJSON struct {
	Steps []*step.Step `json:"steps"`
	// Sources[i] is where Steps[i] came from (stepbus.QueryWithSources):
	// "tcp:IP:PORT", the registered address of the followed publisher, or
	// "http". Beside the STEPs, so that their JSON stays package step's.
	Sources []string `json:"sources"`
	Count   int      `json:"count"`
	// Truncated: more STEPs match than limit allowed (the oldest were
	// left out).
	Truncated bool `json:"truncated"`
}

// apiSteps is GET /api/v1/steps.
func (s *Server) apiSteps(w http.ResponseWriter, r *http.Request) {
	if !s.needSteps(w) {
		return
	}
	q, f, err := stepQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit := q.Limit
	var steps []*step.Step
	var sources []string
	if f.kind == "" {
		q.Limit = limit + 1 // one more tells whether some were left out
		steps, sources = s.cfg.Steps.QueryWithSources(q)
	} else {
		// The bus does not know kinds: filter the whole matching history.
		q.Limit = 0
		all, srcs := s.cfg.Steps.QueryWithSources(q)
		for i, st := range all {
			if f.match(st) {
				steps, sources = append(steps, st), append(sources, srcs[i])
			}
		}
	}
	out := StepsJSON{Steps: steps, Sources: sources}
	if len(steps) > limit {
		out.Steps, out.Sources, out.Truncated = steps[len(steps)-limit:], sources[len(sources)-limit:], true
	}
	if out.Steps == nil {
		out.Steps, out.Sources = []*step.Step{}, []string{}
	}
	out.Count = len(out.Steps)
	writeJSON(w, http.StatusOK, out)
}

// apiStepStats is GET /api/v1/steps/stats: the bus's statistics.
func (s *Server) apiStepStats(w http.ResponseWriter, r *http.Request) {
	if !s.needSteps(w) {
		return
	}
	writeJSON(w, http.StatusOK, s.cfg.Steps.Stats())
}

// StepHostsJSON is /api/v1/steps/hosts: every host that published, with
// its newest metric STEP of each type and instance.
type StepHostsJSON struct {
	Now   time.Time             `json:"now"`
	Hosts []stepbus.HostSummary `json:"hosts"`
}

// apiStepHosts is GET /api/v1/steps/hosts.
func (s *Server) apiStepHosts(w http.ResponseWriter, r *http.Request) {
	if !s.needSteps(w) {
		return
	}
	writeJSON(w, http.StatusOK, StepHostsJSON{Now: s.cfg.Now(), Hosts: s.cfg.Steps.Hosts()})
}

// streamFilter reads a live stream's filter (type, host, kind) from r's
// query, or answers 400 (bad filter) or 503 (shutting down) and returns
// false.
func (s *Server) streamFilter(w http.ResponseWriter, r *http.Request) (stepFilter, bool) {
	v := r.URL.Query()
	if err := checkParams(v, "type", "host", "kind"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return stepFilter{}, false
	}
	f, err := newStepFilter(v.Get("type"), v.Get("host"), v.Get("kind"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return stepFilter{}, false
	}
	if s.stopping() {
		writeError(w, http.StatusServiceUnavailable, "the server is shutting down")
		return stepFilter{}, false
	}
	return f, true
}

// serveStepStream is GET /api/v1/steps/stream: server-sent events, one
// "step" event per matching STEP.
func (s *Server) serveStepStream(w http.ResponseWriter, r *http.Request) {
	if !s.needSteps(w) {
		return
	}
	f, ok := s.streamFilter(w, r)
	if !ok {
		return
	}
	sub := s.cfg.Steps.Subscribe(f.pattern, f.host, s.cfg.ClientBuffer)
	defer sub.Close()
	s.stepStats.sseOpen.Add(1)
	defer s.stepStats.sseOpen.Add(-1)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	buf.WriteString("retry: " + strconv.FormatInt(s.cfg.Retry.Milliseconds(), 10) + "\n\n")
	hello, _ := json.Marshal(struct {
		Instance string         `json:"instance"`
		Filter   StepFilterJSON `json:"filter"`
	}{s.instance, f.json()})
	writeEvent(&buf, message{event: "hello", data: hello})

	rc := http.NewResponseController(w)
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	add := func(st *step.Step) {
		if !f.match(st) {
			return
		}
		data, err := json.Marshal(st)
		if err != nil {
			s.log.Warn("http: encoding a STEP", "id", st.ID, "err", err)
			return
		}
		writeEvent(&buf, message{event: "step", data: data})
		s.stepStats.sent.Add(1)
	}
	for {
		if buf.Len() > 0 {
			rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			_, err := w.Write(buf.Bytes())
			if err == nil {
				err = rc.Flush()
			}
			if err != nil {
				s.streamWriteFailed(&s.stepStats.sseCut, "STEP stream", r, err)
				return
			}
			buf.Reset()
		}
		// The bus dropped STEPs for this client: its reader is too slow.
		// Say so and end the stream; the browser reconnects and fills the
		// gap from /api/v1/steps.
		if n := sub.Dropped(); n > 0 {
			s.stepStats.sseCut.Add(1)
			b, _ := json.Marshal(struct {
				Dropped uint64 `json:"dropped"`
				Reason  string `json:"reason"`
			}{n, "the client read too slowly; reconnect and query /api/v1/steps for the gap"})
			writeEvent(&buf, message{event: "dropped", data: b})
			rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			w.Write(buf.Bytes())
			rc.Flush()
			return
		}
		select {
		case st, ok := <-sub.C():
			if !ok {
				return // the bus closed
			}
			add(st)
			for buf.Len() < maxBatch && len(sub.C()) > 0 {
				if st, ok = <-sub.C(); ok {
					add(st)
				}
			}
		case <-heartbeat.C:
			buf.WriteString(": heartbeat\n\n")
		case <-s.hub.stop:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// writeTimedOut reports whether err ended a write that did not complete
// within WriteTimeout (a net deadline, or a WebSocket write's context):
// the client does not read.
func writeTimedOut(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
}

// streamWriteFailed ends a live stream whose write failed: when the write
// timed out, the server cut the client for reading too slowly, and cut
// counts it (a client that went away is not counted).
func (s *Server) streamWriteFailed(cut *atomic.Uint64, what string, r *http.Request, err error) {
	if !writeTimedOut(err) {
		return
	}
	cut.Add(1)
	s.log.Debug("http: "+what+" cut: the client did not read within the write timeout", "remote", r.RemoteAddr, "timeout", s.cfg.WriteTimeout, "err", err)
}

// stepMetrics adds the STEP bus's families to /metrics.
func (s *Server) stepMetrics(p *prom) {
	st := s.cfg.Steps.Stats()
	p.one("stk_steps_received_total", "counter", "STEPs offered to the bus (HTTP and followed publishers).", float64(st.Received))
	p.one("stk_steps_published_total", "counter", "STEPs the bus accepted.", float64(st.Published))
	p.one("stk_steps_invalid_total", "counter", "STEPs the bus refused as invalid.", float64(st.Invalid))
	p.one("stk_steps_dropped_total", "counter", "STEP deliveries lost because a subscriber's buffer was full.", float64(st.Dropped))
	p.one("stk_steps_history", "gauge", "STEPs held in the bus's memory.", float64(st.History))
	p.one("stk_steps_hosts", "gauge", "Hosts the bus has seen.", float64(st.Hosts))
	p.one("stk_steps_subscribers", "gauge", "Open subscriptions of the bus.", float64(st.Subscribers))
	p.one("stk_steps_publishers", "gauge", "Followed STEP publishers.", float64(st.Publishers))
	p.one("stk_steps_archive_written_total", "counter", "STEPs written to the archive.", float64(st.Archive.Written))
	p.one("stk_steps_archive_dropped_total", "counter", "STEPs the archive lost (queue full or write failed).", float64(st.Archive.Dropped))
	hs := s.stepStats.json()
	p.family("stk_http_step_posts_total", "counter", "STEPs accepted by POST /api/v1/step, and POST requests refused.")
	p.sample("stk_http_step_posts_total", float64(hs.Accepted), "result", "accepted")
	p.sample("stk_http_step_posts_total", float64(hs.Rejected), "result", "rejected")
	p.family("stk_http_step_streams", "gauge", "Open live STEP streams, by transport.")
	p.sample("stk_http_step_streams", float64(hs.Streams), "transport", "sse")
	p.sample("stk_http_step_streams", float64(hs.WebSockets), "transport", "websocket")
	p.family("stk_http_step_streams_cut_total", "counter", "Live STEP streams ended because the client read too slowly, by transport.")
	p.sample("stk_http_step_streams_cut_total", float64(hs.StreamsCut), "transport", "sse")
	p.sample("stk_http_step_streams_cut_total", float64(hs.WebSocketsCut), "transport", "websocket")
	p.one("stk_http_steps_sent_total", "counter", "STEPs written to live streams and WebSockets.", float64(hs.Sent))
}
