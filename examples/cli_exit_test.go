package examples

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testprog"
)

// moreOnce builds, on first use, the programs e2e_test.go's TestMain does
// not build, into the same directory (which TestMain removes).
var (
	moreOnce sync.Once
	moreErr  error
)

// program returns the path of an example program.
func program(t *testing.T, name string) string {
	t.Helper()
	moreOnce.Do(func() {
		dir, err := testprog.Build("./monitored_service", "./simple_server", "./simple_client",
			"./throughput_test", "./raw_multicast_bridge")
		if moreErr = err; err != nil {
			return
		}
		defer os.RemoveAll(dir)
		entries, err := os.ReadDir(dir)
		for _, e := range entries {
			if err == nil {
				err = os.Rename(filepath.Join(dir, e.Name()), filepath.Join(bin, e.Name()))
			}
		}
		moreErr = err
	})
	if moreErr != nil {
		t.Fatal(moreErr)
	}
	return filepath.Join(bin, name)
}

var allPrograms = []string{"publish", "subscribe", "simple_name_registration", "simple_name_lookup",
	"monitored_service", "simple_server", "simple_client", "throughput_test", "raw_multicast_bridge"}

// runProg runs an example to its end and returns its output (stdout and
// stderr) and exit status.
func runProg(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	p := testprog.Start(t, program(t, name), args...)
	out := p.Wait(t, 60*time.Second)
	return out, p.Cmd.ProcessState.ExitCode()
}

// closedAddr returns "tcp:127.0.0.1:port" for a TCP port nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "tcp:" + l.Addr().String()
}

// lastLine returns the last non-empty line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestEveryProgramHasVersionAndExitStatuses(t *testing.T) {
	for _, name := range allPrograms {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkVersionAndExitStatuses(t, name)
		})
	}
}

// checkVersionAndExitStatuses runs name with --version, -h and a flag it
// does not have.
func checkVersionAndExitStatuses(t *testing.T, name string) {
	out, code := runProg(t, name, "--version")
	if code != 0 || !strings.HasPrefix(out, name+" ") || !strings.Contains(out, "go1.") {
		t.Errorf("%s --version: exit %d:\n%s", name, code, out)
	}
	out, code = runProg(t, name, "-h")
	for _, want := range []string{"--version", "print the version and exit", "Exit status:\n  0  ", "\n  1  ",
		"\n  2  bad usage"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("%s -h: exit %d, lacks %q:\n%s", name, code, want, out)
		}
	}
	out, code = runProg(t, name, "--no-such-flag")
	if code != 2 || !strings.Contains(out, "(see "+name+" -h)") {
		t.Errorf("%s --no-such-flag: exit %d, want 2:\n%s", name, code, out)
	}
}

// TestFailuresExitOne: each program, kept from doing its job, exits with
// status 1 and says why in its last line.
func TestFailuresExitOne(t *testing.T) {
	nowhere := closedAddr(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"publish", []string{"-R", nowhere, "-i", "tcp:127.0.0.1:0", "demo"}, "publish: register demo with the name server at " + nowhere + ": .*is stkd running\\?"},
		{"simple_name_registration", []string{"-R", nowhere, "demo"}, "simple_name_registration: register demo .*is stkd running\\?"},
		{"simple_name_lookup", []string{"-R", nowhere, "-e", "300ms", "demo"}, "simple_name_lookup: not connected to a name server at " + nowhere + " .*is stkd running\\?"},
		{"monitored_service", []string{"-m", nowhere, "-t", "2", "-i", "10ms"}, "monitored_service: monitor " + nowhere + ": never reached: .*is stkd running\\?"},
		{"simple_client", []string{"-R", nowhere, "-m", "", "-t", "1s", "-i", "lookup:demo"}, "simple_client: lookup demo: .*is stkd running\\?"},
		{"simple_client", []string{"-m", "", "-t", "1s", "-i", nowhere}, "simple_client: cannot connect to " + nowhere + " within 1s: is simple_server running\\?"},
		{"throughput_test", []string{"-t", "1s", "-i", nowhere}, "throughput_test: cannot connect to " + nowhere + " within 1s"},
		// 192.0.2.0/24 is TEST-NET-1: no interface here holds it, so the bind fails.
		{"simple_server", []string{"-B", "192.0.2.77:0", "-m", "", "-R", nowhere}, "simple_server: flow: TCP server on 192.0.2.77:0: .*cannot assign requested address"},
		{"raw_multicast_bridge", []string{"-B", "192.0.2.77", "239.1.2.3:5000", "127.0.0.1:1"}, "raw_multicast_bridge: .*192.0.2.77"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // most of each case is waiting for a timeout
			out, code := runProg(t, tc.name, tc.args...)
			if code != 1 || !regexp.MustCompile("^"+tc.want).MatchString(lastLine(out)) {
				t.Errorf("%s %v: exit %d, want 1 and a last line matching %q:\n%s", tc.name, tc.args, code, tc.want, out)
			}
		})
	}
}

