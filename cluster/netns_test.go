package cluster_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/etcdtest"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/namesvc"
)

// Separate hosts: where the tests run as root, the stkd nodes run in
// network namespaces of their own, joined by a bridge in the test's own
// namespace, where etcd listens on the bridge's address. Each stkd binds
// its namespace's address only, and the real C programs (the C binding's
// examples) register at one host and look up at another. Without root or
// iproute2 the test skips; the other tests run the nodes on distinct
// loopback ports.

// netHosts are network namespaces on one bridge.
type netHosts struct {
	ip     string     // iproute2's ip
	hostIP netip.Addr // the bridge's address, in the test's namespace
	ns     []string
	addrs  []netip.Addr // each namespace's address
}

var netRuns atomic.Int32

// newNetHosts creates n namespaces on a new bridge, deleted when the test
// ends, or skips the test saying what is missing.
func newNetHosts(t *testing.T, n int) *netHosts {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (the nodes as separate hosts): run it as root; the other tests cover the nodes on loopback ports")
	}
	ipCmd, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs iproute2's ip to create network namespaces (apt-get install iproute2)")
	}
	run := func(args ...string) error {
		if out, err := exec.Command(ipCmd, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	pid, k := os.Getpid(), int(netRuns.Add(1))
	// A /24 in 10.98.0.0/16 no route of this host uses yet.
	var third int
	for i := range 200 {
		third = (pid + k + i) % 200
		out, err := exec.Command(ipCmd, "route", "show", "to", "match", fmt.Sprintf("10.98.%d.1", third)).Output()
		if err == nil && !strings.Contains(string(out), fmt.Sprintf("10.98.%d.", third)) {
			break
		}
	}
	h := &netHosts{ip: ipCmd, hostIP: netip.AddrFrom4([4]byte{10, 98, byte(third), 1})}
	br := fmt.Sprintf("stkbr%d.%d", pid%100000, k) // at most 15 bytes
	if err := run("link", "add", br, "type", "bridge"); err != nil {
		t.Skipf("cannot create a bridge (a container without CAP_NET_ADMIN?): %v", err)
	}
	t.Cleanup(func() { run("link", "del", br) })
	for _, c := range [][]string{{"addr", "add", h.hostIP.String() + "/24", "dev", br}, {"link", "set", br, "up"}} {
		if err := run(c...); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		ns := fmt.Sprintf("stkcl-%d-%d-%c", pid, k, 'a'+i)
		if err := run("netns", "add", ns); err != nil {
			t.Skipf("cannot create a network namespace: %v", err)
		}
		t.Cleanup(func() { run("netns", "del", ns) })
		in, out := fmt.Sprintf("stkv%d.%d%c", pid%10000, k, 'a'+i), fmt.Sprintf("stkp%d.%d%c", pid%10000, k, 'a'+i)
		addr := netip.AddrFrom4([4]byte{10, 98, byte(third), byte(2 + i)})
		for _, c := range [][]string{
			{"link", "add", in, "type", "veth", "peer", "name", out},
			{"link", "set", out, "master", br},
			{"link", "set", out, "up"},
			{"link", "set", in, "netns", ns},
			{"-n", ns, "addr", "add", addr.String() + "/24", "dev", in},
			{"-n", ns, "link", "set", in, "up"},
			{"-n", ns, "link", "set", "lo", "up"},
		} {
			if err := run(c...); err != nil {
				t.Fatal(err)
			}
		}
		h.ns, h.addrs = append(h.ns, ns), append(h.addrs, addr)
	}
	t.Logf("bridge %s at %v; namespaces %v at %v", br, h.hostIP, h.ns, h.addrs)
	return h
}

// start runs the program at path in namespace i.
func (h *netHosts) start(t *testing.T, i int, path string, args ...string) *testprog.Proc {
	t.Helper()
	return testprog.Start(t, h.ip, append([]string{"netns", "exec", h.ns[i], path}, args...)...)
}

// cPrograms builds the C binding and its name-service examples into a
// temporary directory, or skips the test saying why it cannot.
func cPrograms(t *testing.T) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: the C clients need a C compiler (apt-get install gcc)")
	}
	dir := t.TempDir()
	if err := testprog.BuildCShared(filepath.Join(dir, "libstk.so"), "../bindings/c"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"simple_name_registration", "simple_name_lookup"} {
		args := []string{"-O2", "-Wall", "-std=gnu11", "-I../bindings/c", "-o", filepath.Join(dir, p), "../bindings/c/examples/" + p + ".c",
			"-L" + dir, "-lstk", "-pthread", "-Wl,-rpath,$ORIGIN"}
		if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return dir
}

