package hostmon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"
)

// filesRecorder runs a files watcher and keeps what it emits.
type filesRecorder struct {
	t       *testing.T
	mu      sync.Mutex
	steps   []*step.Step
	watched map[string]int // how often each path's watch was put in place
	cancel  context.CancelFunc
	done    chan error
}

// startFiles starts a watcher on paths with a short coalescing window
// and retry period; tune adjusts it further. Wait with waitWatched before
// touching a path.
func startFiles(t *testing.T, paths []string, tune func(*filesWatcher)) *filesRecorder {
	t.Helper()
	v, err := Build("files", Config{Env: evEnv(""), Paths: paths})
	if err != nil {
		t.Fatal(err)
	}
	w := v.(*filesWatcher)
	w.coalesce = 300 * time.Millisecond
	w.retryEvery = 100 * time.Millisecond
	if tune != nil {
		tune(w)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &filesRecorder{t: t, cancel: cancel, done: make(chan error, 1), watched: map[string]int{}}
	w.watching = func(p string) {
		r.mu.Lock()
		r.watched[p]++
		r.mu.Unlock()
	}
	go func() {
		r.done <- w.Watch(ctx, func(s *step.Step) {
			r.mu.Lock()
			r.steps = append(r.steps, s)
			r.mu.Unlock()
		})
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop ends the watcher and waits for it.
func (r *filesRecorder) stop() {
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("Watch: %v", err)
	}
	r.done <- nil // a second stop returns at once
}

func (r *filesRecorder) snapshot() []*step.Step {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*step.Step(nil), r.steps...)
}

// waitWatched waits until the watch on path has been put in place n
// times (the first time, and again after each removal).
func (r *filesRecorder) waitWatched(path string, n int) {
	r.t.Helper()
	watched := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.watched[path]
	}
	testutil.WaitForf(r.t, 10*time.Second, func() bool { return watched() >= n },
		func() string { return fmt.Sprintf("%s watched %d times, want %d", path, watched(), n) })
}

