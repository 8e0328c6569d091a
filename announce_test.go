package stk

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// waitTrue waits for cond with a deadline.
func waitTrue(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

// TestListenAnnounce: a publisher started with Listen serves subscribers
// that dial it before any name server knows it; announced under two names
// it is found under both, confirmed once, and received by a subscriber of
// either name. Close removes a name at once; KeepOnClose leaves it for its
// linger.
func TestListenAnnounce(t *testing.T) {
	leakcheck.Check(t)
	_, ns := startNames(t)
	pub, err := Listen("127.0.0.1:0", ListenOptions{Name: "feed", Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if a := pub.Addr(); a.Protocol != "tcp" || a.Addr.Addr() != netip.MustParseAddr("127.0.0.1") || a.Addr.Port() == 0 {
		t.Fatalf("Addr %v", a)
	}
	if _, ok := pub.Flow().(*flow.TCPServer); !ok {
		t.Fatalf("Flow is a %T", pub.Flow())
	}
	// By address, no name server.
	direct, err := SubscribeAddress(pub.Addr().String(), func(*seq.Sequence) {}, SubscribeOptions{Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.WaitSubscribers(ctxT(t, 5*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	direct.Close()
	if joined, _ := pub.SubscriberCounts(); joined != 1 {
		t.Errorf("SubscriberCounts: %d joined, want 1", joined)
	}

	env := connect(t, ns)
	var mu sync.Mutex
	results := map[string][]error{}
	announce := func(name string, keep bool) *Announcement {
		a, err := env.Announce(pub, name, AnnounceOptions{KeepOnClose: keep, OnResult: func(err error) {
			mu.Lock()
			results[name] = append(results[name], err)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	byName, dir := announce("step.host", false), announce("step", true)
	waitTrue(t, 5*time.Second, "both names confirmed", func() bool { return byName.Confirmed() && dir.Confirmed() })
	mu.Lock()
	for _, n := range []string{"step.host", "step"} {
		if r := results[n]; len(r) != 1 || r[0] != nil {
			t.Errorf("OnResult of %s: %v, want one nil", n, r)
		}
	}
	mu.Unlock()
	if byName.Name() != "step.host" || byName.Addr() != pub.Addr() {
		t.Errorf("announcement %s at %v, want step.host at %v", byName.Name(), byName.Addr(), pub.Addr())
	}
	for _, n := range []string{"step.host", "step"} {
		infos, err := env.Lookup(ctxT(t, 5*time.Second), n)
		if err != nil || len(infos) != 1 || len(infos[0].Addresses) != 1 || infos[0].Addresses[0] != pub.Addr() || infos[0].Linger != DefaultLinger {
			t.Fatalf("lookup %s: %+v, %v; want %v with linger %v", n, infos, err, pub.Addr(), DefaultLinger)
		}
	}
	got := make(chan string, 10)
	for _, n := range []string{"step.host", "step"} {
		if _, err := env.Subscribe(n, func(q *seq.Sequence) { got <- n + ":" + q.Name }, SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.WaitSubscribers(ctxT(t, 5*time.Second), 2); err != nil {
		t.Fatal(err)
	}
	if err := pub.Send(seq.New(1, "tick", seq.TypeData)); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case s := <-got:
			seen[s] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("received %v, want tick under both names", seen)
		}
	}
	if !seen["step.host:tick"] || !seen["step:tick"] {
		t.Fatalf("received %v", seen)
	}

	// Close: at once without KeepOnClose, after the linger with it.
	byName.Close()
	dir.Close()
	if _, err := env.Names().LookupOnce(ctxT(t, 5*time.Second), "step.host", namesvc.LookupOptions{}); !errors.Is(err, namesvc.ErrNotFound) {
		t.Errorf("step.host after Close: %v, want not found", err)
	}
	if infos, err := env.Lookup(ctxT(t, 5*time.Second), "step"); err != nil || len(infos) != 1 {
		t.Errorf("step (KeepOnClose) after Close: %v, %v; want it lingering", infos, err)
	}
}

// TestAnnounceLater: with no name server answering, OnResult hears why
// after each attempt and Confirmed stays false; once a name server starts
// at that address the name is registered without anything else done.
// A publisher on 0.0.0.0 is registered at AdvertiseIP.
func TestAnnounceLater(t *testing.T) {
	leakcheck.Check(t)
	srv, ns := startNames(t)
	addr := strings.TrimPrefix(ns, "tcp:")
	srv.Close() // the port is free again: nobody answers there now
	pub, err := Listen("0.0.0.0:0", ListenOptions{Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	env := connect(t, ns)
	fails := make(chan error, 100)
	a, err := env.Announce(pub, "later", AnnounceOptions{Attempt: 100 * time.Millisecond, AdvertiseIP: netip.MustParseAddr("10.9.8.7"),
		OnResult: func(err error) { fails <- err }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for range 2 {
		select {
		case err := <-fails:
			if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"later"`) {
				t.Fatalf("OnResult without a name server: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("OnResult not called without a name server")
		}
	}
	if a.Confirmed() {
		t.Fatal("confirmed without a name server")
	}
	if want := netip.AddrPortFrom(netip.MustParseAddr("10.9.8.7"), pub.Addr().Addr.Port()); a.Addr().Addr != want {
		t.Fatalf("announced at %v, want %v", a.Addr(), want)
	}
	startNamesAt(t, addr)
	waitTrue(t, 10*time.Second, "confirmed once the name server is up", a.Confirmed)
	if info, err := env.Names().LookupOnce(ctxT(t, 5*time.Second), "later", namesvc.LookupOptions{}); err != nil || info.Addresses[0] != a.Addr() {
		t.Fatalf("lookup: %+v, %v", info, err)
	}
	if _, err := env.Announce(pub, "", AnnounceOptions{}); err == nil {
		t.Error("an empty name was announced")
	}
	if _, err := Listen("udp:127.0.0.1:0", ListenOptions{}); err == nil {
		t.Error("Listen on udp succeeded")
	}
	env.Close()
	if _, err := env.Announce(pub, "closed", AnnounceOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Announce on a closed Env: %v", err)
	}
}
