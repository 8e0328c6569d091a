package stk_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// utText is the user type of the examples' payload element: a C string.
const utText uint64 = 0x10001

func textSeq(id uint64, text string) *seq.Sequence {
	s := seq.New(id, "text", seq.TypeData)
	s.AddCString(utText, text)
	return s
}

func textOf(s *seq.Sequence) string {
	e, _ := s.Find(utText)
	return e.CString()
}

// connect makes an Env on the name server at ns, as each program of a real
// deployment has its own.
func connect(ns string) *stk.Env {
	env, err := stk.Connect(ns, stk.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	return env
}

// waitUntil polls cond until it holds, at most 10 s, so that a broken
// example fails with its output instead of hanging.
func waitUntil(what string, cond func() bool) {
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatal("timed out waiting for ", what)
		}
	}
}

// A publisher: it listens on a free loopback port, registers that address
// under its name, and sends each sequence to the subscribers connected at
// the time. Close delivers what Send accepted before it closes the
// connections, so nothing sent is lost at exit.
func ExampleEnv_Publish() {
	ns, stop := startNameServer()
	defer stop()
	env := connect(ns)
	defer env.Close()

	pub, err := env.Publish("prices", stk.PublishOptions{
		Linger: 2 * time.Second, // how long the name outlives a crash
		Meta:   []seq.Element{{UserType: 0x10002, Data: []byte("EUR\x00")}},
	})
	if err != nil {
		log.Fatal(err) // the port is taken, or the name server did not confirm
	}
	// What subscribers find when they look the name up.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	infos, err := env.Lookup(ctx, "prices")
	if err != nil {
		log.Fatal(err)
	}
	currency, _ := infos[0].MetaString(0x10002)
	fmt.Println(len(infos), infos[0].Addresses[0] == pub.Addr(), infos[0].FT, currency)

	var n sync.WaitGroup
	n.Add(1000)
	sub, err := env.Subscribe("prices", func(*seq.Sequence) { n.Done() }, stk.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	if err := pub.WaitSubscribers(ctx, 1); err != nil {
		log.Fatal(err)
	}
	fmt.Println(pub.Subscribers(), "subscriber")
	for i := range uint64(1000) {
		if err := pub.Send(textSeq(i, "tick")); err != nil {
			log.Fatal(err)
		}
	}
	pub.Close() // takes the name off, then delivers the 1000
	n.Wait()
	fmt.Println(pub.Stats().SequencesOut, "sent;", sub.Received(), "received")
	infos, _ = env.Lookup(ctx, "prices")
	fmt.Println(len(infos), "registrations after Close")
	// Output:
	// 1 true active EUR
	// 1 subscriber
	// 1000 sent; 1000 received
	// 0 registrations after Close
}

// A subscription, callback form: it connects to every publisher of the
// name, those registered now and those that come later. The handler runs
// one call at a time for the whole subscription; a sequence is valid
// during the call only (Clone what you keep). Sequences of one publisher
// arrive in order; those of several are interleaved.
func ExampleEnv_Subscribe() {
	ns, stop := startNameServer()
	defer stop()
	env := connect(ns)
	defer env.Close()

	var (
		mu  sync.Mutex
		got = map[string][]string{} // publisher's text -> what it sent, in order
	)
	sub, err := env.Subscribe("prices", func(s *seq.Sequence) {
		mu.Lock()
		defer mu.Unlock()
		from, _, _ := strings.Cut(textOf(s), " ")
		got[from] = append(got[from], textOf(s))
	}, stk.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	// Two publishers of one name, as two programs would be.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, who := range []string{"a", "b"} {
		pubEnv := connect(ns)
		defer pubEnv.Close() // closes the publisher too
		pub, err := pubEnv.Publish("prices", stk.PublishOptions{})
		if err != nil {
			log.Fatal(err)
		}
		if err := pub.WaitSubscribers(ctx, 1); err != nil {
			log.Fatal(err)
		}
		for i := range 3 {
			pub.Send(textSeq(uint64(i), fmt.Sprint(who, " ", i)))
		}
	}
	fmt.Println(len(sub.Endpoints()), "publishers")
	waitUntil("6 sequences", func() bool { return sub.Received() == 6 })
	mu.Lock()
	defer mu.Unlock()
	fmt.Println(got["a"])
	fmt.Println(got["b"])
	// Output:
	// 2 publishers
	// [a 0 a 1 a 2]
	// [b 0 b 1 b 2]
}

// A subscription, pull form: clones of the sequences on a channel, for
// code that prefers to read in its own loop. A full channel drops what
// arrives rather than stall every publisher's connection; Dropped counts
// it. Close closes the channel.
func ExampleEnv_SubscribeChan() {
	ns, stop := startNameServer()
	defer stop()
	env := connect(ns)
	defer env.Close()

	sub, err := env.SubscribeChan("prices", 3, stk.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	pub, err := env.Publish("prices", stk.PublishOptions{})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.WaitSubscribers(ctx, 1); err != nil {
		log.Fatal(err)
	}
	for i := range uint64(5) { // two more than the channel holds, none read yet
		pub.Send(textSeq(i, fmt.Sprint("tick ", i)))
	}
	waitUntil("5 sequences", func() bool { return sub.Received()+sub.Dropped() == 5 })
	fmt.Println(sub.Received(), "received,", sub.Dropped(), "dropped")

	sub.Close()
	for s := range sub.C() { // what the channel held, then the loop ends
		fmt.Println(s.ID, textOf(s))
	}
	// Output:
	// 3 received, 2 dropped
	// 0 tick 0
	// 1 tick 1
	// 2 tick 2
}

// A reply over the peer. A Subscription cannot answer: its handler gets the
// sequence, not the connection it came on. For request and reply, the
// server is a publisher started by Listen with a Flow.Handler, which
// receives what its subscribers send and answers one of them over its
// peer (while Send still goes to all), and announced under a name; the
// client looks the name up and dials the address with package flow, whose
// connection carries sequences both ways.
func ExampleListen() {
	ns, stop := startNameServer()
	defer stop()
	env := connect(ns)
	defer env.Close()

	pub, err := stk.Listen("127.0.0.1:0", stk.ListenOptions{
		Name:   "quotes",
		Logger: quiet,
		Flow: flow.Options{
			// On the connection's read loop: answer at once (Peer.Send
			// never waits) and keep nothing of q past the call.
			Handler: func(from flow.Peer, q *seq.Sequence) {
				from.Send(textSeq(q.ID, "quote for "+textOf(q)))
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()
	confirmed := make(chan struct{})
	ann, err := env.Announce(pub, "quotes", stk.AnnounceOptions{
		// Announce registers in the background, again and again until
		// the name server confirms; OnResult tells each attempt's result.
		OnResult: func(err error) {
			if err == nil {
				close(confirmed)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer ann.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-confirmed:
	case <-ctx.Done():
		log.Fatal("timed out")
	}

	// The client, in another program.
	infos, err := env.Lookup(ctx, "quotes")
	if err != nil || len(infos) == 0 {
		log.Fatal("not found: ", err)
	}
	replies := make(chan string, 2)
	cl, err := flow.DialTCP(infos[0].Addresses[0].Addr.String(), flow.Options{
		Logger:  quiet,
		Handler: func(_ flow.Peer, q *seq.Sequence) { replies <- textOf(q) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	for i, sym := range []string{"ACME", "INIT"} {
		cl.Send(textSeq(uint64(i), sym))
		select {
		case r := <-replies:
			fmt.Println(r)
		case <-ctx.Done():
			log.Fatal("timed out")
		}
	}
	// Output:
	// quote for ACME
	// quote for INIT
}

// Register puts a name on the name server for something that is not a
// publisher of this package: a service of your own, a C program's flow.
// The name stays while the Registration is open (and its linger after a
// crash); Close takes it off at once. Lookup answers every registration of
// a name, in registration order; none is not an error.
func ExampleEnv_Register() {
	ns, stop := startNameServer()
	defer stop()
	env := connect(ns)
	defer env.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ep := namesvc.Endpoint{Protocol: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:29312")}
	reg, err := env.Register(ctx, namesvc.Info{Name: "feed", Addresses: []namesvc.Endpoint{ep}, Linger: time.Second})
	if err != nil {
		log.Fatal(err) // the name server did not confirm: the error says which and why
	}
	infos, err := env.Lookup(ctx, "feed")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(infos[0].Name, infos[0].Addresses, infos[0].Linger)

	reg.Close()
	infos, err = env.Lookup(ctx, "feed")
	fmt.Println(len(infos), err)
	// Output:
	// feed [udp:127.0.0.1:29312] 1s
	// 0 <nil>
}

// WatchName tells of every registration of a name: those that exist, then
// each new one as it is made. STK tells nothing when a registration goes,
// so a watcher sees arrivals and moves only.
func ExampleEnv_WatchName() {
	ns, stop := startNameServer()
	defer stop()
	env := connect(ns)
	defer env.Close()

	seen := make(chan string, 10)
	w, err := env.WatchName("prices", func(in namesvc.Info) {
		seen <- in.Addresses[0].String() // on the client's read loop: never block
	})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, port := range []string{"29312", "29313"} {
		ep := namesvc.Endpoint{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:" + port)}
		reg, err := env.Register(ctx, namesvc.Info{Name: "prices", Addresses: []namesvc.Endpoint{ep}})
		if err != nil {
			log.Fatal(err)
		}
		defer reg.Close()
		select {
		case s := <-seen:
			fmt.Println("registered:", s)
		case <-ctx.Done():
			log.Fatal("timed out")
		}
	}
	// Output:
	// registered: tcp:127.0.0.1:29312
	// registered: tcp:127.0.0.1:29313
}

// A publisher that restarts on another port (a new process, a free port
// each time) is followed: the name server pushes its new registration to
// the subscriber, which connects to it at once, and drops the old address
// once a lookup no longer finds it. What is sent after the subscriber has
// reconnected arrives; WaitSubscribers tells when that is.
func Example_publisherRestart() {
	ns, stop := startNameServer()
	defer stop()
	env := connect(ns)
	defer env.Close()
	sub, err := env.SubscribeChan("prices", 100, stk.SubscribeOptions{PruneInterval: 100 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var addrs []string
	for run := range 2 {
		pubEnv := connect(ns) // the publisher's process
		pub, err := pubEnv.Publish("prices", stk.PublishOptions{})
		if err != nil {
			log.Fatal(err)
		}
		addrs = append(addrs, pub.Addr().String())
		if err := pub.WaitSubscribers(ctx, 1); err != nil {
			log.Fatal(err)
		}
		pub.Send(textSeq(uint64(run), fmt.Sprint("from run ", run)))
		select {
		case s := <-sub.C():
			fmt.Println(textOf(s))
		case <-ctx.Done():
			log.Fatal("timed out")
		}
		waitUntil("only the current address", func() bool { return slices.Equal(sub.Endpoints(), addrs[run:]) })
		fmt.Println("subscribed to the current address only")
		pubEnv.Close() // the process exits
	}
	fmt.Println("a new port:", addrs[0] != addrs[1])
	// Output:
	// from run 0
	// subscribed to the current address only
	// from run 1
	// subscribed to the current address only
	// a new port: true
}

// The slow-consumer policy: a subscriber that stops reading cannot slow
// the others down. Its queue at the publisher fills; after
// SlowConsumerWait the publisher either disconnects it (flow.Disconnect,
// the default: it reconnects and resumes at current data) or, as here,
// drops for it what does not fit (flow.Drop). Send does not fail for one
// subscriber's sake: the publisher's Stats count what was dropped
// (Dropped) or who was cut off (SlowConsumers), and the other subscribers
// get every sequence.
func ExamplePublishOptions() {
	ns, stop := startNameServer()
	defer stop()
	env := connect(ns)
	defer env.Close()
	pub, err := env.Publish("prices", stk.PublishOptions{
		SlowConsumer: flow.Drop,
		QueueBytes:   256 << 10, // per subscriber; default 4 MiB
		// SlowConsumerWait: how long Send waits for room before a
		// subscriber is declared slow; default 1 s. It must exceed the
		// pauses of subscribers that do keep up.
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()

	var fast uint64
	var fastMu sync.Mutex
	fastEnv := connect(ns)
	defer fastEnv.Close()
	fastSub, err := fastEnv.Subscribe("prices", func(*seq.Sequence) {
		fastMu.Lock()
		fast++
		fastMu.Unlock()
	}, stk.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer fastSub.Close()
	stuck := make(chan struct{})
	slowEnv := connect(ns)
	defer slowEnv.Close()
	slowSub, err := slowEnv.Subscribe("prices", func(*seq.Sequence) { <-stuck }, stk.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer slowSub.Close()
	defer close(stuck) // before Close: it waits for the handler's call
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.WaitSubscribers(ctx, 2); err != nil {
		log.Fatal(err)
	}

	big := seq.New(1, "tick", seq.TypeData)
	big.Add(utText, make([]byte, 16<<10))
	// The slow subscriber's socket buffers fill first, then its queue.
	var sent uint64
	var sendErr error
	for ; sent < 10_000 && pub.Stats().Dropped == 0; sent++ {
		if sendErr = pub.Send(big); sendErr != nil {
			break
		}
	}
	fmt.Println("Send errors:", sendErr)
	fmt.Println("the slow subscriber missed some:", pub.Stats().Dropped > 0)
	waitUntil("the fast subscriber's sequences", func() bool {
		fastMu.Lock()
		defer fastMu.Unlock()
		return fast == sent
	})
	fmt.Println("the fast subscriber got every sequence")
	// Output:
	// Send errors: <nil>
	// the slow subscriber missed some: true
	// the fast subscriber got every sequence
}
