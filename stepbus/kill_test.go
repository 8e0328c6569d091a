package stepbus

import (
	"bufio"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"
)

// killHelperEnv names the archive directory of the helper process of
// TestKill9; the test binary re-executed with it set only publishes.
const killHelperEnv = "STEPBUS_KILL_HELPER_DIR"

// killRate is the helper's publish period: 500 STEPs a second.
const killRate = 2 * time.Millisecond

// killFlush is the helper's archive flush interval.
const killFlush = time.Second

// waitFlushes waits at most d until the archive in dir, which another
// process is writing, has grown by n flushes, and returns how many STEPs
// it then holds. A read that meets a frame being written fails; the next
// poll reads it whole.
func waitFlushes(t *testing.T, dir string, n int, d time.Duration) int {
	t.Helper()
	seen, last := 0, 0
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		count := 0
		if err := ReadArchive(dir, func(*step.Step) error { count++; return nil }); err != nil {
			continue
		}
		if count > last {
			seen, last = seen+1, count
			if seen == n {
				return count
			}
		}
	}
	t.Fatalf("the helper's archive did not grow by %d flushes within %v (%d flushes, %d STEPs seen)", n, d, seen, last)
	return 0
}

// TestKill9Helper is the helper process of TestKill9: it publishes STEPs
// numbered 0, 1, 2... at a steady rate, each stamped with the time it was
// published, until it is killed.
func TestKill9Helper(t *testing.T) {
	dir := os.Getenv(killHelperEnv)
	if dir == "" {
		t.Skip("helper process of TestKill9")
	}
	b, err := New(Config{ArchiveDir: dir, FlushInterval: killFlush, Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("publishing\n")
	tick := time.NewTicker(killRate)
	for n := 0; ; n++ {
		<-tick.C
		s := step.New("system.cpu", "a steady publisher", "kill-test", time.Now())
		s.Set("n", n)
		s.Set("kind", "metric")
		if err := b.Publish(s, "helper"); err != nil {
			t.Fatal(err)
		}
	}
}

// A kill -9 loses at most the last flush interval (1 s) of STEPs, and
// leaves every segment readable, by the standard zstd -d as well.
func TestKill9(t *testing.T) {
	if os.Getenv(killHelperEnv) != "" {
		t.Skip("in the helper")
	}
	leakcheck.Check(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Helper$")
	cmd.Env = append(os.Environ(), killHelperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "publishing") {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the helper exited before publishing")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the helper did not start")
	}
	// Kill after two flushes reached the disk (a condition, not a time:
	// the machine may be loaded), at a random point of a flush period.
	before := waitFlushes(t, dir, 2, 60*time.Second)
	time.Sleep(rand.N(killFlush))
	killed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// Every segment, as the kill left it, decodes with zstd -d.
	segs, err := Segments(dir)
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	for _, p := range segs {
		zstdCLI(t, p)
	}
	// Every archived STEP decodes; they are 0..last without a gap.
	next := 0
	var newest time.Time
	err = ReadArchive(dir, func(s *step.Step) error {
		n, _ := s.Float("n")
		if int(n) != next {
			t.Fatalf("STEP %v follows %d", n, next-1)
		}
		next++
		newest = s.Start()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	loss := killed.Sub(newest)
	published := next + int(loss/killRate)
	t.Logf("killed after ~%d STEPs: %d archived, the newest %v before the kill (~%d lost)", published, next, loss.Round(time.Millisecond), published-next)
	// One flush interval, plus slack for a loaded machine: the write of a
	// frame (compress, write, fsync), the writer and the helper waiting
	// for a CPU, and the kill arriving. A writer that missed a whole
	// flush, or flushed only at exit, loses far more.
	if loss > killFlush+time.Second {
		t.Fatalf("the newest archived STEP is %v older than the kill: more than the last flush interval (%v) was lost", loss, killFlush)
	}
	if next < before {
		t.Fatalf("%d STEPs archived after the kill, but %d were on disk before it", next, before)
	}
	// The bus starts on the archive the kill left.
	b := newBus(t, Config{ArchiveDir: dir})
	publish(t, b, mk("system.cpu", "h", 1))
	b.Close()
	if got := readAll(t, dir); len(got) != next+1 {
		t.Fatalf("%d STEPs after restart, want %d", len(got), next+1)
	}
}
