package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/step"
	"github.com/stk-go/stk/stepbus"
)

// testConfig is the default config on ports the system picks, with an
// archive in dir.
func testConfig(dir string) config {
	c := defaultConfig()
	c.namesTCP, c.namesUDP = "127.0.0.1:0", ""
	c.monTCP, c.monUDP = "127.0.0.1:0", ""
	c.http = "127.0.0.1:0"
	c.stepsArchive = dir
	return c
}

func TestStepsDefaults(t *testing.T) {
	c := defaultConfig()
	if !c.steps || c.stepsFeed != "127.0.0.1:0" || c.stepsArchive != "" || c.stepsHistory != stepbus.DefaultHistory ||
		c.stepsFeedName != "steps" || c.stepsDirectory != "step" {
		t.Fatalf("STEP defaults %+v", c)
	}
	// Flags win over a C config file, which knows nothing of STEPs.
	path := filepath.Join(t.TempDir(), "stkd.cfg")
	os.WriteFile(path, []byte("named: -T 127.0.0.1:1\n"), 0o644)
	f := defaultConfig()
	f.steps, f.stepsArchive, f.stepsArchiveKeep = false, "/x", 3
	c = defaultConfig()
	if _, err := loadCfgFile(&c, path, false, false); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"steps", "steps-archive", "steps-archive-keep"} {
		flagFields[name](&c, &f)
	}
	if c.steps || c.stepsArchive != "/x" || c.stepsArchiveKeep != 3 {
		t.Fatalf("config %+v", c)
	}
	home, _ := os.UserHomeDir()
	if p, _ := expandHome("~/state/steps"); p != filepath.Join(home, "state/steps") {
		t.Fatalf("expandHome: %q", p)
	}
	if p, _ := expandHome("/abs/~/x"); p != "/abs/~/x" {
		t.Fatalf("expandHome changed %q", p)
	}
}

func TestStepsBadFlags(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		set  func(*config)
		want string
	}{
		{func(c *config) { c.stepsHistory = 0 }, "--steps-history"},
		{func(c *config) { c.stepsArchiveKeep = -1 }, "--steps-archive-keep"},
		{func(c *config) { c.stepsArchiveMaxAge = 0 }, "--steps-archive-max-age"},
		{func(c *config) { c.stepsArchiveMaxBytes = -5 }, "--steps-archive-max-bytes"},
		{func(c *config) { c.stepsFeed = "nonsense" }, "--steps-feed"},
		{func(c *config) { c.stepsFeedName = "step" }, "both \"step\""},
	} {
		c := testConfig("")
		tc.set(&c)
		d, err := start(c, testutil.Discard())
		if err == nil {
			d.close()
			t.Fatalf("started with a bad STEP setting (want an error naming %s)", tc.want)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %q does not name %s", err, tc.want)
		}
	}
	// An archive directory that cannot be made.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if d, err := start(testConfig(filepath.Join(file, "sub")), testutil.Discard()); err == nil {
		d.close()
		t.Fatal("started with an archive under a file")
	} else if !strings.Contains(err.Error(), "--steps-archive") {
		t.Errorf("error %q does not point at --steps-archive", err)
	}
}

