package testprog

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestSourcePaths: the files a build of the programs reads are tracked
// (Go sources, a program under testdata, C sources and headers, embedded
// UI files, go.sum, Python sources, suppression files, and their
// directories), outputs and documentation are not.
func TestSourcePaths(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil || filepath.Base(root) == "testprog" {
		t.Fatalf("module root %s: %v", root, err)
	}
	start := time.Now()
	paths, err := sourcePaths(root)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d paths listed in %v", len(paths), took)
	for _, want := range []string{
		"", "go.mod", "go.sum", "examples/publish", "examples/publish/main.go", "internal/testprog/sources.go",
		"bindings/c/ctest/testdata/vgprobe/main.go", "bindings/c/stk.h", "bindings/c/stk_api.c",
		"bindings/c/tests/valgrind.supp", "bindings/python/stk/env.py", "httpd/ui",
	} {
		if !slices.Contains(paths, filepath.Join(root, want)) {
			t.Errorf("%s is not tracked", filepath.Join(root, want))
		}
	}
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		switch {
		case rel == ".git" || filepath.Dir(rel) == ".git" || rel == "bin" || filepath.Ext(p) == ".md" ||
			filepath.Base(p) == "build" || filepath.Base(filepath.Dir(p)) == "build" || filepath.Ext(p) == ".so":
			t.Errorf("%s is tracked", p)
		case filepath.Base(filepath.Dir(p)) == "testdata" && filepath.Ext(p) == ".json":
			t.Errorf("a testdata fixture is tracked: %s", p)
		}
	}
	ui := 0
	for _, p := range paths {
		if filepath.Dir(p) == filepath.Join(root, "httpd", "ui") {
			ui++
		}
	}
	if ui == 0 {
		t.Errorf("no file of httpd/ui (embedded in stkd) is tracked")
	}
	// The whole of Track, stats included, must stay cheap: it runs in every
	// test process that starts programs.
	start = time.Now()
	n, err := trackSources()
	if err != nil || n != len(paths) {
		t.Fatalf("trackSources: %d paths, %v; want %d", n, err, len(paths))
	}
	t.Logf("trackSources: %d paths stat'ed in %v", n, time.Since(start))
}