// TestSeparateHosts: three stkd nodes, each in its own network namespace
// bound to its own address, etcd on the bridge between them. A C program
// registers at a; a C subscriber at b hears it; a C lookup at c answers it
// with every field; once the registrant goes, c stops answering it after
// its linger.
func TestSeparateHosts(t *testing.T) {
	t.Parallel() // it mostly builds and waits for processes
	h := newNetHosts(t, 3)
	bin := stkd.Path(t)
	cdir := cPrograms(t)
	etcd := etcdtest.StartOn(t, 1, h.hostIP.String())
	names := make([]string, 3)
	for i, id := range []string{"a", "b", "c"} {
		names[i] = fmt.Sprintf("tcp:%v:%d", h.addrs[i], namesvc.DefaultPort)
		p := h.start(t, i, bin, "--names-tcp", strings.TrimPrefix(names[i], "tcp:"), "--names-udp", "",
			"--monitor-tcp", "127.0.0.1:20001", "--monitor-udp", "", "--http", "", "--steps=false",
			"--cluster", etcd.ClusterFlag(), "--node-id", id, "--cluster-lease-ttl", "3s")
		p.WaitFor(t, `cluster: joined`, 20*time.Second)
	}

	const name, group = "netns_svc", "grp"
	sub := h.start(t, 1, filepath.Join(cdir, "simple_name_lookup"), "-R", names[1], "-G", group, "-X", "-c", "1", name)
	sub.WaitFor(t, "Subscribing to name "+name, 20*time.Second)
	svcAddr := fmt.Sprintf("%v:5432", h.addrs[0])
	reg := h.start(t, 0, filepath.Join(cdir, "simple_name_registration"), "-R", names[0], "-i", "tcp:"+svcAddr,
		"-M", "100,hello", "-G", group, "-L", "2", "-w", name)
	reg.WaitFor(t, "Registered "+name, 20*time.Second)

	// The test's client reaches c over the bridge: it waits until c has
	// the registration, then the C lookup runs on c's host.
	atC := dial(t, names[2])
	answers := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		infos, err := atC.LookupAll(ctx, name, namesvc.LookupOptions{Group: group})
		if err != nil {
			t.Fatal(err)
		}
		return len(infos)
	}
	waitFor(t, 10*time.Second, func() bool { return answers() == 1 }, func() string { return "c never had a's registration" })
	want := regexp.QuoteMeta(fmt.Sprintf("Received info on name %s (group %s), IP %v Port 5432 Protocol tcp, FT State active, linger 2s", name, group, h.addrs[0]))
	look := h.start(t, 2, filepath.Join(cdir, "simple_name_lookup"), "-R", names[2], "-G", group, name)
	out := look.Wait(t, 20*time.Second)
	if !regexp.MustCompile(want).MatchString(out) || !strings.Contains(out, `Meta data type 100 sz 6 "hello"`) ||
		!regexp.MustCompile(`Lookup of '`+name+`' \w+: 1 answer\(s\)`).MatchString(out) {
		t.Fatalf("C lookup at c:\n%s\nwant one answer: %s, meta-data 100 \"hello\"", out, want)
	}
	// The C subscriber at b heard the registration made at a.
	if out := sub.Wait(t, 20*time.Second); !regexp.MustCompile(want).MatchString(out) || !strings.Contains(out, "Received 1 answer(s) for name "+name) {
		t.Fatalf("C subscriber at b:\n%s", out)
	}

	// The registrant goes: answered at c during its linger of 2 s, gone
	// after.
	reg.Cmd.Process.Signal(os.Interrupt)
	reg.Wait(t, 10*time.Second)
	exited := time.Now()
	waitFor(t, 8*time.Second, func() bool { return answers() == 0 }, func() string { return "c still answers after the linger" })
	if gone := time.Since(exited); gone < 1500*time.Millisecond {
		t.Fatalf("gone at c %v after the registrant exited: before its linger of 2 s", gone)
	} else {
		t.Logf("gone at c %v after the registrant at a exited (linger 2 s)", gone)
	}
}
