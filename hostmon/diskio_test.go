package hostmon

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/step"
)

func devices(steps []*step.Step, key string) []string {
	var out []string
	for _, s := range steps {
		d, _ := s.String(key)
		out = append(out, d)
	}
	return out
}

// fxRates checks the rate fields of the STEP whose key field is name.
func fxRates(t *testing.T, steps []*step.Step, key, name string, want map[string]float64) {
	t.Helper()
	for _, s := range steps {
		if d, _ := s.String(key); d == name {
			for f, w := range want {
				if got := fxFloat(t, s, f); got != w {
					t.Errorf("%s %s = %v, want %v", name, f, got, w)
				}
			}
			return
		}
	}
	t.Errorf("no STEP for %s %s", key, name)
}

func TestDiskIOGolden(t *testing.T) {
	leakcheck.Check(t)
	root := fxRoot(t)
	c := fxCollector(t, "diskio", fxEnv(root))
	if steps := fxCollect(t, c, fxT0); len(steps) != 0 {
		t.Fatalf("first call: %d STEPs; rates need two samples", len(steps))
	}

	fxCopy(t, filepath.Join("testdata", "linux-t2"), root)
	steps := fxCollect(t, c, fxT2)
	fxGolden(t, "diskio_t2", steps)
	// Whole disks only (no sda1, no nvme0n1p1), no loop device, and no
	// zram0, whose counters are all zero.
	if got, want := devices(steps, "device"), []string{"dm-0", "nvme0n1", "sda"}; !slices.Equal(got, want) {
		t.Fatalf("devices %v, want %v", got, want)
	}
	// Over 2 s: sda read 2048 and wrote 4096 sectors of 512 bytes.
	fxRates(t, steps, "device", "sda", map[string]float64{
		"read_bytes_per_sec": 524288, "write_bytes_per_sec": 1048576, "io_bytes_per_sec": 1572864})
	fxRates(t, steps, "device", "nvme0n1", map[string]float64{
		"read_bytes_per_sec": 0, "write_bytes_per_sec": 5242880, "io_bytes_per_sec": 5242880})

	// One second later sda's counters were reset (it is left out until
	// it has two samples again) and dm-0's write sectors wrapped at 32
	// bits: 4294967000 -> 704 is 1000 sectors.
	fxCopy(t, filepath.Join("testdata", "linux-t3"), root)
	steps = fxCollect(t, c, fxT3)
	fxGolden(t, "diskio_t3", steps)
	if got, want := devices(steps, "device"), []string{"dm-0", "nvme0n1"}; !slices.Equal(got, want) {
		t.Fatalf("devices after a reset %v, want %v", got, want)
	}
	fxRates(t, steps, "device", "dm-0", map[string]float64{
		"read_bytes_per_sec": 512000, "write_bytes_per_sec": 512000, "io_bytes_per_sec": 1024000})
	fxRates(t, steps, "device", "nvme0n1", map[string]float64{
		"read_bytes_per_sec": 524288, "write_bytes_per_sec": 1048576})

	steps = fxCollect(t, c, fxT3.Add(time.Second))
	fxRates(t, steps, "device", "sda", map[string]float64{"io_bytes_per_sec": 0})
}

func TestDiskIOWithoutSysBlock(t *testing.T) {
	root := fxRoot(t)
	if err := os.RemoveAll(filepath.Join(root, "sys/block")); err != nil {
		t.Fatal(err)
	}
	c := fxCollector(t, "diskio", fxEnv(root))
	fxCollect(t, c, fxT0)
	fxCopy(t, filepath.Join("testdata", "linux-t2"), root)
	// Nothing tells disks from partitions: every device with counters.
	got := devices(fxCollect(t, c, fxT2), "device")
	if want := []string{"dm-0", "loop0", "nvme0n1", "nvme0n1p1", "sda", "sda1"}; !slices.Equal(got, want) {
		t.Fatalf("devices %v, want %v", got, want)
	}
}

func TestDiskIONoTimePassed(t *testing.T) {
	root := fxRoot(t)
	c := fxCollector(t, "diskio", fxEnv(root))
	fxCollect(t, c, fxT0)
	fxCopy(t, filepath.Join("testdata", "linux-t2"), root)
	if steps := fxCollect(t, c, fxT0); len(steps) != 0 {
		t.Fatalf("%d STEPs with no time between samples", len(steps))
	}
}

