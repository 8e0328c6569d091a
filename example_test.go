package stk_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/smartbeat"
)

// quiet keeps the examples' log lines out of their output.
var quiet = slog.New(slog.DiscardHandler)

// startNameServer starts a name server on a free port, as stkd runs one on
// tcp:127.0.0.1:20002, and returns its address.
func startNameServer() (addr string, stop func()) {
	srv, err := namesvc.NewServer(namesvc.ServerConfig{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	ap, err := srv.ServeTCP("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	return "tcp:" + ap.String(), func() { srv.Close() }
}

// Publish and subscribe by name: the README's two programs in one. With
// stkd running, Connect("") is all it takes to find its name server.
func Example() {
	ns, stop := startNameServer()
	defer stop()

	env, err := stk.Connect(ns, stk.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer env.Close()

	// Subscribe first or later: the subscriber connects to every publisher
	// of the name as the name server tells of it.
	sub, err := env.SubscribeChan("demo", 1024, stk.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}

	pub, err := env.Publish("demo", stk.PublishOptions{})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.WaitSubscribers(ctx, 1); err != nil { // before that, sequences reach nobody
		log.Fatal(err)
	}
	for i := range uint64(3) {
		s := seq.New(i, "tick", seq.TypeData)
		s.Add(1, fmt.Appendf(nil, "hello %d", i))
		if err := pub.Send(s); err != nil {
			log.Fatal(err)
		}
	}
	for range 3 {
		select {
		case s := <-sub.C():
			fmt.Printf("%d %s %s\n", s.ID, s.Name, s.Elements[0].Data)
		case <-ctx.Done():
			log.Fatal("timed out")
		}
	}
	// Output:
	// 0 tick hello 0
	// 1 tick hello 1
	// 2 tick hello 2
}

// A monitored service: Env.Service finds the monitor registered as
// "monitor" with the name server (stkd's is), reports the service's state
// and checkpoint, and smartbeats until Close.
func ExampleEnv_Service() {
	ns, stop := startNameServer()
	defer stop()
	// The monitor stkd runs, here in this process on a free port.
	m, err := smartbeat.NewMonitor(smartbeat.MonitorConfig{NameServerAddr: ns, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	if _, err := m.ServeTCP("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	destroyed := make(chan struct{})
	defer m.Subscribe(func(ev smartbeat.Event) {
		switch ev.Kind {
		case smartbeat.EventCreated, smartbeat.EventState:
			fmt.Println(ev.Kind, ev.Service.Name, ev.Service.StateName)
		case smartbeat.EventDestroyed:
			fmt.Println(ev.Kind, ev.Service.Name, "at checkpoint", ev.Service.Checkpoint)
			close(destroyed)
		}
	})()

	env, err := stk.Connect(ns, stk.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer env.Close()
	// The monitor registers itself in the background; in a real program
	// stkd has long done so.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for infos, _ := env.Lookup(ctx, "monitor"); len(infos) == 0 && ctx.Err() == nil; infos, _ = env.Lookup(ctx, "monitor") {
		time.Sleep(10 * time.Millisecond)
	}

	svc, err := env.Service("billing", smartbeat.Options{})
	if err != nil {
		log.Fatal(err)
	}
	svc.SetState(smartbeat.Running)
	svc.SetCheckpoint(42)
	svc.Close()
	select {
	case <-destroyed:
	case <-ctx.Done():
		fmt.Println("timed out")
	}
	// Output:
	// created billing starting
	// state billing running
	// destroyed billing at checkpoint 42
}