// waitFor waits until some STEP satisfies ok and returns it.
func (r *filesRecorder) waitFor(what string, ok func(*step.Step) bool) *step.Step {
	r.t.Helper()
	var found *step.Step
	testutil.WaitForf(r.t, 10*time.Second, func() bool {
		for _, s := range r.snapshot() {
			if ok(s) {
				found = s
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("no %s in:\n%s", what, filesSummary(r.snapshot())) })
	return found
}

// is matches a STEP by type and path.
func is(typ, path string) func(*step.Step) bool {
	return func(s *step.Step) bool {
		p, _ := s.String("path")
		return s.Event.Type == typ && p == path
	}
}

func filesSummary(steps []*step.Step) string {
	var b strings.Builder
	for _, s := range steps {
		p, _ := s.String("path")
		fmt.Fprintf(&b, "%s %s %v\n", s.Event.Type, p, s.Space.Fields["count"])
	}
	return b.String()
}

// TestFilesEvents: create, a burst of writes coalesced, chmod, rename and
// remove in a watched directory.
func TestFilesEvents(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	r := startFiles(t, []string{dir}, func(w *filesWatcher) { w.coalesce = 500 * time.Millisecond })
	r.waitWatched(dir, 1)

	a := filepath.Join(dir, "a.log")
	f, err := os.Create(a)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := r.waitFor("file.create", is("file.create", a))
	if c.Space.Fields["op"] != "create" || c.Space.Fields["watch"] != dir || c.Space.Hostname != "fixture-host" {
		t.Errorf("create: %v", c.Space.Fields)
	}
	f.WriteString("first\n")
	first := r.waitFor("first file.write", is("file.write", a))
	if _, ok := first.Space.Fields["count"]; ok {
		t.Errorf("the first write of a burst is held back: %v", first.Space.Fields)
	}
	burstStart := time.Now()
	for i := range 200 {
		fmt.Fprintf(f, "line %d\n", i)
	}
	held := r.waitFor("coalesced file.write", func(s *step.Step) bool {
		_, ok := s.Space.Fields["count"]
		return is("file.write", a)(s) && ok
	})
	if n, _ := held.Float("count"); n < 1 || n > 200 {
		t.Errorf("coalesced count %v", n)
	}
	if held.Time.End != 0 && (held.Time.End < held.Time.Start || held.Time.Duration != held.Time.End-held.Time.Start) {
		t.Errorf("coalesced time %+v", held.Time)
	}
	if time.Since(burstStart) < 300*time.Millisecond {
		t.Errorf("coalesced write sent %v after the burst began, before the window ended", time.Since(burstStart))
	}
	writes := 0
	for _, s := range r.snapshot() {
		if is("file.write", a)(s) {
			writes++
		}
	}
	if writes != 2 {
		t.Errorf("%d file.write STEPs for one write and a burst, want 2:\n%s", writes, filesSummary(r.snapshot()))
	}

	if err := os.Chmod(a, 0o600); err != nil {
		t.Fatal(err)
	}
	r.waitFor("file.chmod", is("file.chmod", a))
	b := filepath.Join(dir, "b.log")
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	r.waitFor("file.rename", is("file.rename", a))
	r.waitFor("file.create of the new name", is("file.create", b))
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	r.waitFor("file.remove", is("file.remove", b))
	for _, s := range r.snapshot() {
		fxCheck(t, []*step.Step{s})
		if s.Event.Type == "file.overflow" {
			t.Errorf("overflow: %v", s.Space.Fields)
		}
	}
}

// TestFilesBusyFile: a file written without pause sends about one STEP
// per window, not one per write.
func TestFilesBusyFile(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	r := startFiles(t, []string{dir}, func(w *filesWatcher) { w.coalesce = 100 * time.Millisecond })
	r.waitWatched(dir, 1)
	p := filepath.Join(dir, "busy.log")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for start := time.Now(); time.Since(start) < 700*time.Millisecond; n++ {
		fmt.Fprintf(f, "line %d\n", n)
		if n%50 == 0 {
			time.Sleep(time.Millisecond) // let the events be read, not merged by the kernel
		}
	}
	r.stop() // sends what the last window held back
	var writes, counted int
	for _, s := range r.snapshot() {
		if is("file.write", p)(s) {
			writes++
			c, ok := s.Float("count")
			if !ok {
				c = 1
			}
			counted += int(c)
		}
	}
	// 700 ms at 100 ms: 7 windows, each a leading or trailing STEP or
	// both; timers add a little slack.
	if writes < 2 || writes > 12 {
		t.Errorf("%d file.write STEPs for %d writes in 0.7 s:\n%s", writes, n, filesSummary(r.snapshot()))
	}
	if counted < writes || counted > n {
		t.Errorf("the STEPs count %d writes, %d made", counted, n)
	}
	t.Logf("%d writes -> %d STEPs counting %d notifications", n, writes, counted)
}

// TestFilesRateLimit: beyond the rate, events are dropped and counted in
// a file.overflow STEP.
func TestFilesRateLimit(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	r := startFiles(t, []string{dir}, func(w *filesWatcher) { w.maxRate = 5 })
	r.waitWatched(dir, 1)
	for i := range 20 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), nil, 0o644)
	}
	o := r.waitFor("file.overflow", func(s *step.Step) bool { return s.Event.Type == "file.overflow" })
	creates := 0
	for _, s := range r.snapshot() {
		if s.Event.Type == "file.create" {
			creates++
		}
	}
	dropped, _ := o.Float("dropped")
	if creates > 5 || dropped < 1 || o.Space.Fields["kernel_overflow"] != false {
		t.Errorf("%d creates, overflow %v", creates, o.Space.Fields)
	}
	t.Logf("%d sent, overflow: %s", creates, o.Event.Description)
}

