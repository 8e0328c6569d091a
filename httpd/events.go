package httpd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stk-go/stk/smartbeat"
)

// HelloJSON is the data of the first event of every stream.
type HelloJSON struct {
	Instance string `json:"instance"` // changes when the daemon restarts
	Seq      uint64 `json:"seq"`      // the monitor's latest event
	Resumed  bool   `json:"resumed"`  // the stream replays from the client's id
}

// maxBatch is how many bytes of events are written before a flush.
const maxBatch = 64 << 10

// serveEvents is /api/v1/events, the event stream (see the package doc
// and client for how beats are merged).
//
// An event's id is the sequence number of the latest monitor event it
// stands for, and ids only grow. A client that read up to id K has every
// monitor event up to K, or a later event of the same record that holds
// its values and comes after K (a merged beat at its latest beat's place,
// or the state change that absorbed it). Resuming after K therefore
// replays, merged the same way, what the client lacks; and "prev" in each
// event's data, the id of the event before it on this stream (or where
// the stream started), lets the client check that it lacks nothing.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	raw, err := beatsMode(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	from, resume, bad := resumePoint(r)
	c, last, ok := s.hub.add(raw)
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "the server is shutting down")
		return
	}
	defer s.hub.remove(c)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	sw := &streamWriter{s: s, w: w, rc: http.NewResponseController(w)}
	sw.buf.WriteString("retry: " + strconv.FormatInt(s.cfg.Retry.Milliseconds(), 10) + "\n\n")
	mon := s.cfg.Monitor
	hello := HelloJSON{Instance: s.instance}
	floor := last // the client has every event up to floor, or gets reset
	var replay []smartbeat.Event
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
		floor, replay = from, evs
	default:
		hello.Seq = last
	}
	first := c.start(floor, last, replay, s.cfg.SparkPoints)
	sw.prev = floor
	hb, _ := json.Marshal(hello)
	writeEvent(&sw.buf, message{event: "hello", data: hb})
	if reset != "" {
		s.hub.resets.Add(1)
		rb, _ := json.Marshal(struct {
			Reason string `json:"reason"`
		}{reset})
		writeEvent(&sw.buf, message{event: "reset", data: rb})
	}
	// A write that times out cuts the client (counted with the clients the
	// hub drops); it reconnects with Last-Event-ID.
	failed := func(err error) bool {
		if err != nil && writeTimedOut(err) {
			s.hub.cut(c)
		}
		return err != nil
	}
	if failed(sw.items(first)) {
		return
	}

	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	var tick <-chan time.Time // a raw client writes when woken, at once
	if !raw {
		t := time.NewTicker(s.hub.flushInterval())
		defer t.Stop()
		tick = t.C
	}
	spare := first
	for {
		select {
		case <-tick:
		case <-c.wake:
		case <-heartbeat.C:
			sw.buf.WriteString(": heartbeat\n\n")
			if failed(sw.flush()) {
				return
			}
			continue
		case <-c.gone:
			return
		case <-r.Context().Done():
			return
		}
		clear(spare)
		if cap(spare) > 1<<14 {
			spare = nil // after a burst: do not keep its room
		}
		q := c.take(spare)
		if failed(sw.items(q)) {
			return
		}
		spare = q
	}
}

// streamWriter writes one event stream.
type streamWriter struct {
	s    *Server
	w    http.ResponseWriter
	rc   *http.ResponseController
	buf  bytes.Buffer
	prev uint64 // the id of the latest monitor event written
	num  [24]byte
}

// items writes q, in order, and flushes.
func (sw *streamWriter) items(q []item) error {
	n := 0
	for i := range q {
		it := &q[i]
		switch {
		case it.dead:
			continue
		case it.u == nil:
			writeEvent(&sw.buf, it.msg)
			sw.prev = max(sw.prev, it.after)
		default:
			sw.update(it)
			n++
		}
		if sw.buf.Len() >= maxBatch {
			if err := sw.flush(); err != nil {
				return err
			}
		}
	}
	sw.s.hub.sent.Add(uint64(n))
	return sw.flush()
}

// update appends the event of it: the monitor event's JSON with "prev",
// and "merged" and "intervals_ms" when there are any, put in front.
func (sw *streamWriter) update(it *item) {
	data := it.u.json(sw.s.log)
	seq := it.u.ev.Seq
	b := &sw.buf
	b.WriteString("id: ")
	b.Write(strconv.AppendUint(sw.num[:0], seq, 10))
	b.WriteString("\nevent: ")
	b.WriteString(it.u.ev.Kind.String())
	b.WriteString("\ndata: {\"prev\":")
	b.Write(strconv.AppendUint(sw.num[:0], sw.prev, 10))
	if it.merged > 1 {
		b.WriteString(`,"merged":`)
		b.Write(strconv.AppendInt(sw.num[:0], int64(it.merged), 10))
	}
	if len(it.points) > 0 {
		b.WriteString(`,"intervals_ms":[`)
		for i, v := range it.points {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(strconv.AppendFloat(sw.num[:0], math.Round(v*1000)/1000, 'f', -1, 64))
		}
		b.WriteByte(']')
	}
	if rest := data[1:]; len(rest) > 0 && rest[0] != '}' {
		b.WriteByte(',')
		b.Write(rest)
	} else {
		b.WriteByte('}')
	}
	b.WriteString("\n\n")
	sw.prev = seq
}

// flush writes what is buffered, within WriteTimeout.
func (sw *streamWriter) flush() error {
	if sw.buf.Len() == 0 {
		return nil
	}
	sw.rc.SetWriteDeadline(time.Now().Add(sw.s.cfg.WriteTimeout))
	if _, err := sw.w.Write(sw.buf.Bytes()); err != nil {
		return err
	}
	if err := sw.rc.Flush(); err != nil {
		return err
	}
	sw.buf.Reset()
	return nil
}

// beatsMode reads ?beats=: "merged" (the default) or "all", every beat
// on its own (raw).
func beatsMode(r *http.Request) (raw bool, err error) {
	switch v := r.URL.Query().Get("beats"); v {
	case "", "merged":
		return false, nil
	case "all":
		return true, nil
	default:
		return false, fmt.Errorf("beats=%q: want merged (the default) or all", v)
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
