package namesvc_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/netip"
	"time"

	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// quiet keeps the examples' log lines out of their output.
var quiet = slog.New(slog.DiscardHandler)

// startServer starts a name server on a free loopback port, as stkd serves
// one on tcp:127.0.0.1:20002, and returns its address for Dial.
func startServer() (addr string, srv *namesvc.Server) {
	srv, err := namesvc.NewServer(namesvc.ServerConfig{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	ap, err := srv.ServeTCP("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	return "tcp:" + ap.String(), srv
}

func endpoint(s string) namesvc.Endpoint {
	return namesvc.Endpoint{Protocol: "tcp", Addr: netip.MustParseAddrPort(s)}
}

// A name server and a client: a program registers the address of its data
// flow under a name, and others look the name up. Several programs may
// register one name; a lookup answers each registration, in order.
func Example() {
	addr, srv := startServer()
	defer srv.Close()

	c, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Register waits for the server's confirmation. The registration lasts
	// while the client's connection does, then Linger longer; the client
	// sends it again after a reconnect or a server restart.
	err = c.Register(ctx, namesvc.Info{
		Name:      "prices",
		Addresses: []namesvc.Endpoint{endpoint("127.0.0.1:29312")},
		Linger:    5 * time.Second,
		FT:        namesvc.FTActive,
		Meta:      []seq.Element{{UserType: 0x10001, Data: []byte("EUR\x00")}}, // returned as it is
	})
	if err != nil {
		log.Fatal(err)
	}
	// A second registrant of the same name (another program: its own
	// connection; one client registering a name again replaces its own).
	c2, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Register(ctx, namesvc.Info{Name: "prices", Addresses: []namesvc.Endpoint{endpoint("127.0.0.1:29313")}}); err != nil {
		log.Fatal(err)
	}

	infos, err := c.LookupAll(ctx, "prices", namesvc.LookupOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, in := range infos {
		currency, _ := in.MetaString(0x10001)
		fmt.Printf("%s %v linger %v, %v, currency %q\n", in.Name, in.Addresses, in.Linger, in.FT, currency)
	}
	_, err = c.LookupOnce(ctx, "volumes", namesvc.LookupOptions{})
	fmt.Println(errors.Is(err, namesvc.ErrNotFound))
	// Output:
	// prices [tcp:127.0.0.1:29312] linger 5s, active, currency "EUR"
	// prices [tcp:127.0.0.1:29313] linger 0s, unset, currency ""
	// true
}

// Subscribe hears of every registration of a name: those that exist first,
// then each later one as it is made (a publisher starting, or restarting
// on another port). OnSynced marks the end of the first part. STK says
// nothing when a registration goes: a subscriber finds out from the
// address (its connection fails) or by looking the name up again.
func ExampleClient_Subscribe() {
	addr, srv := startServer()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	pub, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Register(ctx, namesvc.Info{Name: "prices", Addresses: []namesvc.Endpoint{endpoint("127.0.0.1:29312")}}); err != nil {
		log.Fatal(err)
	}

	sub, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	// Callbacks run on the client's read loop, one at a time: they must
	// not block. This one hands the events over on a channel.
	events := make(chan string, 10)
	s, err := sub.Subscribe("prices", namesvc.SubscribeOptions{
		OnSynced: func(n int) { events <- fmt.Sprint("synced: ", n, " registration(s)") },
	}, func(in namesvc.Info) {
		events <- fmt.Sprint("registered at ", in.Addresses[0])
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Unsubscribe()
	next := func() {
		select {
		case e := <-events:
			fmt.Println(e)
		case <-ctx.Done():
			log.Fatal("timed out")
		}
	}
	next()
	next()

	// The publisher moves to another port: it registers the name again,
	// which replaces its registration, and the subscriber is told.
	if err := pub.Register(ctx, namesvc.Info{Name: "prices", Addresses: []namesvc.Endpoint{endpoint("127.0.0.1:29399")}}); err != nil {
		log.Fatal(err)
	}
	next()
	// Output:
	// registered at tcp:127.0.0.1:29312
	// synced: 1 registration(s)
	// registered at tcp:127.0.0.1:29399
}

// Lookup with callbacks: onAnswer for each registration, then onDone once,
// when there are no more answers. This server sends an end-of-answers
// marker, so the lookup completes as soon as the answers are in; the C
// name server sends none, and a lookup of it ends at its expiration,
// Complete false (as here with NoEndOfAnswers, which makes requests the C
// client's).
func ExampleClient_Lookup() {
	addr, srv := startServer()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Register(ctx, namesvc.Info{Name: "prices", Addresses: []namesvc.Endpoint{endpoint("127.0.0.1:29312")}}); err != nil {
		log.Fatal(err)
	}

	asC, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: quiet, NoEndOfAnswers: true})
	if err != nil {
		log.Fatal(err)
	}
	defer asC.Close()

	for _, cl := range []*namesvc.Client{c, asC} {
		done := make(chan struct{})
		start := time.Now()
		_, err := cl.Lookup("prices", namesvc.LookupOptions{Expiration: 500 * time.Millisecond},
			func(in namesvc.Info) { fmt.Println("answer:", in.Addresses) },
			func(r namesvc.LookupResult) {
				fmt.Printf("done: %d answer(s), complete %v, err %v, waited the expiration: %v\n",
					r.Answers, r.Complete, r.Err, time.Since(start) >= 500*time.Millisecond)
				close(done)
			})
		if err != nil {
			log.Fatal(err)
		}
		select {
		case <-done:
		case <-ctx.Done():
			log.Fatal("timed out")
		}
	}
	// Output:
	// answer: [tcp:127.0.0.1:29312]
	// done: 1 answer(s), complete true, err <nil>, waited the expiration: false
	// answer: [tcp:127.0.0.1:29312]
	// done: 1 answer(s), complete false, err <nil>, waited the expiration: true
}

// Groups are separate name spaces: the same name in two groups is two
// names. A client's Group applies to the requests that name none. A
// lookup in a group the server does not have searches the default group,
// as the C name server does.
func Example_groups() {
	addr, srv := startServer()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	test, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: quiet, Group: "test"})
	if err != nil {
		log.Fatal(err)
	}
	defer test.Close()
	prod, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: quiet}) // the default group, ""
	if err != nil {
		log.Fatal(err)
	}
	defer prod.Close()
	if err := test.Register(ctx, namesvc.Info{Name: "db", Addresses: []namesvc.Endpoint{endpoint("127.0.0.1:1001")}}); err != nil {
		log.Fatal(err)
	}
	if err := prod.Register(ctx, namesvc.Info{Name: "db", Addresses: []namesvc.Endpoint{endpoint("127.0.0.1:2002")}}); err != nil {
		log.Fatal(err)
	}

	for _, group := range []string{"test", "", "staging"} {
		in, err := prod.LookupOnce(ctx, "db", namesvc.LookupOptions{Group: group})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%q: %v in group %q\n", group, in.Addresses, in.Group)
	}
	// Output:
	// "test": [tcp:127.0.0.1:1001] in group "test"
	// "": [tcp:127.0.0.1:2002] in group ""
	// "staging": [tcp:127.0.0.1:2002] in group ""
}

// A registrant that goes without a word (its process dies, its connection
// breaks) keeps its names for their linger, so that a restart within it
// finds them still there; then lookups stop answering them.
func ExampleInfo_linger() {
	addr, srv := startServer()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	reg, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	err = reg.Register(ctx, namesvc.Info{Name: "worker", Addresses: []namesvc.Endpoint{endpoint("127.0.0.1:4000")}, Linger: time.Second})
	if err != nil {
		log.Fatal(err)
	}
	c, err := namesvc.Dial(addr, namesvc.ClientOptions{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	reg.Close() // the registrant's connection closes
	gone := time.Now()
	for {
		infos, err := c.LookupAll(ctx, "worker", namesvc.LookupOptions{})
		if err != nil {
			log.Fatal(err)
		}
		if len(infos) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Println("gone after its linger:", time.Since(gone) >= time.Second)
	// Output:
	// gone after its linger: true
}
