package stk_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// Two publishers of one name, and a subscriber that keeps apart what each
// sent: SubscribeFrom tells the handler the registered address of the
// sender, the key of per-publisher state (here a count; stkd's STEP bus
// tags each event with it).
func ExampleEnv_SubscribeFrom() {
	ns, stop := startNameServer()
	defer stop()
	env, err := stk.Connect(ns, stk.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer env.Close()

	type received struct {
		from namesvc.Endpoint
		id   uint64
	}
	got := make(chan received, 16)
	sub, err := env.SubscribeFrom("sensors", func(from namesvc.Endpoint, s *seq.Sequence) {
		got <- received{from, s.ID} // s is only valid during the call: keep what you need
	}, stk.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	names := map[namesvc.Endpoint]string{}
	var pubs []*stk.Publisher
	for _, name := range []string{"north", "south"} {
		pub, err := env.Publish("sensors", stk.PublishOptions{})
		if err != nil {
			log.Fatal(err)
		}
		defer pub.Close()
		if err := pub.WaitSubscribers(ctx, 1); err != nil {
			log.Fatal(err)
		}
		names[pub.Addr()] = name
		pubs = append(pubs, pub)
	}
	for i, pub := range pubs {
		for j := range 2 + i {
			if err := pub.Send(seq.New(uint64(j), "reading", seq.TypeData)); err != nil {
				log.Fatal(err)
			}
		}
	}
	count := map[string]int{}
	for range 5 {
		select {
		case r := <-got:
			count[names[r.from]]++
		case <-ctx.Done():
			log.Fatal("timed out")
		}
	}
	fmt.Println("north sent", count["north"], "and south", count["south"])
	for _, st := range sub.Status() {
		fmt.Println(names[st.Endpoint], "connected:", st.Connected, "sequences in:", st.Stats.SequencesIn)
	}
	// Unordered output:
	// north sent 2 and south 3
	// north connected: true sequences in: 2
	// south connected: true sequences in: 3
}
