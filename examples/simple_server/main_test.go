package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/servetest"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testprog/multicast"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
)

// bin holds simple_server and simple_client, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	testprog.Main(m, func(dir string) { bin = dir }, ".", "../simple_client")
}

// env is a name server and a monitor in this process, on free ports.
type env struct {
	ns, mon string // "tcp:ip:port" for -R and -m
	monitor *smartbeat.Monitor
}

func newEnv(t *testing.T) *env {
	t.Helper()
	_, nsAddr := servetest.Names(t, namesvc.ServerConfig{}, "127.0.0.1:0")
	mon, monAddr := servetest.Monitor(t, smartbeat.MonitorConfig{}, "127.0.0.1:0")
	return &env{ns: "tcp:" + nsAddr.String(), mon: "tcp:" + monAddr.String(), monitor: mon}
}

func start(t *testing.T, name string, args ...string) *testprog.Proc {
	t.Helper()
	return testprog.Start(t, filepath.Join(bin, name), args...)
}

// exitCode waits for p to end and returns its output and exit status.
func exitCode(t *testing.T, p *testprog.Proc) (string, int) {
	t.Helper()
	out := p.Wait(t, 30*time.Second)
	return out, p.Cmd.ProcessState.ExitCode()
}

// server starts simple_server on a free port with a unique group name and
// waits until it registered; it returns the group name and the address.
func (e *env) server(t *testing.T, args ...string) (*testprog.Proc, string, string) {
	t.Helper()
	group := fmt.Sprintf("Simple Server Service Group %d", rand.Uint32())
	args = append([]string{"-B", "127.0.0.1:0", "-G", group, "-R", e.ns, "-m", e.mon}, args...)
	p := start(t, "simple_server", args...)
	m := p.WaitFor(t, `^Registered '.*' as (\S+) with the name server`, 10*time.Second)
	return p, group, m[1]
}

// find returns the records named name: the client's own (no group) and
// the group's mirror.
func find(views []smartbeat.ServiceView, name, group string) (own, mirror *smartbeat.ServiceView) {
	for i := range views {
		v := &views[i]
		if v.Name != name {
			continue
		}
		switch v.GroupName {
		case "":
			own = v
		case group:
			mirror = v
		}
	}
	return own, mirror
}

func wantLines(t *testing.T, what, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Errorf("%s output lacks %q:\n%s", what, l, out)
		}
	}
}

// TestServerAndClient is capture 15 with Go programs: every sequence is
// answered, the server mirrors the client service, and the monitor shows
// the client's service and the mirror with the group name.
func TestServerAndClient(t *testing.T) {
	e := newEnv(t)
	srv, group, addr := e.server(t)
	if !strings.HasPrefix(addr, "tcp:127.0.0.1:") {
		t.Fatalf("registered %q, want tcp:127.0.0.1:port", addr)
	}
	cl := start(t, "simple_client", "-R", e.ns, "-m", e.mon, "-i", "lookup:"+group, "-s", "100", "-S", "client svc A")
	out, code := exitCode(t, cl)
	if code != 0 {
		t.Fatalf("simple_client exited with %d:\n%s", code, out)
	}
	wantLines(t, "simple_client", out,
		"Received info on name "+group+", IP 127.0.0.1 Port ",
		"Meta data type 32771 sz 2", // 0x8003: the data-flow type (§7.12)
		"Using random service ID: ",
		"Sending 100 sequences to "+addr+"\n",
		"Received 100 sequences, waiting for 100\n",
		"simple_client: Sent and Received 100 sequences\n")

	srv.WaitFor(t, `^Service 'client svc A' changed from state stopping to stopped$`, 10*time.Second)
	wantLines(t, "simple_server", srv.Output(),
		"Creating service group '"+group+"'\n",
		"Service 'client svc A' added to service group '"+group+"' [state 2]\n"+
			"Service 'client svc A' changed from state starting to starting\n"+
			"Service 'client svc A' changed from state starting to running\n"+
			"Service 'client svc A' changed from state running to stopping\n"+
			"Service 'client svc A' removed from service group '"+group+"' [state 2]\n"+
			"Received: 100 Failed sends: 0\n"+
			"Service 'client svc A' changed from state stopping to stopped\n")

	// Both records end destroyed, stopped, with the last checkpoint (the
	// number of replies) and the mirror under the group's name.
	var own, mirror *smartbeat.ServiceView
	testutil.WaitFor(t, 10*time.Second, "the monitor has both records in history", func() bool {
		own, mirror = find(e.monitor.History(), "client svc A", group)
		return own != nil && mirror != nil && own.Destroyed && mirror.Destroyed
	})

	for _, v := range []*smartbeat.ServiceView{own, mirror} {
		if v.State != smartbeat.Stopped || v.Checkpoint != 100 || v.ID != own.ID {
			t.Errorf("record %s (group %q): state %v checkpoint %d id %#x; want stopped, 100, %#x", v.Key, v.GroupName, v.State, v.Checkpoint, v.ID, own.ID)
		}
	}
	if own.Peer == mirror.Peer {
		t.Errorf("the client's record and the mirror share the peer %v; the mirror must come from the server", own.Peer)
	}

	srv.Cmd.Process.Signal(syscall.SIGTERM)
	out, code = exitCode(t, srv)
	if code != 0 {
		t.Fatalf("simple_server exited with %d after SIGTERM:\n%s", code, out)
	}
	wantLines(t, "simple_server", out, "Received SIGTERM/SIGINT, exiting...\nReceived: 100 Failed sends: 0\nsimple_server terminated\n")
}

