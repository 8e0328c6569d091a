package stepbus

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/step"
)

func TestQuery(t *testing.T) {
	leakcheck.Check(t)
	b := newBus(t, Config{History: 100})
	// Arrival order differs from time order on purpose: 1003 arrives
	// before 1001, and two events share 1002.
	a := mk("system.cpu", "web-1", 1000)
	c := mk("system.cpu.high", "web-1", 1003)
	d := mk("system.memory", "DB-2", 1001)
	e1 := mk("system.disk", "db-2", 1002)
	e2 := mk("process.start", "web-1", 1002)
	f := mk("system.cpu", "other", 1004)
	f.Space.IP = "10.9.9.9"
	publish(t, b, a, c, d, e1, e2, f)

	for _, tc := range []struct {
		name string
		q    Query
		want []*step.Step
	}{
		{"all, by start then arrival", Query{}, []*step.Step{a, d, e1, e2, c, f}},
		{"pattern", Query{Pattern: step.MustPattern("system.cpu*")}, []*step.Step{a, c, f}},
		{"two globs", Query{Pattern: step.MustPattern("*.high,process.*")}, []*step.Step{e2, c}},
		{"host ignores case", Query{Host: "db-2"}, []*step.Step{d, e1}},
		{"host by ip", Query{Host: "10.9.9.9"}, []*step.Step{f}},
		{"since inclusive", Query{Since: time.UnixMilli(1002)}, []*step.Step{e1, e2, c, f}},
		{"until exclusive", Query{Until: time.UnixMilli(1002)}, []*step.Step{a, d}},
		{"window", Query{Since: time.UnixMilli(1001), Until: time.UnixMilli(1004)}, []*step.Step{d, e1, e2, c}},
		{"newest 3, oldest first", Query{Limit: 3}, []*step.Step{e2, c, f}},
		{"newest 2 of a tie: the later arrival", Query{Limit: 3, Until: time.UnixMilli(1003)}, []*step.Step{d, e1, e2}},
		{"limit with filter", Query{Limit: 1, Host: "WEB-1"}, []*step.Step{c}},
		{"limit above matches", Query{Limit: 50, Pattern: step.MustPattern("system.memory")}, []*step.Step{d}},
		{"nothing", Query{Pattern: step.MustPattern("gpu.*")}, nil},
	} {
		got := b.Query(tc.q)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %s, want %s", tc.name, describe(got), describe(tc.want))
		}
	}
}

func describe(ss []*step.Step) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, fmt.Sprintf("%s@%d", s.Event.Type, s.Time.Start))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func TestHistoryIsBounded(t *testing.T) {
	leakcheck.Check(t)
	b := newBus(t, Config{History: 5})
	for i := int64(1); i <= 12; i++ {
		publish(t, b, mk("system.cpu", "h", i))
	}
	if got := starts(b.Query(Query{})); ms(got...) != ms(8, 9, 10, 11, 12) {
		t.Fatalf("history %v, want the newest 5", got)
	}
	st := b.Stats()
	if st.History != 5 || st.HistoryCap != 5 || st.Oldest != 8 || st.Newest != 12 || st.Published != 12 {
		t.Fatalf("stats %+v", st)
	}
	if got := starts(b.Query(Query{Limit: 2})); ms(got...) != ms(11, 12) {
		t.Fatalf("limit 2: %v", got)
	}
}

