package ctest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/httpd"
	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

var (
	// goBin holds the Go programs, cBin libstk.so and the C programs (the
	// ASan builds in cBin/asan); both are built once in TestMain.
	goBin, cBin string
	// skipAll is why every test skips (no C compiler), or "".
	skipAll string
)

// The C programs built for the tests: with -fsanitize=address (all) and
// without (for valgrind, which cannot run ASan builds).
var (
	cExamples = []string{"publish", "subscribe", "simple_name_lookup", "simple_name_registration", "monitored_service"}
	cTests    = []string{"test_api", "bad_memory"}
)

// asanOptions turn leak detection on (the default on Linux, but explicit)
// and keep going after an error only to print it. The Go runtime needs no
// suppression: its memory is not malloc'd, and its threads' malloc'd
// bookkeeping is reachable.
// fast_unwind_on_malloc=0 gives leak reports whole stacks through
// libstk.so (built without frame pointers).
const asanOptions = "detect_leaks=1:halt_on_error=1:fast_unwind_on_malloc=0"

func TestMain(m *testing.M) {
	if _, err := exec.LookPath("gcc"); err != nil {
		skipAll = "gcc not found: the C binding tests need a C compiler (apt-get install gcc)"
		os.Exit(m.Run())
	}
	// Inherited by every program the tests start; Go programs ignore it.
	os.Setenv("ASAN_OPTIONS", asanOptions)
	if supp, err := filepath.Abs("../tests/lsan.supp"); err == nil {
		os.Setenv("LSAN_OPTIONS", "suppressions="+supp) // see the file
	}
	var err error
	if cBin, err = os.MkdirTemp("", "cbind-test-"); err == nil {
		err = buildAll()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(cBin)
		os.RemoveAll(goBin)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(cBin)
	os.RemoveAll(goBin)
	os.Exit(code)
}

// buildAll builds the Go programs and libstk.so concurrently, then the C
// programs.
func buildAll() error {
	var wg sync.WaitGroup
	var goErr, libErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		goBin, goErr = testprog.Build("../../../stkd", "../../../examples/subscribe", "../../../examples/publish",
			"../../../examples/simple_name_registration", "../../../examples/simple_name_lookup", "./testdata/vgprobe")
	}()
	go func() {
		defer wg.Done()
		libErr = testprog.BuildCShared(filepath.Join(cBin, "libstk.so"), "..")
	}()
	wg.Wait()
	if goErr != nil || libErr != nil {
		return fmt.Errorf("build: %v %v", goErr, libErr)
	}
	if err := os.Mkdir(filepath.Join(cBin, "asan"), 0o755); err != nil {
		return err
	}
	type job struct {
		src, out string
		asan     bool
	}
	var jobs []job
	for _, e := range cExamples {
		jobs = append(jobs, job{"../examples/" + e + ".c", filepath.Join(cBin, "asan", e), true})
	}
	for _, e := range cTests {
		jobs = append(jobs, job{"../tests/" + e + ".c", filepath.Join(cBin, "asan", e), true})
		jobs = append(jobs, job{"../tests/" + e + ".c", filepath.Join(cBin, e), false})
	}
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The same flags as the Makefile.
			args := []string{"-Wall", "-Wextra", "-Werror", "-std=gnu11", "-g", "-I..", "-o", j.out, j.src,
				"-L" + cBin, "-lstk", "-pthread"}
			if j.asan {
				args = append(args, "-O1", "-fsanitize=address", "-fno-omit-frame-pointer", "-Wl,-rpath,$ORIGIN/..")
			} else {
				args = append(args, "-O2", "-Wl,-rpath,$ORIGIN")
			}
			if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// need skips the test when the C programs could not be built, and makes
// its cached result depend on their sources (some tests run them without
// testprog.Start).
func need(t *testing.T) {
	t.Helper()
	if skipAll != "" {
		t.Skip(skipAll)
	}
	testprog.Track(t)
}

// daemon is a running stkd.
type daemon struct {
	names   string // "tcp:ip:port" of the name server
	monitor string // "tcp:ip:port" of the monitor
	http    string // "http://ip:port"
}

// stkd starts a daemon on free ports.
func stkd(t *testing.T) daemon {
	t.Helper()
	d := testprog.StartStkd(t, filepath.Join(goBin, "stkd"))
	return daemon{names: d.Names, monitor: d.Monitor, http: d.URL("")}
}

// startC starts the ASan build of a C example.
func startC(t *testing.T, name string, args ...string) *testprog.Proc {
	t.Helper()
	return testprog.Start(t, filepath.Join(cBin, "asan", name), args...)
}

func startGo(t *testing.T, name string, args ...string) *testprog.Proc {
	t.Helper()
	return testprog.Start(t, filepath.Join(goBin, name), args...)
}

// finish waits for a C program to exit and fails unless it exited 0 with
// no sanitizer report; it returns the output.
func finish(t *testing.T, p *testprog.Proc, d time.Duration) string {
	t.Helper()
	out := p.Wait(t, d)
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 || strings.Contains(out, "Sanitizer") {
		t.Fatalf("%s exited with status %d:\n%s", filepath.Base(p.Cmd.Path), code, out)
	}
	return out
}

func uniqueName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, rand.Uint32()) }

