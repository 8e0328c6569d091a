package ctest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testprog"
)

// TestCPublisherOnEveryInterface: a C publisher listening on 0.0.0.0
// registers the address of this host's interface toward the name server
// (where the name server is reached: its primary address), which the Go
// subscriber finds and receives from; the publisher logs it (-v).
func TestCPublisherOnEveryInterface(t *testing.T) {
	need(t)
	ip, ok := flow.PrimaryIP()
	if !ok {
		t.Skip("this host has no IPv4 address beyond loopback: nothing but 127.0.0.1 to register")
	}
	d := testprog.StartStkd(t, filepath.Join(goBin, "stkd"), "--names-tcp", "0.0.0.0:0")
	_, port, _ := strings.Cut(strings.TrimPrefix(d.Names, "tcp:0.0.0.0"), ":")
	ns := fmt.Sprintf("tcp:%v:%s", ip, port)
	name := uniqueName("cpub-any")
	const count = 500
	sub := startGo(t, "subscribe", "-R", ns, "-q", "-c", fmt.Sprint(count), name)
	sub.WaitFor(t, "Subscribing to", 10*time.Second)
	pub := startC(t, "publish", "-v", "-R", ns, "-i", "tcp:0.0.0.0:0", "-s", fmt.Sprint(count), name)
	m := pub.WaitFor(t, `msg="registering the publisher" name=`+name+` address=tcp:(\S+) listen=0\.0\.0\.0:(\d+)`, 10*time.Second)
	if want := fmt.Sprintf("%v:%s", ip, m[2]); m[1] != want {
		t.Errorf("registered %s, want %s", m[1], want)
	}
	sub.WaitFor(t, fmt.Sprintf(`Receiving '%s' from tcp:%v:%s`, name, ip, m[2]), 10*time.Second)
	finish(t, pub, 30*time.Second)
	if out := sub.Wait(t, 30*time.Second); !strings.Contains(out, fmt.Sprintf("Received: %d sequences, ", count)) {
		t.Fatalf("subscribe:\n%s", out)
	}
}
