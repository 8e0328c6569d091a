package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/smartbeat"
)

// program is the simple_client binary, built once by TestMain.
var program string

func TestMain(m *testing.M) {
	testprog.Main(m, func(dir string) { program = filepath.Join(dir, "simple_client") }, ".")
}

// run runs simple_client to its end and returns its output and exit code.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	p := testprog.Start(t, program, args...)
	out := p.Wait(t, 30*time.Second)
	return out, p.Cmd.ProcessState.ExitCode()
}

// groupServer is simple_server in this process: a TCP server whose
// non-data sequences feed a service group, and which answers data.
type groupServer struct {
	*flow.TCPServer
	group *smartbeat.Group

	mu     sync.Mutex
	events []string
	data   []*seq.Sequence
	member *smartbeat.Member
}

func newGroupServer(t *testing.T, reply bool) *groupServer {
	t.Helper()
	gs := &groupServer{}
	log := func(format string, args ...any) {
		gs.mu.Lock()
		gs.events = append(gs.events, fmt.Sprintf(format, args...))
		gs.mu.Unlock()
	}
	g, err := smartbeat.NewGroup("test group", smartbeat.GroupOptions{
		Logger: testutil.Discard(),
		OnAdded: func(_ *smartbeat.Group, m *smartbeat.Member) {
			gs.mu.Lock()
			gs.member = m
			gs.mu.Unlock()
			log("added %s", m.Name())
		},
		OnRemoved:     func(_ *smartbeat.Group, m *smartbeat.Member) { log("removed %s", m.Name()) },
		OnStateChange: func(_ *smartbeat.Group, m *smartbeat.Member, _, new smartbeat.State) { log("state %v", new) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	gs.group = g
	var replies uint64
	srv, err := flow.ListenTCP("127.0.0.1:0", flow.Options{Logger: testutil.Discard(), Handler: func(p flow.Peer, s *seq.Sequence) {
		if s.Type != seq.TypeData {
			if err := g.Invoke(p, s); err != nil {
				t.Errorf("Invoke: %v", err)
			}
			return
		}
		gs.mu.Lock()
		gs.data = append(gs.data, s.Clone())
		n := replies
		replies++
		gs.mu.Unlock()
		if reply {
			r := seq.New(0x7edcba90, "simple_server_return_data", seq.TypeData)
			r.Add(n, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
			p.Send(r)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	gs.TCPServer = srv
	return gs
}

func (gs *groupServer) snapshot() (events []string, data []*seq.Sequence, m *smartbeat.Member) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return append([]string(nil), gs.events...), append([]*seq.Sequence(nil), gs.data...), gs.member
}

func TestClientIsMirroredAndAnswered(t *testing.T) {
	gs := newGroupServer(t, true)
	addr := "tcp:" + gs.LocalAddr().String()
	out, code := run(t, "-i", addr, "-m", "", "-s", "50", "--activity-timeout", "2s")
	if code != 0 {
		t.Fatalf("exit code %d:\n%s", code, out)
	}
	for _, want := range []string{
		"Using random service ID: ",
		"Sending 50 sequences to " + addr + "\n",
		"Received 50 sequences, waiting for 50\n",
		"simple_client: Sent and Received 50 sequences\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The DESTROY came before the connection closed, so the group has
	// handled everything by the time the server saw the close; wait for
	// the removal, which follows all the data on the connection.
	var events []string
	var data []*seq.Sequence
	var m *smartbeat.Member
	testutil.WaitForf(t, 10*time.Second, func() bool {
		events, data, m = gs.snapshot()
		return len(events) > 0 && strings.HasPrefix(events[len(events)-1], "state stopped")
	}, func() string { return "group events " + strings.Join(events, "|") + ": the last is not state stopped" })
	want := "added simple_client service|state starting|state running|state stopping|removed simple_client service|state stopped"
	if got := strings.Join(events, "|"); got != want {
		t.Errorf("group events:\n got %s\nwant %s", got, want)
	}
	if m == nil {
		t.Fatal("no member")
	}
	if m.Service().ActivityTimeout() != 2*time.Second || m.Checkpoint() != 50 {
		t.Errorf("member: activity timeout %v checkpoint %d; want 2s and 50 (the replies)", m.Service().ActivityTimeout(), m.Checkpoint())
	}
	if len(data) != 50 {
		t.Fatalf("server got %d data sequences, want 50", len(data))
	}
	for i, s := range data {
		if s.ID != 0xfedcba98 || s.Name != "simple_client sequence" || len(s.Elements) != 1 ||
			s.Elements[0].UserType != seq.UTExampleData || string(s.Elements[0].Data) != fmt.Sprintf("sequence %d\x00", i) {
			t.Fatalf("sequence %d: %v", i, s)
		}
	}
}

func TestNoReplies(t *testing.T) {
	gs := newGroupServer(t, false)
	out, code := run(t, "-i", gs.LocalAddr().String(), "-m", "", "-s", "3", "-t", "200ms", "-q")
	if code != 1 || !strings.Contains(out, "simple_client: Sent 3 and Received 0 sequences") ||
		!strings.Contains(out, "3 of 3 replies missing") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "Using random service ID") {
		t.Errorf("-q printed details:\n%s", out)
	}
}

func TestNothingThere(t *testing.T) {
	port := closedPort(t)
	out, code := run(t, "-i", fmt.Sprintf("127.0.0.1:%d", port), "-m", "", "-t", "300ms")
	if code != 1 || !strings.Contains(out, "cannot connect to tcp:127.0.0.1:") || !strings.Contains(out, "is simple_server running?") {
		t.Errorf("no server: exit %d:\n%s", code, out)
	}
	out, code = run(t, "-R", fmt.Sprintf("tcp:127.0.0.1:%d", port), "-m", "", "-t", "300ms")
	if code != 1 || !strings.Contains(out, `lookup Simple Server Service Group:`) || !strings.Contains(out, "is stkd running?") {
		t.Errorf("no name server: exit %d:\n%s", code, out)
	}
}

func TestHelp(t *testing.T) {
	out, code := run(t, "-h")
	if code != 0 {
		t.Fatalf("-h exited with %d", code)
	}
	for _, f := range []string{"-i, --interface", `"lookup:Simple Server Service Group"`, "-s, --sequences", "-S, --service-name",
		`"simple_client service"`, "-m, --monitor", "-R, --name-server", "-q, --quiet", "-h, --help", "--activity-timeout", "-w, --wait"} {
		if !strings.Contains(out, f) {
			t.Errorf("usage lacks %q:\n%s", f, out)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-x"}, 2, "unknown shorthand flag: 'x' in -x (see simple_client -h)"},
		{[]string{"name"}, 2, "want 0 argument(s), got 1"},
		{[]string{"-s", "-1"}, 2, "-s and -w must be >= 0"},
		{[]string{"--activity-timeout", "100ms"}, 2, "shorter than the smartbeat period"},
		// C exits with 5 for a server address it cannot use.
		{[]string{"-i", "rawudp:127.0.0.1:1"}, 5, "rawudp cannot carry the service's notifications"},
		// Not the resolver's reason: "unknown host" where DNS answers, another
		// where none is reachable (a network namespace with only lo).
		{[]string{"-i", "tcp:nohost.invalid:1"}, 5, `-i: flow: address "tcp:nohost.invalid:1": `},
		{[]string{"-i", "[::1]:1"}, 5, "IPv6 is not supported"},
		{[]string{"-m", "bogus:1.2.3.4"}, 2, `-m: flow: address "bogus:1.2.3.4": unknown protocol "bogus"`},
		{[]string{"-i", "lookup:"}, 5, "lookup needs a name"},
	} {
		out, code := run(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("simple_client %v: exit %d, want %d and %q:\n%s", tc.args, code, tc.code, tc.want, out)
		}
	}
}

// closedPort returns a TCP port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}
