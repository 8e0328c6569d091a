package etcdtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLaunchWithoutTB: the core a benchmark uses: Launch with logs in a
// directory; a value written survives StopAll and StartAll (the data
// directories are kept); Stop leaves no member running and removes the
// temporary data directory.
func TestLaunchWithoutTB(t *testing.T) {
	Need(t)
	logs := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Launch(ctx, Options{Members: 1, LogDir: logs})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			c.Stop()
		}
	}()
	if c.tmpDir == "" || !strings.HasPrefix(c.Members[0].dir, c.tmpDir) {
		t.Fatalf("data directory %q not under a temporary one of Launch (%q)", c.Members[0].dir, c.tmpDir)
	}
	cl, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	pid := c.Pids()[0]
	c.StopAll()
	if p := c.Pids()[0]; p != 0 {
		t.Fatalf("member still listed as running (pid %d) after StopAll", p)
	}
	if err := c.StartAll(ctx); err != nil {
		t.Fatal(err)
	}
	if p := c.Pids()[0]; p == 0 || p == pid {
		t.Fatalf("after StartAll: pid %d (before: %d), want a new process", p, pid)
	}
	r, err := cl.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("after StopAll and StartAll, k: %v, want v (data kept)", r.Kvs)
	}
	if _, err := os.Stat(filepath.Join(logs, "m0.log")); err != nil {
		t.Errorf("member log in LogDir: %v", err)
	}
	dir := c.tmpDir
	c.Stop()
	stopped = true
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Stop left the temporary data directory %s: %v", dir, err)
	}
	if p := c.Pids()[0]; p != 0 {
		t.Errorf("member still running after Stop (pid %d)", p)
	}
}

// TestLaunchBadBinary: a binary that cannot run is an error naming it,
// and Launch leaves no data directory behind.
func TestLaunchBadBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "no-etcd")
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "etcdtest-*"))
	_, err := Launch(context.Background(), Options{Binary: bin})
	if err == nil || !strings.Contains(err.Error(), bin) {
		t.Fatalf("Launch with %s: %v, want an error naming it", bin, err)
	}
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "etcdtest-*"))
	if len(after) > len(before) {
		t.Errorf("Launch left a data directory: %v (before: %v)", after, before)
	}
}