// TestCUnit runs the C unit test (tests/test_api.c) with a name server:
// sequences, error codes, ownership, and callbacks that call back into the
// library (a subscriber's callback sends on a publisher and destroys its
// subscriber, a name-subscription callback starts a lookup whose final
// callback destroys it, stk_env_destroy from a callback is refused).
func TestCUnit(t *testing.T) {
	need(t)
	d := stkd(t)
	// The plain and the ASan build at once: the test sleeps more than it
	// computes.
	ps := []*testprog.Proc{
		testprog.Start(t, filepath.Join(cBin, "test_api"), d.names),
		testprog.Start(t, filepath.Join(cBin, "asan", "test_api"), d.names),
	}
	for _, p := range ps {
		if out := finish(t, p, 30*time.Second); !strings.HasSuffix(out, "ok online\nPASS\n") {
			t.Fatalf("%s:\n%s", p.Cmd.Path, out)
		}
	}
}

// TestMemoryCheckCatchesErrors proves that the memory checks can fail: a C
// program that leaks, or reads out of bounds, fails under ASan, and the
// correct one passes.
func TestMemoryCheckCatchesErrors(t *testing.T) {
	need(t)
	for _, c := range []struct{ mode, want string }{
		{"ok", ""},
		{"leak", "ERROR: LeakSanitizer: detected memory leaks"},
		{"oob", "ERROR: AddressSanitizer: heap-buffer-overflow"},
	} {
		out, err := exec.Command(filepath.Join(cBin, "asan", "bad_memory"), c.mode).CombinedOutput()
		if c.want == "" {
			if err != nil || strings.Contains(string(out), "Sanitizer") {
				t.Errorf("bad_memory ok: %v\n%s", err, out)
			}
			continue
		}
		if err == nil || !strings.Contains(string(out), c.want) || !strings.Contains(string(out), "bad_memory.c:") {
			t.Errorf("bad_memory %s under ASan: want a failure with %q at bad_memory.c, got %v:\n%s", c.mode, c.want, err, out)
		}
	}
}

