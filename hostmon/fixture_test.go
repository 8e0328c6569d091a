package hostmon

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/step"
)

// Fixture trees and golden files for the periodic collectors.
//
// testdata/linux is a small host (/proc, /sys, /etc, /run) as it looks at
// fxT0; testdata/linux-t2 and linux-t3 hold the files that change by fxT2
// and fxT3 (counters that grew, wrapped or were reset). Tests copy the
// tree to a temporary directory and lay the later samples over it, so a
// collector sees one host change under it.
//
// testdata/golden/*.json are the STEPs the collectors make from those
// trees, as indented JSON with ids replaced by "ID". Times stay: they
// come from the injected clock. `go test ./hostmon -run Golden -update`
// rewrites them; review the diff.

// update is the package's one -update flag: every golden test of the
// package (periodic collectors here, event collectors in process_test.go
// and services_test.go) rewrites its files when it is given.
var update = flag.Bool("update", false, "rewrite the golden files (testdata/golden, testdata/*/golden.json)")

// fxUpdating reports whether -update was given.
func fxUpdating() bool { return *update }

var (
	fxT0 = time.Date(2025, 11, 21, 8, 0, 0, 0, time.UTC) // the fixtures' btime is 1763700000 = 04:40 UTC
	fxT2 = fxT0.Add(2 * time.Second)
	fxT3 = fxT2.Add(time.Second)
)

// fxRoot copies testdata/linux into a temporary directory and lays the
// named overlays (testdata/<name>) over it in order.
func fxRoot(t testing.TB, overlays ...string) string {
	t.Helper()
	root := t.TempDir()
	fxCopy(t, filepath.Join("testdata", "linux"), root)
	for _, o := range overlays {
		fxCopy(t, filepath.Join("testdata", o), root)
	}
	return root
}

// fxCopy copies the files under src into dst, replacing those present.
func fxCopy(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy fixture %s: %v", src, err)
	}
}

// fxEnv is an Env reading every host root from the tree at root.
func fxEnv(root string) Env {
	return Env{
		Hostname: "fixture-host",
		IP:       "192.0.2.10",
		HostProc: filepath.Join(root, "proc"),
		HostSys:  filepath.Join(root, "sys"),
		HostEtc:  filepath.Join(root, "etc"),
		HostVar:  filepath.Join(root, "var"),
		HostRun:  filepath.Join(root, "run"),
		HostDev:  filepath.Join(root, "dev"),
	}
}

// fxCollector builds the named collector from the registry for env.
func fxCollector(t testing.TB, name string, env Env) Collector {
	t.Helper()
	c, err := Build(name, Config{Env: env, Interval: time.Second})
	if err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	col, ok := c.(Collector)
	if !ok {
		t.Fatalf("%s is a %T, not a Collector", name, c)
	}
	if col.Name() != name {
		t.Fatalf("collector %q calls itself %q", name, col.Name())
	}
	return col
}

// fxCollect runs one Collect and checks what every STEP must be: valid,
// of its collector's kind, and unchanged by a JSON round trip.
func fxCollect(t testing.TB, c Collector, now time.Time) []*step.Step {
	t.Helper()
	steps, err := c.Collect(t.Context(), now)
	if err != nil {
		t.Fatalf("%s: Collect: %v", c.Name(), err)
	}
	fxCheck(t, steps)
	return steps
}

// fxCheck validates steps and round-trips them through JSON.
func fxCheck(t testing.TB, steps []*step.Step) {
	t.Helper()
	for _, s := range steps {
		if err := s.Validate(); err != nil {
			t.Errorf("invalid STEP %s: %v", s.Event.Type, err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("marshal %s: %v", s.Event.Type, err)
		}
		back, err := step.Parse(b)
		if err != nil {
			t.Fatalf("parse back %s: %v\n%s", s.Event.Type, err, b)
		}
		b2, _ := json.Marshal(back)
		if !bytes.Equal(b, b2) {
			t.Errorf("JSON round trip changed %s:\n%s\n%s", s.Event.Type, b, b2)
		}
	}
}

// fxGolden compares steps, as normalised JSON, with testdata/golden/name.json
// (or rewrites it under -update).
func fxGolden(t testing.TB, name string, steps []*step.Step) {
	t.Helper()
	norm := make([]json.RawMessage, len(steps))
	for i, s := range steps {
		c := s.Clone()
		c.ID = "ID"
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		norm[i] = b
	}
	got, err := json.MarshalIndent(norm, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	fxCompareGolden(t, filepath.Join("testdata", "golden", name+".json"), got)
}

// fxCompareGolden compares got with the golden file at path, or writes it
// there under -update.
func fxCompareGolden(t testing.TB, path string, got []byte) {
	t.Helper()
	if fxUpdating() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update if the change is right):\n%s",
			path, fxDiff(string(want), string(got)))
	}
}

// fxDiff lists the lines that differ between want and got, enough to see
// what changed without a diff tool.
func fxDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line ")
			b.WriteString(strconv.Itoa(i + 1))
			b.WriteString(":\n  want: " + wl + "\n  got:  " + gl + "\n")
		}
	}
	return b.String()
}

// fxByType returns the STEPs of the given type.
func fxByType(steps []*step.Step, typ string) []*step.Step {
	var out []*step.Step
	for _, s := range steps {
		if s.Event.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// fxFloat returns a numeric field or fails the test.
func fxFloat(t testing.TB, s *step.Step, key string) float64 {
	t.Helper()
	v, ok := s.Float(key)
	if !ok {
		t.Fatalf("%s has no numeric %q: %v", s.Event.Type, key, s.Space.Fields)
	}
	return v
}

// periodicCollectors are the collectors of this file's fixtures, the ones
// a monitor runs every interval.
var periodicCollectors = []string{"cpu", "memory", "disk", "diskio", "network", "host", "users"}

// BenchmarkCollectAll measures one interval of each periodic collector on
// the real host: ns/op is the CPU a monitor spends on it per interval
// (at 1 s, 5 ms/op would be 0.5 % of a core). The clock moves one second
// per op, so "host" reports once every 60 ops, as it does when running.
//
//	go test ./hostmon -run '^$' -bench CollectAll -benchmem
func BenchmarkCollectAll(b *testing.B) {
	for _, name := range periodicCollectors {
		b.Run(name, func(b *testing.B) {
			v, err := Build(name, Config{Env: Env{Hostname: "bench"}, Interval: time.Second})
			if errors.Is(err, ErrUnavailable) {
				b.Skip(err)
			}
			if err != nil {
				b.Fatal(err)
			}
			c := v.(Collector)
			now := time.Now()
			if _, err := c.Collect(b.Context(), now); err != nil { // static facts, first samples
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Second)
				if _, err := c.Collect(b.Context(), now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
