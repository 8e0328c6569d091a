package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// etcdCluster is a 3-member etcd on loopback, child processes of this
// program (the etcd of Debian's etcd-server package), with data
// directories kept across StopAll/StartAll.
type etcdCluster struct {
	bin     string
	maxOps  int      // --max-txn-ops; 0: etcd's default (128)
	flags   []string // more flags
	dir     string
	members []*etcdMember
}

type etcdMember struct {
	name, client, peer, dir string
	cmd                     *exec.Cmd
	done                    chan struct{}
	log                     *os.File
}

func startEtcd(bin, dir string, n, maxOps int, flags []string) (*etcdCluster, error) {
	c := &etcdCluster{bin: bin, dir: dir, maxOps: maxOps, flags: flags}
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	var initial []string
	for i := range n {
		m := &etcdMember{name: fmt.Sprintf("m%d", i), client: "http://127.0.0.1:" + strconv.Itoa(ports[2*i]),
			peer: "http://127.0.0.1:" + strconv.Itoa(ports[2*i+1]), dir: filepath.Join(dir, fmt.Sprintf("m%d", i))}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	for _, m := range c.members {
		if err := c.start(m, strings.Join(initial, ","), "new"); err != nil {
			c.StopAll()
			return nil, err
		}
	}
	if err := c.waitHealthy(30 * time.Second); err != nil {
		c.StopAll()
		return nil, err
	}
	return c, nil
}

func (c *etcdCluster) start(m *etcdMember, initial, state string) error {
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return err
	}
	lf, err := os.OpenFile(filepath.Join(c.dir, m.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, "--name", m.name, "--data-dir", m.dir,
		"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
		"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
		"--initial-cluster", initial, "--initial-cluster-state", state, "--initial-cluster-token", "stkbench-cluster",
		"--logger", "zap", "--log-level", "warn")
	if c.maxOps > 0 {
		cmd.Args = append(cmd.Args, "--max-txn-ops", strconv.Itoa(c.maxOps))
	}
	cmd.Args = append(cmd.Args, c.flags...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", c.bin, err)
	}
	m.cmd, m.log, m.done = cmd, lf, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(m.done)
	return nil
}

// StopAll kills every member (SIGKILL: an outage, not a shutdown).
func (c *etcdCluster) StopAll() {
	for _, m := range c.members {
		if m.cmd != nil {
			m.cmd.Process.Kill()
			<-m.done
			m.log.Close()
			m.cmd = nil
		}
	}
}

// StartAll starts every member again with its data and waits until the
// cluster is healthy.
func (c *etcdCluster) StartAll() error {
	var initial []string
	for _, m := range c.members {
		initial = append(initial, m.name+"="+m.peer)
	}
	for _, m := range c.members {
		if err := c.start(m, strings.Join(initial, ","), "existing"); err != nil {
			return err
		}
	}
	return c.waitHealthy(60 * time.Second)
}

// cpu returns the CPU time the running members used so far.
func (c *etcdCluster) cpu() time.Duration {
	var t time.Duration
	for _, m := range c.members {
		if m.cmd != nil {
			t += procCPU(m.cmd.Process.Pid)
		}
	}
	return t
}

// procCPU returns the user and system CPU time of process pid (0 when it
// cannot be read).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command (in parentheses, which may hold spaces):
	// utime and stime are the 14th and 15th fields of the line.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * time.Second / 100 // USER_HZ: 100 on Linux
}

func (c *etcdCluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.client)
	}
	return eps
}

// flag is the stkd --cluster value.
func (c *etcdCluster) flag() string {
	var hps []string
	for _, m := range c.members {
		hps = append(hps, strings.TrimPrefix(m.client, "http://"))
	}
	return "etcd://" + strings.Join(hps, ",")
}

func (c *etcdCluster) waitHealthy(d time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(d)
	for {
		ok := true
		for _, m := range c.members {
			resp, err := hc.Get(m.client + "/health")
			if err != nil {
				ok = false
				break
			}
			var b [256]byte
			n, _ := resp.Body.Read(b[:])
			resp.Body.Close()
			if !strings.Contains(string(b[:n]), `"health":"true"`) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd not healthy within %v (logs in %s)", d, c.dir)
		}
		time.Sleep(50 * time.Millisecond) // etcd has no readiness signal but /health
	}
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