// TestKilledClientTimesOut: a client killed without a goodbye is timed out
// by the group; the monitor marks the mirror timed out and inactive, and
// times the client's own record out too.
func TestKilledClientTimesOut(t *testing.T) {
	e := newEnv(t)
	srv, group, _ := e.server(t)
	cl := start(t, "simple_client", "-R", e.ns, "-m", e.mon, "-i", "lookup:"+group, "-s", "10", "-w", "1h", "-S", "victim")
	cl.WaitFor(t, `^Waiting for 1h0m0s before closing$`, 10*time.Second)
	srv.WaitFor(t, `^Service 'victim' changed from state starting to running$`, 10*time.Second)

	var own, mirror *smartbeat.ServiceView
	testutil.WaitFor(t, 10*time.Second, "the monitor shows the running client and its mirror", func() bool {
		own, mirror = find(e.monitor.Services(), "victim", group)
		return own != nil && mirror != nil && own.State == smartbeat.Running && mirror.State == smartbeat.Running
	})

	killed := time.Now()
	if err := cl.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	m := srv.WaitFor(t, `^Service 'victim' timed out in service group '.*' \(no smartbeat from (\S+) for 1.2s\)$`, 10*time.Second)
	srv.WaitFor(t, `^Service 'victim' changed from state running to timed out$`, 10*time.Second)
	// The last smartbeat came up to one 500 ms period before the kill.
	if took := time.Since(killed); took < 600*time.Millisecond {
		t.Errorf("timed out %v after the kill: sooner than the 1.2 s activity timeout allows", took)
	}
	if !strings.HasPrefix(m[1], "tcp:127.0.0.1:") {
		t.Errorf("timed-out peer %q", m[1])
	}
	wantLines(t, "simple_server", srv.Output(), "Service 'victim' removed from service group '"+group+"' [state 2]\nReceived: 10 Failed sends: 0\n")

	testutil.WaitFor(t, 10*time.Second, "the monitor ends both records", func() bool {
		own, mirror = find(e.monitor.History(), "victim", group)
		return own != nil && mirror != nil
	})

	if mirror.State != smartbeat.TimedOut || mirror.StateName != "timed out" || !mirror.Inactive {
		t.Errorf("mirror: state %v (%q) inactive %v; want timed out, inactive", mirror.State, mirror.StateName, mirror.Inactive)
	}
	if own.EndReason != smartbeat.EndTimedOut || !own.Inactive {
		t.Errorf("client's record: end %q inactive %v; want timed out, inactive", own.EndReason, own.Inactive)
	}
}

// TestPassive: -0 answers nothing; the client says so and fails.
func TestPassive(t *testing.T) {
	e := newEnv(t)
	srv, group, _ := e.server(t, "-0", "-q")
	cl := start(t, "simple_client", "-R", e.ns, "-m", "", "-i", "lookup:"+group, "-s", "20", "-t", "300ms", "-q")
	out, code := exitCode(t, cl)
	if code != 1 {
		t.Fatalf("simple_client exited with %d, want 1:\n%s", code, out)
	}
	wantLines(t, "simple_client", out,
		"simple_client: Sent 20 and Received 0 sequences\n",
		"20 of 20 replies missing: none came for 300ms (is the server passive, -0?)")
	srv.Cmd.Process.Signal(syscall.SIGINT)
	out, _ = exitCode(t, srv)
	wantLines(t, "simple_server", out, "Received: 20 Failed sends: 0\n")
	if strings.Contains(out, "added to service group") {
		t.Errorf("-q printed the group's events:\n%s", out)
	}
}

// TestUDP: -P udp registers a udp address; the client talks STK-UDP, and
// its notifications reach the group as datagrams.
func TestUDP(t *testing.T) {
	e := newEnv(t)
	srv, group, addr := e.server(t, "-P", "udp")
	if !strings.HasPrefix(addr, "udp:127.0.0.1:") {
		t.Fatalf("registered %q, want udp:127.0.0.1:port", addr)
	}
	cl := start(t, "simple_client", "-R", e.ns, "-m", e.mon, "-i", "lookup:"+group, "-s", "20", "-S", "udp client")
	out, code := exitCode(t, cl)
	if code != 0 {
		t.Fatalf("simple_client exited with %d:\n%s", code, out)
	}
	wantLines(t, "simple_client", out, "Protocol udp", "simple_client: Sent and Received 20 sequences\n")
	srv.WaitFor(t, `^Service 'udp client' changed from state stopping to stopped$`, 10*time.Second)
}

