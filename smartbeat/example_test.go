package smartbeat_test

import (
	"fmt"
	"log"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/smartbeat"
)

// A service monitored by the web monitor of stkd (or the C stkhttpd).
func ExampleNewService() {
	svc, err := smartbeat.NewService("billing", smartbeat.Options{Monitor: "tcp:127.0.0.1:20001"})
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close() // DESTROY with state "stopped"
	svc.SetState(smartbeat.Running)
	for n := uint64(1); n <= 3; n++ {
		// ... work ...
		svc.SetCheckpoint(n)
	}
}

// The monitor of a daemon: listeners on the STK monitor port, the name
// "monitor" registered with the local name server, and a feed of changes.
func ExampleNewMonitor() {
	m, err := smartbeat.NewMonitor(smartbeat.MonitorConfig{NameServerAddr: "tcp:127.0.0.1:20002"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	if _, err := m.ServeTCP("127.0.0.1:20001"); err != nil {
		log.Fatal(err)
	}
	if _, err := m.ServeUDP("127.0.0.1:20001"); err != nil {
		log.Fatal(err)
	}
	cancel := m.Subscribe(func(ev smartbeat.Event) {
		if ev.Kind == smartbeat.EventTimedOut {
			fmt.Println(ev.Service.Name, "failed:", ev.Service.Verdict.Reason)
		}
	})
	defer cancel()
}

// A service group fed by the data connections of a server (simple_server).
func ExampleGroup_Invoke() {
	g, err := smartbeat.NewGroup("Simple Server Service Group", smartbeat.GroupOptions{
		Monitor: "tcp:127.0.0.1:20001",
		OnAdded: func(_ *smartbeat.Group, m *smartbeat.Member) { fmt.Println("joined:", m.Name()) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	srv, err := flow.ListenTCP("127.0.0.1:29312", flow.Options{Handler: func(p flow.Peer, s *seq.Sequence) {
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
}
