package hostmon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"
)

// Test helpers of the event collectors (processes, services, files, gpu).
//
// Fixture trees: testdata/process/tN/proc and testdata/services/tN/proc
// are one host's /proc at successive intervals. A test points HostProc at
// a symbolic link and turns the link from one tree to the next, so the
// collector sees one /proc change under it. Golden files beside them
// (golden.json) hold the STEPs made, ids replaced by "<id>";
// `go test ./hostmon -run Golden -update` rewrites them.

// Interval times of the fixtures (the trees' btime is 1763700000, 04:40 UTC).
var (
	evT0 = fxT0
	evT1 = evT0.Add(time.Second)
	evT2 = evT0.Add(2 * time.Second)
)

// evRoot is a /proc whose target a test can switch between fixture trees.
type evRoot struct {
	t    testing.TB
	link string
}

// newEvRoot returns a link to testdata/<dir>/proc.
func newEvRoot(t testing.TB, dir string) *evRoot {
	t.Helper()
	r := &evRoot{t: t, link: filepath.Join(t.TempDir(), "proc")}
	r.set(dir)
	return r
}

// set points the link at testdata/<dir>/proc.
func (r *evRoot) set(dir string) {
	r.t.Helper()
	target, err := filepath.Abs(filepath.Join("testdata", dir, "proc"))
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := os.Stat(target); err != nil {
		r.t.Fatal(err)
	}
	os.Remove(r.link)
	if err := os.Symlink(target, r.link); err != nil {
		r.t.Fatal(err)
	}
}

// evEnv is the fixture host's Env reading /proc at proc.
func evEnv(proc string) Env {
	return Env{Hostname: "fixture-host", IP: "192.0.2.10", HostProc: proc}
}

