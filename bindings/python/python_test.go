// Package python_test runs the Python binding (bindings/python) end to end:
// it builds libstk.so (go build -tags stk_cshared -buildmode=c-shared
// ./bindings/c), stkd and the Go examples once, starts real daemons and runs
// the Python examples and unit tests against them, next to Go and C
// programs. It skips when python3 (>= 3.9) or a C compiler is missing. The
// directory holds no other Go code: the binding itself is pure Python.
package python_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/httpd"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
)

var (
	bin     string // built programs and libstk.so
	python  string // python3
	cLookup string // the C simple_name_lookup, or "" when bindings/c has none
	skip    string // why the tests skip, if they do
)

func TestMain(m *testing.M) {
	skip = prerequisites()
	if skip != "" {
		os.Exit(m.Run())
	}
	dir, err := testprog.Build("../../stkd", "../../examples/publish", "../../examples/subscribe",
		"../../examples/simple_name_lookup")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		lib := filepath.Join(dir, "libstk.so")
		if err := testprog.BuildCShared(lib, "../c"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if src := "../c/examples/simple_name_lookup.c"; fileExists(src) {
			exe := filepath.Join(dir, "c_simple_name_lookup")
			out, err := exec.Command(cCompiler(), "-O2", "-I", "../c", "-o", exe, src, "-L", dir, "-lstk", "-pthread",
				"-Wl,-rpath,"+dir).CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "building the C simple_name_lookup: %v\n%s", err, out)
				return 1
			}
			cLookup = exe
		}
		// Every Python process of the tests loads this build.
		os.Setenv("STK_LIBRARY", lib)
		os.Setenv("PYTHONDONTWRITEBYTECODE", "1")
		bin = dir
		return m.Run()
	}()
	os.Exit(code)
}

// prerequisites returns why the tests cannot run here, or "".
func prerequisites() string {
	p, err := exec.LookPath("python3")
	if err != nil {
		return "python3 is not installed"
	}
	if err := exec.Command(p, "-c", "import sys; sys.exit(sys.version_info < (3, 9))").Run(); err != nil {
		return "python3 is older than 3.9"
	}
	python = p
	if cCompiler() == "" {
		return "no C compiler (gcc or cc): libstk.so cannot be built"
	}
	if out, err := exec.Command(testprog.GoCommand(), "env", "CGO_ENABLED").Output(); err != nil || strings.TrimSpace(string(out)) != "1" {
		return "cgo is disabled: libstk.so cannot be built"
	}
	return ""
}

func cCompiler() string {
	if cc := os.Getenv("CC"); cc != "" {
		if p, err := exec.LookPath(cc); err == nil {
			return p
		}
	}
	for _, cc := range []string{"gcc", "cc"} {
		if p, err := exec.LookPath(cc); err == nil {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// need skips the test when the prerequisites are missing, makes its cached
// result depend on the sources of the programs and Python scripts it runs,
// and runs it in parallel with the others.
func need(t *testing.T) {
	t.Helper()
	if skip != "" {
		t.Skip(skip)
	}
	testprog.Track(t)
	t.Parallel()
}

func start(t *testing.T, name string, args ...string) *testprog.Proc {
	t.Helper()
	return testprog.Start(t, filepath.Join(bin, name), args...)
}

// py runs a Python script of bindings/python with python3 -u.
func py(t *testing.T, script string, args ...string) *testprog.Proc {
	t.Helper()
	return testprog.Start(t, python, append([]string{"-u", script}, args...)...)
}

// daemon is a running stkd's addresses.
type daemon struct{ names, monitor, http string }

// stkd starts a daemon on free loopback ports, TCP only.
func stkd(t *testing.T) daemon {
	t.Helper()
	d := testprog.StartStkd(t, filepath.Join(bin, "stkd"))
	return daemon{names: d.Names, monitor: d.Monitor, http: d.HTTP}
}

func uniqueName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, rand.Uint32()) }

func wantLines(t *testing.T, what, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Fatalf("%s lacks %q:\n%s", what, l, out)
		}
	}
}

