package smartbeat

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/pcap"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
)

// replay feeds the STK traffic a capture sent to port 20001 (the C web
// monitor's port) to m, TCP and STK-UDP alike, with clock set to each
// packet's capture time. It returns the number of sequences handled.
func replay(t *testing.T, m *Monitor, clock *testutil.Clock, file string) int {
	t.Helper()
	ps, err := pcap.Read(capturesDir + file)
	if err != nil {
		t.Fatal(err)
	}
	type stream struct {
		next    uint32
		started bool
		buf     []byte
	}
	streams := map[netip.AddrPort]*stream{}
	reasm := seq.NewReassembler(seq.ReassemblerConfig{})
	var s seq.Sequence
	handled := 0
	for _, p := range ps {
		if p.Dst.Port() != DefaultMonitorPort {
			continue
		}
		clock.Set(p.Time)
		switch p.Proto {
		case "udp":
			done, err := reasm.Add(&s, p.Src, p.Payload, p.Time)
			if err != nil {
				t.Fatalf("%s: datagram from %v: %v", file, p.Src, err)
			}
			if done {
				m.Handle(peerOf(flow.UDP, p.Src.String()), &s)
				handled++
			}
		case "tcp":
			st := streams[p.Src]
			if st == nil || p.Flags&0x02 != 0 {
				st = &stream{}
				streams[p.Src] = st
			}
			if p.Flags&0x02 != 0 {
				st.next, st.started = p.Seq+1, true
				continue
			}
			if !st.started {
				st.next, st.started = p.Seq, true
			}
			data := p.Payload
			if d := st.next - p.Seq; p.Seq != st.next && d < uint32(len(data)) { // overlap (retransmission)
				data = data[d:]
			} else if p.Seq != st.next {
				continue
			}
			st.buf = append(st.buf, data...)
			st.next += uint32(len(data))
			for {
				n, _, err := seq.DecodeTCP(&s, st.buf, 0)
				if err != nil {
					t.Fatalf("%s: stream from %v: %v", file, p.Src, err)
				}
				if n == 0 {
					break
				}
				m.Handle(peerOf(flow.TCP, p.Src.String()), &s)
				handled++
				st.buf = st.buf[n:]
			}
		}
	}
	return handled
}

// cPage is a C web monitor data document (/services_data).
type cPage struct {
	daemon           time.Time
	current, history []map[string]string
}

var (
	reDaemon = regexp.MustCompile(`daemon_obj\.sec = (\d+);daemon_obj\.msec = (\d+);`)
	reRecord = regexp.MustCompile(`svc_obj = new Object\(\);\n(.*)\n(services|service_history)\[`)
	reField  = regexp.MustCompile(`svc_obj\.(\w+) = ('[^']*'|"[^"]*"|[^;]*);`)
)

func readCPage(t *testing.T, file string) cPage {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var p cPage
	d := reDaemon.FindSubmatch(b)
	if d == nil {
		t.Fatalf("%s: no daemon_obj", file)
	}
	sec, _ := strconv.ParseInt(string(d[1]), 10, 64)
	ms, _ := strconv.ParseInt(string(d[2]), 10, 64)
	p.daemon = time.Unix(sec, ms*int64(time.Millisecond))
	for _, r := range reRecord.FindAllSubmatch(b, -1) {
		rec := map[string]string{}
		for _, f := range reField.FindAllSubmatch(r[1], -1) {
			rec[string(f[1])] = strings.Trim(string(f[2]), `'"`)
		}
		if string(r[2]) == "services" {
			p.current = append(p.current, rec)
		} else {
			p.history = append(p.history, rec)
		}
	}
	return p
}

// swap16 is how stkhttpd prints ports (docs/differences.md B5).
func swap16(v uint16) uint16 { return v<<8 | v>>8 }

// checkAgainstC compares our views with the C page's records, in order.
func checkAgainstC(t *testing.T, what string, got []ServiceView, want []map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, the C monitor shows %d", what, len(got), len(want))
	}
	for i, v := range got {
		w := want[i]
		field := func(name, g string) {
			t.Helper()
			if w[name] != g {
				t.Errorf("%s record %d: %s = %q, C shows %q", what, i, name, g, w[name])
			}
		}
		field("id", strconv.FormatUint(v.ID, 10))
		field("hid", fmt.Sprintf("%#x", v.ID))
		field("type", strconv.Itoa(int(v.Type)))
		field("state", strconv.Itoa(int(v.State)))
		field("state_name", v.StateName)
		field("name", v.Name)
		field("group_name", v.GroupName)
		field("checkpoint", strconv.FormatUint(v.Checkpoint, 10))
		field("tv_sec", strconv.FormatInt(v.LastBeat.Unix(), 10))
		field("tv_msec", strconv.Itoa(v.LastBeat.Nanosecond()/1e6))
		field("ip", v.Peer.Addr().String())
		field("port", strconv.Itoa(int(swap16(v.Peer.Port()))))
		field("protocol", v.Protocol)
		flag := func(b bool) string {
			if b {
				return "1"
			}
			return ""
		}
		field("inactivity", flag(v.Inactive))
		field("displaced", flag(v.Displaced))
		// The C daemon's receive clock ran a little behind the capture.
		sec, _ := strconv.ParseInt(w["rcv_tv_sec"], 10, 64)
		ms, _ := strconv.ParseInt(w["rcv_tv_msec"], 10, 64)
		if d := v.LastReceived.Sub(time.Unix(sec, ms*1e6)); d < -5*time.Millisecond || d > 5*time.Millisecond {
			t.Errorf("%s record %d: received at %v, C says %d.%03d", what, i, v.LastReceived, sec, ms)
		}
	}
}

