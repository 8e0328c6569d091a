package hostmon

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/step"
)

func uname(t *testing.T) (release, machine string) {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	return unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:])
}

func TestHostGolden(t *testing.T) {
	leakcheck.Check(t)
	env := fxEnv(fxRoot(t))
	ctx := env.Context(t.Context())
	f, err := readHostStatic(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The platform comes from the fixture's /etc; the kernel and the
	// architecture from uname(2), which no fixture root changes.
	rel, mach := uname(t)
	if f.OS != runtime.GOOS || f.Platform != "ubuntu" || f.PlatformVersion != "24.04" || f.Kernel != rel || f.Arch != mach {
		t.Fatalf("host facts %+v; want ubuntu 24.04, kernel %s, arch %s", f, rel, mach)
	}
	if f.BootTime, err = readBootTime(ctx); err != nil || f.BootTime != 1763700000 {
		t.Fatalf("boot time %d, %v; want the fixture's btime 1763700000", f.BootTime, err)
	}
	f.Kernel, f.Arch = "6.8.0-49-generic", "x86_64" // the golden file must not depend on the test host
	s := hostStep(env, fxT0, f)
	fxCheck(t, []*step.Step{s})
	fxGolden(t, "host", []*step.Step{s})
	if up := fxFloat(t, s, "uptime_seconds"); up != 12000 {
		t.Errorf("uptime_seconds = %v, want 12000 (fxT0 - btime)", up)
	}
	if bt := fxFloat(t, s, "boot_time"); bt != 1763700000000 {
		t.Errorf("boot_time = %v, want Unix ms", bt)
	}
}

func TestHostCadence(t *testing.T) {
	c := fxCollector(t, "host", fxEnv(fxRoot(t)))
	at := func(d time.Duration) int { return len(fxCollect(t, c, fxT0.Add(d))) }
	if n := at(0); n != 1 {
		t.Fatalf("first call: %d STEPs, want 1", n)
	}
	// Every interval (1 s here) until a minute has passed, less half an
	// interval so that timer jitter does not push a report a whole
	// interval late.
	for _, d := range []time.Duration{time.Second, 30 * time.Second, 59 * time.Second} {
		if n := at(d); n != 0 {
			t.Fatalf("at +%v: %d STEPs, want none", d, n)
		}
	}
	if n := at(59*time.Second + 600*time.Millisecond); n != 1 {
		t.Fatalf("at +59.6s: %d STEPs, want 1", n)
	}
	if n := at(61 * time.Second); n != 0 {
		t.Fatalf("at +61s: %d STEPs, want none", n)
	}
	if n := at(-time.Hour); n != 1 {
		t.Fatalf("clock set back: %d STEPs, want a report at once", n)
	}
}

func TestHostBootTimeErrors(t *testing.T) {
	root := fxRoot(t)
	env := fxEnv(root)
	stat := filepath.Join(root, "proc/stat")
	for name, content := range map[string]string{
		"no btime":  "cpu0 1 2 3 4\nctxt 5\n",
		"bad btime": "btime soon\n",
	} {
		if err := os.WriteFile(stat, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		c := fxCollector(t, "host", env)
		if _, err := c.Collect(t.Context(), fxT0); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestUptimeText(t *testing.T) {
	for sec, want := range map[int64]string{0: "0m", 59: "0m", 3600 + 120: "1h 2m", 3*86400 + 7200 + 60: "3d 2h 1m"} {
		if got := uptimeText(sec); got != want {
			t.Errorf("uptimeText(%d) = %q, want %q", sec, got, want)
		}
	}
}

func TestHostRealHost(t *testing.T) {
	c := fxCollector(t, "host", Env{Hostname: "real"})
	now := time.Now()
	steps := fxCollect(t, c, now)
	if len(steps) != 1 {
		t.Fatalf("%d STEPs, want 1", len(steps))
	}
	s := steps[0]
	t.Log(s.Event.Description)
	rel, mach := uname(t)
	if k, _ := s.String("kernel"); k != rel {
		t.Errorf("kernel %q, uname says %q", k, rel)
	}
	if a, _ := s.String("arch"); a != mach {
		t.Errorf("arch %q, uname says %q", a, mach)
	}
	if o, _ := s.String("os"); o != runtime.GOOS {
		t.Errorf("os %q", o)
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	// btime and sysinfo's uptime agree to within a few seconds.
	if up := fxFloat(t, s, "uptime_seconds"); up <= 0 || math.Abs(up-float64(si.Uptime)) > 5 {
		t.Errorf("uptime_seconds = %v, sysinfo says %d", up, si.Uptime)
	}
	if bt := fxFloat(t, s, "boot_time"); bt <= 0 || bt > float64(now.UnixMilli()) {
		t.Errorf("boot_time = %v", bt)
	}
	if strings.TrimSpace(s.Event.Description) == "" {
		t.Error("no description")
	}
}

func TestParseOSRelease(t *testing.T) {
	for in, want := range map[string][2]string{
		"ID=ubuntu\nVERSION_ID=\"24.04\"\n":                 {"ubuntu", "24.04"},
		"NAME='Arch Linux'\nID=arch\nBUILD_ID=rolling\n":    {"arch", ""},
		"  ID=\"rhel\"  \nVERSION_ID='9.4'\n# ID=comment\n": {"rhel", "9.4"},
		"": {"", ""},
	} {
		id, v := parseOSRelease([]byte(in))
		if id != want[0] || v != want[1] {
			t.Errorf("parseOSRelease(%q) = %q, %q; want %q", in, id, v, want)
		}
	}
}

// Without os-release, gopsutil finds the platform from the other files.
func TestHostPlatformFallback(t *testing.T) {
	root := fxRoot(t)
	if err := os.Remove(filepath.Join(root, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/redhat-release"), []byte("Rocky Linux release 9.4 (Blue Onyx)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := readHostStatic(fxEnv(root).Context(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if f.Platform != "rocky" || f.PlatformVersion != "9.4" {
		t.Errorf("platform %q %q, want rocky 9.4 from redhat-release", f.Platform, f.PlatformVersion)
	}
}
