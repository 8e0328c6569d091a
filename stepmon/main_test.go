package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/smartbeat"
	"github.com/stk-go/stk/step"
)

// bin holds stepmon and stkd, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	testprog.Main(m, func(dir string) { bin = dir }, ".", "../stkd")
}

// startStkd runs a real stkd on free loopback ports and returns its name
// server and monitor ("tcp:ip:port") and HTTP ("ip:port") addresses.
func startStkd(t *testing.T) (ns, mon, http string) {
	t.Helper()
	d := testprog.StartStkd(t, filepath.Join(bin, "stkd"))
	return d.Names, d.Monitor, d.HTTP
}

// getJSON GETs url into v.
func getJSON(url string, v any) error {
	resp, err := nethttp.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != nethttp.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// received collects the STEPs a feed subscriber decodes.
type received struct {
	mu     sync.Mutex
	steps  []*step.Step
	errors []error
}

func (r *received) handle(_ flow.Peer, q *seq.Sequence) {
	s, err := step.Decode(q)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errors = append(r.errors, err)
		return
	}
	r.steps = append(r.steps, s)
}

func (r *received) find(pred func(*step.Step) bool) *step.Step {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.steps {
		if pred(s) {
			return s
		}
	}
	return nil
}

// TestStepmonPublishes runs stepmon against a real stkd: its feed is
// registered as step.<hostname> and under "step", a flow subscriber
// receives decodable STEPs (metrics, an alert, the process of a service
// stkd monitors), stkd's bus has them, the console prints JSON STEPs, and
// SIGTERM stops it cleanly.
func TestStepmonPublishes(t *testing.T) {
	leakcheck.Check(t)
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	ns, mon, http := startStkd(t)

	// A service of this process that stkd monitors, listed by stkd's API
	// before stepmon first asks for the services.
	svcName := fmt.Sprintf("stepmon test service %d", os.Getpid())
	svc, err := smartbeat.NewService(svcName, smartbeat.Options{Monitor: mon, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	svc.SetState(smartbeat.Running)
	testutil.WaitFor(t, 10*time.Second, "the service in stkd's /api/v1/services", func() bool {
		var doc servicesJSON
		if err := getJSON("http://"+http+"/api/v1/services", &doc); err != nil {
			return false
		}
		for _, sv := range doc.Services {
			if sv.Name == svcName && sv.Peer != "" {
				return true
			}
		}
		return false
	})

	// memory=0.001/0.002: any host's memory use raises a critical alert,
	// repeated every interval for the subscriber that comes later.
	p := testprog.Start(t, filepath.Join(bin, "stepmon"), "--interval", "200ms", "--name-server", ns,
		"--stkd-http", "http://"+http, "--json", "--threshold", "memory=0.001/0.002", "--cooldown", "100ms")
	m := p.WaitFor(t, `msg="stepmon running" feed=tcp:(\S+) registered_as=tcp:(\S+) name=(\S+) .*collectors=(\S+)`, 10*time.Second)
	feed, name := m[2], m[3]
	if name != "step."+hostname {
		t.Errorf("registered as %q, want step.%s", name, hostname)
	}
	if !strings.Contains(m[4], "cpu") || !strings.Contains(m[4], "memory") {
		t.Errorf("collectors %q lack cpu or memory", m[4])
	}

	names, err := namesvc.Dial(ns, namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer names.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var info namesvc.Info
	testutil.WaitFor(t, 10*time.Second, "step."+hostname+" in the name service", func() bool {
		info, err = names.LookupOnce(ctx, "step."+hostname, namesvc.LookupOptions{})
		return err == nil
	})

	want := netip.MustParseAddrPort(feed)
	if len(info.Addresses) != 1 || info.Addresses[0].Addr != want || info.Addresses[0].Protocol != "tcp" {
		t.Fatalf("step.%s is registered with %v, want tcp:%v", hostname, info.Addresses, want)
	}
	// Each name is registered on its own (registration is asynchronous):
	// the directory name may be answered a moment after step.<host>.
	var all []namesvc.Info
	testutil.WaitForf(t, 10*time.Second, func() bool {
		all, _ = names.LookupAll(ctx, "step", namesvc.LookupOptions{})
		for _, i := range all {
			for _, e := range i.Addresses {
				if e.Addr == want {
					return true
				}
			}
		}
		return false
	}, func() string {
		return fmt.Sprintf("the directory name step to list the feed %v (it lists %v)", want, all)
	})

	rec := &received{}
	sub, err := flow.DialTCP(info.Addresses[0].Addr.String(), flow.Options{Handler: rec.handle, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	isService := func(s *step.Step) bool {
		name, _ := s.String("service")
		return s.Event.Type == "service.process" && name == svcName
	}
	testutil.WaitFor(t, 10*time.Second, "system.cpu, system.memory, a memory alert and our service's process on the feed", func() bool {
		return rec.find(func(s *step.Step) bool { return s.Event.Type == "system.cpu" }) != nil &&
			rec.find(func(s *step.Step) bool { return s.Event.Type == "system.memory" }) != nil &&
			rec.find(func(s *step.Step) bool { return s.Event.Type == "system.memory.high" }) != nil &&
			rec.find(isService) != nil
	})

	if pid, _ := rec.find(isService).Float("pid"); int(pid) != os.Getpid() {
		t.Errorf("service.process of %q has pid %v, want this test's %d", svcName, pid, os.Getpid())
	}
	cpu := rec.find(func(s *step.Step) bool { return s.Event.Type == "system.cpu" })
	if cpu.Space.Hostname != hostname || cpu.Space.Fields["kind"] != "metric" {
		t.Errorf("system.cpu STEP from %q with space %v", cpu.Space.Hostname, cpu.Space.Fields)
	}
	alert := rec.find(func(s *step.Step) bool { return s.Event.Type == "system.memory.high" })
	if alert.Level() != step.LevelCritical || alert.Psychology.Valence != -0.8 {
		t.Errorf("alert level %q psychology %+v", alert.Level(), alert.Psychology)
	}
	// stkd's bus follows the directory name "step": the STEPs are in its
	// history too.
	testutil.WaitFor(t, 10*time.Second, "stepmon's system.cpu STEPs in stkd's /api/v1/steps", func() bool {
		var doc struct {
			Steps []json.RawMessage `json:"steps"`
		}
		if err := getJSON("http://"+http+"/api/v1/steps?type=system.cpu&host="+url.QueryEscape(hostname), &doc); err != nil {
			t.Log(err)
			return false
		}
		for _, raw := range doc.Steps {
			if s, err := step.Parse(raw); err != nil || s.Event.Type != "system.cpu" {
				t.Fatalf("/api/v1/steps?type=system.cpu answered %s (%v)", raw, err)
			}
		}
		return len(doc.Steps) > 0
	})

	rec.mu.Lock()
	if len(rec.errors) > 0 {
		t.Errorf("undecodable sequences on the feed: %v", rec.errors)
	}
	rec.mu.Unlock()

	p.Cmd.Process.Signal(syscall.SIGTERM)
	out := p.Wait(t, 10*time.Second)
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("stepmon exited with %d after SIGTERM", code)
	}
	if !strings.Contains(out, `msg="stepmon stopping"`) {
		t.Error("no stopping line")
	}
	// Standard output is one JSON STEP per line (standard error, the log,
	// shares the buffer: its lines start with "time=").
	n := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "time=") {
			if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
				t.Errorf("stepmon logged: %s", line)
			}
			continue
		}
		if _, err := step.Parse([]byte(line)); err != nil {
			t.Errorf("console line is not a STEP: %v\n%s", err, line)
		}
		n++
	}
	if n < 3 {
		t.Errorf("%d JSON lines on the console, want several", n)
	}
}

// TestStepmonHumanConsole checks the lines for people: time, level, type,
// host, description, without colours when standard output is no terminal.
func TestStepmonHumanConsole(t *testing.T) {
	hostname, _ := os.Hostname()
	p := testprog.Start(t, filepath.Join(bin, "stepmon"), "--interval", "50ms", "--name-server", "", "--stkd-http", "",
		"--collectors", "memory", "--threshold", "memory=0.001/0.002")
	p.WaitFor(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} METRIC +system\.memory +`+hostname+` \S`, 10*time.Second)
	p.WaitFor(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} CRITICAL +system\.memory\.high +`+hostname+` memory use at .*\(critical threshold 0%\)$`, 10*time.Second)
	p.Cmd.Process.Signal(syscall.SIGINT)
	out := p.Wait(t, 10*time.Second)
	if strings.Contains(out, "\x1b[") {
		t.Error("colours on a pipe")
	}
}

