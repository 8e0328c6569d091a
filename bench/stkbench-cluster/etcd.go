package main

import (
	"context"
	"os"
	"strconv"
	"time"

	"github.com/stk-go/stk/internal/etcdtest"
	"github.com/stk-go/stk/internal/stkdproc"
)

// startEtcd starts an etcd cluster of n members on loopback, child
// processes of this program (the etcd of Debian's etcd-server package at
// bin), with their data and logs (m0.log...) in dir, kept across
// StopAll/StartAll. maxOps > 0 sets --max-txn-ops; flags are more flags
// for every member.
func startEtcd(bin, dir string, n, maxOps int, flags []string) (*etcdtest.Cluster, error) {
	var args []string
	if maxOps > 0 {
		args = []string{"--max-txn-ops", strconv.Itoa(maxOps)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return etcdtest.Launch(ctx, etcdtest.Options{Members: n, Binary: bin, Args: append(args, flags...), Dir: dir, LogDir: dir})
}

// restartEtcd starts every member of c again with its data (after
// StopAll) and waits until the cluster is healthy.
func restartEtcd(c *etcdtest.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return c.StartAll(ctx)
}

// etcdCPU returns the CPU time the running members of c used so far.
func etcdCPU(c *etcdtest.Cluster) time.Duration {
	var t time.Duration
	for _, pid := range c.Pids() {
		if pid != 0 {
			t += procCPU(pid)
		}
	}
	return t
}

// procCPU returns the user and system CPU time of process pid (0 when it
// cannot be read).
func procCPU(pid int) time.Duration {
	d, _ := stkdproc.ProcCPU(pid)
	return d
}

// selfCPU is this program's CPU time so far.
func selfCPU() time.Duration { return procCPU(os.Getpid()) }