// TestUnspecifiedBindRegistersAdvertisedIP: a server on 0.0.0.0 registers
// the IP facing the name server (flow.AdvertiseIP), where a client that
// looks the group up connects.
func TestUnspecifiedBindRegistersAdvertisedIP(t *testing.T) {
	e := newEnv(t)
	group := fmt.Sprintf("any interface %d", rand.Uint32())
	p := start(t, "simple_server", "-B", "0.0.0.0:0", "-G", group, "-R", e.ns, "-m", "")
	port := p.WaitFor(t, `^Listening on tcp:0\.0\.0\.0:(\d+)$`, 10*time.Second)[1]
	want := flow.AdvertiseIP(netip.IPv4Unspecified(), netip.MustParseAddr("127.0.0.1")).String() + ":" + port
	p.WaitFor(t, `^Registered '`+regexp.QuoteMeta(group)+`' as tcp:`+regexp.QuoteMeta(want)+
		` with the name server at .* \(listening on 0\.0\.0\.0:`+port+`\)$`, 10*time.Second)

	cl := start(t, "simple_client", "-R", e.ns, "-m", "", "-i", "lookup:"+group, "-s", "5")
	if out, code := exitCode(t, cl); code != 0 || !strings.Contains(out, "Sent and Received 5 sequences") ||
		!strings.Contains(out, "Sending 5 sequences to tcp:"+want) {
		t.Errorf("client by lookup: exit %d:\n%s", code, out)
	}
}

func TestHelp(t *testing.T) {
	out, code := exitCode(t, start(t, "simple_server", "-h"))
	if code != 0 {
		t.Fatalf("-h exited with %d", code)
	}
	for _, f := range []string{"-B, --bind", "-G, --group", "-P, --protocol", "-M, --multicast", "-m, --monitor",
		"-R, --name-server", "-0, --passive", "-q, --quiet", "-h, --help", `"Simple Server Service Group"`, "127.0.0.1:29312"} {
		if !strings.Contains(out, f) {
			t.Errorf("usage lacks %q:\n%s", f, out)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-x"}, "unknown shorthand flag: 'x' in -x (see simple_server -h)"},
		{[]string{"extra"}, "want 0 argument(s), got 1"},
		// Not the resolver's reason: "unknown host" where DNS answers, another
		// where none is reachable (a network namespace with only lo).
		{[]string{"-B", "nowhere.invalid:1"}, `-B "nowhere.invalid:1": flow: address "nowhere.invalid": `},
		{[]string{"-B", "[::1]:1"}, "IPv6 is not supported"},
		{[]string{"-B", "127.0.0.1:99999"}, `-B "127.0.0.1:99999": bad port "99999"`},
		{[]string{"-P", "rawudp"}, `-P "rawudp": want tcp, udp or multicast`},
		{[]string{"-M", "10.0.0.1"}, "is not a multicast group"},
		{[]string{"-P", "udp", "-M", "224.1.2.3"}, "-M receives multicast, but -P says udp"},
		{[]string{"-m", "bogus:1:2:3", "-B", "127.0.0.1:0"}, `-m: flow: address "bogus:1:2:3": too many ':'`},
	} {
		out, code := exitCode(t, start(t, "simple_server", tc.args...))
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("simple_server %v: exit %d, want 2 and an error with %q:\n%s", tc.args, code, tc.want, out)
		}
	}
}

// TestMulticast: -M receives on a group and registers it.
func TestMulticast(t *testing.T) {
	multicast.Need(t)
	e := newEnv(t)
	group := fmt.Sprintf("239.%d.%d.%d", rand.IntN(200)+1, rand.IntN(250)+1, rand.IntN(250)+1)
	port := testutil.FreePort(t, "udp")
	srv, name, addr := e.server(t, "-M", fmt.Sprintf("%s:%d", group, port))
	if want := fmt.Sprintf("multicast:%s:%d", group, port); addr != want {
		t.Fatalf("registered %q, want %q", addr, want)
	}
	cl := start(t, "simple_client", "-R", e.ns, "-m", "", "-i", "lookup:"+name, "-s", "5", "-S", "mcast client")
	out, code := exitCode(t, cl)
	if code != 0 {
		t.Fatalf("simple_client sending to the multicast server exited with %d:\n%s", code, out)
	}
	srv.WaitFor(t, `^Service 'mcast client' added to service group`, 10*time.Second)
}