// valgrind runs a plain C program under valgrind with the suppressions for
// the Go runtime (../tests/valgrind.supp) and the environment env (nil: this
// process's); exit status 9 means valgrind found errors. Errors that are
// all goSyscallParam ones are forgiven (err nil): callers then judge the
// program by its output, since valgrind's status replaced its own.
func valgrind(env []string, prog string, args ...string) (string, error) {
	a := append([]string{"--error-exitcode=9", "--leak-check=full", "--suppressions=../tests/valgrind.supp", "-q",
		filepath.Join(cBin, prog)}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "valgrind", a...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 9 && onlyGoSyscallParams(string(out)) {
		err = nil
	}
	return string(out), err
}

// vgHeader is the first line of one valgrind error (its kind), vgFrame the
// innermost frame that follows it.
var (
	vgHeader = regexp.MustCompile(`^==\d+== (\S.*)$`)
	vgFrame  = regexp.MustCompile(`^==\d+==    at 0x[0-9A-Fa-f]+: (\S+)`)
	vgThread = regexp.MustCompile(`^Thread \d+:$`)
)

// onlyGoSyscallParams reports whether every error in valgrind's output is a
// "Syscall param ... points to unaddressable (or uninitialised) byte(s)"
// made by a Go function
// (a name with a dot, internal/runtime/syscall/linux.Syscall6 in practice):
// the Go runtime passing the kernel a buffer or address on a goroutine stack
// or its heap, which Memcheck does not track (see ../tests/valgrind.supp).
// Those cannot be suppressed by pattern: a Param suppression must name the
// parameter exactly, and every system call Go makes has its own (read(buf),
// socketcall.connect(serv_addr.sin_port), getrandom(cpu), ...). Any other
// error (in C code, a leak, an invalid read) makes it false.
func onlyGoSyscallParams(out string) bool {
	lines := strings.Split(out, "\n")
	n := 0
	for i, l := range lines {
		m := vgHeader.FindStringSubmatch(l)
		if m == nil || vgThread.MatchString(m[1]) {
			continue
		}
		n++
		if !strings.HasPrefix(m[1], "Syscall param ") {
			return false
		}
		f := vgFrame.FindStringSubmatch(strings.Join(lines[i+1:min(i+2, len(lines))], ""))
		if f == nil || !strings.Contains(f[1], ".") {
			return false
		}
	}
	return n > 0
}

// probeFailure finds why the probe died in its output.
var probeFailure = regexp.MustCompile(`SIGILL: illegal instruction|Illegal opcode at address 0x[0-9A-Fa-f]+|fatal error: [^=\n]*`)

// noRDTSCP is the GODEBUG setting that keeps the Go runtime off RDTSCP.
const noRDTSCP = "cpu.rdtscp=off"

// needValgrind skips t where valgrind is not installed or cannot run our
// programs, and returns the environment to run them under it with
// (valgrindEnv).
func needValgrind(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("valgrind"); err != nil {
		t.Skip("valgrind not installed: the valgrind check is skipped (the ASan checks still run)")
	}
	env, note, skip := valgrindEnv()
	if skip != "" {
		t.Skip(skip)
	}
	if note != "" {
		t.Log(note)
	}
	return env
}

// valgrindEnv finds how valgrind can run Go code here: env is the
// environment to run every valgrind case with (nil: this process's as it
// is), note says why when env is not nil; skip says why valgrind cannot run
// Go code at all ("" when it can).
//
// It runs the trivial Go program testdata/vgprobe under valgrind: without
// this a valgrind that dies on the Go runtime itself would look like a bug
// in our programs. valgrind 3.19 on some AMD CPUs offers RDTSCP through
// CPUID but cannot execute it (SIGILL in runtime.cputicks); GODEBUG
// cpu.rdtscp=off (added to any GODEBUG already set) makes the runtime read
// the clock without it, so the probe is tried again with it.
func valgrindEnv() (env []string, note, skip string) {
	plain := probeValgrind(nil)
	if plain == "" {
		return nil, "", ""
	}
	godebug := noRDTSCP
	if g := os.Getenv("GODEBUG"); g != "" {
		godebug = g + "," + noRDTSCP // the last setting of a key wins
	}
	env = append(os.Environ(), "GODEBUG="+godebug) // the last GODEBUG= of an environment wins too
	withOff := probeValgrind(env)
	if withOff == "" {
		return env, fmt.Sprintf("valgrind cannot run Go code here as it is (a trivial Go program, testdata/vgprobe, fails under it: %s); "+
			"with GODEBUG=%s it can: every valgrind case runs with it", plain, godebug), ""
	}
	return nil, "", fmt.Sprintf("valgrind cannot run Go code on this CPU: a trivial Go program (testdata/vgprobe) fails under it "+
		"(%s), and with GODEBUG=%s too (%s); the valgrind check is skipped, the AddressSanitizer checks still run",
		plain, godebug, withOff)
}

// probeValgrind runs testdata/vgprobe under valgrind with env and returns
// why it failed, or "" when it ran to its end. Memcheck's reports on Go
// memory do not count here (the suppressions handle them in the real
// runs): only whether the program runs.
func probeValgrind(env []string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "valgrind", "-q", filepath.Join(goBin, "vgprobe"))
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err == nil && strings.Contains(string(out), "ok 6\n") {
		return ""
	}
	// What happened: Go's report of the signal, or valgrind's when it
	// kills the program itself (the two programs' output interleaves).
	if m := probeFailure.FindString(string(out)); m != "" {
		return m
	}
	return fmt.Sprint(err)
}