// TestFilesMissingPath: a path that does not exist yet, or is removed and
// made again, is watched once it is there.
func TestFilesMissingPath(t *testing.T) {
	leakcheck.Check(t)
	base := t.TempDir()
	later := filepath.Join(base, "later")
	file := filepath.Join(base, "watched.txt")
	os.WriteFile(file, []byte("x"), 0o644)
	r := startFiles(t, []string{later, file}, nil)
	r.waitWatched(file, 1)

	os.WriteFile(file, []byte("xy"), 0o644)
	r.waitFor("write to the watched file", is("file.write", file))
	if err := os.Mkdir(later, 0o755); err != nil {
		t.Fatal(err)
	}
	r.waitWatched(later, 1)
	inside := filepath.Join(later, "new.txt")
	os.WriteFile(inside, nil, 0o644)
	c := r.waitFor("create in the directory made later", is("file.create", inside))
	if c.Space.Fields["watch"] != later {
		t.Errorf("watch %v", c.Space.Fields["watch"])
	}

	os.Remove(file)
	r.waitFor("remove of the watched file", is("file.remove", file))
	os.WriteFile(file, []byte("again"), 0o644)
	r.waitWatched(file, 2)
	os.WriteFile(file, []byte("and again"), 0o644)
	r.waitFor("chmod or write to the file made again", func(s *step.Step) bool {
		p, _ := s.String("path")
		// A coalesced STEP may start with a notification held back from
		// before (a loaded machine can fit all of this in one window):
		// what counts is that it covers one after the directory's create.
		last := s.Time.Start
		if s.Time.End != 0 {
			last = s.Time.End
		}
		return p == file && time.UnixMilli(last).After(c.Start()) && (s.Event.Type == "file.write" || s.Event.Type == "file.chmod")
	})
}

func TestFilesConfig(t *testing.T) {
	if _, err := Build("files", Config{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("no paths: %v", err)
	}
	if _, err := Build("files", Config{Paths: []string{"/tmp", ""}}); err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("empty path: %v", err)
	}
	v, err := Build("files", Config{Paths: []string{"/tmp/", "/tmp", "/var/log/../log"}})
	if err != nil {
		t.Fatal(err)
	}
	if w := v.(*filesWatcher); fmt.Sprint(w.paths) != "[/tmp /var/log]" {
		t.Errorf("paths %v", w.paths)
	}
}

// BenchmarkFilesBusyFile is the watcher's cost per write notification of a
// busy file: mostly coalesced away.
func BenchmarkFilesBusyFile(b *testing.B) {
	dir := b.TempDir()
	v, err := Build("files", Config{Env: Env{Hostname: "h"}, Paths: []string{dir}})
	if err != nil {
		b.Fatal(err)
	}
	w := v.(*filesWatcher)
	ready := make(chan struct{})
	w.watching = func(string) { close(ready) } // one path, watched once
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan struct{})
	var steps int
	go func() {
		w.Watch(ctx, func(*step.Step) { steps++ })
		close(done)
	}()
	<-ready
	f, err := os.Create(filepath.Join(dir, "busy"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	line := []byte("a log line\n")
	b.ReportAllocs()
	for b.Loop() {
		f.Write(line)
	}
	cancel()
	<-done
	b.ReportMetric(float64(steps), "steps")
}

// BenchmarkFilesEvent is the watcher's own work per write notification
// (fsnotify's reading aside), writes 1 ms apart to one path.
func BenchmarkFilesEvent(b *testing.B) {
	v, err := Build("files", Config{Env: Env{Hostname: "h"}, Paths: []string{"/var/log"}})
	if err != nil {
		b.Fatal(err)
	}
	w := v.(*filesWatcher)
	steps := 0
	r := &filesRun{w: w, emit: func(*step.Step) { steps++ }, roots: map[string]bool{"/var/log": true},
		missing: map[string]bool{}, tracked: map[filesKey]*filesState{}, tokens: w.maxRate, refill: time.Now()}
	ev := fsnotify.Event{Name: "/var/log/syslog", Op: fsnotify.Write}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Millisecond)
		r.event(ev, now)
		if i%250 == 0 {
			r.flush(now, false)
		}
	}
	b.ReportMetric(float64(steps)/float64(b.N), "steps/op")
}
