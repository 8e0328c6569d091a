package smartbeat

import (
	"fmt"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
)

// Summary gives the current records and the newest ended ones, without
// state histories, at the monitor's latest event.
func TestSummary(t *testing.T) {
	m, err := NewMonitor(MonitorConfig{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ap, err := m.ServeTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var svcs []*Service
	for i := range 4 {
		s, err := NewService(fmt.Sprintf("s%d", i), Options{Monitor: "tcp:" + ap.String(), Logger: testutil.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		svcs = append(svcs, s)
	}
	testutil.WaitFor(t, 10*time.Second, "4 current records", func() bool { return len(m.Services()) == 4 })
	for _, s := range svcs[:3] {
		s.Close()
		testutil.WaitFor(t, 10*time.Second, s.Name()+" ended", func() bool { return m.Stats().Destroyed == uint64(len(m.History())) && hasEnded(m, s.Name()) })
	}
	sum := m.Summary(2)
	if sum.Seq != m.Stats().LastEvent {
		t.Errorf("Seq %d, want the latest event %d", sum.Seq, m.Stats().LastEvent)
	}
	if len(sum.Current) != 1 || sum.Current[0].Name != "s3" || !sum.Current[0].Current {
		t.Errorf("Current = %+v, want s3 only", sum.Current)
	}
	if len(sum.Ended) != 2 || sum.Ended[0].Name != "s2" || sum.Ended[1].Name != "s1" {
		t.Errorf("Ended = %+v, want s2 then s1 (newest first)", sum.Ended)
	}
	for _, v := range append(sum.Current, sum.Ended...) {
		if v.States != nil {
			t.Errorf("%s carries its state history; Summary leaves it out", v.Name)
		}
	}
	if got := m.Summary(0); len(got.Ended) != 0 || len(got.Current) != 1 {
		t.Errorf("Summary(0) = %d current, %d ended; want 1, 0", len(got.Current), len(got.Ended))
	}
}

func hasEnded(m *Monitor, name string) bool {
	for _, v := range m.History() {
		if v.Name == name {
			return true
		}
	}
	return false
}
