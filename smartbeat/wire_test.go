package smartbeat

import (
	"testing"
	"time"

	"github.com/stk-go/stk/seq"
)

// TestCapture13ServiceBytes replays monitored_service (capture 13) with a
// Go Service: the same id, name, times and checkpoints must give the same
// bytes on the monitoring connection, frame for frame.
func TestCapture13ServiceBytes(t *testing.T) {
	want := frames(t, captureStream(t, "13_monitored_service.pcap", "127.0.0.1:59356", "127.0.0.1:20001"))
	clock := &scriptClock{times: []time.Time{
		tv(1795313425, 812633), // CREATE
		tv(1795313425, 812689), // immediate smartbeat
		tv(1795313426, 813010), // smartbeats, checkpoints 1..3
		tv(1795313427, 813264),
		tv(1795313428, 813538),
		tv(1795313428, 813740), // DESTROY
	}}
	snd := NewSender(SenderOptions{Period: -1, Now: clock.Now})
	mon := newRecFlow("127.0.0.1:59356")
	svc, err := NewService("demo monitored service", Options{ID: 63505736, MonitorFlow: mon, Sender: snd})
	if err != nil {
		t.Fatal(err)
	}
	svc.SetState(Running)
	for i := uint64(1); i <= 3; i++ {
		svc.SetCheckpoint(i)
		snd.SendNow()
	}
	svc.SetState(Stopping)
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	compareFrames(t, "capture 13 monitoring stream", frames(t, mon.bytes()), want)
}

// TestCapture15ClientBytes replays simple_client's service (capture 15): a
// monitoring flow (the env's, to 20001) and a notification flow (the data
// connection to simple_server), with the C order of destinations: CREATE
// to the notification flow first, smartbeats, STATE and DESTROY to the
// monitoring flow first.
func TestCapture15ClientBytes(t *testing.T) {
	wantMon := frames(t, captureStream(t, "15_service_group_automation.pcap", "127.0.0.1:54376", "127.0.0.1:20001"))
	wantNot := withoutData(t, frames(t, captureStream(t, "15_service_group_automation.pcap", "127.0.0.1:58030", "127.0.0.1:29312")))
	clock := &scriptClock{times: []time.Time{
		tv(1795313450, 320440), // CREATE
		tv(1795313450, 320541), // immediate smartbeat
		tv(1795313450, 331594), // DESTROY
	}}
	snd := NewSender(SenderOptions{Period: -1, Now: clock.Now})
	mon, not := newRecFlow("127.0.0.1:54376"), newRecFlow("127.0.0.1:58030")
	var order []string
	svc, err := NewService("client svc A", Options{ID: 1374261779, MonitorFlow: mon, NotifyFlow: not, Sender: snd,
		OnStateChange: func(_ *Service, old, new State) { order = append(order, old.String()+">"+new.String()) }})
	if err != nil {
		t.Fatal(err)
	}
	svc.SetState(Running)
	svc.SetCheckpoint(5)
	svc.SetState(Stopping)
	svc.Close()
	compareFrames(t, "capture 15 monitoring stream", frames(t, mon.bytes()), wantMon)
	compareFrames(t, "capture 15 notification stream", frames(t, not.bytes()), wantNot)
	if got := len(order); got != 3 || order[2] != "stopping>stopped" {
		t.Errorf("state callbacks %v", order)
	}
}

// TestCapture15MirrorBytes replays simple_server's service group (capture
// 15): the in-band notifications of the client, handed to Invoke, make the
// mirror service send what the C mirror sent to the monitor, group name
// included.
func TestCapture15MirrorBytes(t *testing.T) {
	in := withoutData(t, frames(t, captureStream(t, "15_service_group_automation.pcap", "127.0.0.1:58030", "127.0.0.1:29312")))
	want := frames(t, captureStream(t, "15_service_group_automation.pcap", "127.0.0.1:54370", "127.0.0.1:20001"))
	clock := &scriptClock{times: []time.Time{
		tv(1795313450, 320805), // mirror CREATE
		tv(1795313450, 320836), // immediate smartbeat
		tv(1795313450, 331971), // DESTROY
	}}
	snd := NewSender(SenderOptions{Period: -1, Now: clock.Now})
	mon := newRecFlow("127.0.0.1:54370")
	var events []string
	g, err := NewGroup("Simple Server Service Group", GroupOptions{
		MonitorFlow: mon, Sender: snd, CheckInterval: -1,
		OnAdded:       func(_ *Group, m *Member) { events = append(events, "added "+m.Name()) },
		OnRemoved:     func(_ *Group, m *Member) { events = append(events, "removed "+m.Name()) },
		OnSmartbeat:   func(_ *Group, m *Member) { events = append(events, "smartbeat") },
		OnStateChange: func(_ *Group, m *Member, old, new State) { events = append(events, old.String()+">"+new.String()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	client := peerOf(1, "127.0.0.1:58030")
	for _, f := range in {
		if err := g.Invoke(client, decode(t, f)); err != nil {
			t.Fatal(err)
		}
	}
	compareFrames(t, "capture 15 mirror stream", frames(t, mon.bytes()), want)
	wantEvents := []string{"added client svc A", "starting>starting", "smartbeat", "starting>running", "running>stopping", "removed client svc A", "stopping>stopped"}
	if len(events) != len(wantEvents) {
		t.Fatalf("events %q, want %q", events, wantEvents)
	}
	for i := range events {
		if events[i] != wantEvents[i] {
			t.Fatalf("events %q, want %q", events, wantEvents)
		}
	}
}

func TestInstRoundTrip(t *testing.T) {
	in := inst{op: opDestroy, id: 1<<63 + 5, typ: 0x81, state: 0x82, sec: 1, usec: 999999, checkpoint: 42, activityMS: 1200}
	b := in.appendTo(nil)
	if len(b) != instSize {
		t.Fatalf("%d bytes", len(b))
	}
	got, err := parseInst(b)
	if err != nil || got != in {
		t.Fatalf("got %+v, %v", got, err)
	}
	b[0] = 40 // sz < 56
	if _, err := parseInst(b); err == nil {
		t.Fatal("sz 40 accepted")
	}
	if _, err := parseInst(b[:50]); err == nil {
		t.Fatal("short INST accepted")
	}
}

func TestSmartbeatSplitsAt254Services(t *testing.T) {
	snd := NewSender(SenderOptions{Period: -1})
	mon := newRecFlow("127.0.0.1:1")
	var svcs []*Service
	for i := range 300 {
		svc, err := NewService("s", Options{ID: uint64(i + 1), MonitorFlow: mon, Sender: snd})
		if err != nil {
			t.Fatal(err)
		}
		svcs = append(svcs, svc)
	}
	before := len(mon.sent())
	snd.SendNow()
	got := mon.sent()[before:]
	if len(got) != 2 || len(got[0].Elements) != 255 || len(got[1].Elements) != 1+300-254 {
		t.Fatalf("smartbeat split into %d sequences", len(got))
	}
	if got[0].Elements[0].UserType != seq.UTServiceIP || got[0].Elements[1].UserType != seq.UTSmartbeat {
		t.Fatal("element order")
	}
	for _, s := range svcs {
		s.Close()
	}
}
