package examples

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testprog/multicast"
	"github.com/stk-go/stk/internal/testutil"
)

// bin holds the programs built once for all tests.
var bin string

func TestMain(m *testing.M) {
	testprog.Main(m, func(dir string) { bin = dir }, "../stkd", "./publish", "./subscribe", "./simple_name_registration", "./simple_name_lookup")
}

func start(t *testing.T, name string, args ...string) *testprog.Proc {
	t.Helper()
	return testprog.Start(t, filepath.Join(bin, name), args...)
}

// stkd starts a daemon on a free port and returns its name server address.
func stkd(t *testing.T) string {
	t.Helper()
	return testprog.StartStkd(t, filepath.Join(bin, "stkd"), "--names-udp", "127.0.0.1:0",
		"--monitor-udp", "127.0.0.1:0").Names
}

func uniqueName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, rand.Uint32()) }

// pubsub runs n subscribers and one publisher of count sequences over the
// given -i address and checks every subscriber got every sequence.
func pubsub(t *testing.T, subs, count int, iface string, pubArgs ...string) {
	ns := stkd(t)
	name := uniqueName("e2e")
	var ps []*testprog.Proc
	for range subs {
		ps = append(ps, start(t, "subscribe", "-R", ns, "-q", "-c", fmt.Sprint(count), name))
	}
	for _, p := range ps {
		p.WaitFor(t, "Subscribing to", 10*time.Second)
	}
	args := append([]string{"-R", ns, "-i", iface, "-s", fmt.Sprint(count), "-l", "100"}, pubArgs...)
	pub := start(t, "publish", append(args, name)...)
	out := pub.Wait(t, 60*time.Second)
	if !strings.Contains(out, fmt.Sprintf("Sent %d sequences", count)) {
		t.Fatalf("publish did not send %d sequences:\n%s", count, out)
	}
	for i, p := range ps {
		out := p.Wait(t, 30*time.Second)
		if !strings.Contains(out, fmt.Sprintf("Received: %d sequences, ", count)) {
			t.Fatalf("subscriber %d:\n%s", i, out)
		}
	}
}

func TestPubSubTCPOneToFour(t *testing.T) {
	pubsub(t, 4, 100000, "tcp:127.0.0.1:0", "-w", "4", "-a", "1000")
}

func TestPubSubMulticastOneToFour(t *testing.T) {
	multicast.Need(t)
	group := fmt.Sprintf("239.%d.%d.%d", rand.IntN(200)+1, rand.IntN(250)+1, rand.IntN(250)+1)
	// Paced: loopback multicast drops bursts that overflow a socket buffer.
	pubsub(t, 4, 2000, fmt.Sprintf("multicast:%s:%d", group, testutil.FreePort(t, "udp")), "-a", "20", "-p", "1", "-d", "500ms")
}

func TestPubSubUDP(t *testing.T) {
	pubsub(t, 1, 2000, fmt.Sprintf("udp:127.0.0.1:%d", testutil.FreePort(t, "udp")), "-a", "20", "-p", "1", "-d", "500ms")
}

func TestPubSubRawUDP(t *testing.T) {
	pubsub(t, 1, 2000, fmt.Sprintf("rawudp:127.0.0.1:%d", testutil.FreePort(t, "udp")), "-a", "20", "-p", "1", "-d", "500ms")
}

func TestPubSubQuickStart(t *testing.T) {
	// What README's quick start shows: a verbose subscriber, 1000 sequences.
	ns := stkd(t)
	sub := start(t, "subscribe", "-R", ns, "-c", "1000", "demo")
	sub.WaitFor(t, "Subscribing to 'demo'", 10*time.Second)
	pub := start(t, "publish", "-R", ns, "-i", "tcp:127.0.0.1:0", "-s", "1000", "demo")
	if out := pub.Wait(t, 30*time.Second); !strings.Contains(out, "Sent 1000 sequences, 10000 bytes") {
		t.Fatalf("publish:\n%s", out)
	}
	out := sub.Wait(t, 30*time.Second)
	if n := strings.Count(out, `"publish sequence" type data, 1 element(s), 10 bytes`); n != 1000 || !strings.Contains(out, "Received: 1000 sequences, ") {
		t.Fatalf("subscriber printed %d sequences:\n%.2000s", n, out)
	}
}

func TestNameRegistrationAndLookup(t *testing.T) {
	ns := stkd(t)
	reg := start(t, "simple_name_registration", "-R", ns, "-i", "tcp:127.0.0.1:5432", "-i", "udp:127.0.0.2:6000",
		"-G", "test", "-M", "100,hello", "-F", "active", "-L", "30", "svc")
	if out := reg.Wait(t, 10*time.Second); !strings.Contains(out, "Registered svc") {
		t.Fatalf("registration:\n%s", out)
	}
	// The name outlives the registrant by its linger.
	look := start(t, "simple_name_lookup", "-R", ns, "-G", "test", "svc")
	out := look.Wait(t, 10*time.Second)
	for _, want := range []string{
		"IP 127.0.0.1 Port 5432 Protocol tcp; IP 127.0.0.2 Port 6000 Protocol udp, FT State active",
		`Meta data type 100 sz 6 "hello"`,
		"Lookup of 'svc' complete: 1 answer(s)",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("lookup output lacks %q:\n%s", want, out)
		}
	}
	// Another group does not see it; an unknown group searches the default one.
	miss := start(t, "simple_name_lookup", "-R", ns, "svc")
	if out := miss.Wait(t, 10*time.Second); !strings.Contains(out, "complete: 0 answer(s)") {
		t.Fatalf("lookup in the default group:\n%s", out)
	}
}

func TestLookupOverUDP(t *testing.T) {
	udp := testprog.StartStkd(t, filepath.Join(bin, "stkd"), "--names-udp", "127.0.0.1:0").NamesUDP
	reg := start(t, "simple_name_registration", "-R", udp, "-i", "tcp:127.0.0.1:7000", "-w", "udpname")
	reg.WaitFor(t, "Registered udpname", 10*time.Second)
	look := start(t, "simple_name_lookup", "-R", udp, "udpname")
	if out := look.Wait(t, 10*time.Second); !strings.Contains(out, "IP 127.0.0.1 Port 7000 Protocol tcp") ||
		!strings.Contains(out, "complete: 1 answer(s)") {
		t.Fatalf("lookup over UDP:\n%s", out)
	}
}
