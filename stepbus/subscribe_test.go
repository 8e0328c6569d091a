package stepbus

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"
)

// recv reads what is in sub's channel now.
func recv(sub *Subscription) []*step.Step {
	var out []*step.Step
	for {
		select {
		case s, ok := <-sub.C():
			if !ok {
				return out
			}
			out = append(out, s)
		default:
			return out
		}
	}
}

func TestSubscriptionFilters(t *testing.T) {
	leakcheck.Check(t)
	b := newBus(t, Config{})
	cpu := b.Subscribe(step.MustPattern("system.cpu.*"), "", 10)
	web := b.Subscribe(step.Pattern{}, "web-1", 10)
	all := b.Subscribe(step.Pattern{}, "", 0)
	x := mk("system.cpu.high", "web-1", 1)
	y := mk("system.cpu.high", "db-2", 2)
	z := mk("system.memory", "WEB-1", 3)
	publish(t, b, x, y, z)
	if got := recv(cpu); !slices.Equal(got, []*step.Step{x, y}) {
		t.Errorf("pattern subscription got %s", describe(got))
	}
	if got := recv(web); !slices.Equal(got, []*step.Step{x, z}) {
		t.Errorf("host subscription got %s", describe(got))
	}
	if got := recv(all); !slices.Equal(got, []*step.Step{x, y, z}) {
		t.Errorf("subscription to all got %s", describe(got))
	}
	// A new filter applies to what is published next.
	cpu.SetFilter(step.MustPattern("system.memory"), "db-2")
	if p, h := cpu.Filter(); p.String() != "system.memory" || h != "db-2" {
		t.Errorf("Filter() = %v %q", p, h)
	}
	w := mk("system.memory", "db-2", 4)
	publish(t, b, mk("system.cpu.high", "db-2", 4), w)
	if got := recv(cpu); !slices.Equal(got, []*step.Step{w}) {
		t.Errorf("after SetFilter got %s", describe(got))
	}
	if st := b.Stats(); st.Subscribers != 3 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
	cpu.Close()
	cpu.Close()
	if _, ok := <-cpu.C(); ok {
		t.Error("channel open after Close")
	}
	if st := b.Stats(); st.Subscribers != 2 {
		t.Errorf("%d subscribers after one closed", st.Subscribers)
	}
	b.Close()
	for _, s := range []*Subscription{web, all} {
		recv(s)
		if _, ok := <-s.C(); ok {
			t.Error("channel open after the bus closed")
		}
	}
	late := b.Subscribe(step.Pattern{}, "", 1)
	if _, ok := <-late.C(); ok {
		t.Error("subscription to a closed bus is open")
	}
}

// A subscriber that does not read loses what does not fit in its buffer;
// Publish does not wait for it, and the others get everything.
func TestSlowSubscriberDrops(t *testing.T) {
	leakcheck.Check(t)
	b := newBus(t, Config{})
	stuck := b.Subscribe(step.Pattern{}, "", 4)
	ignored := b.Subscribe(step.MustPattern("gpu.*"), "", 1) // matches nothing: never drops
	reader := b.Subscribe(step.Pattern{}, "", 16)
	var got []*step.Step
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range reader.C() {
			got = append(got, s)
		}
	}()
	const n = 1000
	var sent []*step.Step
	start := time.Now()
	for i := range n {
		s := mk("system.cpu", "h", int64(i+1))
		sent = append(sent, s)
		publish(t, b, s)
		if i%8 == 7 {
			// Let the reader keep up; the stuck one never reads.
			testutil.WaitFor(t, 10*time.Second, "reader keeps up", func() bool { return len(reader.C()) == 0 })
		}
	}
	elapsed := time.Since(start)
	if stuck.Dropped() != n-4 || ignored.Dropped() != 0 {
		t.Fatalf("stuck dropped %d (want %d), ignored dropped %d", stuck.Dropped(), n-4, ignored.Dropped())
	}
	if first := recv(stuck); !slices.Equal(first, sent[:4]) {
		t.Fatalf("stuck subscriber kept %s, want the first 4", describe(first))
	}
	reader.Close()
	<-done
	if !slices.Equal(got, sent) || reader.Dropped() != 0 {
		t.Fatalf("reader got %d of %d, dropped %d", len(got), n, reader.Dropped())
	}
	if st := b.Stats(); st.Dropped != n-4 {
		t.Fatalf("stats dropped %d", st.Dropped)
	}
	t.Logf("%d publishes with a stuck subscriber in %v", n, elapsed)
}

// Concurrent publishers: every subscriber sees the STEPs in one order, the
// history's.
func TestConcurrentPublishOrder(t *testing.T) {
	leakcheck.Check(t)
	b := newBus(t, Config{History: 10000})
	subs := []*Subscription{b.Subscribe(step.Pattern{}, "", 10000), b.Subscribe(step.Pattern{}, "", 10000)}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				if err := b.Publish(mk("system.cpu", "h", int64(w*1000+i+1)), "test"); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	// Readers run while publishing goes on.
	var qwg sync.WaitGroup
	qwg.Add(1)
	go func() {
		defer qwg.Done()
		for range 20 {
			b.Query(Query{Limit: 10})
			b.Stats()
			b.Hosts()
		}
	}()
	wg.Wait()
	qwg.Wait()
	a, c := recv(subs[0]), recv(subs[1])
	if len(a) != 2000 || !slices.Equal(a, c) {
		t.Fatalf("subscribers got %d and %d STEPs, or in different orders", len(a), len(c))
	}
	b.mu.RLock()
	for i := range b.hist.len() {
		if b.hist.at(i).s != a[i] {
			b.mu.RUnlock()
			t.Fatalf("subscriber order differs from history at %d", i)
		}
	}
	b.mu.RUnlock()
}
