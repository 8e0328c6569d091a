package smartbeat

import (
	"errors"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil"
)

// TestClosedErrors: each closed object of the package answers with its
// sentinel, which callers test with errors.Is.
func TestClosedErrors(t *testing.T) {
	t.Run("Monitor", func(t *testing.T) {
		m, _ := testMonitor(t, MonitorConfig{})
		m.Close()
		if _, err := m.ServeTCP("127.0.0.1:0"); !errors.Is(err, ErrMonitorClosed) {
			t.Errorf("ServeTCP after Close: %v, want ErrMonitorClosed", err)
		}
		if _, err := m.ServeUDP("127.0.0.1:0"); !errors.Is(err, ErrMonitorClosed) {
			t.Errorf("ServeUDP after Close: %v, want ErrMonitorClosed", err)
		}
	})
	t.Run("Group", func(t *testing.T) {
		snd := NewSender(SenderOptions{Period: -1})
		defer snd.Close()
		g, err := NewGroup("g", GroupOptions{MonitorFlow: newRecFlow("127.0.0.1:50000"), Sender: snd,
			Logger: testutil.Discard(), manualChecks: true})
		if err != nil {
			t.Fatal(err)
		}
		g.Close()
		err = g.Invoke(peerOf(flow.TCP, "127.0.0.1:40000"), createSeq(1, "late", time.Second))
		if !errors.Is(err, ErrGroupClosed) {
			t.Errorf("Invoke of a CREATE after Close: %v, want ErrGroupClosed", err)
		}
	})
	t.Run("Sender", func(t *testing.T) {
		snd := NewSender(SenderOptions{Period: -1})
		snd.Close()
		_, err := NewService("s", Options{Sender: snd, MonitorFlow: newRecFlow("127.0.0.1:50000"), Logger: testutil.Discard()})
		if !errors.Is(err, ErrSenderClosed) {
			t.Errorf("NewService on a closed Sender: %v, want ErrSenderClosed", err)
		}
	})
	t.Run("Service", func(t *testing.T) {
		snd := NewSender(SenderOptions{Period: -1})
		defer snd.Close()
		svc, err := NewService("s", Options{Sender: snd, MonitorFlow: newRecFlow("127.0.0.1:50000"), Logger: testutil.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		svc.Close()
		if err := svc.SetState(Running); !errors.Is(err, ErrServiceClosed) {
			t.Errorf("SetState after Close: %v, want ErrServiceClosed", err)
		}
	})
}