// TestStepmonBadFlags: bad settings exit non-zero at once, saying why.
func TestStepmonBadFlags(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(conf, []byte("interval = 1s\ncooldown 5m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--interval", "0"}, "stepmon: --interval 0s: want at least 10ms"},
		{[]string{"--threshold", "cpu=95/80"}, "stepmon: --threshold \"cpu=95/80\": alert rule cpu: critical threshold 80 is below the warning threshold 95"},
		{[]string{"--bogus"}, "stepmon: unknown flag: --bogus (see stepmon -h)"},
		{[]string{"--collectors", "cpu,nope"}, `stepmon: --collectors: unknown collector "nope"`},
		{[]string{"--listen", "lookup:feed"}, `stepmon: --listen "lookup:feed": want a TCP address`},
		{[]string{"--stkd-http", "127.0.0.1:8080"}, "want stkd's plain-HTTP address as http://host[:port]"},
		{[]string{"--log-level", "loud"}, `stepmon: --log-level "loud": want debug, info, warn or error`},
		{[]string{"-c", conf}, `bad.conf: line 2: "cooldown 5m" is not key = value`},
	} {
		p := testprog.Start(t, filepath.Join(bin, "stepmon"), append([]string{"--name-server", ""}, tc.args...)...)
		out := p.Wait(t, 10*time.Second)
		if code := p.Cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(out, tc.msg) {
			t.Errorf("%v: exit %d, output %q; want non-zero and %q", tc.args, code, out, tc.msg)
		}
	}
	p := testprog.Start(t, filepath.Join(bin, "stepmon"), "-h")
	out := p.Wait(t, 10*time.Second)
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(out, "Usage: stepmon [flags]") || !strings.Contains(out, "--threshold") {
		t.Errorf("-h: exit %d, output %q", code, out)
	}
}

