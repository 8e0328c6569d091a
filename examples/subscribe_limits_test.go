package examples

import (
	"regexp"
	"testing"
	"time"
)

// TestSubscribeMaxEndpoints: three publishers register one name; a
// subscriber bounded to two addresses receives from two and says it
// ignores the third.
func TestSubscribeMaxEndpoints(t *testing.T) {
	ns := stkd(t)
	name := uniqueName("many")
	for range 3 {
		p := start(t, "publish", "-R", ns, "-i", "tcp:127.0.0.1:0", "-s", "1", "-w", "100", name)
		p.WaitFor(t, "^Waiting for", 10*time.Second)
	}
	sub := start(t, "subscribe", "-R", ns, "-q", "--max-endpoints", "2", name)
	sub.WaitFor(t, `^subscribe: "`+regexp.QuoteMeta(name)+`" has more than 2 addresses; ignoring tcp:127\.0\.0\.1:\d+ and any more`, 10*time.Second)
	if n := len(regexp.MustCompile(`(?m)^Receiving '`).FindAllString(sub.Output(), -1)); n != 2 {
		t.Fatalf("receiving from %d addresses, want 2:\n%s", n, sub.Output())
	}
}
