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
	dir     string
	members []*etcdMember
}

type etcdMember struct {
	name, client, peer, dir string
	cmd                     *exec.Cmd
	done                    chan struct{}
	log                     *os.File
}

func startEtcd(bin, dir string, n int) (*etcdCluster, error) {
	c := &etcdCluster{bin: bin, dir: dir}
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