// TestGoPublisherToPythonSubscriber: every sequence of the Go publish
// reaches a Python subscriber with the right bytes, through a small queue
// (the subscriber blocks the connection when it is full: no loss).
func TestGoPublisherToPythonSubscriber(t *testing.T) {
	need(t)
	d := stkd(t)
	name := uniqueName("go-to-py")
	const count, length = 20000, 1000
	sub := py(t, "tests/e2e_receive.py", "-R", d.names, "--queue", "16", name, fmt.Sprint(count), fmt.Sprint(length))
	sub.WaitFor(t, "Subscribing to", 10*time.Second)
	pub := start(t, "publish", "-R", d.names, "-i", "tcp:127.0.0.1:0", "-s", fmt.Sprint(count), "-a", "100",
		"-l", fmt.Sprint(length), name)
	wantLines(t, "Go publish", pub.Wait(t, 30*time.Second), fmt.Sprintf("Sent %d sequences", count))
	out := sub.Wait(t, 30*time.Second)
	wantLines(t, "Python subscriber", out, fmt.Sprintf("verified %d sequences, %d bytes", count, count*length))
	if sub.Cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("Python subscriber exited with %d:\n%s", sub.Cmd.ProcessState.ExitCode(), out)
	}
}

// TestPythonPublisherToGoSubscriber: the Python publish example's sequences
// reach the Go subscribe, all of them, with their sizes; and the Python
// subscribe example prints what the Go one prints.
func TestPythonPublisherToGoSubscriber(t *testing.T) {
	need(t)
	d := stkd(t)
	name := uniqueName("py-to-go")
	const count = 50000
	goSub := start(t, "subscribe", "-R", d.names, "-q", "-c", fmt.Sprint(count), name)
	goSub.WaitFor(t, "Subscribing to", 10*time.Second)
	pySub := py(t, "examples/subscribe.py", "-R", d.names, "-c", "3", name)
	pySub.WaitFor(t, "Subscribing to", 10*time.Second)
	pub := py(t, "examples/publish.py", "-R", d.names, "-i", "tcp:127.0.0.1:0", "-w", "2", "-s", fmt.Sprint(count),
		"-a", "1000", "-l", "1024", name)
	out := pub.Wait(t, 60*time.Second)
	wantLines(t, "Python publish", out, fmt.Sprintf("Sent %d sequences, %d bytes in", count, count*1024),
		"Waiting for 2 subscriber(s)") // sequences queued for the subscriber of 3 are dropped when it leaves
	if !regexp.MustCompile(`Publishing to '` + name + `' on tcp:127\.0\.0\.1:[1-9]\d*\n`).MatchString(out) {
		t.Fatalf("Python publish does not say where it publishes:\n%s", out)
	}
	wantLines(t, "Go subscribe", goSub.Wait(t, 30*time.Second), fmt.Sprintf("Received: %d sequences, %d bytes in", count, count*1024))
	pyOut := pySub.Wait(t, 30*time.Second)
	if n := strings.Count(pyOut, `"publish sequence" type data, 1 element(s), 1024 bytes`); n != 3 {
		t.Fatalf("the Python subscribe printed %d sequences, want 3:\n%s", n, pyOut)
	}
	// The Go subscribe's one summary line (bytes exact, the rate after).
	wantLines(t, "Python subscribe", pyOut, "Received: 3 sequences, 3072 bytes in ", "Receiving '"+name+"' from tcp:127.0.0.1:")
	if n := strings.Count(pyOut, "Received: "); n != 1 {
		t.Fatalf("the Python subscribe printed %d summary lines, want 1:\n%s", n, pyOut)
	}
}

// TestPythonRegistrationCLookup: a name registered by the Python example
// is found by the C example (and by the Go one), with every field.
func TestPythonRegistrationCLookup(t *testing.T) {
	need(t)
	d := stkd(t)
	name := uniqueName("py-reg")
	reg := py(t, "examples/simple_name_registration.py", "-R", d.names, "-i", "tcp:127.0.0.1:5432",
		"-i", "udp:127.0.0.2:6000", "-G", "test", "-M", "100,hello", "-F", "active", "-L", "30", name)
	wantLines(t, "Python registration", reg.Wait(t, 20*time.Second), "Registered "+name+" with the name server at "+
		d.names+" (linger 30s)")
	lookups := map[string]string{"Go": filepath.Join(bin, "simple_name_lookup")}
	if cLookup != "" {
		lookups["C"] = cLookup
	} else {
		t.Log("bindings/c/examples/simple_name_lookup.c does not exist: checked with the Go lookup only")
	}
	for lang, exe := range lookups {
		look := testprog.Start(t, exe, "-R", d.names, "-G", "test", name)
		wantLines(t, lang+" lookup", look.Wait(t, 20*time.Second),
			"Received info on name "+name+" (group test), IP 127.0.0.1 Port 5432 Protocol tcp; IP 127.0.0.2 Port 6000 Protocol udp, FT State active, linger 30",
			`Meta data type 100 sz 6 "hello"`,
			"Lookup of '"+name+"' complete: 1 answer(s)")
	}
	// And the Python lookup finds what it registered, like the Go one.
	look := py(t, "examples/simple_name_lookup.py", "-R", d.names, "-G", "test", name)
	wantLines(t, "Python lookup", look.Wait(t, 20*time.Second),
		"IP 127.0.0.1 Port 5432 Protocol tcp; IP 127.0.0.2 Port 6000 Protocol udp, FT State active, linger 30s",
		`Meta data type 100 sz 6 "hello"`, "Lookup of '"+name+"' complete: 1 answer(s)")
}

