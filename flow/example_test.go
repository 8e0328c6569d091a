package flow_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
)

// quiet keeps the examples' log lines out of their output.
var quiet = slog.New(slog.DiscardHandler)

// utText is the user type of the examples' one element: a C string.
const utText uint64 = 0x10001

func text(id uint64, s string) *seq.Sequence {
	q := seq.New(id, "text", seq.TypeData)
	q.AddCString(utText, s)
	return q
}

func textOf(q *seq.Sequence) string {
	e, _ := q.Find(utText)
	return e.CString()
}

// A TCP server and a client exchanging sequences, each answering over the
// peer a sequence came from. Both directions of a connection carry STK
// frames: a server replies to one client with from.Send, and a client's
// Handler receives what the server sends it.
func ExampleListenTCP() {
	srv, err := flow.ListenTCP("127.0.0.1:0", flow.Options{
		Logger: quiet,
		// Handlers run on the flow's read loop: q is valid during the call
		// only, and a reply must not wait (Peer.Send never does).
		Handler: func(from flow.Peer, q *seq.Sequence) {
			from.Send(text(q.ID, "echo "+textOf(q))) // to this client only
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	replies := make(chan string, 3)
	cl, err := flow.DialTCP(srv.LocalAddr().String(), flow.Options{
		Logger: quiet,
		Handler: func(from flow.Peer, q *seq.Sequence) {
			replies <- fmt.Sprint(q.ID, " ", textOf(q)) // copied: q's data is reused after the call
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	// DialTCP returns at once and connects in the background; what is sent
	// meanwhile waits in the client's queue.
	for i, s := range []string{"a", "b", "c"} {
		if err := cl.Send(text(uint64(i), s)); err != nil {
			log.Fatal(err)
		}
	}
	for range 3 {
		select {
		case r := <-replies:
			fmt.Println(r)
		case <-time.After(10 * time.Second):
			log.Fatal("timed out")
		}
	}
	// Output:
	// 0 echo a
	// 1 echo b
	// 2 echo c
}

// A server's Send goes to every connected client, encoded once: the
// publisher side of STK. A client that connects later does not get what
// was sent before it connected, so this one waits for both.
func ExampleTCPServer_Send() {
	connected := make(chan struct{}, 2)
	srv, err := flow.ListenTCP("127.0.0.1:0", flow.Options{
		Logger:    quiet,
		OnConnect: func(flow.Peer) { connected <- struct{}{} },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	got := make(chan string, 2)
	for _, name := range []string{"first", "second"} {
		cl, err := flow.DialTCP(srv.LocalAddr().String(), flow.Options{
			Logger:  quiet,
			Handler: func(_ flow.Peer, q *seq.Sequence) { got <- name + " got " + textOf(q) },
		})
		if err != nil {
			log.Fatal(err)
		}
		defer cl.Close()
	}
	for range 2 {
		select {
		case <-connected:
		case <-time.After(10 * time.Second):
			log.Fatal("timed out")
		}
	}
	fmt.Println(srv.Conns(), "clients")
	if err := srv.Send(text(1, "news")); err != nil {
		log.Fatal(err)
	}
	lines := map[string]bool{}
	for range 2 {
		select {
		case l := <-got:
			lines[l] = true // the two clients' handlers run concurrently
		case <-time.After(10 * time.Second):
			log.Fatal("timed out")
		}
	}
	fmt.Println(lines["first got news"], lines["second got news"])
	// Output:
	// 2 clients
	// true true
}

// WaitConnected waits for a client's connection; DialError says why it
// has none yet. The client keeps trying, with back-off, until Close.
func ExampleTCPClient_WaitConnected() {
	srv, err := flow.ListenTCP("127.0.0.1:0", flow.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	addr := srv.LocalAddr().String()
	srv.Close() // nothing listens there now

	cl, err := flow.DialTCP(addr, flow.Options{Logger: quiet, ReconnectMax: 100 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	fmt.Println(cl.WaitConnected(ctx))
	fmt.Println(cl.DialError() != nil) // connection refused

	// The server comes back on the same port: the client connects by itself.
	srv, err = flow.ListenTCP(addr, flow.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Println(cl.WaitConnected(ctx), cl.DialError())
	// Output:
	// context deadline exceeded
	// true
	// <nil> <nil>
}

// UDP: a flow is one socket that sends to its Destination (Send) or to any
// address (SendTo), and receives STK-UDP sequences, reassembled, from
// anyone. The Peer given to the Handler is the datagram's source: a reply
// goes back to it. There is no connection, no delivery guarantee and no
// back-pressure: a datagram the receiver's socket has no room for is lost.
func ExampleNewUDP() {
	srv, err := flow.NewUDP(flow.UDPConfig{Bind: "127.0.0.1:0"}, flow.Options{
		Logger: quiet,
		Handler: func(from flow.Peer, q *seq.Sequence) {
			from.Send(text(q.ID, "echo "+textOf(q)))
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	replies := make(chan string, 1)
	cl, err := flow.NewUDP(flow.UDPConfig{Bind: "127.0.0.1:0", Destination: srv.LocalAddr().String()}, flow.Options{
		Logger: quiet,
		Handler: func(from flow.Peer, q *seq.Sequence) {
			replies <- fmt.Sprint(from.RemoteAddr() == srv.LocalAddr(), " ", q.Generation, " ", textOf(q))
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	q := text(1, "ping")
	if err := cl.Send(q); err != nil { // Send bumps the generation, as STK senders do
		log.Fatal(err)
	}
	fmt.Println("sent generation", q.Generation)
	select {
	case r := <-replies:
		fmt.Println(r)
	case <-time.After(10 * time.Second):
		log.Fatal("timed out") // a lost datagram: real code sends again
	}
	// Output:
	// sent generation 1
	// true 1 echo ping
}

// STK addresses: a protocol, an IPv4 address and a port, any of which may
// be left out for the program's defaults; or a name to look up.
func ExampleParseAddress() {
	for _, s := range []string{
		"tcp:127.0.0.1:29312",
		"10.0.0.5",            // protocol TCP by default, no port
		"udp::29312",          // no IP
		"multicast:",          // the group comes from WithDefaults
		"tls:127.0.0.1:20012", // TCP inside TLS (this implementation's)
		"lookup:prices",       // resolved by the name service
		"tcp:localhost:1",     // IP literals only: see ResolveAddress
	} {
		a, err := flow.ParseAddress(s)
		switch {
		case err != nil:
			fmt.Printf("%-20s error: %v\n", s, err)
		case a.Lookup != "":
			fmt.Printf("%-20s the name %q\n", s, a.Lookup)
		default:
			// WithDefaults fills what was left out: here the name server's
			// defaults, as a client given "-R 10.0.0.5" does.
			fmt.Printf("%-20s %-9v host=%-11q port=%-5d tls=%-5v -> %s\n",
				s, a.Protocol, a.Host, a.Port, a.TLS, a.WithDefaults("127.0.0.1", 20002))
		}
	}
	// Output:
	// tcp:127.0.0.1:29312  tcp       host="127.0.0.1" port=29312 tls=false -> tcp:127.0.0.1:29312
	// 10.0.0.5             tcp       host="10.0.0.5"  port=0     tls=false -> tcp:10.0.0.5:20002
	// udp::29312           udp       host=""          port=29312 tls=false -> udp:127.0.0.1:29312
	// multicast:           multicast host=""          port=0     tls=false -> multicast:224.10.10.20:20002
	// tls:127.0.0.1:20012  tcp       host="127.0.0.1" port=20012 tls=true  -> tls:127.0.0.1:20012
	// lookup:prices        the name "prices"
	// tcp:localhost:1      error: flow: address "tcp:localhost:1": "localhost" is not an IPv4 address (host names are resolved by ResolveAddress, not here)
}