// TestValgrind runs the C unit test and the deliberately bad programs under
// valgrind: the correct ones must pass, the bad ones must be caught. Where
// valgrind runs Go code only with GODEBUG=cpu.rdtscp=off, every case runs
// with it.
func TestValgrind(t *testing.T) {
	need(t)
	env := needValgrind(t)
	type run struct {
		args []string
		want string // "" : must pass (printing ok, if set); else valgrind must fail with this
		ok   string
		out  string
		err  error
	}
	d := stkd(t)
	runs := []*run{
		{args: []string{"test_api", d.names}, ok: "ok online\nPASS\n"},
		{args: []string{"bad_memory", "ok"}},
		{args: []string{"bad_memory", "leak"}, want: "definitely lost"},
		{args: []string{"bad_memory", "oob"}, want: "Invalid read of size 1"},
	}
	// valgrind is slow: all at once.
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.out, r.err = valgrind(env, r.args[0], r.args[1:]...)
		}()
	}
	wg.Wait()
	for _, r := range runs {
		if r.want == "" {
			if r.err != nil || !strings.Contains(r.out, r.ok) {
				t.Errorf("%s under valgrind: %v\n%s", strings.Join(r.args, " "), r.err, r.out)
			}
			continue
		}
		if ee, ok := r.err.(*exec.ExitError); !ok || ee.ExitCode() != 9 || !strings.Contains(r.out, r.want) {
			t.Errorf("%s under valgrind: want exit status 9 and %q, got %v:\n%s", strings.Join(r.args, " "), r.want, r.err, r.out)
		}
	}
}

