package main

import (
	"github.com/stk-go/stk/internal/servetest"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"

	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// program is the throughput_test binary, built once by TestMain.
var program string

func TestMain(m *testing.M) {
	testprog.Main(m, func(dir string) { program = filepath.Join(dir, "throughput_test") }, ".")
}

// run runs the program to its end and returns its output and exit code.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	stdout, stderr, code = testprog.Run(t, 30*time.Second, program, args...)
	t.Logf("throughput_test %s\nstdout:\n%sstderr:\n%s", strings.Join(args, " "), stdout, stderr)
	return stdout, stderr, code
}

func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Errorf("output lacks %q", l)
		}
	}
}

// replyServer is a TCP server that answers each DATA sequence like the C
// simple_server and counts what it receives.
type replyServer struct {
	*flow.TCPServer
	got, bad atomic.Int64
	length   int
	replies  atomic.Uint64
}

func newReplyServer(t *testing.T, length int, reply bool) *replyServer {
	t.Helper()
	r := &replyServer{length: length}
	srv, err := flow.ListenTCP("127.0.0.1:0", flow.Options{EventLoops: 2, Handler: func(p flow.Peer, s *seq.Sequence) {
		if s.Type != seq.TypeData {
			return
		}
		r.got.Add(1)
		if !sentByProgram(s, length) {
			r.bad.Add(1)
		}
		if !reply {
			return
		}
		q := seq.New(0x7edcba90, "simple_server_return_data", seq.TypeData)
		q.Add(r.replies.Add(1), []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
		if err := p.Send(q); err != nil {
			t.Errorf("reply: %v", err)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	r.TCPServer = srv
	return r
}

// sentByProgram says whether s looks like the program's sequences with an
// element of length bytes (none for 0).
func sentByProgram(s *seq.Sequence, length int) bool {
	if s.Name != "throughput_test sequence" || s.Type != seq.TypeData {
		return false
	}
	if length == 0 {
		return len(s.Elements) == 0
	}
	if len(s.Elements) != 1 || s.Elements[0].UserType != seq.UTExampleData || len(s.Elements[0].Data) != length {
		return false
	}
	for i, b := range s.Elements[0].Data {
		if b != byte(i) {
			return false
		}
	}
	return true
}

func TestTCPReplies(t *testing.T) {
	srv := newReplyServer(t, 100, true)
	out, _, code := run(t, "-i", "tcp:"+srv.LocalAddr().String(), "-s", "10000", "-l", "100")
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	wantLines(t, out,
		"Sending 10000 sequences of 100 bytes to tcp:"+srv.LocalAddr().String()+"\n",
		"Sent 10000 sequences, 1000000 bytes in ",
		"Replies: 10000 of 10000\n",
		"Received 10000 sequences, 100000 bytes in ")
	if got, bad := srv.got.Load(), srv.bad.Load(); got != 10000 || bad != 0 {
		t.Errorf("server received %d sequences, %d of them wrong; want 10000 right", got, bad)
	}
}

func TestTCPPassiveEmpty(t *testing.T) {
	srv := newReplyServer(t, 0, false)
	out, _, code := run(t, "-0", "-i", srv.LocalAddr().String(), "-s", "1000", "-a", "100")
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	wantLines(t, out, "Sent 1000 sequences, 0 bytes")
	if strings.Contains(out, "Replies") {
		t.Error("a passive run waited for replies")
	}
	// Close delivered everything before the program exited; the server may
	// still be decoding the last bytes.
	testutil.WaitFor(t, 10*time.Second, "server receives 1000 sequences", func() bool { return srv.got.Load() == 1000 })
	if bad := srv.bad.Load(); bad != 0 {
		t.Errorf("%d sequences were not empty throughput_test sequences", bad)
	}
}

func TestTCPMissingReplies(t *testing.T) {
	srv := newReplyServer(t, 10, false)
	out, errOut, code := run(t, "-i", "tcp:"+srv.LocalAddr().String(), "-s", "10", "-l", "10", "-t", "300ms")
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	wantLines(t, out, "Sent 10 sequences, 100 bytes", "Replies: 0 of 10\n")
	wantLines(t, errOut, "throughput_test: 10 of 10 replies missing: none came for 300ms\n")
}

func TestTCPNoServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, errOut, code := run(t, "-i", addr, "-t", "200ms")
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	wantLines(t, errOut, "cannot connect to tcp:"+addr+" within 200ms: is the server running?")
}

func TestLookup(t *testing.T) {
	srv := newReplyServer(t, 0, true)
	_, nsAddr := servetest.Names(t, namesvc.ServerConfig{}, "127.0.0.1:0")
	c, err := namesvc.Dial("tcp:"+nsAddr.String(), namesvc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = c.Register(ctx, namesvc.Info{Name: "throughput server", Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: srv.LocalAddr()}}})
	if err != nil {
		t.Fatal(err)
	}
	out, _, code := run(t, "-R", "tcp:"+nsAddr.String(), "-i", "lookup:throughput server", "-s", "100")
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	wantLines(t, out, "Name throughput server is at tcp:"+srv.LocalAddr().String()+"\n", "Replies: 100 of 100\n")

	_, errOut, code := run(t, "-R", "tcp:"+nsAddr.String(), "-i", "lookup:nobody", "-s", "1")
	if code != 1 {
		t.Errorf("lookup of an unknown name: exit code %d, want 1", code)
	}
	wantLines(t, errOut, "throughput_test: lookup nobody: namesvc: name not found")
}

// udpCounter is a UDP receiver counting the program's sequences.
type udpCounter struct {
	*flow.UDPFlow
	got, bad atomic.Int64
}

func TestUDPPassive(t *testing.T) {
	for _, tc := range []struct {
		proto            flow.Protocol
		length, wantSize int
	}{
		{flow.UDP, 100, 100},
		{flow.UDP, 0, 0},
		{flow.RawUDP, 0, 1}, // an empty raw sequence would send nothing
		{flow.RawUDP, 500, 500},
	} {
		t.Run(fmt.Sprintf("%v-%d", tc.proto, tc.length), func(t *testing.T) {
			rx := &udpCounter{}
			var err error
			rx.UDPFlow, err = flow.NewUDP(flow.UDPConfig{Bind: "127.0.0.1:0", Raw: tc.proto == flow.RawUDP}, flow.Options{
				ReceiveBuffer: 4 << 20,
				Handler: func(_ flow.Peer, s *seq.Sequence) {
					rx.got.Add(1)
					ok := sentByProgram(s, tc.wantSize)
					if tc.proto == flow.RawUDP { // raw datagrams carry only the element's bytes
						ok = len(s.Elements) == 1 && len(s.Elements[0].Data) == tc.wantSize
					}
					if !ok {
						rx.bad.Add(1)
					}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rx.Close() })
			const n = 2000
			// Paced (20 per millisecond at most): loopback UDP drops what
			// overflows the receive buffer.
			dest := tc.proto.String() + ":" + rx.LocalAddr().String()
			out, _, code := run(t, "-i", dest, "-s", fmt.Sprint(n), "-l", fmt.Sprint(tc.length), "-a", "20", "-p", "1")
			if code != 0 {
				t.Fatalf("exit code %d", code)
			}
			wantLines(t, out,
				fmt.Sprintf("Sending %d sequences of %d bytes to %s\n", n, tc.wantSize, dest),
				fmt.Sprintf("Sent %d sequences, %d bytes in ", n, n*tc.wantSize))
			testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("receiver gets %d sequences", n), func() bool { return rx.got.Load() >= n })
			if got, bad := rx.got.Load(), rx.bad.Load(); got != n || bad != 0 {
				t.Errorf("received %d sequences, %d wrong; want %d right", got, bad, n)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	_, errOut, code := run(t, "-h")
	if code != 0 {
		t.Errorf("-h: exit code %d", code)
	}
	wantLines(t, errOut, "Usage: throughput_test [flags]", "--passive", "--timeout", "--name-server")
	for _, f := range []string{"-S,", "-m,"} {
		if strings.Contains(errOut, f) {
			t.Errorf("usage offers %s, which needs the smartbeat package", f)
		}
	}
	if _, _, code := run(t, "-S", "service"); code != 2 {
		t.Errorf("-S: exit code %d, want 2", code)
	}
	if _, errOut, code := run(t, "-i", "ftp:1.2.3.4"); code != 2 || !strings.Contains(errOut, `unknown protocol "ftp"`) {
		t.Errorf("bad -i: exit code %d, want 2: %s", code, errOut)
	}
}