func replayMonitor(t *testing.T) (*Monitor, *testutil.Clock) {
	clock := newFakeClock()
	m, err := NewMonitor(MonitorConfig{Now: clock.Now, CheckInterval: -1, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, clock
}

// TestReplayCapture13 replays monitored_service over TCP: CREATE, STATE,
// smartbeats, STATE, DESTROY leave one destroyed record in history, as
// the C web monitor showed.
func TestReplayCapture13(t *testing.T) {
	m, clock := replayMonitor(t)
	if n := replay(t, m, clock, "13_monitored_service.pcap"); n != 8 {
		t.Fatalf("replayed %d sequences, want 8", n)
	}
	page := readCPage(t, "13_services_data.txt")
	clock.Set(page.daemon)
	m.Check()
	snap := m.Snapshot()
	checkAgainstC(t, "current", snap.Services, page.current)
	checkAgainstC(t, "history", snap.History, page.history)
	h := snap.History[0]
	if !h.Destroyed || h.EndReason != EndDestroyed || h.Verdict != nil {
		t.Errorf("history record %+v", h)
	}
	var states []string
	for _, s := range h.States {
		states = append(states, s.Name)
	}
	if strings.Join(states, ",") != "starting,running,stopping,stopped" {
		t.Errorf("state history %v", states)
	}
	if h.Beats != 4 || snap.Stats.Created != 1 || snap.Stats.Destroyed != 1 || snap.Stats.Beats != 4 {
		t.Errorf("beats %d, stats %+v", h.Beats, snap.Stats)
	}
	if g := m.Groups(); len(g) != 0 || len(readCPage(t, "13_service_groups_data.txt").history) != 0 {
		t.Errorf("groups %v", g)
	}
}

// TestReplayCapture14 replays monitoring over STK-UDP and a kill -9: the
// service is current while it beats and in history, inactive with its
// state unchanged, after its activity timeout, as the C web monitor
// showed; the verdict names the activity timeout.
func TestReplayCapture14(t *testing.T) {
	m, clock := replayMonitor(t)
	if n := replay(t, m, clock, "14_monitored_timeout_udp.pcap"); n != 5 {
		t.Fatalf("replayed %d sequences, want 5", n)
	}
	alive := readCPage(t, "14_services_data_alive.html")
	clock.Set(alive.daemon)
	m.Check()
	checkAgainstC(t, "alive: current", m.Services(), alive.current)
	checkAgainstC(t, "alive: history", m.History(), alive.history)

	dead := readCPage(t, "14_services_data_timedout.html")
	clock.Set(dead.daemon)
	m.Check()
	checkAgainstC(t, "timed out: current", m.Services(), dead.current)
	hist := m.History()
	checkAgainstC(t, "timed out: history", hist, dead.history)
	v := hist[0].Verdict
	if v == nil || v.Detector != DetectorActivityTimeout || v.ActivityTimeout != 1200*time.Millisecond || hist[0].EndReason != EndTimedOut {
		t.Fatalf("verdict %+v", v)
	}
	// The C page was taken 2.73 s after the last smartbeat; our check
	// would have fired as soon as 1.2 s had passed.
	if v.Silence < 1200*time.Millisecond || v.Silence > 3*time.Second {
		t.Errorf("silence %v", v.Silence)
	}
}

// TestReplayCapture15 replays service-group automation: the client's own
// service and the group's mirror of it (with the group name), both
// destroyed, as the C web monitor showed; the group page lists the mirror.
func TestReplayCapture15(t *testing.T) {
	m, clock := replayMonitor(t)
	replay(t, m, clock, "15_service_group_automation.pcap")
	page := readCPage(t, "15_services_data.html")
	clock.Set(page.daemon)
	m.Check()
	checkAgainstC(t, "current", m.Services(), page.current)
	// stkhttpd lists history newest first; History is oldest first.
	checkAgainstC(t, "history", reversed(m.History()), page.history)

	groups := readCPage(t, "15_service_groups_data.html")
	var grouped []ServiceView
	for _, v := range m.History() {
		if v.GroupName != "" {
			grouped = append(grouped, v)
		}
	}
	checkAgainstC(t, "group history", grouped, groups.history)
	g := m.Groups()
	if len(g) != 1 || g[0].Name != "Simple Server Service Group" || g[0].History != 1 || len(g[0].Current) != 0 {
		t.Fatalf("groups %+v", g)
	}
}

func reversed(vs []ServiceView) []ServiceView {
	out := slices.Clone(vs)
	slices.Reverse(out)
	return out
}
