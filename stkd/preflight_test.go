package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("counting open sockets needs /proc/self/fd: %v", err)
	}
	return len(ents)
}

// holdPorts binds n TCP listeners and m UDP sockets on free loopback ports
// (as another program would: UDP without SO_REUSEADDR) for the test.
func holdPorts(t *testing.T, n, m int) (tcp, udp []string) {
	t.Helper()
	for range n {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		tcp = append(tcp, ln.Addr().String())
	}
	for range m {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		udp = append(udp, pc.LocalAddr().String())
	}
	return tcp, udp
}

// With every port taken, start reports every conflict in one error (flag,
// address, cause, what to do) and leaves no goroutine or socket behind.
func TestStartReportsEveryConflict(t *testing.T) {
	leakcheck.Check(t)
	tcp, udp := holdPorts(t, 4, 2)
	c := defaultConfig()
	c.namesTCP, c.monTCP, c.http, c.stepsFeed = tcp[0], tcp[1], tcp[2], tcp[3]
	c.namesUDP, c.monUDP = udp[0], udp[1]
	fds := openFDs(t)
	d, err := start(c, testutil.Discard())
	if err == nil {
		d.close()
		t.Fatal("stkd started on ports other sockets hold")
	}
	msg := err.Error()
	for _, want := range []string{
		"--names-tcp " + tcp[0] + " (tcp): address already in use",
		"--monitor-tcp " + tcp[1] + " (tcp): address already in use",
		"--http " + tcp[2] + " (tcp): address already in use",
		"--steps-feed " + tcp[3] + " (tcp): address already in use",
		"--names-udp " + udp[0] + " (udp): address already in use",
		"--monitor-udp " + udp[1] + " (udp): address already in use",
		"cannot listen on 6 of the 6 configured addresses, so nothing was started",
		"--port-base",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q:\n%s", want, msg)
		}
	}
	if n := openFDs(t); n != fds {
		t.Errorf("%d file descriptors open before the failed start, %d after it", fds, n)
	}
}

// Two listeners of one stkd that would take each other's traffic are
// refused before anything binds; unicast UDP and multicast on one port
// (the C stkd.cfg's "-U 127.0.0.1:20002 -M 224.10.10.20:20002") are not.
func TestPreflightClashes(t *testing.T) {
	leakcheck.Check(t)
	_, udp := holdPorts(t, 0, 1) // a free port: released before the check
	port := udp[0][strings.LastIndex(udp[0], ":")+1:]
	c := defaultConfig()
	c.namesTCP, c.monTCP, c.http, c.stepsFeed = "127.0.0.1:0", "127.0.0.1:0", "", ""
	c.namesUDP, c.monUDP = "127.0.0.1:"+port, "0.0.0.0:"+port
	d, err := start(c, testutil.Discard())
	if err == nil {
		d.close()
		t.Fatal("names and monitor started on one UDP port")
	}
	if want := "--monitor-udp 0.0.0.0:" + port + " (udp): the same address as --names-udp 127.0.0.1:" + port; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}

	c.monUDP = ""
	c.namesMcast, c.monMcast = "224.10.10.20:"+port, "224.10.10.21:"+port
	get := func(flag string) listener {
		for _, l := range listeners(c) {
			if l.flag == flag {
				return l
			}
		}
		t.Fatalf("no listener for --%s in %+v", flag, listeners(c))
		return listener{}
	}
	if overlaps(get("names-udp"), get("names-multicast")) || overlaps(get("names-multicast"), get("monitor-multicast")) {
		t.Fatalf("unicast and multicast on port %s, or two groups on it, counted as a clash: %+v", port, listeners(c))
	}
	c.monMcast = c.namesMcast
	if !overlaps(get("names-multicast"), get("monitor-multicast")) {
		t.Fatalf("one group and port twice not counted as a clash: %+v", listeners(c))
	}
}