// TestCPublisherGoSubscriber: the C publish example -> a Go subscriber
// (namesvc + flow in this test) that checks every sequence, bytes included.
func TestCPublisherGoSubscriber(t *testing.T) {
	need(t)
	leakcheck.Check(t)
	d := stkd(t)
	name := uniqueName("cpub")
	const count, length = 5000, 1000
	want := cli.ExamplePayload(length)

	quiet := slog.New(slog.DiscardHandler)
	names, err := namesvc.Dial(d.names, namesvc.ClientOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { names.Close() })
	var got, bad atomic.Int64
	var firstBad atomic.Value
	done := make(chan struct{})
	var mu sync.Mutex
	var flows []*flow.TCPClient
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range flows {
			f.Close()
		}
	})
	handler := func(_ flow.Peer, q *seq.Sequence) {
		if q.Name != "publish sequence" || q.Type != seq.TypeData || len(q.Elements) != 1 ||
			q.Elements[0].UserType != seq.UTExampleData || !bytes.Equal(q.Elements[0].Data, want) {
			if bad.Add(1) == 1 {
				firstBad.Store(fmt.Sprintf("%+v", q))
			}
		}
		if got.Add(1) == count {
			close(done)
		}
	}
	_, err = names.Subscribe(name, namesvc.SubscribeOptions{}, func(info namesvc.Info) {
		mu.Lock()
		defer mu.Unlock()
		for _, ep := range info.Addresses {
			f, err := flow.DialTCP(ep.Addr.String(), flow.Options{Handler: handler, Logger: quiet})
			if err != nil {
				t.Error(err)
				return
			}
			flows = append(flows, f)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := startC(t, "publish", "-R", d.names, "-i", "tcp:127.0.0.1:0", "-s", fmt.Sprint(count), "-a", "100",
		"-l", fmt.Sprint(length), name)
	out := finish(t, pub, 30*time.Second)
	if !strings.Contains(out, fmt.Sprintf("Sent %d sequences, %d bytes", count, count*length)) {
		t.Fatalf("publish:\n%s", out)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	if got.Load() != count || bad.Load() != 0 {
		t.Fatalf("received %d of %d sequences, %d wrong; first wrong: %v", got.Load(), count, bad.Load(), firstBad.Load())
	}
}

// TestCPublisherGoSubscribeExample: the C publisher and the Go subscribe
// example print the same lines as the Go pair (examples/e2e_test.go).
func TestCPublisherGoSubscribeExample(t *testing.T) {
	need(t)
	d := stkd(t)
	name := uniqueName("cpub")
	sub := startGo(t, "subscribe", "-R", d.names, "-q", "-c", "20000", name)
	sub.WaitFor(t, "Subscribing to", 10*time.Second)
	pub := startC(t, "publish", "-R", d.names, "-i", "tcp:127.0.0.1:0", "-s", "20000", "-a", "1000", "-l", "100", name)
	if out := finish(t, pub, 30*time.Second); !strings.Contains(out, "Sent 20000 sequences, 2000000 bytes") {
		t.Fatalf("publish:\n%s", out)
	}
	if out := sub.Wait(t, 30*time.Second); !strings.Contains(out, "Received: 20000 sequences, ") {
		t.Fatalf("subscribe:\n%s", out)
	}
}

// TestGoPublisherCSubscriber: the Go publish example -> the C subscribe
// example, which prints every sequence as the Go one does.
func TestGoPublisherCSubscriber(t *testing.T) {
	need(t)
	d := stkd(t)
	name := uniqueName("gopub")
	const count = 2000
	sub := startC(t, "subscribe", "-R", d.names, "-c", fmt.Sprint(count), name)
	sub.WaitFor(t, "Subscribing to '"+name+"'", 10*time.Second)
	pub := startGo(t, "publish", "-R", d.names, "-i", "tcp:127.0.0.1:0", "-s", fmt.Sprint(count), "-l", "100", name)
	if out := pub.Wait(t, 30*time.Second); !strings.Contains(out, fmt.Sprintf("Sent %d sequences", count)) {
		t.Fatalf("publish:\n%s", out)
	}
	out := finish(t, sub, 30*time.Second)
	line := `"publish sequence" type data, 1 element(s), 100 bytes`
	// The Go subscribe's one summary line.
	summary := fmt.Sprintf("Received: %d sequences, %d bytes in ", count, count*100)
	if n := strings.Count(out, line); n != count || !strings.Contains(out, summary) || strings.Count(out, "Received: ") != 1 {
		t.Fatalf("subscriber printed %d sequences, want %d and one line %q...:\n%.2000s", n, count, summary, out)
	}
}

// TestNames: Go registration -> C lookup (answers and the final callback),
// a lookup that its own callback destroys, a miss, and C registration ->
// Go lookup.
func TestNames(t *testing.T) {
	need(t)
	d := stkd(t)
	reg := startGo(t, "simple_name_registration", "-R", d.names, "-i", "tcp:127.0.0.1:5432", "-i", "udp:127.0.0.2:6000",
		"-G", "test", "-M", "100,hello", "-F", "active", "-L", "30", "svc")
	if out := reg.Wait(t, 10*time.Second); !strings.Contains(out, "Registered svc") {
		t.Fatalf("registration:\n%s", out)
	}
	out := finish(t, startC(t, "simple_name_lookup", "-R", d.names, "-G", "test", "svc"), 10*time.Second)
	for _, want := range []string{
		"Received info on name svc (group test), IP 127.0.0.1 Port 5432 Protocol tcp; IP 127.0.0.2 Port 6000 Protocol udp, FT State active, linger 30s",
		`Meta data type 100 sz 6 "hello"`,
		"Lookup of 'svc' complete: 1 answer(s)",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("C lookup output lacks %q:\n%s", want, out)
		}
	}
	// -c 1: the answer callback destroys its lookup.
	out = finish(t, startC(t, "simple_name_lookup", "-R", d.names, "-G", "test", "-c", "1", "svc"), 10*time.Second)
	if !strings.Contains(out, "Lookup of 'svc': stopped after 1 answer(s)") {
		t.Fatalf("C lookup -c 1:\n%s", out)
	}
	out = finish(t, startC(t, "simple_name_lookup", "-R", d.names, "nothing-here"), 10*time.Second)
	if !strings.Contains(out, "Lookup of 'nothing-here' complete: 0 answer(s)") {
		t.Fatalf("C lookup of a missing name:\n%s", out)
	}

	creg := startC(t, "simple_name_registration", "-R", d.names, "-i", "udp:127.0.0.3:7000", "-M", "200,from C",
		"-F", "standby", "-L", "60", "csvc")
	if out := finish(t, creg, 10*time.Second); !strings.Contains(out, "Registered csvc with the name server at "+d.names+" (linger 1m0s)") {
		t.Fatalf("C registration:\n%s", out)
	}
	look := startGo(t, "simple_name_lookup", "-R", d.names, "csvc")
	out = look.Wait(t, 10*time.Second)
	for _, want := range []string{
		"Received info on name csvc, IP 127.0.0.3 Port 7000 Protocol udp, FT State standby, linger 1m0s",
		`Meta data type 200 sz 7 "from C"`,
		"Lookup of 'csvc' complete: 1 answer(s)",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("Go lookup of the C registration lacks %q:\n%s", want, out)
		}
	}
}

// waitService polls url until a service named name matches ok.
func waitService(t *testing.T, url, name string, ok func(httpd.ServiceJSON) bool) httpd.ServiceJSON {
	t.Helper()
	var last []httpd.ServiceJSON
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		last = testprog.Services(t, url)
		for _, s := range last {
			if s.Name == name && ok(s) {
				return s
			}
		}
	}
	t.Fatalf("no service %q as wanted at %s; last: %+v", name, url, last)
	return httpd.ServiceJSON{}
}

