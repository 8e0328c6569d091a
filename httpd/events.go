package httpd

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HelloJSON is the data of the first event of every stream.
type HelloJSON struct {
	Instance string `json:"instance"` // changes when the daemon restarts
	Seq      uint64 `json:"seq"`      // the monitor's latest event
	Resumed  bool   `json:"resumed"`  // the stream replays from the client's id
}

// maxBatch is how many bytes of events are written before a flush.
const maxBatch = 64 << 10

// serveEvents is /api/v1/events, the event stream (see the package doc).
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	c, last, ok := s.hub.add()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "the server is shutting down")
		return
	}
	defer s.hub.remove(c)

	from, resume, bad := resumePoint(r)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	buf.WriteString("retry: " + strconv.FormatInt(s.cfg.Retry.Milliseconds(), 10) + "\n\n")
	mon := s.cfg.Monitor
	hello := HelloJSON{Instance: s.instance}
	sent := last // the client has every event up to sent, or gets reset
	var replay []message
	reset := ""
	switch {
	case mon == nil:
	case bad:
		reset = "unreadable Last-Event-ID"
	case resume:
		cur := mon.Stats().LastEvent
		hello.Seq = cur
		if from > cur {
			reset = "the monitor restarted"
			break
		}
		evs, ok := mon.EventsSince(from)
		if !ok {
			reset = "the events after " + strconv.FormatUint(from, 10) + " are gone"
			break
		}
		hello.Resumed = true
		sent = from
		for i := range evs {
			if evs[i].Seq <= sent {
				continue
			}
			data, err := json.Marshal(eventJSON(&evs[i]))
			if err != nil {
				continue
			}
			replay = append(replay, message{id: evs[i].Seq, event: evs[i].Kind.String(), data: data})
			sent = evs[i].Seq
		}
	default:
		hello.Seq = last
	}
	hb, _ := json.Marshal(hello)
	writeEvent(&buf, message{event: "hello", data: hb})
	if reset != "" {
		s.hub.resets.Add(1)
		rb, _ := json.Marshal(struct {
			Reason string `json:"reason"`
		}{reset})
		writeEvent(&buf, message{event: "reset", data: rb})
	}
	for _, m := range replay {
		writeEvent(&buf, m)
	}
	s.hub.sent.Add(uint64(len(replay)))

	rc := http.NewResponseController(w)
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	add := func(m message) {
		if m.id != 0 {
			if m.id <= sent {
				return // replayed already
			}
			sent = m.id
			s.hub.sent.Add(1)
		}
		writeEvent(&buf, m)
	}
	for {
		if buf.Len() > 0 {
			rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			if _, err := w.Write(buf.Bytes()); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			buf.Reset()
		}
		select {
		case m := <-c.ch:
			add(m)
			for buf.Len() < maxBatch && len(c.ch) > 0 {
				add(<-c.ch)
			}
		case <-heartbeat.C:
			buf.WriteString(": heartbeat\n\n")
		case <-c.gone:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// resumePoint reads where the client wants to resume: the Last-Event-ID
// header a reconnecting browser sends, or else ?since= of the first
// connection. bad: the value is not a sequence number.
func resumePoint(r *http.Request) (from uint64, resume, bad bool) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("since")
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false, true
	}
	return n, true, false
}

// writeEvent appends m in the event-stream format. data is one line.
func writeEvent(b *bytes.Buffer, m message) {
	if m.id != 0 {
		b.WriteString("id: ")
		b.WriteString(strconv.FormatUint(m.id, 10))
		b.WriteByte('\n')
	}
	b.WriteString("event: ")
	b.WriteString(m.event)
	b.WriteString("\ndata: ")
	b.Write(m.data)
	b.WriteString("\n\n")
}