// A bad config line is reported with its file and line, every bad line at
// once, and nothing starts.
func TestBadCfgLineNamesFileAndLine(t *testing.T) {
	leakcheck.Check(t)
	path := filepath.Join(t.TempDir(), "stkd.cfg")
	os.WriteFile(path, []byte("# test\nnamed: -T 127.0.0.1:0 -U 127.0.0.1:0\n\nhttpd: -p 99999 -T 127.0.0.1:0 -M 10.0.0.1 -L soon\n"), 0o644)
	fds := openFDs(t)
	_, err := parseArgs([]string{"-c", path}, nil)
	if err == nil {
		t.Fatal("a config with -p 99999 was accepted")
	}
	for _, want := range []string{
		path + ":4: httpd: -p 99999: bad port \"99999\"",
		path + ":4: httpd: -M 10.0.0.1: 10.0.0.1 is not a multicast group",
		path + ":4: httpd: -L soon",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if n := openFDs(t); n != fds {
		t.Errorf("%d file descriptors open before, %d after", fds, n)
	}

	os.WriteFile(path, []byte("named: -T 127.0.0.1:0\nnamed: -U -\n"), 0o644)
	if _, err := parseArgs([]string{"-c", path}, nil); err == nil || !strings.Contains(err.Error(), path+":2: a second named: line (the first is line 1)") {
		t.Fatalf("two named: lines: %v", err)
	}

	// Addresses from the file that pass the line check but not the whole
	// configuration's are named by file and line too.
	os.WriteFile(path, []byte("named: -T 127.0.0.1:0 -U 127.0.0.1:0\nhttpd: -T 127.0.0.1:0 -U 0.0.0.0:0\n"), 0o644)
	c, err := parseArgs([]string{"-c", path, "--http", "", "--steps=false"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.monUDP = "127.0.0.1:x" // as if the file had it
	if err := validate(*c, c.origins()); err == nil || !strings.Contains(err.Error(), path+":2: httpd: -U \"127.0.0.1:x\"") {
		t.Fatalf("validate: %v", err)
	}
}

func TestPortBase(t *testing.T) {
	c, err := parseArgs([]string{"--port-base", "21000", "--names-multicast", "224.10.10.20:20002", "--monitor-udp", "127.0.0.1:7"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Flags given win over --port-base, wherever they are on the line.
	if c.namesTCP != "127.0.0.1:21002" || c.namesUDP != "127.0.0.1:21002" || c.namesMcast != "224.10.10.20:20002" ||
		c.monTCP != "127.0.0.1:21001" || c.monUDP != "127.0.0.1:7" || c.http != "127.0.0.1:21080" || c.stepsFeed != "127.0.0.1:21003" {
		t.Fatalf("--port-base 21000 gives %+v", c)
	}
	c, err = parseArgs([]string{"--port-base", "21000", "--names-multicast", "224.10.10.20:20002"}[:2], nil)
	if err != nil || c.namesMcast != "" {
		t.Fatalf("multicast turned on by --port-base: %+v %v", c, err)
	}
	for _, bad := range []string{"0", "65500", "x"} {
		if _, err := parseArgs([]string{"--port-base", bad}, nil); err == nil {
			t.Errorf("--port-base %s accepted", bad)
		}
	}
	path := filepath.Join(t.TempDir(), "stkd.cfg")
	os.WriteFile(path, []byte("httpd: -T 10.1.2.3:5 -M 224.10.10.20:5\n"), 0o644)
	if c, err = parseArgs([]string{"-c", path, "--port-base", "30000"}, nil); err != nil {
		t.Fatal(err)
	}
	if c.monTCP != "10.1.2.3:30001" || c.monMcast != "224.10.10.20:30001" || c.nameServer != "tcp:127.0.0.1:30002" {
		t.Fatalf("--port-base 30000 over a config file gives %+v", c)
	}
}

// TestNamesTLSInPreflightAndPortBase: --names-tls is checked with the other
// listeners before anything starts, and --port-base moves it too.
func TestNamesTLSInPreflightAndPortBase(t *testing.T) {
	c, err := parseArgs([]string{"--port-base", "21000", "--names-tls", "127.0.0.1:20012"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.tls.names != "127.0.0.1:20012" {
		t.Fatalf("--names-tls given on the line must win over --port-base: %q", c.tls.names)
	}
	c = &config{}
	*c = defaultConfig()
	c.tls.names = "127.0.0.1:20012"
	if err := applyPortBase(c, 21000); err != nil || c.tls.names != "127.0.0.1:21012" {
		t.Fatalf("--port-base 21000 moves --names-tls to %q (%v), want 127.0.0.1:21012", c.tls.names, err)
	}
	c.namesTCP = c.tls.names // the same address twice
	found := false
	for _, l := range listeners(*c) {
		if l.flag == "names-tls" {
			found = true
		}
	}
	if !found {
		t.Fatalf("--names-tls is not among the listeners checked before start: %+v", listeners(*c))
	}
	if err := preflight(*c, nil); err == nil || !strings.Contains(err.Error(), "names-tls") {
		t.Errorf("--names-tls on --names-tcp's address: %v, want a clash naming --names-tls", err)
	}
}
