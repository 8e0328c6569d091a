// Package testprog builds the project's programs and runs them as real
// processes in tests: the example and daemon tests exercise exactly what a
// user runs.
package testprog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Build compiles the packages (paths as the go command takes them, relative
// to the calling test's directory) into a new temporary directory and
// returns it. Call it from TestMain and remove the directory afterwards.
// Start (or Track) makes the go command re-run the test when the
// programs' sources change.
func Build(pkgs ...string) (dir string, err error) {
	dir, err = os.MkdirTemp("", "stk-programs-")
	if err != nil {
		return "", err
	}
	args := append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)
	if out, err := exec.Command(GoCommand(), args...).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	return dir, nil
}

// CSharedTag is the build tag of the C binding's package (bindings/c): a
// package main that is only a library, kept out of `go install ./...`.
const CSharedTag = "stk_cshared"

// BuildCShared builds the C binding's package at pkg (a path as the go
// command takes it, relative to the calling test's directory) as the C
// shared library out, as bindings/c/Makefile does. A test that uses the
// library calls Track.
func BuildCShared(out, pkg string) error {
	args := []string{"build", "-tags", CSharedTag, "-buildmode=c-shared", "-o", out, pkg}
	if b, err := exec.Command(GoCommand(), args...).CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// GoCommand is the go command: the one on PATH, else the one of the Go
// installation the test was built with.
func GoCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// Proc is a running program whose standard output and error are collected
// together.
type Proc struct {
	Cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

// Write collects the program's output (Proc is its stdout and stderr).
func (p *Proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output returns what the program has printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Start runs the program at path. It is killed when the test ends, and its
// output is logged if the test failed. It calls Track: the test's cached
// result depends on the sources of the programs it runs.
func Start(t testing.TB, path string, args ...string) *Proc {
	t.Helper()
	Track(t)
	p := &Proc{Cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = p, p
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s %s output:\n%s", filepath.Base(path), strings.Join(args, " "), p.Output())
		}
	})
	return p
}

// Run runs the program at path to its end, at most d, and returns its
// standard output and error apart and its exit status. The test fails if
// the program cannot start or does not end within d. It calls Track, as
// Start does.
func Run(t testing.TB, d time.Duration, path string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	Track(t)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		code = ee.ExitCode()
	case ctx.Err() != nil:
		t.Fatalf("%s %s did not finish within %v:\nstdout:\n%s\nstderr:\n%s", filepath.Base(path), strings.Join(args, " "), d, o.String(), e.String())
	default:
		t.Fatalf("%s %s: %v", filepath.Base(path), strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// Wait waits at most d for the program to exit by itself and returns its
// output.
func (p *Proc) Wait(t testing.TB, d time.Duration) string {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s did not finish within %v", filepath.Base(p.Cmd.Path), d)
	}
	return p.Output()
}

// WaitFor waits at most d for an output line matching re and returns its
// submatches.
func (p *Proc) WaitFor(t testing.TB, re string, d time.Duration) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(p.Output()))
		for sc.Scan() {
			if m := rx.FindStringSubmatch(sc.Text()); m != nil {
				return m
			}
		}
		time.Sleep(5 * time.Millisecond) // poll the output
	}
	t.Fatalf("%s: no line matching %q within %v", filepath.Base(p.Cmd.Path), re, d)
	return nil
}

// Main is a whole TestMain: it builds pkgs, hands their directory to built,
// runs the tests, removes the programs and exits with the tests' status.
func Main(m *testing.M, built func(dir string), pkgs ...string) {
	dir, err := Build(pkgs...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	built(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Binary is a program built on first use, for a package whose tests need
// it only sometimes (a TestMain that always builds would slow -short runs).
// Declare one per program as a package variable and remove its directory
// in TestMain with Remove.
type Binary struct {
	// Pkg is the program's package, a path as the go command takes it
	// relative to the test's directory ("." or "../stkd").
	Pkg string
	// Name is the program's file name, the last element of its import path.
	Name string

	once sync.Once
	dir  string
	err  error
}

// Path builds the program once and returns its path. It skips the test with
// -short (it runs a real process) and fails it when the build fails.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("test with a %s process skipped with -short", b.Name)
	}
	b.once.Do(func() { b.dir, b.err = Build(b.Pkg) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return filepath.Join(b.dir, b.Name)
}

// Remove deletes the built program, if Path built it: call it from TestMain
// after m.Run.
func (b *Binary) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}
