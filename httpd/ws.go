package httpd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/stk-go/stk/step"
	"github.com/stk-go/stk/stepbus"
)

// The WebSocket of the STEP bus: GET /api/v1/steps/ws (see the package
// documentation for the messages).

const (
	// wsReadLimit bounds one client message: control messages are small.
	// A larger one closes the connection with status 1009.
	wsReadLimit = 16 << 10
	// wsControlQueue bounds the control messages waiting for an answer;
	// a client sending more without reading stops being read (TCP pushes
	// back).
	wsControlQueue = 16
)

// WSStepJSON carries one STEP to a WebSocket client.
type WSStepJSON struct {
	Type string     `json:"type"` // "step"
	Step *step.Step `json:"step"`
}

// WSPongJSON answers {"type":"ping"}.
type WSPongJSON struct {
	Type string          `json:"type"` // "pong"
	ID   json.RawMessage `json:"id,omitempty"`
	Time int64           `json:"time"` // the server's clock, Unix ms
}

// WSSubscribedJSON answers {"type":"subscribe"}: the filter now in force.
type WSSubscribedJSON struct {
	Type string          `json:"type"` // "subscribed"
	ID   json.RawMessage `json:"id,omitempty"`
	StepFilterJSON
}

// WSStatusJSON answers {"type":"get_status"}.
type WSStatusJSON struct {
	Type         string              `json:"type"` // "status"
	ID           json.RawMessage     `json:"id,omitempty"`
	Time         int64               `json:"time"`
	Bus          stepbus.Stats       `json:"bus"`
	Subscription WSSubscriptionJSON  `json:"subscription"`
	HTTP         StepStreamStatsJSON `json:"http"`
}

// WSSubscriptionJSON describes one WebSocket's subscription.
type WSSubscriptionJSON struct {
	StepFilterJSON
	Connected time.Time `json:"connected"`
	// Sent counts the STEPs sent on this connection; Queued those waiting;
	// Dropped those the subscription lost (the connection is closed when
	// it loses any).
	Sent    uint64 `json:"sent"`
	Queued  int    `json:"queued"`
	Dropped uint64 `json:"dropped"`
	// Buffer is the subscription's queue size.
	Buffer int `json:"buffer"`
}

// WSErrorJSON answers a message the server cannot use; the connection
// stays open.
type WSErrorJSON struct {
	Type  string          `json:"type"` // "error"
	ID    json.RawMessage `json:"id,omitempty"`
	Error string          `json:"error"`
}

// wsIn is a client's control message.
type wsIn struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id"`
	Pattern *string         `json:"pattern"`
	Host    *string         `json:"host"`
	Kind    *string         `json:"kind"`
}

// wsOp is a parsed control message for the connection's loop.
type wsOp struct {
	kind   string // "ping", "get_status", "subscribe" or "error"
	id     json.RawMessage
	filter stepFilter
	err    string
}

// serveStepWS is GET /api/v1/steps/ws.
func (s *Server) serveStepWS(w http.ResponseWriter, r *http.Request) {
	if !s.needSteps(w) {
		return
	}
	f, ok := s.streamFilter(w, r)
	if !ok {
		return
	}
	// The guard (Server.check) has checked the Origin already, with the
	// operator's --http-origin list, which coder/websocket's own check
	// would not know: a page of another site got 403 there, so it cannot
	// read the STEPs with the user's access to this server.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		s.log.Debug("http: refused WebSocket", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
		return // Accept answered
	}
	c.SetReadLimit(wsReadLimit)
	s.stepStats.wsOpen.Add(1)
	defer s.stepStats.wsOpen.Add(-1)
	ws := &wsSession{s: s, r: r, c: c, filter: f, connected: s.cfg.Now()}
	ws.run()
}

// wsSession is one WebSocket connection. Its loop (run) is the only
// writer; a reader goroutine parses the client's messages into ops.
type wsSession struct {
	s         *Server
	r         *http.Request // the upgrade request, for the log
	c         *websocket.Conn
	filter    stepFilter
	sub       *stepbus.Subscription
	connected time.Time
	sent      uint64
	closed    bool // a close frame was sent
}

