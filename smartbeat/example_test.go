package smartbeat_test

import (
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/smartbeat"
)

// quiet keeps the examples' log lines out of their output.
var quiet = slog.New(slog.DiscardHandler)

// wait waits for done, at most 10 s, so that a broken example fails with
// its output instead of hanging.
func wait(done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fmt.Println("timed out")
	}
}

// A service monitored by the web monitor of stkd (or the C stkhttpd). Here
// the monitor is in the same process, on a free port, and prints what it
// receives; stkd's listens on tcp:127.0.0.1:20001.
func ExampleNewService() {
	m, err := smartbeat.NewMonitor(smartbeat.MonitorConfig{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	addr, err := m.ServeTCP("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	destroyed := make(chan struct{})
	defer m.Subscribe(func(ev smartbeat.Event) {
		switch ev.Kind {
		case smartbeat.EventCreated, smartbeat.EventState:
			fmt.Println(ev.Kind, ev.Service.Name, ev.Service.StateName)
		case smartbeat.EventDestroyed:
			fmt.Println(ev.Kind, ev.Service.Name, ev.Service.StateName, "at checkpoint", ev.Service.Checkpoint)
			close(destroyed)
		}
	})()

	svc, err := smartbeat.NewService("billing", smartbeat.Options{Monitor: "tcp:" + addr.String(), Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	svc.SetState(smartbeat.Running)
	for n := uint64(1); n <= 3; n++ {
		// ... work ...
		svc.SetCheckpoint(n)
	}
	svc.Close() // DESTROY with state "stopped"
	wait(destroyed)
	// Output:
	// created billing starting
	// state billing running
	// destroyed billing stopped at checkpoint 3
}

// The monitor of a daemon: listeners for the services' notifications (stkd
// uses the STK monitor port, 20001, and registers the name "monitor" with
// its name server: MonitorConfig.NameServerAddr), and a feed of changes.
func ExampleNewMonitor() {
	m, err := smartbeat.NewMonitor(smartbeat.MonitorConfig{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	if _, err := m.ServeTCP("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	udp, err := m.ServeUDP("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	gone := make(chan struct{})
	defer m.Subscribe(func(ev smartbeat.Event) {
		switch ev.Kind {
		case smartbeat.EventCreated:
			fmt.Println(ev.Service.Name, "reports over", ev.Service.Protocol)
		case smartbeat.EventTimedOut:
			fmt.Println(ev.Service.Name, "failed:", ev.Service.Verdict.Reason)
		case smartbeat.EventDestroyed:
			fmt.Println(ev.Service.Name, "ended:", ev.Service.StateName)
			close(gone)
		}
	})()

	svc, err := smartbeat.NewService("batch", smartbeat.Options{Monitor: "udp:" + udp.String(), Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	svc.CloseWithState(smartbeat.Stopped)
	wait(gone)
	// Output:
	// batch reports over udp
	// batch ended: stopped
}

// A service group fed by the data connections of a server (simple_server):
// its clients' services report on the connection they send data on, and
// the group keeps them as members.
func ExampleGroup_Invoke() {
	joined, left := make(chan struct{}), make(chan struct{})
	g, err := smartbeat.NewGroup("Simple Server Service Group", smartbeat.GroupOptions{
		OnAdded:   func(_ *smartbeat.Group, m *smartbeat.Member) { fmt.Println("joined:", m.Name()); close(joined) },
		OnRemoved: func(_ *smartbeat.Group, m *smartbeat.Member) { fmt.Println("left:", m.Name()); close(left) },
		Logger:    quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	srv, err := flow.ListenTCP("127.0.0.1:0", flow.Options{Logger: quiet, Handler: func(p flow.Peer, s *seq.Sequence) {
		if s.Type != seq.TypeData {
			g.Invoke(p, s) // notifications and smartbeats of the clients' services
			return
		}
		// ... application data ...
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	// A client (simple_client) whose service reports to the server.
	client, err := smartbeat.NewService("client 1", smartbeat.Options{Monitor: "tcp:" + srv.LocalAddr().String(), Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	wait(joined)
	client.Close()
	wait(left)
	// Output:
	// joined: client 1
	// left: client 1
}
