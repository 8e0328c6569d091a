package examples

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
)

// largeUDP publishes 20 sequences of 200,000 bytes (four STK-UDP datagrams
// each) 100 ms apart over udp to the subscriber started by startSub, the
// case of issue 15 where a C subscriber with the system's default receive
// buffer got 17 of 20 when the fragments left in one burst.
func largeUDP(t *testing.T, ns, name string) {
	t.Helper()
	pub := start(t, "publish", "-R", ns, "-i", fmt.Sprintf("udp:127.0.0.1:%d", testutil.FreePort(t, "udp")),
		"-s", "20", "-a", "1", "-p", "100", "-l", "200000", "-d", "500ms", name)
	out := pub.Wait(t, 60*time.Second)
	if !strings.Contains(out, "Sent 20 sequences") {
		t.Fatalf("publish did not send 20 sequences:\n%s", out)
	}
}

func TestUDPLargeSequencesPaced(t *testing.T) {
	ns := stkd(t)
	name := uniqueName("large")
	sub := start(t, "subscribe", "-R", ns, "-q", "-c", "20", name)
	sub.WaitFor(t, "Subscribing to", 10*time.Second)
	largeUDP(t, ns, name)
	if got := sub.Wait(t, 30*time.Second); !strings.Contains(got, "Received: 20 sequences, ") || strings.Contains(got, "Lost:") {
		t.Fatalf("subscriber:\n%s", got)
	}
}

// TestUDPLargeSequencesToCSubscriber runs the C STK's own subscribe
// example (not part of this repository) against the Go publisher: 20 of
// 20 with its default receive buffer.
func TestUDPLargeSequencesToCSubscriber(t *testing.T) {
	cSub := os.Getenv("STK_C_SUBSCRIBE")
	if cSub == "" {
		t.Skip("needs the C STK's subscribe example, which this machine does not have: set STK_C_SUBSCRIBE to its path (with its library on LD_LIBRARY_PATH)")
	}
	ns := stkd(t)
	name := uniqueName("large-c")
	sub := testprog.Start(t, cSub, "-R", ns, name)
	sub.WaitFor(t, "Subscribing to", 10*time.Second)
	largeUDP(t, ns, name)
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n < 20; n = strings.Count(sub.Output(), "Received 200000 bytes") {
		if time.Now().After(deadline) {
			t.Fatalf("the C subscriber received %d of 20 sequences", n)
		}
		time.Sleep(10 * time.Millisecond) // poll its output
	}
}
