package testprog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The go command caches a test's result under the test binary and the
// inputs the test logged (package testlog): files it opened or stat'ed,
// environment variables it read. The programs a test builds with Build or
// BuildCShared are not dependencies of the test binary, so without more a
// warm cache would answer PASS for a test whose programs changed. Track
// stats every file such a build can read, so that changing (or touching)
// one makes the go command re-run the test. The go command logs only while
// m.Run runs, not in TestMain before it: hence Track takes the test.

// buildEnv are the environment variables that change what `go build` or
// gcc produce; reading them makes their values inputs of the test.
var buildEnv = []string{"CC", "CGO_ENABLED", "CGO_CFLAGS", "CGO_CPPFLAGS", "CGO_LDFLAGS", "GOFLAGS", "GOEXPERIMENT",
	"GOOS", "GOARCH", "GOAMD64", "GOTOOLCHAIN"}

// sourceExt are the files that count inside testdata directories (a test
// may build a program there); elsewhere every file but documentation and
// outputs counts: embedded files, such as httpd's UI, have any name.
var sourceExt = map[string]bool{".go": true, ".c": true, ".h": true, ".s": true, ".S": true, ".py": true}

// ignoredExt are files that are outputs, not inputs (the .gitignore
// files' patterns), or documentation.
var ignoredExt = map[string]bool{".md": true, ".test": true, ".prof": true, ".tmp": true, ".pyc": true,
	".so": true, ".o": true, ".a": true}

// ignoredDir are directories of build outputs (the .gitignore files':
// bindings/c/build, bindings/python's build and dist; bin at the root) or
// that the go command ignores too (names starting with . or _, such as .git
// and __pycache__).
func ignoredDir(root, dir, name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "node_modules" ||
		name == "build" || name == "dist" || strings.HasSuffix(name, ".egg-info") || (dir == root && name == "bin")
}

var (
	trackOnce sync.Once
	trackErr  error
)

// Track makes the cached result of t's test binary depend on the module's
// sources: every file under the module root (found from the working
// directory up) that a build of its programs can read (Go, C, assembly and
// Python sources, go.mod and go.sum, embedded files, the suppression
// files), and the directories holding them, so that a new file counts too;
// not .git, build outputs, documentation, or testdata fixtures other than
// source files (tests open those themselves, which the go command sees).
// It also reads the environment variables that change a build.
//
// Call it from a test, not from TestMain (see above). Start calls it, so a
// test that starts the programs it built with it need not; a test binary
// that runs them otherwise must. It does its work once per process (about
// 10 ms for this module, measured).
func Track(t testing.TB) {
	t.Helper()
	trackOnce.Do(func() { _, trackErr = trackSources() })
	if trackErr != nil {
		t.Fatal(trackErr)
	}
}

// trackSources stats what Track tracks and returns how many files and
// directories that was.
func trackSources() (int, error) {
	for _, v := range buildEnv {
		os.Getenv(v)
	}
	root, err := moduleRoot()
	if err != nil {
		return 0, err
	}
	paths, err := sourcePaths(root)
	if err != nil {
		return 0, fmt.Errorf("testprog: tracking the module's sources for the test cache: %w", err)
	}
	for _, p := range paths {
		// Logged: the size and modification time are the input. A
		// directory's changes when a file is added, removed or renamed in
		// it.
		os.Stat(p)
	}
	return len(paths), nil
}

// sourcePaths lists the files under root that TrackSources stats, and the
// directories holding them, without logging anything.
func sourcePaths(root string) ([]string, error) {
	var paths []string
	var walk func(dir string, inTestdata bool) error
	walk = func(dir string, inTestdata bool) error {
		entries, err := readDirUnlogged(dir)
		if err != nil {
			return err
		}
		// In testdata, only a directory holding sources: the fixtures' and
		// fuzz corpora's change with what tests and fuzzing write there.
		if !inTestdata || slices.ContainsFunc(entries, func(e fs.DirEntry) bool {
			return e.Type().IsRegular() && sourceExt[filepath.Ext(e.Name())]
		}) {
			paths = append(paths, dir)
		}
		for _, e := range entries {
			name := e.Name()
			path := filepath.Join(dir, name)
			if e.IsDir() {
				if ignoredDir(root, dir, name) {
					continue
				}
				if err := walk(path, inTestdata || name == "testdata"); err != nil {
					return err
				}
				continue
			}
			ext := filepath.Ext(name)
			if e.Type().IsRegular() && !ignoredExt[ext] && (!inTestdata || sourceExt[ext]) {
				paths = append(paths, path)
			}
		}
		return nil
	}
	err := walk(root, false)
	return paths, err
}

// readDirUnlogged lists dir without logging an open of it: the go command
// would hash the listing with every entry's modification time, and the
// module root's lists .git, which changes with every git command.
func readDirUnlogged(dir string) ([]fs.DirEntry, error) {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	return f.ReadDir(-1)
}

// moduleRoot is the directory of the go.mod governing the working
// directory (a test runs in its package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testprog: no go.mod in the working directory or above it")
		}
		dir = parent
	}
}
