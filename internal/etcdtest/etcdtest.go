// Package etcdtest runs real etcd servers as child processes for tests
// and benchmarks: one member or a cluster of several, on ports it picks,
// killed with the program that started them. It uses the etcd binary of
// Debian's etcd-server package (/usr/bin/etcd, 3.4; .ci/run installs it)
// or $STK_ETCD.
//
// Its core, Launch and the Cluster methods returning errors, needs no
// testing.TB: bench/stkbench-cluster runs on it. Start, StartOn and
// StartArgs wrap it for tests: data in the test's temporary directory,
// fast elections, the cluster killed when the test ends, and a skip
// naming what is missing when there is no etcd.
//
// Child processes rather than the embed package: the tests kill and
// restart members (leader failover, an outage of 10 s) as an operator
// would, the server's memory and goroutines stay out of the test's race
// detector, and the binary is the etcd users run.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// ErrNoBinary is Launch's error when Options.Binary is empty and Binary
// finds none.
var ErrNoBinary = errors.New("etcdtest: no etcd binary: install Debian's etcd-server package (/usr/bin/etcd) or set $STK_ETCD")

// Need skips t when there is no etcd binary.
func Need(t testing.TB) string {
	t.Helper()
	b := Binary()
	if b == "" {
		t.Skip("no etcd binary (/usr/bin/etcd from Debian's etcd-server package, as .ci/run installs, or $STK_ETCD): skipping the tests that need a real etcd")
	}
	return b
}

// Options configure Launch. The zero value is one member on loopback.
type Options struct {
	// Members is the number of members; default 1.
	Members int
	// IP is the address they listen on, an address of this host; default
	// 127.0.0.1.
	IP string
	// Binary is the etcd server to run; default Binary().
	Binary string
	// Args are more flags for every member (such as "--max-txn-ops",
	// "1024").
	Args []string
	// Dir holds the members' data directories; "" makes a temporary one,
	// which Stop removes.
	Dir string
	// LogDir, if set, receives each member's output in NAME.log (m0.log,
	// ...), appended across restarts; otherwise it is kept in memory.
	// Output returns it either way.
	LogDir string
	// Logf, if set, is told of ports taken meanwhile and retried.
	Logf func(format string, args ...any)
}

// Cluster is a running etcd cluster of one or more members.
type Cluster struct {
	t       testing.TB // set by the test wrappers, for Restart and RestartAll
	bin     string
	token   string
	args    []string // more flags of every member
	logDir  string
	tmpDir  string // made by Launch, removed by Stop
	Members []*Member
}

// Member is one etcd server.
type Member struct {
	Name      string
	ClientURL string // http://ip:port (Options.IP)
	PeerURL   string
	dir       string
	initial   string // --initial-cluster
	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{}
	out       *syncbuf.Buffer // without a LogDir
	logPath   string          // with one
}

