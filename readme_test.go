package stk

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stk-go/stk/internal/testprog"
)

// TestReadmePrograms builds the Go programs of README.md's "From Go"
// section, so that the README cannot show code that does not compile.
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
	for i, src := range progs {
		dir := t.TempDir()
		file := filepath.Join(dir, "main.go")
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		// Built from this module's directory, so the program's imports are
		// this module's packages as they are now.
		cmd := exec.Command(testprog.GoCommand(), "build", "-o", filepath.Join(dir, "prog"), file)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("README program %d does not build: %v\n%s\n%s", i+1, err, out, src)
		}
		if lines := strings.Count(src, "\n"); lines > 40 {
			t.Errorf("README program %d has %d lines; keep it short", i+1, lines)
		}
	}
}
