package stepbus

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"
)

// readAll returns the JSON of every archived STEP in dir.
func readAll(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	if err := ReadArchive(dir, func(s *step.Step) error { out = append(out, jsonOf(t, s)); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func segmentNames(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := Segments(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range segs {
		segs[i] = filepath.Base(segs[i])
	}
	return segs
}

// zstdCLI decompresses path with the zstd program, or skips the calling
// check when there is none.
func zstdCLI(t *testing.T, path string) (string, bool) {
	t.Helper()
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Log("no zstd program on PATH: the check with the standard zstd -d is skipped")
		return "", false
	}
	out, err := exec.Command("zstd", "-d", "-c", "-q", path).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("zstd -d %s: %v %s", path, err, msg)
	}
	return string(out), true
}

func TestArchiveRoundTrip(t *testing.T) {
	leakcheck.Check(t)
	dir := filepath.Join(t.TempDir(), "archive") // created by New
	b := newBus(t, Config{ArchiveDir: dir})
	var want []string
	for i := range 300 {
		s := metric("system.cpu", "web-1", int64(1000+i), "cpu_percent", float64(i)/3, "per_core_percent", []any{1.5, 2.5})
		s.Event.Description = "<html> & \"quotes\" ünïcode"
		s.Psychology = step.Psychology{Valence: -0.5, Intensity: 0.25}
		publish(t, b, s)
		want = append(want, jsonOf(t, s))
		if i == 150 {
			b.archive.sync() // two frames
		}
	}
	b.archive.sync()
	st := b.Stats().Archive
	if !st.Enabled || st.Written != 300 || st.Pending != 0 || st.Dropped != 0 || st.Segments != 1 || st.Bytes == 0 ||
		st.LastFlush.IsZero() || !strings.HasPrefix(st.Segment, "steps-") {
		t.Fatalf("archive stats %+v", st)
	}
	// Readable while still being written, by us and by zstd.
	if got := readAll(t, dir); !slices.Equal(got, want) {
		t.Fatalf("read back %d lines, want %d (first %q)", len(got), len(want), got[0])
	}
	segs, _ := Segments(dir)
	if out, ok := zstdCLI(t, segs[0]); ok && out != strings.Join(want, "\n")+"\n" {
		t.Fatalf("zstd -d gives %d bytes, not the JSON lines", len(out))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, dir); !slices.Equal(got, want) {
		t.Fatal("archive changed by Close")
	}
}

// Segments rotate by uncompressed size; beyond ArchiveKeep the oldest are
// deleted; names that start in the same second get -N.
func TestArchiveRotatesBySize(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	clk := newClock()
	line := len(jsonOf(t, mk("system.cpu", "h", 1000))) + 1
	b := newBus(t, Config{ArchiveDir: dir, ArchiveMaxBytes: int64(3 * line), ArchiveKeep: 3, Now: clk.Now})
	var want []string
	for i := range 10 {
		s := mk("system.cpu", "h", int64(1000+i))
		publish(t, b, s)
		want = append(want, jsonOf(t, s))
	}
	b.archive.sync()
	// 10 lines, 3 per segment: 4 segments, all in the clock's one second.
	names := segmentNames(t, dir)
	wantNames := []string{"steps-20261122T053000Z.jsonl.zst", "steps-20261122T053000Z-1.jsonl.zst",
		"steps-20261122T053000Z-2.jsonl.zst", "steps-20261122T053000Z-3.jsonl.zst"}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("segments %v, want %v", names, wantNames)
	}
	// Three segments were closed so far (the fourth holds one line and is
	// open): none deleted yet.
	if got := readAll(t, dir); !slices.Equal(got, want) {
		t.Fatalf("read back %d lines, want %d", len(got), len(want))
	}
	for i, n := range names[:3] {
		var lines int
		ReadSegment(filepath.Join(dir, n), func(*step.Step) error { lines++; return nil })
		if lines != 3 {
			t.Fatalf("segment %d holds %d lines, want 3", i, lines)
		}
	}
	publish(t, b, mk("system.cpu", "h", 2000), mk("system.cpu", "h", 2001))
	b.archive.sync()
	// The fourth segment filled and closed: 4 rotated, keep 3.
	if names := segmentNames(t, dir); !slices.Equal(names, wantNames[1:]) {
		t.Fatalf("after keep: %v", names)
	}
	if st := b.Stats().Archive; st.Segments != 3 || st.Written != 12 {
		t.Fatalf("stats %+v", st)
	}
}

func TestArchiveRotatesByAge(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	clk := newClock()
	b := newBus(t, Config{ArchiveDir: dir, ArchiveMaxAge: time.Hour, Now: clk.Now})
	publish(t, b, mk("system.cpu", "h", 1))
	b.archive.sync()
	clk.Advance(59 * time.Minute)
	publish(t, b, mk("system.cpu", "h", 2))
	b.archive.sync()
	if names := segmentNames(t, dir); len(names) != 1 {
		t.Fatalf("rotated before the age: %v", names)
	}
	clk.Advance(time.Minute)
	publish(t, b, mk("system.cpu", "h", 3))
	b.archive.sync()
	clk.Advance(3 * time.Hour) // idle: the segment is closed at the next flush
	b.archive.sync()
	if st := b.Stats().Archive; st.Segment != "" {
		t.Fatalf("old segment still open: %+v", st)
	}
	publish(t, b, mk("system.cpu", "h", 4))
	b.archive.sync()
	want := []string{"steps-20261122T053000Z.jsonl.zst", "steps-20261122T063000Z.jsonl.zst", "steps-20261122T093000Z.jsonl.zst"}
	if names := segmentNames(t, dir); !slices.Equal(names, want) {
		t.Fatalf("segments %v, want %v", names, want)
	}
	if got := readAll(t, dir); len(got) != 4 {
		t.Fatalf("%d STEPs archived", len(got))
	}
}

// frame compresses lines as one zstd frame, as the writer does.
func frame(t testing.TB, lines ...string) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll([]byte(strings.Join(lines, "\n")+"\n"), nil)
}