func TestCounterDelta(t *testing.T) {
	const w = 1 << 32
	for _, tc := range []struct {
		name            string
		prev, cur, unit uint64
		want            uint64
		ok              bool
	}{
		{"grew", 100, 250, 1, 150, true},
		{"unchanged", 7, 7, 1, 0, true},
		{"64-bit values", 1 << 40, 1<<40 + 5, 1, 5, true},
		{"32-bit wrap", w - 100, 50, 1, 150, true},
		{"32-bit wrap of sectors", (w - 10) * 512, 20 * 512, 512, 30 * 512, true},
		{"reset of a small counter", 5000, 10, 1, 0, false},
		{"reset of a 64-bit counter", 1 << 40, 10, 1, 0, false},
		{"a wrap would mean more than half the range", w/2 - 1, 0, 1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := counterDelta(tc.prev, tc.cur, tc.unit)
			if got != tc.want || ok != tc.ok {
				t.Errorf("counterDelta(%d, %d, %d) = %d, %v; want %d, %v", tc.prev, tc.cur, tc.unit, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestRateText(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0 B/s", 999: "999 B/s", 1000: "1.0 kB/s", 1.5e6: "1.5 MB/s", 15e9: "15.0 GB/s", 2e21: "2000.0 EB/s",
	} {
		if got := rateText(v); got != want {
			t.Errorf("rateText(%v) = %q, want %q", v, got, want)
		}
	}
}

// usedDisks returns the whole disks of this host with I/O so far, found
// without the collector: the entries of /sys/block other than loop and
// ram devices whose /proc/diskstats counters are not all 0 (gopsutil
// skips never used devices; they have no rate to report). It skips the
// test where the host has no such files.
func usedDisks(t *testing.T) []string {
	t.Helper()
	stats, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		t.Skipf("no /proc/diskstats on this host (%v): no disk counters to report", err)
	}
	used := map[string]bool{}
	for line := range strings.Lines(string(stats)) {
		if f := strings.Fields(line); len(f) >= 14 && strings.Trim(strings.Join(f[3:14], ""), "0") != "" {
			used[f[2]] = true
		}
	}
	ents, err := os.ReadDir("/sys/block")
	if err != nil {
		t.Skipf("no /sys/block on this host (%v): no disks to tell apart from partitions", err)
	}
	var disks []string
	for _, e := range ents {
		if n := e.Name(); used[n] && !strings.HasPrefix(n, "loop") && !strings.HasPrefix(n, "ram") {
			disks = append(disks, n)
		}
	}
	return disks
}

func TestDiskIORealHost(t *testing.T) {
	before := usedDisks(t)
	if len(before) == 0 {
		t.Skip("no used disk on this host: /sys/block holds only loop and ram devices, or disks without I/O in /proc/diskstats")
	}
	c := fxCollector(t, "diskio", Env{Hostname: "real"})
	// The rates are over the time between the two timestamps given, so
	// the test need not wait for one.
	t0 := time.Now()
	if steps := fxCollect(t, c, t0); len(steps) != 0 {
		t.Fatalf("first sample gave %d STEPs, want none (no rate without a previous sample)", len(steps))
	}
	steps := fxCollect(t, c, t0.Add(time.Second))
	after := usedDisks(t)
	for _, s := range steps {
		t.Log(s.Event.Description)
		r, w, io := fxFloat(t, s, "read_bytes_per_sec"), fxFloat(t, s, "write_bytes_per_sec"), fxFloat(t, s, "io_bytes_per_sec")
		if r < 0 || w < 0 || io < r || io < w || io > 100e9 {
			t.Errorf("%s: read %v write %v io %v", s.Event.Description, r, w, io)
		}
	}
	// Every disk used before the samples has a STEP, and only disks
	// (a disk first used meanwhile may or may not have one).
	got := devices(steps, "device")
	for _, d := range before {
		if !slices.Contains(got, d) {
			t.Errorf("no STEP for disk %s; STEPs for %q", d, got)
		}
	}
	for _, d := range got {
		if !slices.Contains(after, d) {
			t.Errorf("STEP for %s, which is not a used disk (%q)", d, after)
		}
	}
}
