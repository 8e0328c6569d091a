// Package etcdtest runs real etcd servers as child processes for tests:
// one member or a cluster of several, on loopback ports it picks, with
// data directories in the test's temporary directory, killed when the
// test ends. It uses the etcd binary of Debian's etcd-server package
// (/usr/bin/etcd, 3.4; .ci/run installs it) or $STK_ETCD; tests skip,
// naming what is missing, when there is none.
//
// Child processes rather than the embed package: the tests kill and
// restart members (leader failover, an outage of 10 s) as an operator
// would, the server's memory and goroutines stay out of the test's race
// detector, and the binary is the etcd users run.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/stk-go/stk/internal/syncbuf"
)

// Binary returns the etcd binary to run: $STK_ETCD, else etcd on PATH,
// else /usr/bin/etcd; "" when there is none.
func Binary() string {
	if p := os.Getenv("STK_ETCD"); p != "" {
		return p
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd"
	}
	return ""
}

// Need skips t when there is no etcd binary.
func Need(t testing.TB) string {
	t.Helper()
	b := Binary()
	if b == "" {
		t.Skip("no etcd binary (/usr/bin/etcd from Debian's etcd-server package, as .ci/run installs, or $STK_ETCD): skipping the tests that need a real etcd")
	}
	return b
}

// Cluster is a running etcd cluster of one or more members.
type Cluster struct {
	t       testing.TB
	bin     string
	token   string
	args    []string // more flags of every member
	Members []*Member
}

// Member is one etcd server.
type Member struct {
	Name       string
	ClientURL  string // http://ip:port (127.0.0.1 unless StartOn)
	PeerURL    string
	dir        string
	initial    string // --initial-cluster
	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	out        *syncbuf.Buffer
	everServed bool
}

// Start starts a cluster of n members on loopback and waits until it has
// a leader.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartOn(t, n, "127.0.0.1")
}

// StartOn is Start with the members listening on ip, an address of this
// host (the end of a bridge to network namespaces, for instance), rather
// than loopback.
func StartOn(t testing.TB, n int, ip string) *Cluster {
	t.Helper()
	return StartArgs(t, n, ip)
}

// StartArgs is StartOn with more flags for every member (such as
// "--max-txn-ops", "1024").
func StartArgs(t testing.TB, n int, ip string, args ...string) *Cluster {
	t.Helper()
	bin := Need(t)
	c := &Cluster{t: t, bin: bin, token: fmt.Sprintf("stk-test-%d-%d", os.Getpid(), time.Now().UnixNano()), args: args}
	t.Cleanup(c.killAll)
	base := t.TempDir()
	for attempt := 0; ; attempt++ {
		ports, err := freePorts(ip, 2*n)
		if err != nil {
			t.Fatalf("etcdtest: free ports: %v", err)
		}
		c.Members = nil
		var initial []string
		for i := range n {
			m := &Member{Name: fmt.Sprintf("m%d", i),
				ClientURL: "http://" + net.JoinHostPort(ip, strconv.Itoa(ports[2*i])),
				PeerURL:   "http://" + net.JoinHostPort(ip, strconv.Itoa(ports[2*i+1])),
				dir:       filepath.Join(base, fmt.Sprintf("a%d-m%d", attempt, i))}
			c.Members = append(c.Members, m)
			initial = append(initial, m.Name+"="+m.PeerURL)
		}
		for _, m := range c.Members {
			m.initial = strings.Join(initial, ",")
			if err := c.start(m, "new"); err != nil {
				t.Fatal(err)
			}
		}
		err = c.WaitHealthy(20 * time.Second)
		if err == nil {
			return c
		}
		conflict := false
		for _, m := range c.Members {
			if strings.Contains(m.out.String(), "address already in use") {
				conflict = true
			}
		}
		c.killAll()
		if !conflict || attempt >= 4 {
			t.Fatalf("etcdtest: %d-member etcd did not become healthy: %v\n%s", n, err, c.Output())
		}
		t.Logf("etcdtest: a port was taken meanwhile; trying other ports")
	}
}

