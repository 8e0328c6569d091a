package smartbeat

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

func meta(ut uint64, s string) seq.Element { return seq.Element{UserType: ut, Data: cString(s)} }

// TestAddressFromInfo: TCP is preferred over UDP and multicast whatever
// their order (C takes the last, docs/differences.md B27); a plain registration gives its
// first address.
func TestAddressFromInfo(t *testing.T) {
	for _, c := range []struct {
		info namesvc.Info
		want string
	}{
		{namesvc.Info{Name: "monitor", Meta: []seq.Element{meta(seq.UTMonitorUDP, "udp:127.0.0.1:20001"), meta(seq.UTMonitorTCP, "tcp:127.0.0.1:20001")}}, "tcp:127.0.0.1:20001"},
		{namesvc.Info{Name: "monitor", Meta: []seq.Element{meta(seq.UTMonitorMcast, "udp:224.10.10.20:20001"), meta(seq.UTMonitorUDP, "udp:10.0.0.1")}}, "udp:10.0.0.1:20001"},
		{namesvc.Info{Name: "monitor", Meta: []seq.Element{meta(seq.UTMonitorMcast, "udp:224.10.10.20:20001")}}, "multicast:224.10.10.20:20001"},
		{namesvc.Info{Name: "group", Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:29312")}}}, "tcp:127.0.0.1:29312"},
		{namesvc.Info{Name: "group", Addresses: []namesvc.Endpoint{{Addr: netip.MustParseAddrPort("127.0.0.1:29312")}}}, "tcp:127.0.0.1:29312"},
	} {
		a, err := addressFromInfo(&c.info)
		if err != nil || a.String() != c.want {
			t.Errorf("%v: %v, %v; want %s", c.info.String(), a, err, c.want)
		}
	}
	if _, err := addressFromInfo(&namesvc.Info{Name: "x"}); !errors.Is(err, ErrNoMonitorAddress) {
		t.Errorf("no address: %v", err)
	}
	if _, err := addressFromInfo(&namesvc.Info{Name: "x", Meta: []seq.Element{meta(seq.UTMonitorTCP, "tcp:nonsense:1")}}); err == nil {
		t.Error("bad address accepted")
	}
}

func TestServiceOptionsAndSender(t *testing.T) {
	snd := NewSender(SenderOptions{Period: 500 * time.Millisecond})
	if _, err := NewService("", Options{Sender: snd}); err == nil {
		t.Error("empty name accepted")
	}
	if _, err := NewService("x", Options{Sender: snd, ActivityTimeout: 100 * time.Millisecond}); err == nil {
		t.Error("activity timeout below the period accepted")
	}
	if _, err := NewService("x", Options{Sender: snd, Monitor: "rawudp:127.0.0.1:1"}); err == nil {
		t.Error("rawudp monitor accepted")
	}
	if _, err := NewService("x", Options{Sender: snd, Monitor: "tcp:not-an-ip"}); err == nil {
		t.Error("bad monitor address accepted")
	}
	silent, err := NewService("silent", Options{Sender: snd, StateNames: map[State]string{0x81: "sending"}})
	if err != nil {
		t.Fatal(err)
	}
	if silent.ID() == 0 || silent.ID() >= 1<<31 || silent.Type() != TypeData || silent.Name() != "silent" || len(snd.Services()) != 0 {
		t.Fatalf("silent service: id %#x type %v, sender has %d", silent.ID(), silent.Type(), len(snd.Services()))
	}
	if silent.StateName(0x81) != "sending" || silent.StateName(0x90) != "144" || silent.AddCheckpoint(2) != 2 {
		t.Fatal("state names or checkpoint")
	}
	silent.SetStateName(0x81, "")
	if silent.StateName(0x81) != "129" {
		t.Fatal("state name not removed")
	}
	mon := newRecFlow("127.0.0.1:1")
	a, _ := NewService("a", Options{Sender: snd, MonitorFlow: mon})
	b, _ := NewService("b", Options{Sender: snd, MonitorFlow: mon})
	if len(snd.Services()) != 2 || snd.Period() != 500*time.Millisecond || snd.Sent() != 2 {
		t.Fatalf("sender: %d services, %d sent", len(snd.Services()), snd.Sent())
	}
	if err := snd.Close(); err != nil || !a.Closed() || !b.Closed() {
		t.Fatal("Sender.Close did not close its services")
	}
	n := len(mon.sent())
	if _, err := NewService("c", Options{Sender: snd, MonitorFlow: mon}); !errors.Is(err, ErrSenderClosed) || len(mon.sent()) != n {
		t.Fatalf("service on a closed sender: %v, %d notifications sent", err, len(mon.sent())-n)
	}
	if TypeNet.String() != "Network" || ServiceType(9).String() != "9" || EventTimedOut.String() != "timed_out" || EndDisplaced.String() != "displaced" {
		t.Fatal("names")
	}
}