// TestMonitoredService: the C service appears in stkd's JSON API with its
// application state, then running with its checkpoint, then destroyed.
func TestMonitoredService(t *testing.T) {
	need(t)
	d := stkd(t)
	name := uniqueName("c service")
	// Each state lasts long enough for a poll from a loaded machine to
	// see it: 4 iterations of 300 ms warming up (with 100 ms, the 400 ms
	// window could pass between two polls), then 8 running; an activity
	// timeout of 5 s, so a C process held off the CPU is not timed out.
	p := startC(t, "monitored_service", "-m", d.monitor, "-t", "12", "-i", "300", "-W", "4", "-b", "100", "-a", "5000", "-S", name)
	p.WaitFor(t, "Service '"+name+"' id 0x[0-9a-f]+ reporting to "+d.monitor, 10*time.Second)
	waitService(t, d.http+"/api/v1/services", name, func(s httpd.ServiceJSON) bool { return s.State == 6 && s.StateName == "warming up" })
	waitService(t, d.http+"/api/v1/services", name, func(s httpd.ServiceJSON) bool {
		return s.State == 2 && s.StateName == "running" && s.Checkpoint >= 5
	})
	if out := finish(t, p, 10*time.Second); !strings.Contains(out, "Service '"+name+"' stopped at checkpoint 12") {
		t.Fatalf("monitored_service:\n%s", out)
	}
	waitService(t, d.http+"/api/v1/history", name, func(s httpd.ServiceJSON) bool {
		return s.EndReason == "destroyed" && s.State == 4 && s.Checkpoint == 12
	})
}
