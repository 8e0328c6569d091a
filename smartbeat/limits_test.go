package smartbeat

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/syncbuf"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
)

// limitsMonitor serves TCP on loopback and returns a connected client
// flow per conns.
func limitsMonitor(t *testing.T, cfg MonitorConfig, conns int) (*Monitor, *syncbuf.Buffer, []*flow.TCPClient) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.CheckInterval = -1
	m, err := NewMonitor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ap, err := m.ServeTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var cs []*flow.TCPClient
	for range conns {
		c, err := flow.DialTCP(ap.String(), flow.Options{Logger: testutil.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = c.WaitConnected(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return m, logs, cs
}

// sendAll sends every sequence on c and waits until the monitor has
// handled them all.
func sendAll(t *testing.T, m *Monitor, c *flow.TCPClient, ss ...*seq.Sequence) {
	t.Helper()
	want := m.Stats().Sequences + uint64(len(ss))
	for _, s := range ss {
		if err := c.Send(s); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "the monitor to handle the sequences", func() bool { return m.Stats().Sequences >= want })
}

func createGroupSeq(id uint64, name, group string) *seq.Sequence {
	return createSequence(inst{op: opCreate, id: id, typ: TypeData, state: Starting, activityMS: 60000}, name, group)
}

// TestMonitorRefusesLongStrings: names, state names and group names up to
// their bounds are stored; longer ones are refused, counted by reason,
// never stored, and logged with a short prefix only, at most once a
// second per reason.
func TestMonitorRefusesLongStrings(t *testing.T) {
	m, logs, cs := limitsMonitor(t, MonitorConfig{}, 1)
	c := cs[0]
	edge := strings.Repeat("n", MaxServiceNameLen)
	long := strings.Repeat("L", 40000) // under DefaultMaxNotificationSize: reaches the monitor
	sendAll(t, m, c,
		createSeq(1, edge, time.Minute),                                    // stored
		createSeq(2, edge+"x", time.Minute),                                // one byte too long
		createSeq(3, long, time.Minute),                                    // far too long
		createGroupSeq(4, "grouped", strings.Repeat("g", MaxGroupNameLen)), // stored
		createGroupSeq(5, "grouped2", strings.Repeat("g", MaxGroupNameLen+1)),
		stateSequence(edge, Running, strings.Repeat("s", MaxStateNameLen)), // stored
		stateSequence(edge, Stopping, strings.Repeat("s", MaxStateNameLen+1)),
		stateSequence(long, Stopping, "stopping"),
	)
	st := m.Stats()
	if got := st.Refused[RefusedServiceName]; got != 3 {
		t.Errorf("service-name refusals %d, want 3 (CREATE of 96 bytes, CREATE and STATE of 40000)", got)
	}
	if got := st.Refused[RefusedStateName]; got != 1 {
		t.Errorf("state-name refusals %d, want 1", got)
	}
	if got := st.Refused[RefusedGroupName]; got != 1 {
		t.Errorf("group-name refusals %d, want 1", got)
	}
	if st.Created != 2 || st.Current != 2 {
		t.Errorf("created %d, current %d; want the two records within the bounds", st.Created, st.Current)
	}
	for _, v := range m.Services() {
		if len(v.Name) > MaxServiceNameLen || len(v.StateName) > MaxStateNameLen || len(v.GroupName) > MaxGroupNameLen {
			t.Errorf("stored a string over its bound: name %d, state name %d, group %d bytes", len(v.Name), len(v.StateName), len(v.GroupName))
		}
		if v.ID == 1 && (v.State != Running || v.StateName != strings.Repeat("s", MaxStateNameLen)) {
			t.Errorf("record 1 in state %v %q: the STATE within the bound was not applied, or the refused one was", v.State, v.StateName)
		}
	}

	out := logs.String()
	if strings.Contains(out, strings.Repeat("L", logPrefixLen+1)) {
		t.Errorf("the log quotes more than %d bytes of a refused name", logPrefixLen)
	}
	if !strings.Contains(out, `reason=service_name`) || !strings.Contains(out, "bytes=40000") && !strings.Contains(out, "bytes=96") {
		t.Errorf("no refusal line for the long service names; log:\n%s", out)
	}
	if len(out) > 4096 {
		t.Errorf("%d bytes of log for 5 refusals", len(out))
	}

	// A flood of refusals: at most one line a second per reason.
	start := time.Now()
	var flood []*seq.Sequence
	for i := range 200 {
		flood = append(flood, createSeq(uint64(100+i), long, time.Minute))
	}
	sendAll(t, m, c, flood...)
	elapsed := time.Since(start)
	lines := strings.Count(logs.String(), "reason=service_name")
	if max := 2 + int(elapsed/time.Second); lines > max {
		t.Errorf("%d service-name refusal lines in %v (plus the first test's), want at most %d", lines, elapsed, max)
	}
	if got := m.Stats().Refused[RefusedServiceName]; got != 203 {
		t.Errorf("service-name refusals %d, want 203", got)
	}
}

// TestMonitorRecordLimits: one connection holds at most
// MaxRecordsPerSource current records and all of them MaxRecords; a
// displacement and a CREATE after a DESTROY still go in.
func TestMonitorRecordLimits(t *testing.T) {
	m, logs, cs := limitsMonitor(t, MonitorConfig{MaxRecordsPerSource: 3, MaxRecords: 5}, 2)
	a, b := cs[0], cs[1]
	sendAll(t, m, a, createSeq(1, "a1", time.Minute), createSeq(2, "a2", time.Minute),
		createSeq(3, "a3", time.Minute), createSeq(4, "a4", time.Minute))
	st := m.Stats()
	if st.Current != 3 || st.Refused[RefusedSourceRecords] != 1 {
		t.Fatalf("after 4 CREATEs on one connection: %d current, %d source refusals; want 3 and 1", st.Current, st.Refused[RefusedSourceRecords])
	}
	sendAll(t, m, a, createSeq(2, "a2 again", time.Minute)) // displaces: no new record
	if st := m.Stats(); st.Displaced != 1 || st.Current != 3 || st.Refused[RefusedSourceRecords] != 1 {
		t.Fatalf("a displacement at the per-source limit: %+v", st)
	}
	sendAll(t, m, b, createSeq(1, "b1", time.Minute), createSeq(2, "b2", time.Minute), createSeq(3, "b3", time.Minute))
	st = m.Stats()
	if st.Current != 5 || st.Refused[RefusedTotalRecords] != 1 {
		t.Fatalf("after 3 CREATEs on a second connection: %d current, %d total refusals; want 5 and 1", st.Current, st.Refused[RefusedTotalRecords])
	}
	sendAll(t, m, a, destroySeq(1, "a1", Stopped), createSeq(4, "a4", time.Minute))
	st = m.Stats()
	if st.Current != 5 || st.Refused[RefusedSourceRecords] != 1 || st.Refused[RefusedTotalRecords] != 1 {
		t.Fatalf("a CREATE after a DESTROY freed a place: %d current, refusals %v", st.Current, st.Refused)
	}
	names := map[string]bool{}
	for _, v := range m.Services() {
		names[v.Name] = true
	}
	for _, want := range []string{"a2 again", "a3", "a4", "b1", "b2"} {
		if !names[want] {
			t.Errorf("%q is not current; current: %v", want, names)
		}
	}
	out := logs.String()
	for _, want := range []string{"reason=source_records", "reason=total_records", "MaxRecordsPerSource", "MaxRecords"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestOversizedNotificationIsCut: a sequence over
// DefaultMaxNotificationSize (a 1 MB service name) never reaches the
// monitor; the flow counts it and drops the connection.
func TestOversizedNotificationIsCut(t *testing.T) {
	m, _, cs := limitsMonitor(t, MonitorConfig{}, 1)
	c := cs[0]
	if err := c.Send(createSeq(1, strings.Repeat("x", 1_000_000), time.Minute)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the monitor's flow to refuse the oversized frame", func() bool {
		for _, f := range m.Flows() {
			if f.Stats().Malformed > 0 {
				return true
			}
		}
		return false
	})

	if st := m.Stats(); st.Sequences != 0 || st.Created != 0 {
		t.Fatalf("the monitor handled %d sequences, created %d records", st.Sequences, st.Created)
	}
}