// A frame torn by a crash is cut off when the bus starts again; the
// segment is then whole for us and for zstd -d, and new STEPs go to a new
// segment.
func TestArchiveRepairsTornFrame(t *testing.T) {
	leakcheck.Check(t)
	a, c, d := jsonOf(t, mk("system.cpu", "h", 1)), jsonOf(t, mk("system.cpu", "h", 2)), jsonOf(t, mk("system.cpu", "h", 3))
	f1, f2, f3 := frame(t, a), frame(t, c), frame(t, d)
	for _, tc := range []struct {
		name string
		tail []byte
	}{
		{"torn in the frame header", f3[:3]},
		{"torn in a block", f3[:len(f3)/2]},
		{"checksum missing", f3[:len(f3)-2]},
		{"garbage", []byte("not zstd at all")},
		{"a corrupt block", corrupt(f3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "steps-20261122T050000Z.jsonl.zst")
			whole := slices.Concat(f1, f2)
			os.WriteFile(path, slices.Concat(whole, tc.tail), 0o640)
			if err := ReadSegment(path, func(*step.Step) error { return nil }); err == nil {
				t.Fatal("the torn segment reads without error")
			}
			b := newBus(t, Config{ArchiveDir: dir, Logger: testutil.Discard()})
			if st := b.Stats().Archive; st.Repaired != int64(len(tc.tail)) {
				t.Fatalf("repaired %d bytes, want %d", st.Repaired, len(tc.tail))
			}
			if data, _ := os.ReadFile(path); !bytes.Equal(data, whole) {
				t.Fatalf("segment is %d bytes after repair, want %d", len(data), len(whole))
			}
			if out, ok := zstdCLI(t, path); ok && out != a+"\n"+c+"\n" {
				t.Fatalf("zstd -d gives %q", out)
			}
			s := mk("system.cpu", "h", 4)
			publish(t, b, s)
			b.Close()
			if got := readAll(t, dir); !slices.Equal(got, []string{a, c, jsonOf(t, s)}) {
				t.Fatalf("archive after repair %q", got)
			}
			if n := len(segmentNames(t, dir)); n != 2 {
				t.Fatalf("%d segments, want the repaired one and a new one", n)
			}
		})
	}
	t.Run("clock set back", func(t *testing.T) {
		// The segment written last sorts first: it is repaired too.
		dir := t.TempDir()
		older := filepath.Join(dir, "steps-20261122T040000Z.jsonl.zst")
		newer := filepath.Join(dir, "steps-20261122T050000Z.jsonl.zst")
		os.WriteFile(newer, f1, 0o640)
		os.Chtimes(newer, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour))
		os.WriteFile(older, slices.Concat(f2, f3[:len(f3)/2]), 0o640)
		b := newBus(t, Config{ArchiveDir: dir})
		b.Close()
		if got := readAll(t, dir); !slices.Equal(got, []string{c, a}) {
			t.Fatalf("archive after repair %q", got)
		}
	})
	t.Run("empty file", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "steps-20261122T050000Z.jsonl.zst"), nil, 0o640)
		b := newBus(t, Config{ArchiveDir: dir})
		b.Close()
		if n := len(segmentNames(t, dir)); n != 0 {
			t.Fatalf("an empty segment was kept (%d segments)", n)
		}
	})
}

