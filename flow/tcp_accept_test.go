package flow

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
)

// fdChildEnv makes the test binary a child that serves an echo TCPServer
// with RLIMIT_NOFILE 256 (TestTCPServerSurvivesDescriptorExhaustion).
const fdChildEnv = "STK_FLOW_FD_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(fdChildEnv) != "" {
		os.Exit(fdChild())
	}
	os.Exit(m.Run())
}

// fdChild serves until its standard input closes. It prints the address,
// then a line per change of the listener's health.
func fdChild() int {
	lim := syscall.Rlimit{Cur: 256, Max: 256}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		return 1
	}
	srv, err := ListenTCP("127.0.0.1:0", Options{Handler: func(p Peer, q *seq.Sequence) { p.Send(q) }})
	if err != nil {
		fmt.Println("listen:", err)
		return 1
	}
	fmt.Println("addr", srv.LocalAddr())
	go func() {
		last := ""
		for {
			h := "healthy"
			if err := srv.AcceptError(); err != nil {
				h = "unhealthy " + err.Error()
			}
			if h != last {
				fmt.Println(h)
				last = h
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	bufio.NewReader(os.Stdin).ReadString('\n')
	srv.Close()
	return 0
}

// The accept loop must outlive a burst of connections beyond the
// descriptor limit: once descriptors are free, new peers are served again,
// and meanwhile the listener reports itself unhealthy.
func TestTCPServerSurvivesDescriptorExhaustion(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fdChildEnv+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	lines := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	next := func(prefix string) string {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("child exited before printing %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-deadline:
				t.Fatalf("child did not print %q within 10 s", prefix)
			}
		}
	}
	addr := strings.TrimPrefix(next("addr "), "addr ")
	next("healthy")

	idle := testutil.IdleConns(t, addr, 400)
	l := next("unhealthy")
	t.Logf("child: %s", l)
	for _, c := range idle {
		c.Close()
	}
	next("healthy")

	got := make(chan string, 1)
	c, err := DialTCP(addr, Options{Handler: func(p Peer, q *seq.Sequence) { got <- q.Name }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(seq.New(1, "after the burst", seq.TypeData)); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-got:
		if name != "after the burst" {
			t.Fatalf("echo %q", name)
		}
	case <-ctx.Done():
		t.Fatal("the server no longer serves new connections after the burst")
	}
}
