package smartbeat

import (
	"sort"
	"strconv"
	"strings"
)

// Pages of the history, for a UI that shows it a page at a time: a page
// read copies only the records it returns, and finds its place in the
// history by binary search.
const (
	// DefaultHistoryPage is the page size when HistoryQuery.Limit is 0.
	DefaultHistoryPage = 100
	// MaxHistoryPage is the largest page.
	MaxHistoryPage = 1000
)

// HistoryQuery selects a page of the history, newest first.
type HistoryQuery struct {
	// Limit is the page size: DefaultHistoryPage when 0, at most
	// MaxHistoryPage.
	Limit int
	// Before is the cursor: only records that entered the history before
	// the one it names (HistoryPage.Next of the previous page). 0 starts
	// at the newest.
	Before uint64
	// Name selects records whose service name contains it, ignoring case.
	Name string
	// Group selects records of that service group (exactly; "" all).
	Group string
	// State selects records in that state: its number ("5"), or its name
	// ignoring case ("timed out", an application's own name).
	State string
}

// HistoryPage is a page of the history.
type HistoryPage struct {
	// Seq is the sequence number of the latest event the page includes.
	Seq uint64
	// Total is the number of records in the history (all of them, not
	// only those matching).
	Total int
	// Records are the matching records, newest first.
	Records []ServiceView
	// Next is the cursor of the following (older) page; 0 when there is
	// none.
	Next uint64
}

// match reports whether r is selected by q; state is q.State parsed.
func (q *HistoryQuery) match(r *record, lname string, stNum int) bool {
	if q.Group != "" && r.group != q.Group {
		return false
	}
	if q.State != "" && int(r.state) != stNum && !strings.EqualFold(r.stateName, q.State) {
		return false
	}
	return lname == "" || strings.Contains(strings.ToLower(r.name), lname)
}

// HistoryPage returns a page of the history records (destroyed, displaced,
// timed out), newest first. It scans back from the cursor and stops after
// the page: at most the history's MaxHistory records are looked at (when
// few match), and only the page is copied.
func (m *Monitor) HistoryPage(q HistoryQuery) HistoryPage {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultHistoryPage
	}
	limit = min(limit, MaxHistoryPage)
	lname := strings.ToLower(q.Name)
	stNum := -1
	if n, err := strconv.ParseUint(q.State, 10, 8); err == nil {
		stNum = int(n)
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.t.history // ordered by hseq
	end := len(h)
	if q.Before > 0 {
		end = sort.Search(len(h), func(i int) bool { return h[i].hseq >= q.Before })
	}
	page := HistoryPage{Seq: m.eventSeq, Total: len(h)}
	var last uint64 // hseq of the latest record in the page
	for i := end - 1; i >= 0; i-- {
		r := h[i]
		if !q.match(r, lname, stNum) {
			continue
		}
		if len(page.Records) == limit { // there is more: the next page starts below last
			page.Next = last
			break
		}
		page.Records = append(page.Records, r.view(now, true))
		last = r.hseq
	}
	return page
}