func TestPublishRefusesInvalid(t *testing.T) {
	leakcheck.Check(t)
	b := newBus(t, Config{})
	bad := mk("system.cpu", "h", 1)
	bad.Event.Type = "no spaces allowed"
	err := b.Publish(bad, "test")
	if err == nil || !strings.Contains(err.Error(), "event.type") {
		t.Fatalf("invalid type: err %v", err)
	}
	noStart := mk("system.cpu", "h", 1)
	noStart.Time.Start = 0
	if err := b.Publish(noStart, "test"); err == nil {
		t.Fatal("a STEP without time.start was accepted")
	}
	if err := b.Publish(nil, "test"); err == nil {
		t.Fatal("nil accepted")
	}
	publish(t, b, mk("system.cpu", "h", 2))
	st := b.Stats()
	if st.Received != 4 || st.Invalid != 3 || st.Published != 1 || st.History != 1 || st.BySource["test"] != 1 {
		t.Fatalf("stats %+v", st)
	}
	b.Close()
	if err := b.Publish(mk("system.cpu", "h", 3), "test"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
}

func TestHosts(t *testing.T) {
	leakcheck.Check(t)
	clk := newClock()
	b := newBus(t, Config{Now: clk.Now})
	cpu1 := metric("system.cpu", "web-1", 1000, "cpu_percent", 10.0)
	cpu2 := metric("system.cpu", "web-1", 2000, "cpu_percent", 20.0)
	late := metric("system.cpu", "web-1", 1500, "cpu_percent", 15.0) // arrives last, is older
	root := metric("system.disk", "web-1", 2000, "mountpoint", "/")
	home := metric("system.disk", "web-1", 2000, "mountpoint", "/home")
	gpu := metric("system.gpu", "web-1", 2000, "gpu_index", 3.0)
	alert := mk("system.cpu.high", "web-1", 2100) // an event, not a metric
	publish(t, b, cpu1, cpu2, root, home, gpu)
	clk.Advance(time.Minute)
	publish(t, b, late, alert)
	other := metric("system.memory", "db-2", 900)
	other.Space.IP = "10.0.0.2"
	publish(t, b, other)

	hosts := b.Hosts()
	if len(hosts) != 2 || hosts[0].Hostname != "db-2" || hosts[1].Hostname != "web-1" {
		t.Fatalf("hosts %+v", hosts)
	}
	w := hosts[1]
	if w.Events != 7 || w.IP != "10.0.0.1" || !w.LastSeen.Equal(clk.Now()) {
		t.Fatalf("web-1 %+v", w)
	}
	want := []*step.Step{cpu2, root, home, gpu}
	if !slices.Equal(w.Latest, want) {
		t.Fatalf("web-1 latest %s, want %s", describe(w.Latest), describe(want))
	}
	if hosts[0].IP != "10.0.0.2" || len(hosts[0].Latest) != 1 {
		t.Fatalf("db-2 %+v", hosts[0])
	}
	if st := b.Stats(); st.Hosts != 2 || st.ByHost["web-1"] != 7 || st.ByType["system.cpu"] != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStatKeysAreBounded(t *testing.T) {
	leakcheck.Check(t)
	clk := newClock()
	b := newBus(t, Config{History: 10, Now: clk.Now})
	for i := range MaxStatKeys + 10 {
		clk.Advance(time.Millisecond)
		publish(t, b, mk(fmt.Sprintf("t%d", i), fmt.Sprintf("h%d", i), int64(i+1)))
	}
	st := b.Stats()
	if len(st.ByType) != MaxStatKeys+1 || st.ByType[OtherKey] != 10 {
		t.Fatalf("by_type has %d keys, other %d", len(st.ByType), st.ByType[OtherKey])
	}
	if st.Hosts != MaxStatKeys {
		t.Fatalf("%d hosts kept, want %d", st.Hosts, MaxStatKeys)
	}
	// The hosts seen longest ago went first.
	hs := b.Hosts()
	if slices.ContainsFunc(hs, func(h HostSummary) bool { return h.Hostname == "h0" }) ||
		!slices.ContainsFunc(hs, func(h HostSummary) bool { return h.Hostname == fmt.Sprint("h", MaxStatKeys+9) }) {
		t.Fatal("host eviction did not drop the oldest")
	}
}

// TestHistoryFloodKeepsOtherSources: one host flooding the bus cannot push
// the other hosts' events out of the history: once full, the flooder
// evicts its own oldest STEPs, and each other host keeps its events up to
// its share (bound / sources).
func TestHistoryFloodKeepsOtherSources(t *testing.T) {
	leakcheck.Check(t)
	b := newBus(t, Config{History: 100})
	var quiet []*step.Step
	for i := int64(1); i <= 10; i++ {
		s := mk("system.cpu", "quiet-1", i)
		quiet = append(quiet, s)
		publish(t, b, s)
	}
	db := mk("system.memory", "", 5) // a source known by its IP only
	db.Space.IP = "10.0.0.9"
	publish(t, b, db)
	for i := int64(100); i < 100+100_000; i++ {
		publish(t, b, mk("load.flood", "FLOODER", i))
	}
	if got := b.Query(Query{Host: "quiet-1"}); !slices.Equal(got, quiet) {
		t.Fatalf("the quiet host kept %s, want all of its 10 STEPs", describe(got))
	}
	if got := b.Query(Query{Host: "10.0.0.9"}); len(got) != 1 || got[0] != db {
		t.Fatalf("the host known by IP kept %s", describe(got))
	}
	flood := b.Query(Query{Host: "flooder"})
	if len(flood) != 89 || flood[0].Time.Start != 100+100_000-89 {
		t.Fatalf("the flooder holds %d STEPs from %d; want its newest 89", len(flood), flood[0].Time.Start)
	}
	if st := b.Stats(); st.History != 100 || st.Oldest != 1 || st.Newest != 100+100_000-1 {
		t.Fatalf("stats: history %d, oldest %d, newest %d", st.History, st.Oldest, st.Newest)
	}

	// Another host at a high rate: the two loud ones share what the quiet
	// ones leave, down to half each, and the quiet ones still keep theirs.
	for i := int64(1); i <= 1000; i++ {
		publish(t, b, mk("load.second", "loud-2", 200_000+i))
	}
	if n := len(b.Query(Query{Host: "quiet-1"})); n != 10 {
		t.Fatalf("quiet-1 kept %d of 10 after a second flood", n)
	}
	loud, flooder := len(b.Query(Query{Host: "loud-2"})), len(b.Query(Query{Host: "flooder"}))
	if loud+flooder != 89 || loud < 33 || flooder < 33 {
		t.Fatalf("loud-2 holds %d, flooder %d: want them to share 89, each at least its share 100/4 + what is left", loud, flooder)
	}

	// A quiet host beyond its share loses its own oldest, not the others'.
	for i := int64(11); i <= 60; i++ {
		publish(t, b, mk("system.cpu", "quiet-1", i))
	}
	got := starts(b.Query(Query{Host: "quiet-1"}))
	if len(got) < 25 || got[len(got)-1] != 60 {
		t.Fatalf("quiet-1 holds %v after 50 more, want at least its share of 25, ending with 60", got)
	}
	if st := b.Stats(); st.History != 100 {
		t.Fatalf("history %d, want the bound 100", st.History)
	}
}

// TestHistoryBoundOne: a bound of one still works when a source evicts
// its own only STEP.
func TestHistoryBoundOne(t *testing.T) {
	leakcheck.Check(t)
	b := newBus(t, Config{History: 1})
	for i := int64(1); i <= 5; i++ {
		publish(t, b, mk("a", "h1", i), mk("b", "h2", 10+i))
	}
	if got := starts(b.Query(Query{})); ms(got...) != ms(15) {
		t.Fatalf("history %v, want only the newest", got)
	}
}