// TestPythonMonitoredService: the Python monitored_service is in stkd's
// JSON API while it runs (state running, checkpoint advancing) and in its
// history, stopped at its last checkpoint, when it has ended.
func TestPythonMonitoredService(t *testing.T) {
	need(t)
	d := stkd(t)
	name := uniqueName("py-service")
	const iterations = 15
	// An activity timeout of 5 s, not 1: a Python process kept off a loaded
	// CPU for a second must not be timed out (this test wants it running,
	// then destroyed). Iterations of 200 ms: running at checkpoint 3 or
	// more lasts 2.4 s, for polls from a loaded machine to see it.
	svc := py(t, "examples/monitored_service.py", "-m", d.monitor, "-S", name, "-t", fmt.Sprint(iterations),
		"-i", "200ms", "-b", "100ms", "-a", "5s")
	m := svc.WaitFor(t, `Service '`+regexp.QuoteMeta(name)+`' id 0x([0-9a-f]+) reporting to `, 10*time.Second)
	var id uint64
	fmt.Sscanf(m[1], "%x", &id)
	var seen httpd.ServiceJSON
	testutil.WaitForf(t, 10*time.Second, func() bool {
		found := false
		for _, s := range testprog.Services(t, "http://"+d.http+"/api/v1/services") {
			if s.Name == name {
				seen, found = s, true
			}
		}
		return found && seen.State == 2 && seen.Checkpoint >= 3
	}, func() string {
		return fmt.Sprintf("the service never showed running with checkpoint >= 3 (last seen %+v)", seen)
	})
	if seen.ID != id || seen.StateName != "running" {
		t.Fatalf("service in the API: %+v, want id %#x, state running", seen, id)
	}
	wantLines(t, "monitored_service.py", svc.Wait(t, 20*time.Second),
		fmt.Sprintf("Service '%s' stopped at checkpoint %d", name, iterations))
	var gone *httpd.ServiceJSON
	testutil.WaitForf(t, 10*time.Second, func() bool {
		gone = nil
		for _, s := range testprog.Services(t, "http://"+d.http+"/api/v1/history") {
			if s.Name == name {
				gone = &s
			}
		}
		return gone != nil && gone.EndReason == "destroyed"
	}, func() string { return fmt.Sprintf("the service is not in the history as destroyed (last %+v)", gone) })
	if gone.State != 4 || gone.Checkpoint != iterations {
		t.Fatalf("the ended service in the history: %+v, want state 4 (stopped), checkpoint %d", *gone, iterations)
	}
}

// TestPythonUnitTests runs `python3 -m unittest discover` in
// bindings/python with a daemon for its live tests, which must all run (no
// skips: STK_TEST_REQUIRE_LIVE).
func TestPythonUnitTests(t *testing.T) {
	need(t)
	d := stkd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-m", "unittest", "discover", "-v")
	cmd.Env = append(os.Environ(), "STK_TEST_REQUIRE_LIVE=1", "STK_TEST_NAME_SERVER="+d.names,
		"STK_TEST_MONITOR="+d.monitor, "STK_TEST_HTTP="+d.http)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		t.Fatalf("python3 -m unittest discover: %v\n%s", err, out.String())
	}
	s := out.String()
	m := regexp.MustCompile(`Ran (\d+) tests? in`).FindStringSubmatch(s)
	if m == nil || m[1] == "0" {
		t.Fatalf("no Python tests ran:\n%s", s)
	}
	if strings.Contains(s, "skipped") {
		t.Fatalf("Python tests were skipped:\n%s", s)
	}
	t.Logf("python3 -m unittest: %s tests passed", m[1])
}