// corrupt returns f with a byte of its compressed content flipped, so the
// frame is complete but its checksum or content fails.
func corrupt(f []byte) []byte {
	c := slices.Clone(f)
	c[len(c)/2] ^= 0x55
	return c
}

func TestFrameLen(t *testing.T) {
	f := frame(t, strings.Repeat(jsonOf(t, mk("system.cpu", "h", 1)), 2000)) // several blocks
	if n, _ := frameLen(f); n != len(f) {
		t.Fatalf("frameLen %d, want %d", n, len(f))
	}
	for cut := range len(f) {
		if n, _ := frameLen(f[:cut]); n != 0 {
			t.Fatalf("frame cut at %d has length %d", cut, n)
		}
	}
	skip := []byte{0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'a', 'b', 'c'}
	if n, sk := frameLen(skip); n != len(skip) || !sk {
		t.Fatalf("skippable frame: %d %v", n, sk)
	}
	if got := validFrames(slices.Concat(f, skip, f, f[:10])); got != 2*len(f)+len(skip) {
		t.Fatalf("validFrames %d", got)
	}
}

func TestSegmentNames(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"steps-20261122T053000Z-10.jsonl.zst", "steps-20261122T053000Z-2.jsonl.zst",
		"steps-20261122T053000Z.jsonl.zst", "steps-20261121T000000Z.jsonl.zst",
		"steps-2026.jsonl.zst", "steps-20261122T053000Z-0.jsonl.zst", "other.txt", "steps-20261122T053000Z.jsonl"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o640)
	}
	want := []string{"steps-20261121T000000Z.jsonl.zst", "steps-20261122T053000Z.jsonl.zst",
		"steps-20261122T053000Z-2.jsonl.zst", "steps-20261122T053000Z-10.jsonl.zst"}
	if got := segmentNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("Segments %v, want %v", got, want)
	}
}

// The writer never blocks Publish: with a tiny queue some STEPs are
// dropped, and every STEP is either written or counted as dropped.
func TestArchiveQueueFullDrops(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	b := newBus(t, Config{ArchiveDir: dir, ArchiveQueue: 1})
	const n = 20000
	for i := range n {
		publish(t, b, mk("system.cpu", "h", int64(i+1)))
	}
	b.Close()
	st := b.Stats().Archive
	if st.Written+st.Dropped != n || st.Dropped == 0 {
		t.Fatalf("written %d + dropped %d != %d (or nothing dropped)", st.Written, st.Dropped, n)
	}
	if got := readAll(t, dir); uint64(len(got)) != st.Written {
		t.Fatalf("%d lines on disk, %d counted written", len(got), st.Written)
	}
	t.Logf("queue of 1: %d written, %d dropped", st.Written, st.Dropped)
}

// A failing disk is counted and reported; the bus keeps serving.
func TestArchiveWriteErrors(t *testing.T) {
	leakcheck.Check(t)
	dir := filepath.Join(t.TempDir(), "a")
	clk := newClock()
	b := newBus(t, Config{ArchiveDir: dir, Now: clk.Now})
	publish(t, b, mk("system.cpu", "h", 1))
	b.archive.sync()
	// Age the segment so the next write closes it and opens another, then
	// take the directory away.
	clk.Advance(2 * DefaultArchiveMaxAge)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(dir, []byte("a file where the directory was"), 0o640)
	publish(t, b, mk("system.cpu", "h", 2))
	b.archive.sync()
	st := b.Stats().Archive
	if st.Errors == 0 || st.LastError == "" || st.Dropped != 1 || st.Written != 1 {
		t.Fatalf("stats after a failed write %+v", st)
	}
	if got := b.Query(Query{}); len(got) != 2 {
		t.Fatal("history lost STEPs with the archive")
	}
	if err := b.Health(); err == nil || !strings.Contains(err.Error(), "cannot write") {
		t.Fatalf("Health with a failing archive: %v", err)
	}
	// The directory comes back: the next write succeeds and the bus is
	// healthy again.
	os.Remove(dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	publish(t, b, mk("system.cpu", "h", 3))
	b.archive.sync()
	if err := b.Health(); err != nil {
		t.Fatalf("Health after a successful write: %v", err)
	}
	if err := b.Close(); err == nil || !strings.Contains(err.Error(), "write error") {
		t.Fatalf("Close: %v", err)
	}
}
