package examples

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// TestSubscribeAccept: two publishers register one name, on 127.0.0.1 and
// on 127.0.0.2. subscribe --accept 127.0.0.1/32 receives from the first
// only and says on stderr that it ignores the second; without --accept it
// receives from the second too.
func TestSubscribeAccept(t *testing.T) {
	ns := stkd(t)
	name := uniqueName("accept")
	one := start(t, "publish", "-R", ns, "-i", "tcp:127.0.0.1:0", "-s", "3", "-w", "1", name)
	one.WaitFor(t, "^Waiting for", 10*time.Second)
	two := start(t, "publish", "-R", ns, "-i", "tcp:127.0.0.2:0", "-s", "3", "-w", "1", name)
	two.WaitFor(t, "^Waiting for", 10*time.Second)
	// publish registers in the background: the subscriber must find both
	// registrations, or it may have its 3 sequences before it hears of the
	// second (and says nothing about it).
	c, err := namesvc.Dial(ns, namesvc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testutil.WaitFor(t, 10*time.Second, "both publishers registered", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		infos, err := c.LookupAll(ctx, name, namesvc.LookupOptions{})
		return err == nil && len(infos) == 2
	})

	sub := start(t, "subscribe", "-R", ns, "-q", "--accept", "127.0.0.1/32", "-c", "3", name)
	out := sub.Wait(t, 15*time.Second)
	if code := sub.Cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(out, "Received: 3 sequences") {
		t.Fatalf("subscribe --accept: exit %d:\n%s", code, out)
	}
	if !regexp.MustCompile(`(?m)^subscribe: ignoring tcp:127\.0\.0\.2:\d+ of "` + regexp.QuoteMeta(name) + `": not in --accept 127\.0\.0\.1/32$`).MatchString(out) {
		t.Errorf("subscribe --accept does not say it ignores 127.0.0.2:\n%s", out)
	}
	if r := regexp.MustCompile(`(?m)^Receiving '.*' from (\S+)$`).FindAllStringSubmatch(out, -1); len(r) != 1 || !strings.HasPrefix(r[0][1], "tcp:127.0.0.1:") {
		t.Errorf("subscribe --accept receives from %v, want 127.0.0.1 only", r)
	}

	// Default: any. The publisher on 127.0.0.2 still waits for its first
	// subscriber.
	sub = start(t, "subscribe", "-R", ns, "-q", "-c", "3", name)
	out = sub.Wait(t, 15*time.Second)
	if code := sub.Cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(out, "Received: 3 sequences") ||
		!regexp.MustCompile(`(?m)^Receiving '.*' from tcp:127\.0\.0\.2:\d+$`).MatchString(out) || strings.Contains(out, "ignoring") {
		t.Fatalf("subscribe without --accept: exit %d, want 3 sequences from 127.0.0.2 and nothing ignored:\n%s", code, out)
	}
}

// TestSubscribeAcceptDatagrams: a UDP registration inside --accept is
// listened on, but only the datagrams whose source is inside count: one
// from 127.0.0.2 is ignored (and said), one from 127.0.0.1 received.
func TestSubscribeAcceptDatagrams(t *testing.T) {
	ns := stkd(t)
	name := uniqueName("accept-udp")
	dest := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp"))
	c, err := namesvc.Dial(ns, namesvc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Register(ctx, namesvc.Info{Name: name, Addresses: []namesvc.Endpoint{{Protocol: "udp", Addr: netip.MustParseAddrPort(dest)}}}); err != nil {
		t.Fatal(err)
	}
	sub := start(t, "subscribe", "-R", ns, "--accept", "127.0.0.1", "-c", "1", name)
	sub.WaitFor(t, `^Receiving '.*' from udp:`+regexp.QuoteMeta(dest)+`$`, 10*time.Second)

	send := func(from, id string) {
		t.Helper()
		f, err := flow.NewUDP(flow.UDPConfig{Bind: from + ":0", Destination: dest}, flow.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Send(seq.New(1, id, seq.TypeData)); err != nil {
			t.Fatal(err)
		}
	}
	// Sent until said: the subscriber's socket may be a moment behind its
	// "Receiving" line, and a datagram before it is lost.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(sub.Output(), "subscribe: ignoring datagrams from 127.0.0.2: not in --accept 127.0.0.1") {
		if time.Now().After(deadline) {
			t.Fatalf("the datagram from 127.0.0.2 was not said to be ignored:\n%s", sub.Output())
		}
		send("127.0.0.2", "outside")
		time.Sleep(50 * time.Millisecond) // between datagrams, not a wait for a result
	}
	send("127.0.0.1", "inside")
	out := sub.Wait(t, 10*time.Second)
	if code := sub.Cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(out, `"inside"`) || strings.Contains(out, `"outside"`) {
		t.Fatalf("subscribe: exit %d, want the sequence from 127.0.0.1 only:\n%s", code, out)
	}
}
