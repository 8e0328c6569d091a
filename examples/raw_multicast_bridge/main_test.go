package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testprog/multicast"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"

	"github.com/stk-go/stk/internal/syncbuf"
)

// program is the raw_multicast_bridge binary, built once by TestMain.
var program string

func TestMain(m *testing.M) {
	testprog.Main(m, func(dir string) { program = filepath.Join(dir, "raw_multicast_bridge") }, ".")
}

// collector is a TCP server that keeps every sequence it receives.
type collector struct {
	*flow.TCPServer
	mu   sync.Mutex
	seqs []*seq.Sequence
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{}
	srv, err := flow.ListenTCP("127.0.0.1:0", flow.Options{Handler: func(_ flow.Peer, s *seq.Sequence) {
		c.mu.Lock()
		c.seqs = append(c.seqs, s.Clone())
		c.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c.TCPServer = srv
	return c
}

func (c *collector) received() []*seq.Sequence {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*seq.Sequence(nil), c.seqs...)
}

// multicastGroup returns a random group and a free port for the bridge to
// receive on, or skips the test where multicast does not work on this host.
func multicastGroup(t *testing.T) netip.AddrPort {
	t.Helper()
	multicast.Need(t)
	group := netip.AddrFrom4([4]byte{239, 79, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
	// The port the system hands out is free now; the bridge binds it
	// (0.0.0.0:port) right after.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return netip.AddrPortFrom(group, uint16(c.LocalAddr().(*net.UDPAddr).Port))
}

var summary = regexp.MustCompile(`(?m)^Forwarded (\d+) of (\d+) datagrams \((\d+) bytes\), (\d+) dropped$`)

func TestBridge(t *testing.T) {
	dest := multicastGroup(t)
	srv := newCollector(t) // on a random port: the C bridge would connect to 127.0.0.1:29312 instead (docs/differences.md B28)

	var stdout, stderr syncbuf.Buffer
	cmd := exec.Command(program, "-v", "--sequence-id", "0x1234", "-n", "bridge test", "--user-type", "0x135",
		"multicast:"+dest.String(), srv.LocalAddr().String())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		t.Logf("stdout:\n%sstderr (the datagram lines cut):\n%s", stdout.String(), cutDatagramLines(stderr.String()))
	}()

	tx, err := flow.NewUDP(flow.UDPConfig{Raw: true, Destination: dest.String()}, flow.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	send := func(payload []byte) {
		t.Helper()
		s := seq.New(0, "ignored", seq.TypeData)
		s.Add(0, payload)
		if err := tx.Send(s); err != nil {
			t.Fatal(err)
		}
	}

	// The bridge is ready when a probe comes through.
	deadline := time.Now().Add(10 * time.Second)
	for len(srv.received()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no probe datagram came through the bridge within 10 s, though multicast works on this host")
		}
		send([]byte("probe"))
		select {
		case err := <-exited:
			t.Fatalf("bridge exited: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}

	// Datagrams of many sizes, paced in batches that the bridge must
	// forward before the next is sent (loopback UDP drops bursts). Probes
	// still in flight may arrive among the first; they are told apart by
	// their payload.
	const n, batch = 400, 25
	payload := func(i int) []byte {
		p := fmt.Appendf(nil, "datagram %d;", i)
		for len(p) < (i*97)%1400 {
			p = append(p, byte(i+len(p)))
		}
		if i == n-1 {
			p = append(p, make([]byte, 60000-len(p))...) // nearly the largest UDP datagram
		}
		return p
	}
	isProbe := func(s *seq.Sequence) bool {
		return len(s.Elements) == 1 && string(s.Elements[0].Data) == "probe"
	}
	data := func() (d []*seq.Sequence, probes int) {
		for _, s := range srv.received() {
			if isProbe(s) {
				probes++
			} else {
				d = append(d, s)
			}
		}
		return d, probes
	}
	for i := 0; i < n; {
		for end := min(i+batch, n); i < end; i++ {
			send(payload(i))
		}
		testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("the server has %d datagrams", i), func() bool { d, _ := data(); return len(d) >= i })
	}
	got, probes := data()
	if len(got) != n {
		t.Fatalf("server received %d datagrams, want %d", len(got), n)
	}
	for i, s := range append(got, srv.received()[0]) {
		want := []byte("probe")
		if i < n {
			want = payload(i)
		}
		if s.ID != 0x1234 || s.Type != seq.TypeData || s.Name != "bridge test" || len(s.Elements) != 1 ||
			s.Elements[0].UserType != 0x135 || !bytes.Equal(s.Elements[0].Data, want) {
			t.Fatalf("sequence %d: got id %#x type %v name %q, %d element(s), want id 0x1234 type data name \"bridge test\" and one element of user type 0x135 holding the %d bytes sent",
				i, s.ID, s.Type, s.Name, len(s.Elements), len(want))
		}
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("bridge exited with %v after SIGINT", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bridge did not exit within 10 s of SIGINT")
	}
	out := stdout.String()
	if !strings.Contains(out, "Forwarding rawudp datagrams of multicast:"+dest.String()+" (bound on 0.0.0.0:"+strconv.Itoa(int(dest.Port()))+") to tcp:"+srv.LocalAddr().String()+"\n") {
		t.Error("no start line naming the group and the TCP destination")
	}
	if !strings.Contains(out, "Connected to tcp:"+srv.LocalAddr().String()+"\n") {
		t.Error("no line saying it connected")
	}
	m := summary.FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no summary line")
	}
	// The bridge delivered everything before it exited; the server may
	// still be decoding the last bytes.
	testutil.WaitFor(t, 10*time.Second, "the server has what the bridge forwarded", func() bool { return strconv.Itoa(len(srv.received())) == m[1] })
	_, probes = data()
	total := probes + n
	bytesSent := probes * len("probe")
	for i := range n {
		bytesSent += len(payload(i))
	}
	if want := fmt.Sprintf("Forwarded %d of %d datagrams (%d bytes), 0 dropped", total, total, bytesSent); m[0] != want {
		t.Errorf("summary %q, want %q", m[0], want)
	}
	if !strings.Contains(stderr.String(), "msg=datagram") {
		t.Error("-v logged no datagram")
	}
}

func cutDatagramLines(s string) string {
	var b strings.Builder
	cut := 0
	for l := range strings.Lines(s) {
		if strings.Contains(l, "msg=datagram") {
			cut++
			continue
		}
		b.WriteString(l)
	}
	fmt.Fprintf(&b, "(%d datagram lines)\n", cut)
	return b.String()
}

// run runs the program to its end and returns its stderr and exit code.
func run(t *testing.T, args ...string) (stderr string, code int) {
	t.Helper()
	_, stderr, code = testprog.Run(t, 10*time.Second, program, args...)
	return stderr, code
}

func TestUsage(t *testing.T) {
	errOut, code := run(t, "-h")
	if code != 0 {
		t.Errorf("-h: exit code %d", code)
	}
	for _, want := range []string{"Usage: raw_multicast_bridge [flags] <mcast-ip[:port]> <tcp-host[:port]>", "--verbose", "--quiet", "--bind", "--sequence-id", "--sequence-name", "--user-type"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("usage lacks %q:\n%s", want, errOut)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"239.1.2.3"}, 2, "want 2 argument(s), got 1"},
		{[]string{"-S", "x", "239.1.2.3", "127.0.0.1"}, 2, "unknown shorthand flag: 'S'"},
		{[]string{"10.1.2.3", "127.0.0.1"}, 2, "10.1.2.3 is not a multicast group"},
		{[]string{"239.1.2.3", "udp:127.0.0.1"}, 2, "wrong protocol udp"},
		{[]string{"239.1.2.3", "lookup:x"}, 2, "not a lookup"},
		// Not the resolver's reason: "unknown host" where DNS answers, another
		// where none is reachable (a network namespace with only lo).
		{[]string{"-B", "nowhere.invalid", "239.1.2.3", "127.0.0.1"}, 2, `-B: flow: address "nowhere.invalid": `},
		{[]string{"239.1.2.3", "[::1]:1"}, 2, "IPv6 is not supported"},
	} {
		errOut, code := run(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.err) {
			t.Errorf("%v: exit code %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.err)
		}
	}
}