// TestSubscribeWithoutNameServer: subscribe -c says it is still trying, and
// interrupted, that it did not get its sequences.
func TestSubscribeWithoutNameServer(t *testing.T) {
	nowhere := closedAddr(t)
	for _, name := range []string{"subscribe", "simple_name_lookup"} {
		args := []string{"-R", nowhere, "-c", "1", "demo"}
		if name == "simple_name_lookup" {
			args = append([]string{"-X"}, args...)
		}
		p := testprog.Start(t, program(t, name), args...)
		p.WaitFor(t, "^"+name+": .*"+regexp.QuoteMeta(nowhere)+".*still trying$", 10*time.Second)
		p.Cmd.Process.Signal(syscall.SIGINT)
		out := p.Wait(t, 10*time.Second)
		if code := p.Cmd.ProcessState.ExitCode(); code != 1 || !strings.HasPrefix(lastLine(out), name+": interrupted after 0 of 1 ") {
			t.Errorf("%s interrupted: exit %d, want 1:\n%s", name, code, out)
		}
	}
}

// TestSubscribeCountIsExact: -c 5 against 1000 sequences prints 5 and one
// summary line that says 5, then exits 0; the publisher is not to blame for
// a subscriber that leaves and exits 0 too.
func TestSubscribeCountIsExact(t *testing.T) {
	ns := stkd(t)
	for _, quiet := range []bool{false, true} {
		name := uniqueName("count")
		args := []string{"-R", ns, "-c", "5", name}
		if quiet {
			args = append([]string{"-q"}, args...)
		}
		sub := start(t, "subscribe", args...)
		sub.WaitFor(t, "Subscribing to", 10*time.Second)
		pub := start(t, "publish", "-R", ns, "-i", "tcp:127.0.0.1:0", "-s", "100000", "-a", "1000", name)
		pubOut := pub.Wait(t, 60*time.Second)
		if code := pub.Cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(pubOut, "; 1 subscriber(s), ") {
			t.Errorf("publish: exit %d:\n%s", code, pubOut)
		}
		out := sub.Wait(t, 30*time.Second)
		printed := strings.Count(out, "Received sequence ")
		summaries := regexp.MustCompile(`(?m)^Received: .*$`).FindAllString(out, -1)
		if code := sub.Cmd.ProcessState.ExitCode(); code != 0 || (quiet && printed != 0) || (!quiet && printed != 5) ||
			len(summaries) != 1 || !strings.HasPrefix(summaries[0], "Received: 5 sequences, 50 bytes") ||
			strings.Contains(out, "Received 5") {
			t.Errorf("subscribe -c 5 (quiet %v): exit %d, %d printed, summaries %q:\n%.3000s", quiet, code, printed, summaries, out)
		}
	}
}

// TestAddressMessages: host names are resolved; IPv6, unknown protocols
// and a busy port get messages that say what is wrong, and only failures
// to connect suggest starting stkd.
func TestAddressMessages(t *testing.T) {
	ns := stkd(t)
	port := strings.TrimPrefix(ns, "tcp:127.0.0.1:")
	out, code := runProg(t, "simple_name_registration", "-R", "localhost:"+port, "-i", "tcp:localhost:5555", "byhost")
	if code != 0 {
		t.Fatalf("registration through -R localhost:%s: exit %d:\n%s", port, code, out)
	}
	if out, _ := runProg(t, "simple_name_lookup", "-R", ns, "byhost"); !strings.Contains(out, "IP 127.0.0.1 Port 5555 Protocol tcp") {
		t.Errorf("-i tcp:localhost:5555 must be registered as 127.0.0.1:\n%s", out)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"publish", []string{"-R", "[::1]:20002", "demo"}, `publish: -R: flow: address "[::1]:20002": IPv6 is not supported: STK's wire format carries IPv4 addresses only`},
		{"subscribe", []string{"-R", "tcp:::1", "demo"}, "IPv6 is not supported"},
		{"publish", []string{"-i", "foo:1.2.3.4", "demo"}, `publish: -i: flow: address "foo:1.2.3.4": unknown protocol "foo" (want tcp, udp, rawudp, multicast, tls or lookup)`},
		{"monitored_service", []string{"-m", "nowhere.invalid"}, `monitored_service: -m: flow: address "nowhere.invalid": `},
		{"throughput_test", []string{"-i", "ftp:1.2.3.4"}, `unknown protocol "ftp"`},
		{"simple_name_lookup", []string{"-R", "udp:1.2.3.4:5:6", "x"}, `too many ':'`},
	} {
		out, code := runProg(t, tc.name, tc.args...)
		if code != 2 || !strings.Contains(lastLine(out), tc.want) || strings.Contains(out, "is stkd running") {
			t.Errorf("%s %v: exit %d, want 2 and a last line with %q, no stkd hint:\n%s", tc.name, tc.args, code, tc.want, out)
		}
	}

	// A second publisher on the same port is told how to pick a free one.
	first := start(t, "publish", "-R", ns, "-i", "tcp:127.0.0.1:0", "first")
	m := first.WaitFor(t, `^Publishing to 'first' on tcp:127\.0\.0\.1:(\d+)$`, 10*time.Second)
	out, code = runProg(t, "publish", "-R", ns, "-i", "tcp:127.0.0.1:"+m[1], "second")
	if code != 1 || !strings.Contains(lastLine(out), "address already in use (another publisher there? -i tcp:127.0.0.1:0 picks a free port)") {
		t.Errorf("second publisher on port %s: exit %d:\n%s", m[1], code, out)
	}
}