func (ws *wsSession) run() {
	s := ws.s
	ctx, cancel := context.WithCancel(context.Background())
	ops := make(chan wsOp, wsControlQueue)
	readDone := make(chan error, 1)
	go func() { readDone <- ws.read(ctx, ops) }()
	ws.sub = s.cfg.Steps.Subscribe(ws.filter.pattern, ws.filter.host, s.cfg.ClientBuffer)
	readerGone := false
	defer func() {
		ws.sub.Close()
		if !ws.closed {
			ws.c.CloseNow()
		}
		cancel()
		if !readerGone {
			<-readDone
		}
	}()

	// An idle subscription still learns of a vanished peer.
	keepalive := time.NewTicker(s.cfg.Heartbeat)
	defer keepalive.Stop()
	for {
		select {
		case st, ok := <-ws.sub.C():
			if !ok {
				ws.close(websocket.StatusGoingAway, "the STEP bus closed")
				return
			}
			if !ws.filter.match(st) {
				continue
			}
			if err := ws.send(WSStepJSON{Type: "step", Step: st}); err != nil {
				ws.failed(err)
				return
			}
			ws.sent++
			s.stepStats.sent.Add(1)
			if ws.sub.Dropped() > 0 {
				// The bus could not queue a STEP for this client: it reads
				// too slowly. A stream with holes would mislead it.
				s.stepStats.wsCut.Add(1)
				s.log.Info("http: WebSocket closed: the client reads too slowly", "dropped", ws.sub.Dropped(), "sent", ws.sent)
				ws.close(websocket.StatusPolicyViolation, fmt.Sprintf("too slow: %d STEPs dropped", ws.sub.Dropped()))
				return
			}
		case op := <-ops:
			s.stepStats.wsControl.Add(1)
			if err := ws.answer(op); err != nil {
				ws.failed(err)
				return
			}
		case <-readDone:
			readerGone = true // the client closed, or broke the protocol
			return
		case <-keepalive.C:
			pctx, pcancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
			err := ws.c.Ping(pctx)
			pcancel()
			if err != nil {
				// No pong within WriteTimeout: the client does not read
				// (or its network is gone).
				ws.failed(err)
				return
			}
		case <-s.hub.stop:
			ws.close(websocket.StatusGoingAway, "the server is shutting down")
			return
		}
	}
}

// failed counts a write (or ping) that timed out as a cut client; other
// errors mean the client went away.
func (ws *wsSession) failed(err error) {
	ws.s.streamWriteFailed(&ws.s.stepStats.wsCut, "STEP WebSocket", ws.r, err)
}

// close sends a close frame with code and waits (a few seconds at most)
// for the client's.
func (ws *wsSession) close(code websocket.StatusCode, reason string) {
	ws.closed = true
	ws.c.Close(code, reason)
}

// send writes one message, within WriteTimeout.
func (ws *wsSession) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		ws.s.log.Warn("http: encoding a WebSocket message", "err", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ws.s.cfg.WriteTimeout)
	defer cancel()
	return ws.c.Write(ctx, websocket.MessageText, b)
}

// answer carries out a control message.
func (ws *wsSession) answer(op wsOp) error {
	s := ws.s
	switch op.kind {
	case "ping":
		return ws.send(WSPongJSON{Type: "pong", ID: op.id, Time: s.cfg.Now().UnixMilli()})
	case "get_status":
		return ws.send(WSStatusJSON{
			Type: "status", ID: op.id, Time: s.cfg.Now().UnixMilli(),
			Bus: s.cfg.Steps.Stats(),
			Subscription: WSSubscriptionJSON{
				StepFilterJSON: ws.filter.json(), Connected: ws.connected,
				Sent: ws.sent, Queued: len(ws.sub.C()), Dropped: ws.sub.Dropped(), Buffer: s.cfg.ClientBuffer,
			},
			HTTP: s.stepStats.json(),
		})
	case "subscribe":
		// STEPs already queued under the old filter are checked against
		// the new one as they are sent: after the ack only it applies.
		ws.sub.SetFilter(op.filter.pattern, op.filter.host)
		ws.filter = op.filter
		return ws.send(WSSubscribedJSON{Type: "subscribed", ID: op.id, StepFilterJSON: ws.filter.json()})
	}
	return ws.send(WSErrorJSON{Type: "error", ID: op.id, Error: op.err})
}

// read parses the client's messages into ops until the connection ends.
func (ws *wsSession) read(ctx context.Context, ops chan<- wsOp) error {
	for {
		typ, data, err := ws.c.Read(ctx)
		if err != nil {
			return err
		}
		op := parseWSMessage(typ, data)
		select {
		case ops <- op:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// parseWSMessage reads one control message; what it cannot use becomes
// an "error" op, answered without closing the connection.
func parseWSMessage(typ websocket.MessageType, data []byte) wsOp {
	if typ != websocket.MessageText {
		return wsOp{kind: "error", err: "binary messages are not understood: send JSON text such as {\"type\":\"ping\"}"}
	}
	var m wsIn
	if err := json.Unmarshal(data, &m); err != nil {
		return wsOp{kind: "error", err: "malformed message: " + jsonError(err)}
	}
	op := wsOp{kind: m.Type, id: m.ID}
	if len(op.id) > 256 {
		op.id = nil // an id is echoed, not stored: keep it small
	}
	switch m.Type {
	case "ping", "get_status":
	case "subscribe":
		f, err := newStepFilter(deref(m.Pattern), deref(m.Host), deref(m.Kind))
		if err != nil {
			return wsOp{kind: "error", id: op.id, err: "subscribe: " + err.Error()}
		}
		op.filter = f
	case "":
		return wsOp{kind: "error", id: op.id, err: `malformed message: "type" is missing (ping, get_status or subscribe)`}
	default:
		return wsOp{kind: "error", id: op.id, err: fmt.Sprintf("unknown message type %q (known: ping, get_status, subscribe)", m.Type)}
	}
	return op
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