// Launch starts a cluster as opts says and waits, until ctx ends, for it
// to have a leader. etcd cannot take port 0 (it advertises the port it is
// given), so ports free a moment before are given, and the whole cluster
// is started again on others when one was taken meanwhile. On error
// nothing is left running; the error carries the members' output.
func Launch(ctx context.Context, opts Options) (*Cluster, error) {
	n, ip := max(opts.Members, 1), opts.IP
	if ip == "" {
		ip = "127.0.0.1"
	}
	c := &Cluster{bin: opts.Binary, token: fmt.Sprintf("stk-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
		args: opts.Args, logDir: opts.LogDir}
	if c.bin == "" {
		if c.bin = Binary(); c.bin == "" {
			return nil, ErrNoBinary
		}
	}
	base := opts.Dir
	if base == "" {
		var err error
		if base, err = os.MkdirTemp("", "etcdtest-"); err != nil {
			return nil, fmt.Errorf("etcdtest: data directory: %w", err)
		}
		c.tmpDir = base
	}
	for attempt := 0; ; attempt++ {
		ports, err := freePorts(ip, 2*n)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("etcdtest: free ports on %s: %w", ip, err)
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
				c.Stop()
				return nil, err
			}
		}
		err = c.waitHealthy(ctx)
		if err == nil {
			return c, nil
		}
		conflict := false
		for _, m := range c.Members {
			if strings.Contains(m.output(), "address already in use") {
				conflict = true
			}
		}
		out := c.Output()
		c.StopAll()
		if !conflict || attempt >= 4 || ctx.Err() != nil {
			c.Stop()
			return nil, fmt.Errorf("etcdtest: %d-member etcd did not become healthy: %w\n%s", n, err, out)
		}
		if opts.Logf != nil {
			opts.Logf("etcdtest: a port was taken meanwhile; trying other ports")
		}
	}
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
// "--max-txn-ops", "1024"). The members hold elections fast (heartbeat
// 50 ms, election timeout 500 ms), so that failover tests take a second,
// not ten; they are killed when the test ends.
func StartArgs(t testing.TB, n int, ip string, args ...string) *Cluster {
	t.Helper()
	bin := Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Launch(ctx, Options{Members: n, IP: ip, Binary: bin, Dir: t.TempDir(), Logf: t.Logf,
		Args: append([]string{"--heartbeat-interval", "50", "--election-timeout", "500"}, args...)})
	if err != nil {
		t.Fatal(err)
	}
	c.t = t
	t.Cleanup(c.Stop)
	return c
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
		return fmt.Errorf("etcdtest: %w", err)
	}
	args := []string{"--name", m.Name, "--data-dir", m.dir,
		"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", m.initial, "--initial-cluster-state", state,
		"--initial-cluster-token", c.token,
		"--logger", "zap", "--log-level", "warn"}
	args = append(args, c.args...)
	m.mu.Lock()
	defer m.mu.Unlock()
	var out io.Writer
	var logf *os.File
	if c.logDir != "" {
		m.logPath = filepath.Join(c.logDir, m.Name+".log")
		var err error
		if logf, err = os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return fmt.Errorf("etcdtest: %w", err)
		}
		out = logf
	} else {
		if m.out == nil {
			m.out = &syncbuf.Buffer{}
		}
		out = m.out
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the program
	if err := cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return fmt.Errorf("etcdtest: start %s: %w", c.bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(done)
	}()
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

// StartMember starts member i again, with its data: it rejoins its
// cluster.
func (c *Cluster) StartMember(i int) error {
	return c.start(c.Members[i], "existing")
}

// StartAll starts every member again with its data (after StopAll) and
// waits, until ctx ends, until the cluster is healthy.
func (c *Cluster) StartAll(ctx context.Context) error {
	for i := range c.Members {
		if err := c.StartMember(i); err != nil {
			return err
		}
	}
	if err := c.waitHealthy(ctx); err != nil {
		return fmt.Errorf("etcdtest: cluster not healthy after restart: %w", err)
	}
	return nil
}

// Restart is StartMember for a cluster of Start, StartOn or StartArgs,
// failing the test on error.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.StartMember(i); err != nil {
		c.t.Fatal(err)
	}
}

// StopAll kills every member (SIGKILL: an outage, not a shutdown); their
// data stays for StartAll or RestartAll.
func (c *Cluster) StopAll() {
	for i := range c.Members {
		c.Kill(i)
	}
}

// RestartAll is StartAll for a cluster of Start, StartOn or StartArgs,
// waiting at most 20 s and failing the test on error.
func (c *Cluster) RestartAll() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.StartAll(ctx); err != nil {
		c.t.Fatalf("%v\n%s", err, c.Output())
	}
}

// Stop kills every member and removes the data directory Launch made
// (one given in Options.Dir stays).
func (c *Cluster) Stop() {
	c.StopAll()
	if c.tmpDir != "" {
		os.RemoveAll(c.tmpDir)
	}
}

// Pids returns the process id of each member, 0 for one not running.
func (c *Cluster) Pids() []int {
	pids := make([]int, len(c.Members))
	for i, m := range c.Members {
		m.mu.Lock()
		if m.cmd != nil {
			pids[i] = m.cmd.Process.Pid
		}
		m.mu.Unlock()
	}
	return pids
}

// Output returns what the members printed.
func (c *Cluster) Output() string {
	var b strings.Builder
	for _, m := range c.Members {
		if out := m.output(); out != "" {
			fmt.Fprintf(&b, "--- %s (%s)\n%s", m.Name, m.ClientURL, out)
		}
	}
	return b.String()
}

// output returns what m printed: its buffer or its log file.
func (m *Member) output() string {
	m.mu.Lock()
	out, path := m.out, m.logPath
	m.mu.Unlock()
	if path != "" {
		b, _ := os.ReadFile(path)
		return string(b)
	}
	if out != nil {
		return out.String()
	}
	return ""
}

// WaitHealthy waits at most d until every running member answers
// /health with a leader.
func (c *Cluster) WaitHealthy(d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.waitHealthy(ctx)
}

// waitHealthy waits until every running member answers /health with a
// leader, one of them exits, or ctx ends.
func (c *Cluster) waitHealthy(ctx context.Context) error {
	hc := &http.Client{Timeout: time.Second}
	var last error
	for {
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
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL+"/health", nil)
			resp, err := hc.Do(req)
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
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy: %w (last: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond): // poll: etcd has no readiness signal
		}
	}
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
