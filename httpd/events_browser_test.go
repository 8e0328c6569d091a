package httpd

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/smartbeat"
)

// TestBrowserMergedEvents: the Services page follows merged beats (ids
// with gaps, "prev", "intervals_ms") without loading the snapshot again,
// and ends with every record's latest values and all its smartbeat
// intervals in the sparkline.
func TestBrowserMergedEvents(t *testing.T) {
	needBrowser(t)
	mon, _, cfg := world(t)
	cfg.Logger = testutil.Discard()
	const records, rounds, beats = 20, 4, 5
	uids := make([]uint64, records)
	for i := range uids {
		uids[i] = mon.create(fmt.Sprintf("merged-%02d", i), "", smartbeat.Running, fmt.Sprintf("10.9.0.%d:5000", i+1))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	manualFlush(s)
	base := serveLoopback(t, s)

	b, page, plog := watchedPage(t)
	b.must(page, "Page.navigate", map[string]any{"url": base + "/services"})
	b.waitUntil(page, "the page loaded and live", `!!document.querySelector('#live.on') && document.querySelectorAll('#current tr.svc').length >= 20`, 15*time.Second)
	snapshots := func() int {
		plog.mu.Lock()
		defer plog.mu.Unlock()
		n := 0
		for _, u := range plog.requests {
			if strings.Contains(u, "/api/v1/snapshot") {
				n++
			}
		}
		return n
	}
	loads := snapshots()

	t0 := time.Now()
	for r := range rounds {
		for k := range beats {
			for i, uid := range uids {
				n := r*beats + k
				mon.beat(uid, uint64(100+n), t0.Add(time.Duration(n)*500*time.Millisecond+time.Duration(i)*time.Millisecond))
			}
		}
		s.hub.flushStreams()
	}
	last := fmt.Sprint(100 + rounds*beats - 1)
	b.waitUntil(page, "every record's latest checkpoint", `[...document.querySelectorAll('#current tr.svc')].filter(r => r.querySelector('.name').textContent.startsWith('merged-') && r.querySelector('td.checkpoint').textContent === '`+last+`').length === 20`, 10*time.Second)

	var applied uint64
	b.eval(page, `stk.applied`, &applied)
	if want := mon.Stats().LastEvent; applied != want {
		t.Errorf("the page applied up to event %d, the monitor is at %d", applied, want)
	}
	if n := snapshots(); n != loads {
		t.Errorf("the page loaded the snapshot %d times more", n-loads)
	}
	// The hub saw no smartbeat before the first: one interval fewer.
	var sparks [][]float64
	uidsJS, _ := json.Marshal(uids)
	if err := b.eval(page, string(uidsJS)+`.map(u => stk.services.get(u).beat_intervals_ms)`, &sparks); err != nil || len(sparks) != records {
		t.Fatalf("sparklines: %v %v", sparks, err)
	}
	for i, sp := range sparks {
		want := make([]float64, rounds*beats-1)
		for k := range want {
			want[k] = 500
		}
		if !equalFloats(sp, want) {
			t.Errorf("record %d: sparkline %v, want %v", uids[i], sp, want)
		}
	}
	plog.checkProblems(t)
}
