package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/step"
)

// TestStepsAccept: with --steps-accept 127.0.0.1/32, of two publishers
// registered under "step", on 127.0.0.1 and on 127.0.0.2, the bus follows
// the first only (the second gets no connection and is counted as
// ignored), and GET /api/v1/steps gives each STEP's source beside it. A
// list that is not CIDRs is refused at start.
func TestStepsAccept(t *testing.T) {
	leakcheck.Check(t)
	c := testConfig("")
	c.stepsAccept = "127.0.0.1/32"
	d, err := start(c, testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	var pubs []*flow.TCPServer
	for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		pub, err := flow.ListenTCP(ip+":0", flow.Options{Logger: testutil.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close()
		pubs = append(pubs, pub)
		// A client per publisher: a second registration of the name from
		// the same connection would replace the first (§7.3).
		nc, err := namesvc.Dial("tcp:"+d.namesTCP, namesvc.ClientOptions{Logger: testutil.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = nc.Register(ctx, namesvc.Info{Name: "step", Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: pub.LocalAddr()}}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	var stats struct {
		Connected int `json:"publishers_connected"`
		Ignored   int `json:"publishers_ignored"`
	}
	getJSON := func(path string, v any) {
		t.Helper()
		resp, err := http.Get("http://" + d.http + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "the bus follows 127.0.0.1 and ignores 127.0.0.2 (/api/v1/steps/stats)", func() bool {
		getJSON("/api/v1/steps/stats", &stats)
		return stats.Connected == 1 && stats.Ignored == 1 && pubs[0].Conns() == 1
	})

	if n := pubs[1].Conns(); n != 0 {
		t.Fatalf("the publisher on 127.0.0.2 has %d connections", n)
	}
	for i, pub := range pubs {
		s := step.New("app.accept", "from publisher", []string{"host-one", "host-two"}[i], time.Now())
		var q seq.Sequence
		if err := step.Encode(&q, s); err != nil {
			t.Fatal(err)
		}
		pub.Send(&q)
	}
	var got struct {
		Steps   []*step.Step `json:"steps"`
		Sources []string     `json:"sources"`
	}
	testutil.WaitFor(t, 10*time.Second, "the STEP of 127.0.0.1 in /api/v1/steps", func() bool {
		getJSON("/api/v1/steps?type=app.accept", &got)
		return len(got.Steps) > 0
	})

	want := []string{"tcp:" + pubs[0].LocalAddr().String()}
	if len(got.Steps) != 1 || got.Steps[0].Space.Hostname != "host-one" || !slices.Equal(got.Sources, want) {
		t.Fatalf("/api/v1/steps: %d STEPs from %v, want host-one's from %v", len(got.Steps), got.Sources, want)
	}

	c = testConfig("")
	c.stepsAccept = "127.0.0.1/32,10.0.0.0/33"
	if d, err := start(c, testutil.Discard()); err == nil {
		d.close()
		t.Fatal("started with --steps-accept 10.0.0.0/33")
	} else if !strings.Contains(err.Error(), "--steps-accept") || !strings.Contains(err.Error(), "CIDR") {
		t.Errorf("error %q does not point at --steps-accept", err)
	}
}