// evGolden compares rounds of STEPs, as indented JSON with ids replaced,
// with the golden file at path, or rewrites it under -update.
func evGolden(t testing.TB, path string, rounds map[string][]*step.Step) {
	t.Helper()
	norm := map[string][]*step.Step{}
	for name, steps := range rounds {
		norm[name] = []*step.Step{}
		for _, s := range steps {
			c := s.Clone()
			c.ID = "<id>"
			norm[name] = append(norm[name], c)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(norm); err != nil {
		t.Fatal(err)
	}
	fxCompareGolden(t, path, buf.Bytes())
}

// evSummary lists steps as "type pid name" lines, for readable checks.
func evSummary(steps []*step.Step) string {
	var b strings.Builder
	for _, s := range steps {
		b.WriteString(s.Event.Type)
		if pid, ok := s.Float("pid"); ok {
			fmt.Fprintf(&b, " %d", int(pid))
		}
		if n, ok := s.String("name"); ok {
			b.WriteString(" " + n)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// evField returns a field as it would read after JSON (numbers float64).
func evField(t testing.TB, s *step.Step, key string) any {
	t.Helper()
	v, ok := s.Space.Fields[key]
	if !ok {
		t.Fatalf("%s has no field %q: %v", s.Event.Type, key, s.Space.Fields)
	}
	if f, ok := s.Float(key); ok {
		return f
	}
	return v
}

// newFixtureProcesses returns a processes collector over proc that
// reports every process it sees (no minimum lifetime, no summary): the
// tests of the scan itself. newFilteredProcesses takes the options.
func newFixtureProcesses(t testing.TB, proc string) Collector {
	t.Helper()
	return newFilteredProcesses(t, proc, ProcessOptions{MinLifetime: -1, SummaryInterval: -1})
}

func newFilteredProcesses(t testing.TB, proc string, opts ProcessOptions) Collector {
	t.Helper()
	v, err := Build("processes", Config{Env: evEnv(proc), Processes: opts})
	if err != nil {
		t.Fatal(err)
	}
	return v.(Collector)
}

// TestProcessGolden runs the collector over three /proc trees: priming,
// exits (a kernel thread's unreported), starts (a kernel thread's
// unreported, a command line cut at 256 bytes without splitting a
// character), a reused pid and a name with parentheses.
func TestProcessGolden(t *testing.T) {
	root := newEvRoot(t, "process/t0")
	c := newFixtureProcesses(t, root.link)
	rounds := map[string][]*step.Step{}
	rounds["t0"] = fxCollect(t, c, evT0)
	root.set("process/t1")
	rounds["t1"] = fxCollect(t, c, evT1)
	root.set("process/t2")
	rounds["t2"] = fxCollect(t, c, evT2)
	evGolden(t, filepath.Join("testdata", "process", "golden.json"), rounds)

	want := map[string]string{
		"t0": "system.processes\n",
		"t1": "process.exit 400 nginx\nprocess.start 500 sleep\nprocess.start 600 python3\nsystem.processes\n",
		"t2": "process.exit 500 sleep\nprocess.start 500 python3\nprocess.start 800 tmux: server (1)\nsystem.processes\n",
	}
	for _, r := range []string{"t0", "t1", "t2"} {
		if got := evSummary(rounds[r]); got != want[r] {
			t.Errorf("%s:\n%s\nwant\n%s", r, got, want[r])
		}
	}

	// The values, checked here too so that a wrong golden file is caught.
	m0 := rounds["t0"][0]
	if !IsMetric(m0) || evField(t, m0, "processes") != 6.0 || evField(t, m0, "processes_running") != 1.0 ||
		evField(t, m0, "processes_blocked") != 0.0 || evField(t, m0, "threads") != 310.0 {
		t.Errorf("t0 metric: %v", m0.Space.Fields)
	}
	if _, ok := m0.Space.Fields["forks_per_sec"]; ok {
		t.Errorf("first metric has a fork rate: %v", m0.Space.Fields)
	}
	m1 := rounds["t1"][3]
	if evField(t, m1, "processes") != 7.0 || evField(t, m1, "forks_per_sec") != 6.0 || evField(t, m1, "processes_blocked") != 1.0 {
		t.Errorf("t1 metric: %v", m1.Space.Fields)
	}
	exit := rounds["t1"][0]
	// nginx started 900000 ticks (9000 s) after boot: 07:10 UTC; seen gone at 08:00:01.
	started := time.Unix(1763700000+9000, 0)
	if evField(t, exit, "ppid") != 1.0 || evField(t, exit, "start_time") != float64(started.UnixMilli()) ||
		evField(t, exit, "runtime_seconds") != evT1.Sub(started).Seconds()-0.5 || exit.Time.Start != evT1.UnixMilli() {
		t.Errorf("nginx exit: %+v %v", exit.Time, exit.Space.Fields)
	}
	sleep := rounds["t1"][1]
	if evField(t, sleep, "cmdline") != "sleep 5" || evField(t, sleep, "ppid") != 200.0 || sleep.Space.Hostname != "fixture-host" {
		t.Errorf("sleep start: %v", sleep.Space.Fields)
	}
	if _, ok := sleep.Space.Fields["cmdline_truncated"]; ok {
		t.Errorf("short command line marked truncated")
	}
	long := rounds["t1"][2]
	cmd := evField(t, long, "cmdline").(string)
	if len(cmd) > ProcessCmdlineMax || len(cmd) < ProcessCmdlineMax-1 || !strings.HasPrefix(cmd, "python3 -c print('xé") ||
		strings.ContainsRune(cmd, '\uFFFD') || evField(t, long, "cmdline_truncated") != true {
		t.Errorf("long command line (%d bytes): %q", len(cmd), cmd)
	}
	reused := rounds["t2"][1]
	if evField(t, reused, "cmdline") != "python3 serve.py --port 8000" {
		t.Errorf("reused pid: %v", reused.Space.Fields)
	}
	// sleep started at t0+0.5 s, was seen at t1 and gone at t2: it ran 0.5 to 1.5 s.
	if got := evField(t, rounds["t2"][0], "runtime_seconds"); got != 1.0 {
		t.Errorf("sleep ran %v s", got)
	}
}

// TestProcessKnownPidsNotRead shows the cost model: a known pid whose
// /proc directory is the same is not read again (a changed stat file goes
// unnoticed), while a new directory for the same pid is read and, with
// another start time, reported as an exit and a start.
func TestProcessKnownPidsNotRead(t *testing.T) {
	proc := filepath.Join(t.TempDir(), "proc")
	if err := os.CopyFS(proc, os.DirFS(filepath.Join("testdata", "process", "t0", "proc"))); err != nil {
		t.Fatal(err)
	}
	c := newFixtureProcesses(t, proc)
	fxCollect(t, c, evT0)

	statPath := filepath.Join(proc, "100", "stat")
	b, err := os.ReadFile(statPath)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Replace(b, []byte("(sshd)"), []byte("(imposter)"), 1)
	changed = bytes.Replace(changed, []byte(" 400 12345678 "), []byte(" 1200040 12345678 "), 1)
	if bytes.Equal(changed, b) {
		t.Fatal("fixture stat not as expected")
	}
	os.WriteFile(statPath, changed, 0o644)
	if got := evSummary(fxCollect(t, c, evT1)); got != "system.processes\n" {
		t.Fatalf("an unchanged /proc/100 was read again:\n%s", got)
	}

	// Pid 100 reused: a new directory (another inode), then moved in.
	fresh := filepath.Join(proc, "tmp-100")
	os.Mkdir(fresh, 0o755)
	os.WriteFile(filepath.Join(fresh, "stat"), changed, 0o644)
	os.WriteFile(filepath.Join(fresh, "cmdline"), []byte("imposter\x00--quiet\x00"), 0o644)
	if err := os.RemoveAll(filepath.Join(proc, "100")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fresh, filepath.Join(proc, "100")); err != nil {
		t.Fatal(err)
	}
	steps := fxCollect(t, c, evT2)
	if got := evSummary(steps); got != "process.exit 100 sshd\nprocess.start 100 imposter\nsystem.processes\n" {
		t.Fatalf("reused pid:\n%s", got)
	}
	if evField(t, steps[1], "cmdline") != "imposter --quiet" {
		t.Errorf("start: %v", steps[1].Space.Fields)
	}

	// A pid whose directory is replaced by one of the same process (a
	// dentry the kernel dropped and made again) is no news.
	fresh = filepath.Join(proc, "tmp-200")
	os.Mkdir(fresh, 0o755)
	b, _ = os.ReadFile(filepath.Join(proc, "200", "stat"))
	os.WriteFile(filepath.Join(fresh, "stat"), b, 0o644)
	os.RemoveAll(filepath.Join(proc, "200"))
	os.Rename(fresh, filepath.Join(proc, "200"))
	if got := evSummary(fxCollect(t, c, evT2.Add(time.Second))); got != "system.processes\n" {
		t.Fatalf("same process, new directory:\n%s", got)
	}
}

// TestProcessEventLimit: a fork storm is reported up to ProcessMaxEvents,
// and the processes left unreported do not have their exits reported.
func TestProcessEventLimit(t *testing.T) {
	proc := filepath.Join(t.TempDir(), "proc")
	if err := os.CopyFS(proc, os.DirFS(filepath.Join("testdata", "process", "t0", "proc"))); err != nil {
		t.Fatal(err)
	}
	c := newFixtureProcesses(t, proc)
	fxCollect(t, c, evT0)
	const n = ProcessMaxEvents + 100
	for i := range n {
		pid := 10000 + i
		dir := filepath.Join(proc, strconv.Itoa(pid))
		os.Mkdir(dir, 0o755)
		line := fmt.Sprintf("%d (worker) S 1 0 0 0 -1 4194560 0 0 0 0 1 1 0 0 20 0 1 0 %d 1000 100 0\n", pid, 1200010+i)
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	steps := fxCollect(t, c, evT1)
	starts := len(steps) - 1
	if starts != ProcessMaxEvents {
		t.Fatalf("%d starts reported, want %d", starts, ProcessMaxEvents)
	}
	if m := steps[len(steps)-1]; evField(t, m, "processes") != float64(6+n) {
		t.Errorf("count %v, want %d", m.Space.Fields["processes"], 6+n)
	}
	for i := range n {
		os.RemoveAll(filepath.Join(proc, strconv.Itoa(10000+i)))
	}
	steps = fxCollect(t, c, evT2)
	if exits := len(steps) - 1; exits != ProcessMaxEvents {
		t.Fatalf("%d exits reported, want the %d whose start was", exits, ProcessMaxEvents)
	}
}

func TestProcessUnavailable(t *testing.T) {
	_, err := Build("processes", Config{Env: evEnv(filepath.Join(t.TempDir(), "nothing"))})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("no /proc: %v", err)
	}
	proc := t.TempDir()
	os.WriteFile(filepath.Join(proc, "stat"), []byte("cpu 1 2 3\n"), 0o644)
	if _, err := Build("processes", Config{Env: evEnv(proc)}); err == nil || !strings.Contains(err.Error(), "no btime") {
		t.Fatalf("stat without btime: %v", err)
	}
}

func TestParseProcStat(t *testing.T) {
	st, comm, err := parseProcStat([]byte("42 (a) b (c)) R 7 42 42 0 -1 4194304 1 2 3 4 150 50 -5 -6 20 -2 3 0 987654 5000 321 18446744073709551615 1 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if string(comm) != "a) b (c)" || st.state != 'R' || st.ppid != 7 || st.flags != 4194304 || st.utime != 150 ||
		st.stime != 50 || st.threads != 3 || st.start != 987654 || st.rss != 321 {
		t.Fatalf("%q %+v", comm, st)
	}
	for _, bad := range []string{"", "42 (x", "42 (x) R 1 2", "42 (x) R 1 2 3 4 -1 notanumber 1 2 3 4 5 6 7 8 9 10 11 12 13 14", "42 (x) RR 1"} {
		if _, _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	for in, want := range map[string]int64{"0.1 0.2 0.3 4/567 89\n": 567, "0.1 0.2 0.3 4 89": -1, "": -1, "1 2 3 4/x 5": -1} {
		if got := parseLoadavgThreads([]byte(in)); got != want {
			t.Errorf("loadavg %q: %d, want %d", in, got, want)
		}
	}
	if _, err := parseSysStat([]byte("cpu 1 2\nprocs_running many\n")); err == nil {
		t.Error("bad procs_running parsed")
	}
	if cmd, cut := procCmdline([]byte("a\x00b\x00\x00")); cmd != "a b" || cut {
		t.Errorf("cmdline %q %v", cmd, cut)
	}
	// Cut at ProcessCmdlineMax, but not inside a character.
	for pad, want := range map[int]int{0: 255, 1: 256, 2: 254} {
		in := []byte(strings.Repeat("a", pad) + strings.Repeat("€", 100)) // 3 bytes each
		cmd, cut := procCmdline(in[:ProcessCmdlineMax+1])
		if len(cmd) != want || !cut || !utf8.ValidString(cmd) {
			t.Errorf("pad %d: %d bytes, cut %v", pad, len(cmd), cut)
		}
	}
}

// TestProcessRealHost starts and kills a child and sees both events; the
// start only once the child has run the minimum lifetime (300 ms here).
func TestProcessRealHost(t *testing.T) {
	leakcheck.Check(t)
	const minLife = 300 * time.Millisecond
	c, err := NewProcessCollector(Config{Env: Env{Hostname: "h"}, Processes: ProcessOptions{MinLifetime: minLife}})
	if err != nil {
		t.Fatal(err)
	}
	first := fxCollect(t, c, time.Now())
	if len(first) != 1 || first[0].Event.Type != "system.processes" {
		t.Fatalf("first call reported events:\n%s", evSummary(first))
	}
	if n, _ := first[0].Float("processes"); n < 2 {
		t.Fatalf("processes %v", n)
	}

	cmd := exec.Command("sleep", "5")
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	defer cmd.Process.Kill()
	pid := float64(cmd.Process.Pid)
	find := func(steps []*step.Step, typ string) *step.Step {
		for _, s := range steps {
			if p, _ := s.Float("pid"); s.Event.Type == typ && p == pid {
				return s
			}
		}
		return nil
	}
	// exec may not have replaced the forked Go process yet: wait for the name.
	var start *step.Step
	testutil.WaitFor(t, 10*time.Second, "a process.start for the child", func() bool {
		start = find(fxCollect(t, c, time.Now()), "process.start")
		return start != nil
	})
	if st, _ := start.Float("start_time"); start.Time.Start-int64(st) < minLife.Milliseconds() {
		t.Errorf("process.start at %d, %d ms after the start: before the minimum lifetime %v",
			start.Time.Start, start.Time.Start-int64(st), minLife)
	}
	if evField(t, start, "name") != "sleep" || evField(t, start, "cmdline") != "sleep 5" ||
		evField(t, start, "ppid") != float64(os.Getpid()) {
		t.Errorf("start: %v", start.Space.Fields)
	}
	// Start times count from the boot time, which is known to 10 ms, in
	// clock ticks of 10 ms; the fork happened while cmd.Start ran (long,
	// on a loaded host).
	if st, _ := start.Float("start_time"); time.UnixMilli(int64(st)).Before(began.Add(-30*time.Millisecond)) ||
		time.UnixMilli(int64(st)).After(started.Add(30*time.Millisecond)) {
		t.Errorf("start_time %v, not while cmd.Start ran (from %v to %v)", time.UnixMilli(int64(st)), began, started)
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	ran := time.Since(began).Seconds()
	exit := find(fxCollect(t, c, time.Now()), "process.exit")
	if exit == nil {
		t.Fatal("no process.exit for the killed child")
	}
	if evField(t, exit, "name") != "sleep" {
		t.Errorf("exit: %v", exit.Space.Fields)
	}
	// It ended between the last two scans: the estimate is their middle.
	if r, _ := exit.Float("runtime_seconds"); r < ran/2-0.1 || r > ran+0.1 {
		t.Errorf("runtime %v s, ran %.2f s", r, ran)
	}
}

// BenchmarkProcessCollect is one interval on this host with no process
// change: a getdents walk of /proc and two small reads.
func BenchmarkProcessCollect(b *testing.B) {
	c, err := NewProcessCollector(Config{Env: Env{Hostname: "h"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	now := time.Now()
	c.Collect(ctx, now)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		if _, err := c.Collect(ctx, now); err != nil {
			b.Fatal(err)
		}
	}
}
