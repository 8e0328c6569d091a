package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"
	"github.com/stk-go/stk/stepbus"
)

// wsClient is a test's WebSocket connection.
type wsClient struct {
	t *testing.T
	c *websocket.Conn
}

func dialWS(t *testing.T, base, query string, hdr http.Header) (*wsClient, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(base, "http") + "/api/v1/steps/ws" + query
	c, res, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		return nil, res, err
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}, res, nil
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	b, _ := json.Marshal(v)
	w.sendRaw(websocket.MessageText, b)
}

func (w *wsClient) sendRaw(typ websocket.MessageType, b []byte) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, typ, b); err != nil {
		w.t.Fatal(err)
	}
}

// read returns the next message as a map and its raw text.
func (w *wsClient) read() (map[string]any, string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := w.c.Read(ctx)
	if err != nil {
		w.t.Fatalf("reading: %v", err)
	}
	if typ != websocket.MessageText {
		w.t.Fatalf("message type %v", typ)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		w.t.Fatalf("%q: %v", b, err)
	}
	return m, string(b)
}

// expect reads the next message and checks its type.
func (w *wsClient) expect(typ string) (map[string]any, string) {
	w.t.Helper()
	m, raw := w.read()
	if m["type"] != typ {
		w.t.Fatalf("got %s, want type %q", raw, typ)
	}
	return m, raw
}

// expectStep reads the next message, a STEP of type typ.
func (w *wsClient) expectStep(typ string) *step.Step {
	w.t.Helper()
	_, raw := w.expect("step")
	var msg struct {
		Step json.RawMessage `json:"step"`
	}
	json.Unmarshal([]byte(raw), &msg)
	st, err := step.Parse(msg.Step)
	if err != nil {
		w.t.Fatalf("%s: %v", raw, err)
	}
	if st.Event.Type != typ {
		w.t.Fatalf("STEP %s, want %s", st.Event.Type, typ)
	}
	return st
}

func TestStepWebSocket(t *testing.T) {
	leakcheck.Check(t)
	s, base, bus := newStepTest(t, Config{}, stepbus.Config{History: 100})
	w, _, err := dialWS(t, base, "?type=system.cpu.*", nil)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the subscription", func() bool { return bus.Stats().Subscribers == 1 })
	now := time.Now().UnixMilli()
	mustPublish(t, bus,
		mkStep("system.cpu", "a", now, nil),
		mkStep("system.cpu.high", "a", now, map[string]any{"level": "warning"}),
		mkStep("system.memory.high", "b", now, nil),
		mkStep("system.cpu.critical", "b", now, nil),
	)
	if st := w.expectStep("system.cpu.high"); st.Level() != "warning" {
		t.Errorf("level %q", st.Level())
	}
	w.expectStep("system.cpu.critical")

	// ping, with an id echoed.
	w.send(map[string]any{"type": "ping", "id": 7})
	m, raw := w.expect("pong")
	if tm, _ := m["time"].(float64); m["id"] != 7.0 || tm < float64(now) {
		t.Errorf("pong %s", raw)
	}
	// get_status: the bus and the subscription.
	w.send(map[string]any{"type": "get_status"})
	_, raw = w.expect("status")
	var status WSStatusJSON
	if err := json.Unmarshal([]byte(raw), &status); err != nil {
		t.Fatal(err)
	}
	if status.Bus.Published != 4 || status.Subscription.Pattern != "system.cpu.*" || status.Subscription.Sent != 2 || status.HTTP.WebSockets != 1 || status.Subscription.Connected.IsZero() {
		t.Errorf("status %s", raw)
	}
	// subscribe: a new pattern and host; only it applies after the ack.
	w.send(map[string]any{"type": "subscribe", "pattern": "system.memory*", "host": "b", "id": "s1"})
	m, raw = w.expect("subscribed")
	if m["pattern"] != "system.memory*" || m["host"] != "b" || m["id"] != "s1" {
		t.Errorf("ack %s", raw)
	}
	mustPublish(t, bus,
		mkStep("system.cpu.high", "b", now, nil),
		mkStep("system.memory.high", "a", now, nil),
		mkStep("system.memory.high", "b", now+1, nil),
	)
	if st := w.expectStep("system.memory.high"); st.Space.Hostname != "b" {
		t.Errorf("host %q", st.Space.Hostname)
	}
	// A subscription over HTTP POSTs too.
	post(t, base+"/api/v1/step", "application/json", `{"event":{"type":"system.memory.low"},"space":{"hostname":"B"}}`)
	w.expectStep("system.memory.low")

	// What the server cannot use is answered with an error; the
	// connection stays.
	for _, c := range []struct {
		typ  websocket.MessageType
		msg  string
		want string
	}{
		{websocket.MessageText, `{"type":`, "malformed message"},
		{websocket.MessageText, `[1,2]`, "malformed message"},
		{websocket.MessageText, `{"id":1}`, `"type" is missing`},
		{websocket.MessageText, `{"type":"unsubscribe"}`, `unknown message type "unsubscribe"`},
		{websocket.MessageText, `{"type":"subscribe","pattern":"a b"}`, "subscribe: type"},
		{websocket.MessageText, `{"type":"subscribe","kind":"x"}`, "subscribe: kind"},
		{websocket.MessageText, `{"type":"ping","id":"` + strings.Repeat("z", 300) + `"}`, ""},
		{websocket.MessageBinary, `{"type":"ping"}`, "binary messages"},
	} {
		w.sendRaw(c.typ, []byte(c.msg))
		m, raw := w.read()
		if c.want == "" {
			if m["type"] != "pong" || m["id"] != nil {
				t.Errorf("%s: %s, want a pong without the long id", c.msg, raw)
			}
			continue
		}
		if e, _ := m["error"].(string); m["type"] != "error" || !strings.Contains(e, c.want) {
			t.Errorf("%s: %s, want an error saying %q", c.msg, raw, c.want)
		}
	}
	w.send(map[string]any{"type": "ping"})
	w.expect("pong")

	// The kind filter, by URL.
	ev, _, err := dialWS(t, base, "?kind=metric&host=c", nil)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the second subscription", func() bool { return bus.Stats().Subscribers == 2 })
	mustPublish(t, bus, mkStep("system.cpu.high", "c", now, nil), mkStep("system.cpu", "c", now, map[string]any{"kind": "metric"}))
	ev.expectStep("system.cpu")

	// Bad filters are refused before the upgrade.
	if _, res, err := dialWS(t, base, "?type=a%20b", nil); err == nil || res == nil || res.StatusCode != 400 {
		t.Errorf("bad pattern: %v %v", err, res)
	}
	if _, res, err := dialWS(t, base, "?pattern=a", nil); err == nil || res == nil || res.StatusCode != 400 {
		t.Errorf("unknown parameter: %v %v", err, res)
	}
	if n := s.stepStats.wsOpen.Load(); n != 2 {
		t.Errorf("%d open WebSockets", n)
	}

	// The client closes: the subscription ends.
	w.c.Close(websocket.StatusNormalClosure, "")
	testutil.WaitFor(t, 10*time.Second, "the subscription to end", func() bool { return bus.Stats().Subscribers == 1 })
	// The server shuts down: the client is told it is going away.
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err = ev.c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("after Close: %v, want status going away", err)
	}
	testutil.WaitFor(t, 10*time.Second, "no WebSocket", func() bool { return s.stepStats.wsOpen.Load() == 0 && bus.Stats().Subscribers == 0 })
}