// The daemon's bus follows a publisher registered under "step", serves
// its STEPs over HTTP and on the feed (to a subscriber that finds it by
// the name "steps", as the subscribe example does: TestStepsEndToEnd runs
// that one), lists its flows, and archives them.
func TestStepsDaemon(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	d, err := start(testConfig(dir), testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	closed := false // daemon.close may run once
	defer func() {
		if !closed {
			d.close()
		}
	}()
	if d.stepsFeed == "" || !strings.Contains(fmt.Sprintln(d.logAttrs()...), "steps_feed "+d.stepsFeed) {
		t.Fatalf("feed %q not in the log attributes %v", d.stepsFeed, d.logAttrs())
	}
	names := "tcp:" + d.namesTCP

	// A publisher, as stepmon is: a TCP flow registered under "step".
	pub, err := flow.ListenTCP("127.0.0.1:0", flow.Options{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	nc, err := namesvc.Dial(names, namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nc.Register(ctx, namesvc.Info{Name: "step", Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: pub.LocalAddr()}}}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the bus connects to the publisher", func() bool { return pub.Conns() == 1 })

	// A feed subscriber finds the feed by name. The bus registers "steps"
	// apart from following "step": the connection above does not imply
	// the registration, so the lookup waits for it.
	info := lookup(t, nc, "steps")
	if len(info.Addresses) != 1 || info.Addresses[0].String() != "tcp:"+d.stepsFeed {
		t.Fatalf("steps registered as %v, the feed is at %s", info.Addresses, d.stepsFeed)
	}
	fed := make(chan *step.Step, 10)
	sub, err := flow.DialTCP(info.Addresses[0].Addr.String(), flow.Options{Logger: testutil.Discard(), Handler: func(_ flow.Peer, q *seq.Sequence) {
		if s, err := step.Decode(q); err == nil {
			fed <- s
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	testutil.WaitFor(t, 10*time.Second, "the subscriber is connected", func() bool { return d.steps.Stats().Feed.Conns == 1 })

	var sent []*step.Step
	for i := range 3 {
		s := step.New("system.cpu", "load", "web-1", time.Now())
		s.Set("kind", "metric")
		s.Set("cpu_percent", float64(10*i))
		sent = append(sent, s)
		var q seq.Sequence
		if err := step.Encode(&q, s); err != nil {
			t.Fatal(err)
		}
		pub.Send(&q)
	}
	for i := range sent {
		select {
		case s := <-fed:
			if s.ID != sent[i].ID {
				t.Fatalf("feed STEP %d is %s, want %s", i, s.ID, sent[i].ID)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("feed delivered %d of %d STEPs", i, len(sent))
		}
	}

	// GET /api/v1/steps serves the bus's history.
	resp, err := http.Get("http://" + d.http + "/api/v1/steps?type=system.cpu&host=web-1")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Steps []json.RawMessage `json:"steps"`
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(got.Steps) != 3 {
		t.Fatalf("GET /api/v1/steps: %d %v, %d STEPs", resp.StatusCode, err, len(got.Steps))
	}
	for i, raw := range got.Steps {
		s, err := step.Parse(raw)
		if err != nil || s.ID != sent[i].ID {
			t.Fatalf("STEP %d over HTTP: %s (%v)", i, raw, err)
		}
	}
	// Its flows are on the Flows page.
	resp, err = http.Get("http://" + d.http + "/api/v1/flows")
	if err != nil {
		t.Fatal(err)
	}
	flows, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The feed and the connection to the publisher.
	if !strings.Contains(string(flows), "steps-tcp-"+d.stepsFeed) || strings.Count(string(flows), "steps-tcp-") != 2 {
		t.Fatalf("/api/v1/flows lacks the bus's two flows: %s", flows)
	}

	// Closing the daemon writes the archive.
	closed = true
	if err := d.close(); err != nil {
		t.Fatal(err)
	}
	var archived []string
	if err := stepbus.ReadArchive(dir, func(s *step.Step) error { archived = append(archived, s.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(archived) != 3 || archived[0] != sent[0].ID || archived[2] != sent[2].ID {
		t.Fatalf("archive holds %v", archived)
	}
}

// --steps=false runs no bus; the rest of the daemon runs as before.
func TestStepsOff(t *testing.T) {
	leakcheck.Check(t)
	c := testConfig("")
	c.steps = false
	d, err := start(c, testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if d.steps != nil || d.stepsFeed != "" {
		t.Fatal("a bus runs with --steps=false")
	}
	resp, err := http.Get("http://" + d.http + "/api/v1/steps")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /api/v1/steps without a bus: %d", resp.StatusCode)
	}
}