// TestPublishOnEveryInterfaceRegistersAReachableIP: -B 0.0.0.0 registers
// flow.AdvertiseIP toward the name server, and a subscriber connects there.
func TestPublishOnEveryInterfaceRegistersAReachableIP(t *testing.T) {
	ns := stkd(t)
	name := uniqueName("anyif")
	want := flow.AdvertiseIP(netip.IPv4Unspecified(), netip.MustParseAddr("127.0.0.1"))
	sub := start(t, "subscribe", "-R", ns, "-q", "-c", "10", name)
	sub.WaitFor(t, "Subscribing to", 10*time.Second)
	pub := start(t, "publish", "-R", ns, "-B", "0.0.0.0", "-i", "tcp::0", "-s", "10", name)
	m := pub.WaitFor(t, `^Publishing to '.*' on tcp:(\S+) \(listening on 0\.0\.0\.0:(\d+)\)$`, 10*time.Second)
	if m[1] != fmt.Sprintf("%s:%s", want, m[2]) {
		t.Errorf("publish registers %s, want %s:%s", m[1], want, m[2])
	}
	sub.WaitFor(t, "^Receiving '.*' from tcp:"+regexp.QuoteMeta(m[1])+"$", 10*time.Second)
	if out := sub.Wait(t, 30*time.Second); !strings.Contains(out, "Received: 10 sequences") {
		t.Errorf("subscriber:\n%s", out)
	}
	if out := pub.Wait(t, 30*time.Second); pub.Cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("publish:\n%s", out)
	}
}

// TestPublishWithoutRouteFails: multicast publish in a network namespace
// with nothing but loopback (no route to the group) sends nothing and says
// so with exit status 1.
func TestPublishWithoutRouteFails(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err == nil {
		err = exec.Command(unshare, "-n", "true").Run()
	}
	if err != nil {
		t.Skipf("needs a network namespace of its own (unshare -n, as root): %v", err)
	}
	script := fmt.Sprintf(`ip link set lo up || exit 99
%s --names-tcp 127.0.0.1:20002 --names-udp "" --monitor-tcp "" --monitor-udp "" --http "" 2>/dev/null &
%s -i multicast:239.1.2.3:5555 -s 100 -d 0 noroute
echo "exit=$?"
kill $!`, filepath.Join(bin, "stkd"), filepath.Join(bin, "publish"))
	p := testprog.Start(t, unshare, "-n", "sh", "-c", script)
	out := p.Wait(t, 60*time.Second)
	if !strings.Contains(out, "publish: 100 of 100 sequences not sent to multicast:239.1.2.3:5555") || !strings.Contains(out, "exit=1\n") {
		t.Errorf("multicast publish without a route:\n%s", out)
	}
}

// TestMonitoredServiceSaysEarlyThatTheMonitorIsUnreachable: the warning
// comes while the service runs, not only in the exit status.
func TestMonitoredServiceSaysEarlyThatTheMonitorIsUnreachable(t *testing.T) {
	nowhere := closedAddr(t)
	p := testprog.Start(t, program(t, "monitored_service"), "-m", nowhere, "-t", "60", "-i", "1s")
	p.WaitFor(t, "^monitored_service: monitor "+regexp.QuoteMeta(nowhere)+" not reachable after 2s; still trying", 10*time.Second)
}