// TestStepmonReregisters: after the name server restarts, stepmon's feed
// is registered again, under both names.
func TestStepmonReregisters(t *testing.T) {
	leakcheck.Check(t)
	stkd := func(names string) (*testprog.Proc, string) {
		d := testprog.StartStkd(t, filepath.Join(bin, "stkd"), "--names-tcp", names, "--monitor-tcp", "", "--http", "",
			"--steps=false")
		return d.Proc, d.Names
	}
	first, ns := stkd("127.0.0.1:0")
	name := fmt.Sprintf("step.reregister-%d", os.Getpid())
	sm := testprog.Start(t, filepath.Join(bin, "stepmon"), "--interval", "1s", "--name-server", ns, "--stkd-http", "",
		"--quiet", "--collectors", "memory", "--name", name, "--directory", name+".dir")
	feed := sm.WaitFor(t, `msg="stepmon running" feed=tcp:(\S+)`, 10*time.Second)[1]
	registered := func(n string) bool {
		c, err := namesvc.Dial(ns, namesvc.ClientOptions{Logger: testutil.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, err := c.LookupOnce(ctx, n, namesvc.LookupOptions{})
		return err == nil && len(info.Addresses) == 1 && info.Addresses[0].Addr.String() == feed
	}
	testutil.WaitFor(t, 10*time.Second, name+" registered", func() bool { return registered(name) && registered(name+".dir") })

	first.Cmd.Process.Kill()
	first.Wait(t, 5*time.Second)
	stkd(strings.TrimPrefix(ns, "tcp:")) // a new name server on the same port knows nothing
	testutil.WaitFor(t, 15*time.Second, name+" registered again with the new name server", func() bool {
		return registered(name) && registered(name+".dir")
	})

}
