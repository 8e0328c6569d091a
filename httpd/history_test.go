package httpd

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/servetest"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/smartbeat"
)

// TestHistoryPages: /api/v1/history on a real monitor fed over TCP by
// real services: pages of limit records newest first, a cursor to the
// next, filters by name, group and state, and 400 for bad parameters.
func TestHistoryPages(t *testing.T) {
	leakcheck.Check(t)
	mon, svcOpts := realMonitor(t)
	const n = 30
	for i := range n {
		name := fmt.Sprintf("worker %02d", i)
		if i%3 == 0 {
			name = fmt.Sprintf("Billing %02d", i)
		}
		svc, err := smartbeat.NewService(name, svcOpts)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			svc.SetState(smartbeat.Running)
		}
		svc.Close()
	}
	testutil.WaitFor(t, 10*time.Second, "the history", func() bool { return mon.Stats().History == n })
	_, ts := newTest(t, Config{Monitor: mon, Logger: testutil.Discard()})

	page := func(query string) HistoryJSON {
		t.Helper()
		var h HistoryJSON
		if r := getJSON(t, ts.URL+"/api/v1/history?"+query, &h); r.status != 200 {
			t.Fatalf("?%s: status %d %s", query, r.status, r.body)
		}
		return h
	}
	seen := map[uint64]bool{}
	var order []string
	for q, pages := "limit=12", 0; ; pages++ {
		h := page(q)
		if h.Total != n || h.Limit != 12 || len(h.Services) > 12 {
			t.Fatalf("?%s: total %d, limit %d, %d records", q, h.Total, h.Limit, len(h.Services))
		}
		for _, s := range h.Services {
			if seen[s.UID] {
				t.Fatalf("%s on two pages", s.Name)
			}
			seen[s.UID] = true
			order = append(order, s.Name)
		}
		if h.Next == "" {
			if pages != 2 {
				t.Fatalf("%d pages of 12 for %d records", pages+1, n)
			}
			break
		}
		q = "limit=12&cursor=" + h.Next
	}
	if len(order) != n || order[0] != "worker 29" || order[n-1] != "Billing 00" {
		t.Fatalf("paged %d records, first %q, last %q: want all %d newest first", len(order), order[0], order[len(order)-1], n)
	}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"name=billing", 10},
		{"name=" + url.QueryEscape("BILLING 1"), 3}, // 12, 15, 18
		{"state=stopped", 30},                       // a closing service's last state
		{"state=4", 30},
		{"state=running", 0},
		{"group=none", 0},
		{"", n}, // the default page holds them all
	} {
		if h := page(tc.query); len(h.Services) != tc.want {
			t.Errorf("?%s: %d records, want %d", tc.query, len(h.Services), tc.want)
		}
	}
	for _, bad := range []string{"limit=0", "limit=x", "cursor=x", "cursor=0", "sort=name"} {
		if r := get(t, ts.URL+"/api/v1/history?"+bad); r.status != 400 {
			t.Errorf("?%s: status %d, want 400", bad, r.status)
		}
	}
	if h := page("limit=100000"); h.Limit != smartbeat.MaxHistoryPage {
		t.Errorf("limit above the maximum: applied %d", h.Limit)
	}
}

// realMonitor starts a monitor on a loopback TCP port for the test and
// returns it with the options of services that report to it.
func realMonitor(t *testing.T) (*smartbeat.Monitor, smartbeat.Options) {
	t.Helper()
	mon, ap := servetest.Monitor(t, smartbeat.MonitorConfig{}, "127.0.0.1:0")
	sender := smartbeat.NewSender(smartbeat.SenderOptions{Period: -1, Logger: testutil.Discard()})
	t.Cleanup(func() { sender.Close() })
	return mon, smartbeat.Options{Monitor: "tcp:" + ap.String(), Sender: sender, Logger: testutil.Discard()}
}