// TestStepWebSocketOrigin: browsers' pages of this server and clients
// without Origin are accepted; other sites' pages are not.
func TestStepWebSocketOrigin(t *testing.T) {
	leakcheck.Check(t)
	_, base, _ := newStepTest(t, Config{}, stepbus.Config{History: 10})
	if _, _, err := dialWS(t, base, "", http.Header{"Origin": {base}}); err != nil {
		t.Errorf("same origin: %v", err)
	}
	for _, o := range []string{"http://evil.example", "null", "http://127.0.0.1:1"} {
		_, res, err := dialWS(t, base, "", http.Header{"Origin": {o}})
		if err == nil || res == nil || res.StatusCode != http.StatusForbidden {
			t.Errorf("Origin %s: %v, want 403", o, err)
		}
	}
	// Not a WebSocket request.
	if r := get(t, base+"/api/v1/steps/ws"); r.status != http.StatusUpgradeRequired {
		t.Errorf("plain GET: %d %s", r.status, r.body)
	}
}

// TestStepWebSocketSlowClient: a client that stops reading never slows
// Publish; once its queue overflows it is closed with status 1008 (policy
// violation) after what was already on its way.
func TestStepWebSocketSlowClient(t *testing.T) {
	leakcheck.Check(t)
	s, base, bus := newStepTest(t, Config{ClientBuffer: 4}, stepbus.Config{History: 16})
	w, _, err := dialWS(t, base, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.c.SetReadLimit(1 << 20)
	testutil.WaitFor(t, 10*time.Second, "the subscription", func() bool { return bus.Stats().Subscribers == 1 })
	n := fillUntilDropped(t, bus)

	steps := 0
	var err2 error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _, err2 = w.c.Read(ctx)
		cancel()
		if err2 != nil {
			break
		}
		steps++
	}
	var ce websocket.CloseError
	if !errors.As(err2, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "too slow") {
		t.Errorf("the end: %v, want status 1008 (policy violation)", err2)
	}
	if steps == 0 || steps >= n {
		t.Errorf("%d of %d STEPs before the close", steps, n)
	}
	if got := s.stepStats.wsCut.Load(); got != 1 {
		t.Errorf("%d WebSockets cut", got)
	}
	testutil.WaitFor(t, 10*time.Second, "the subscription to end", func() bool { return bus.Stats().Subscribers == 0 })
	t.Logf("published %d big STEPs; the stuck client got %d, then %v", n, steps, err2)
}
