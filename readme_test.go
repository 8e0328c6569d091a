package stk_test

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/namesvc"
)

// TestReadmePrograms builds the Go programs of README.md's "From Go"
// section and runs them against a name server of the test, so that the
// README cannot show code that does not compile or does not work. The only
// change made to them is the name server's address: stk.Connect("") is
// stkd's fixed port, which a test must not take.
func TestReadmePrograms(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## From Go\n")
	if start < 0 {
		t.Fatal(`README.md has no "## From Go" section`)
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(section, -1)
	var progs []string
	for _, m := range blocks {
		if strings.HasPrefix(m[1], "package main\n") {
			progs = append(progs, m[1])
		}
	}
	if len(progs) != 2 {
		t.Fatalf("%d Go programs in the From Go section, want 2 (publish, subscribe)", len(progs))
	}
	srv, err := namesvc.NewServer(namesvc.ServerConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ap, err := srv.ServeTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var bins []string
	for i, src := range progs {
		if !strings.Contains(src, `stk.Connect("", `) {
			t.Fatalf("README program %d does not call stk.Connect(\"\", ...)", i+1)
		}
		src = strings.Replace(src, `stk.Connect("", `, `stk.Connect("tcp:`+ap.String()+`", `, 1)
		dir := t.TempDir()
		file := filepath.Join(dir, "main.go")
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		// Built from this module's directory, so the program's imports are
		// this module's packages as they are now.
		cmd := exec.Command(testprog.GoCommand(), "build", "-o", filepath.Join(dir, "prog"), file)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("README program %d does not build: %v\n%s\n%s", i+1, err, out, src)
		}
		bins = append(bins, filepath.Join(dir, "prog"))
		if lines := strings.Count(src, "\n"); lines > 40 {
			t.Errorf("README program %d has %d lines; keep it short", i+1, lines)
		}
	}

	// The publisher waits for a subscriber, sends 1000 sequences and exits;
	// the subscriber prints each and runs until killed.
	sub := testprog.Start(t, bins[1])
	pub := testprog.Start(t, bins[0])
	pub.Wait(t, 30*time.Second)
	if code := pub.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the publish program exited %d:\n%s", code, pub.Output())
	}
	sub.WaitFor(t, `^999 tick "hello"$`, 30*time.Second)
	// Log lines (stderr) come between the sequences' lines.
	lines := regexp.MustCompile(`(?m)^\d+ tick .*$`).FindAllString(sub.Output(), -1)
	if len(lines) != 1000 {
		t.Fatalf("the subscribe program printed %d sequences, want 1000", len(lines))
	}
	for i, l := range lines {
		if want := fmt.Sprintf("%d tick %q", i, "hello"); l != want {
			t.Fatalf("line %d: %q, want %q", i+1, l, want)
		}
	}
}