// Endpoints returns the members' client URLs.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// ClusterFlag returns the stkd --cluster value: etcd://h:p,h:p.
func (c *Cluster) ClusterFlag() string {
	var hps []string
	for _, m := range c.Members {
		hps = append(hps, strings.TrimPrefix(m.ClientURL, "http://"))
	}
	return "etcd://" + strings.Join(hps, ",")
}

func (c *Cluster) start(m *Member, state string) error {
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return err
	}
	args := []string{"--name", m.Name, "--data-dir", m.dir,
		"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", m.initial, "--initial-cluster-state", state,
		"--initial-cluster-token", c.token,
		// Fast elections, so that failover tests take a second, not ten.
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--logger", "zap", "--log-level", "warn"}
	args = append(args, c.args...)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.out == nil {
		m.out = &syncbuf.Buffer{}
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = m.out, m.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("etcdtest: start %s: %w", c.bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done
	return nil
}

// Kill stops member i at once (SIGKILL), as a crash.
func (c *Cluster) Kill(i int) {
	m := c.Members[i]
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Restart starts member i again, with its data: it rejoins its cluster.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.start(c.Members[i], "existing"); err != nil {
		c.t.Fatal(err)
	}
}

// StopAll kills every member; RestartAll starts them again.
func (c *Cluster) StopAll() {
	for i := range c.Members {
		c.Kill(i)
	}
}

// RestartAll starts every member again and waits until the cluster is
// healthy.
func (c *Cluster) RestartAll() {
	c.t.Helper()
	for i := range c.Members {
		c.Restart(i)
	}
	if err := c.WaitHealthy(20 * time.Second); err != nil {
		c.t.Fatalf("etcdtest: cluster not healthy after restart: %v\n%s", err, c.Output())
	}
}

func (c *Cluster) killAll() {
	for i := range c.Members {
		c.Kill(i)
	}
}

// Output returns what the members printed.
func (c *Cluster) Output() string {
	var b strings.Builder
	for _, m := range c.Members {
		if m.out != nil {
			fmt.Fprintf(&b, "--- %s (%s)\n%s", m.Name, m.ClientURL, m.out.String())
		}
	}
	return b.String()
}

// WaitHealthy waits at most d until every running member answers
// /health with a leader.
func (c *Cluster) WaitHealthy(d time.Duration) error {
	deadline := time.Now().Add(d)
	hc := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		ok := true
		for _, m := range c.Members {
			m.mu.Lock()
			running := m.cmd != nil
			done := m.done
			m.mu.Unlock()
			if !running {
				continue
			}
			select {
			case <-done:
				return fmt.Errorf("%s exited", m.Name)
			default:
			}
			resp, err := hc.Get(m.ClientURL + "/health")
			if err != nil {
				ok, last = false, err
				break
			}
			var body [256]byte
			nb, _ := resp.Body.Read(body[:])
			resp.Body.Close()
			if !strings.Contains(string(body[:nb]), `"health":"true"`) {
				ok, last = false, fmt.Errorf("%s: %s", m.Name, body[:nb])
				break
			}
		}
		if ok {
			return nil
		}
		time.Sleep(50 * time.Millisecond) // poll: etcd has no readiness signal
	}
	return fmt.Errorf("not healthy within %v: %v", d, last)
}

// Leader returns the index of the member that is the Raft leader.
func (c *Cluster) Leader() (int, error) {
	cli, err := c.Client()
	if err != nil {
		return -1, err
	}
	defer cli.Close()
	for i, m := range c.Members {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := cli.Status(ctx, m.ClientURL)
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return i, nil
		}
	}
	return -1, fmt.Errorf("no member says it is the leader")
}

// Client returns an etcd client of the cluster; close it.
func (c *Cluster) Client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
}

// freePorts returns n distinct TCP ports of ip free right now. etcd
// cannot take port 0 (it advertises the port it is given), so the caller
// retries with others if one is taken before etcd binds it.
func freePorts(ip string, n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
