package smartbeat

import (
	"fmt"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
)

func pageNames(p HistoryPage) []string {
	var out []string
	for _, v := range p.Records {
		out = append(out, v.Name)
	}
	return out
}

// TestHistoryPage: pages come newest first, a cursor continues where the
// previous page ended even when records enter the history meanwhile, and
// the filters select by name (substring, any case), group and state.
func TestHistoryPage(t *testing.T) {
	m, _ := testMonitor(t, MonitorConfig{MaxHistory: 50})
	p := peerOf(flow.TCP, "127.0.0.1:40000")
	for i := range 25 {
		name := fmt.Sprintf("svc-%02d", i)
		if i%5 == 0 {
			name = fmt.Sprintf("Billing-%02d", i)
		}
		m.Handle(p, createSeq(uint64(i+1), name, time.Minute))
		st := Stopped
		if i%2 == 1 {
			st = State(0x81)
		}
		m.Handle(p, destroySeq(uint64(i+1), name, st))
	}
	m.Handle(p, createGroupSeq(100, "member", "grp A"))
	m.Handle(p, destroySeq(100, "member", Stopped))

	first := m.HistoryPage(HistoryQuery{Limit: 10})
	if first.Total != 26 || len(first.Records) != 10 || first.Next == 0 {
		t.Fatalf("first page: total %d, %d records, next %d", first.Total, len(first.Records), first.Next)
	}
	if got := pageNames(first); got[0] != "member" || got[1] != "svc-24" || got[9] != "svc-16" {
		t.Fatalf("first page %v, want newest first", got)
	}
	// A record entering the history between two pages shows on no older
	// page, and no record is on two pages.
	m.Handle(p, createSeq(200, "late", time.Minute))
	m.Handle(p, destroySeq(200, "late", Stopped))
	seen := map[string]bool{}
	for _, n := range pageNames(first) {
		seen[n] = true
	}
	for cur, pages := first.Next, 1; cur != 0; pages++ {
		pg := m.HistoryPage(HistoryQuery{Limit: 10, Before: cur})
		for _, n := range pageNames(pg) {
			if seen[n] {
				t.Fatalf("%s on two pages", n)
			}
			seen[n] = true
		}
		if pages > 3 {
			t.Fatal("more pages than records")
		}
		cur = pg.Next
	}
	if len(seen) != 26 || seen["late"] {
		t.Fatalf("paged through %d records (late seen: %v), want the 26 of the first read", len(seen), seen["late"])
	}

	for _, tc := range []struct {
		q    HistoryQuery
		want int
	}{
		{HistoryQuery{Name: "billing"}, 5},
		{HistoryQuery{Name: "BILL", Limit: 2}, 2},
		{HistoryQuery{Group: "grp A"}, 1},
		{HistoryQuery{Group: "grp"}, 0},
		{HistoryQuery{State: "stopped"}, 15},             // the 13 even ones, member and late
		{HistoryQuery{State: "4"}, 15},                   // by number
		{HistoryQuery{State: "129"}, 12},                 // an application state
		{HistoryQuery{State: "129", Name: "billing"}, 2}, // 5 and 15
		{HistoryQuery{Limit: 5000}, 27},                  // at most MaxHistoryPage, all here
	} {
		if got := m.HistoryPage(tc.q); len(got.Records) != tc.want {
			t.Errorf("%+v: %d records %v, want %d", tc.q, len(got.Records), pageNames(got), tc.want)
		}
	}
	if pg := m.HistoryPage(HistoryQuery{}); len(pg.Records) != 27 || pg.Next != 0 {
		t.Errorf("default page: %d records, next %d", len(pg.Records), pg.Next)
	}
}
