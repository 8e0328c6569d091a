package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/step"
	"github.com/stk-go/stk/stepbus"
)

// TestStepsEndToEnd runs the whole path with real processes: stkd
// with its STEP bus, stepmon on this host, and the subscribe example.
//
//   - A STEP from stepmon reaches stkd (the bus follows the directory name
//     "step") and shows in GET /api/v1/steps and on a WebSocket stream
//     filtered by a pattern.
//   - A STEP POSTed to /api/v1/step reaches sequence subscribers of the
//     name "steps": a flow client that decodes it, and examples/subscribe.
func TestStepsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real processes skipped with -short")
	}
	// Built here rather than in a TestMain, which the package's other test
	// files do not need.
	progs, err := testprog.Build(".", "../stepmon", "../examples/subscribe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(progs) })
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}

	d := testprog.StartStkd(t, filepath.Join(progs, "stkd"), "--steps-feed", "127.0.0.1:0")
	ns, api := d.Names, d.URL("")

	// The WebSocket opens first, so it sees stepmon's first STEPs.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+d.HTTP+"/api/v1/steps/ws?type="+url.QueryEscape("system.mem*"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	stepmon := testprog.Start(t, filepath.Join(progs, "stepmon"), "--interval", "200ms", "--name-server", ns,
		"--stkd-http", api, "--collectors", "cpu,memory", "--quiet")
	stepmon.WaitFor(t, `msg="stepmon running"`, 10*time.Second)

	// stepmon -> bus -> GET /api/v1/steps. (The first CPU sample has no
	// percentage yet: it needs two readings.)
	var got struct {
		Steps []*step.Step `json:"steps"`
		Count int          `json:"count"`
	}
	var cpu *step.Step
	q := api + "/api/v1/steps?type=system.cpu&host=" + url.QueryEscape(hostname)
	testutil.WaitFor(t, 15*time.Second, "a system.cpu STEP of "+hostname+" with cpu_percent in "+q, func() bool {
		e2eGetJSON(t, q, &got)
		for _, s := range got.Steps {
			if _, ok := s.Float("cpu_percent"); ok {
				cpu = s
			}
		}
		return cpu != nil
	})
	if cpu.Space.Fields["kind"] != "metric" || cpu.Event.Type != "system.cpu" || cpu.Space.Hostname != hostname {
		t.Errorf("GET /api/v1/steps: %+v", cpu)
	}

	// stepmon -> bus -> WebSocket with the pattern system.mem*: memory
	// STEPs only, though cpu ones flow as often.
	for i := range 3 {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("WebSocket: %v", err)
		}
		var msg struct {
			Type string     `json:"type"`
			Step *step.Step `json:"step"`
		}
		if err := json.Unmarshal(b, &msg); err != nil || msg.Type != "step" || msg.Step == nil {
			t.Fatalf("WebSocket message %d: %s (%v)", i, b, err)
		}
		if !strings.HasPrefix(msg.Step.Event.Type, "system.mem") || msg.Step.Space.Hostname != hostname {
			t.Errorf("WebSocket with pattern system.mem*: %s on %s", msg.Step.Event.Type, msg.Step.Space.Hostname)
		}
	}
	ws.Close(websocket.StatusNormalClosure, "")

	// POST -> bus -> feed "steps" -> a sequence subscriber.
	names, err := namesvc.Dial(ns, namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer names.Close()
	// Registered by the bus on its own, apart from following "step" (the
	// STEPs above): wait for the name rather than assume it.
	info := lookup(t, names, "steps")
	if len(info.Addresses) == 0 {
		t.Fatalf("steps registered with no address: %v", info)
	}
	rec := &e2eDecoded{}
	sub, err := flow.DialTCP(info.Addresses[0].Addr.String(), flow.Options{Handler: rec.handle, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// The real subscriber program, found by name the same way.
	example := testprog.Start(t, filepath.Join(progs, "subscribe"), "-R", ns, "steps")
	testutil.WaitFor(t, 10*time.Second, "two connections to the feed", func() bool {
		var st stepbus.Stats
		e2eGetJSON(t, api+"/api/v1/steps/stats", &st)
		return st.Feed.Conns >= 2
	})

	id := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	body := `{"id":"` + id + `","event":{"type":"deploy.finished","description":"v2.1 is out"},` +
		`"space":{"hostname":"ci-runner","build":421},"psychology":{"valence":0.5,"intensity":0.2}}`
	res, err := httpClient.Post(api+"/api/v1/step", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted || !strings.Contains(string(rb), id) {
		t.Fatalf("POST: %d %s", res.StatusCode, rb)
	}
	var posted *step.Step
	testutil.WaitFor(t, 10*time.Second, "the POSTed STEP on the feed", func() bool {
		posted = rec.find(id)
		return posted != nil
	})
	if posted.Event.Type != "deploy.finished" || posted.Event.Description != "v2.1 is out" || posted.Space.Hostname != "ci-runner" ||
		posted.Space.Fields["build"] != 421.0 || posted.Psychology.Valence != 0.5 || posted.Time.Start == 0 {
		t.Errorf("e2eDecoded from the feed: %+v", posted)
	}
	if n := rec.errors(); n > 0 {
		t.Errorf("%d undecodable sequences on the feed", n)
	}
	example.WaitFor(t, `Received sequence 0x[0-9a-f]+ "step" type`, 10*time.Second)
	// The bus says where its STEPs came from.
	var st stepbus.Stats
	e2eGetJSON(t, api+"/api/v1/steps/stats", &st)
	if st.BySource["http"] != 1 || st.Publishers < 1 || st.ByHost[hostname] == 0 {
		t.Errorf("bus stats: by source %v, %d publishers, by host %v", st.BySource, st.Publishers, st.ByHost)
	}
}

// httpClient bounds every request of the test: a stuck daemon fails it.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// e2eDecoded collects the STEPs a feed subscriber decodes.
type e2eDecoded struct {
	mu    sync.Mutex
	steps map[string]*step.Step
	bad   int
}

func (d *e2eDecoded) handle(_ flow.Peer, q *seq.Sequence) {
	s, err := step.Decode(q)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.bad++
		return
	}
	if d.steps == nil {
		d.steps = map[string]*step.Step{}
	}
	d.steps[s.ID] = s
}

func (d *e2eDecoded) find(id string) *step.Step {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.steps[id]
}

func (d *e2eDecoded) errors() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bad
}

func e2eGetJSON(t *testing.T, u string, v any) {
	t.Helper()
	res, err := httpClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, res.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}
