package hostmon

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/host"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/step"
)

// fxUtmpRecord is glibc's struct utmp on Linux (384 bytes, the same on
// 32- and 64-bit: times are 32-bit there), which gopsutil decodes.
type fxUtmpRecord struct {
	Type    int16
	_       [2]byte
	Pid     int32
	Line    [32]byte
	ID      [4]byte
	User    [32]byte
	Host    [256]byte
	Exit    [2]int16
	Session int32
	TvSec   int32
	TvUsec  int32
	AddrV6  [4]int32
	_       [20]byte
}

const (
	utBootTime     = 2
	utLoginProcess = 6
	utUserProcess  = 7
	utDeadProcess  = 8
)

func utmpRecord(typ int16, user, line, host string, at time.Time) fxUtmpRecord {
	r := fxUtmpRecord{Type: typ, Pid: 4242, TvSec: int32(at.Unix())}
	copy(r.User[:], user)
	copy(r.Line[:], line)
	copy(r.Host[:], host)
	return r
}

// writeUtmp writes records as a utmp file at name.
func writeUtmp(t *testing.T, name string, recs ...fxUtmpRecord) {
	t.Helper()
	var b bytes.Buffer
	for _, r := range recs {
		if err := binary.Write(&b, binary.LittleEndian, r); err != nil {
			t.Fatal(err)
		}
	}
	if b.Len() != 384*len(recs) {
		t.Fatalf("utmp records of %d bytes, want 384", b.Len()/len(recs))
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func usersField(t *testing.T, steps []*step.Step) (int, []string) {
	t.Helper()
	m := fxByType(steps, "system.users")
	if len(m) != 1 {
		t.Fatalf("%d system.users STEPs, want 1", len(m))
	}
	names, _ := m[0].Space.Fields["names"].([]string)
	return int(fxFloat(t, m[0], "users")), names
}

func TestUsersLogindGolden(t *testing.T) {
	leakcheck.Check(t)
	root := fxRoot(t)
	sessions := filepath.Join(root, "run/systemd/sessions")
	// logind keeps a FIFO beside each session file; opening it would block.
	if err := syscall.Mkfifo(filepath.Join(sessions, "3.ref"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := fxCollector(t, "users", fxEnv(root))

	first := fxCollect(t, c, fxT0)
	fxGolden(t, "users_logind_t0", first)
	// Sessions open at start are not logins. Not counted: the greeter,
	// the closing session and the one with neither seat nor terminal.
	if len(first) != 1 {
		t.Fatalf("first call: %d STEPs, want only system.users", len(first))
	}
	if n, names := usersField(t, first); n != 2 || !slices.Equal(names, []string{"alice", "bob"}) {
		t.Fatalf("users %d %v, want 2 [alice bob]", n, names)
	}

	// alice logs out, carol logs in.
	if err := os.Remove(filepath.Join(sessions, "3")); err != nil {
		t.Fatal(err)
	}
	carol := "USER=carol\nSTATE=active\nCLASS=user\nTTY=pts/2\nREMOTE_HOST=203.0.113.9\nREALTIME=1763711999500000\n"
	if err := os.WriteFile(filepath.Join(sessions, "12"), []byte(carol), 0o644); err != nil {
		t.Fatal(err)
	}
	second := fxCollect(t, c, fxT2)
	fxGolden(t, "users_logind_t2", second)
	out, in := fxByType(second, "user.logout"), fxByType(second, "user.login")
	if len(out) != 1 || len(in) != 1 {
		t.Fatalf("%d logouts and %d logins, want 1 and 1", len(out), len(in))
	}
	if u, _ := out[0].String("user"); u != "alice" || out[0].Time.Start != fxT2.UnixMilli() {
		t.Errorf("logout of %q at %d", u, out[0].Time.Start)
	}
	if u, _ := in[0].String("user"); u != "carol" || in[0].Time.Start != 1763711999000 {
		t.Errorf("login of %q at %d, want carol at her session's start", u, in[0].Time.Start)
	}
	if h, _ := in[0].String("host"); h != "203.0.113.9" {
		t.Errorf("login from %q", h)
	}
	if IsMetric(in[0]) || !IsMetric(fxByType(second, "system.users")[0]) {
		t.Error("logins must be events, system.users a metric")
	}
	if n, names := usersField(t, second); n != 2 || !slices.Equal(names, []string{"bob", "carol"}) {
		t.Fatalf("users %d %v, want 2 [bob carol]", n, names)
	}
}

func TestUsersUtmpGolden(t *testing.T) {
	root := fxRoot(t) // its logind sessions must be ignored while there is a utmp file
	utmp := filepath.Join(root, "var/run/utmp")
	boot := utmpRecord(utBootTime, "reboot", "~", "6.8.0", fxT0.Add(-time.Hour))
	getty := utmpRecord(utLoginProcess, "LOGIN", "tty1", "", fxT0.Add(-time.Hour))
	erin := utmpRecord(utUserProcess, "erin", "pts/0", "2001:db8::7", fxT0.Add(-10*time.Minute))
	frank := utmpRecord(utUserProcess, "frank", "tty2", "", fxT0.Add(-5*time.Minute))
	writeUtmp(t, utmp, boot, getty, erin, frank)
	c := fxCollector(t, "users", fxEnv(root))
	first := fxCollect(t, c, fxT0)
	if n, names := usersField(t, first); n != 2 || !slices.Equal(names, []string{"erin", "frank"}) {
		t.Fatalf("users %d %v, want 2 [erin frank] from utmp", n, names)
	}

	// erin's record is marked dead; frank opens a second session.
	erinGone := erin
	erinGone.Type = utDeadProcess
	frank2 := utmpRecord(utUserProcess, "frank", "pts/3", "192.0.2.44", fxT0.Add(time.Second))
	writeUtmp(t, utmp, boot, getty, erinGone, frank, frank2)
	second := fxCollect(t, c, fxT2)
	fxGolden(t, "users_utmp_t2", second)
	if got := len(fxByType(second, "user.logout")); got != 1 {
		t.Errorf("%d logouts, want 1", got)
	}
	in := fxByType(second, "user.login")
	if len(in) != 1 {
		t.Fatalf("%d logins, want 1", len(in))
	}
	if term, _ := in[0].String("terminal"); term != "pts/3" || in[0].Time.Start != fxT0.Add(time.Second).UnixMilli() {
		t.Errorf("login on %q at %d", term, in[0].Time.Start)
	}
	if n, names := usersField(t, second); n != 2 || !slices.Equal(names, []string{"frank"}) {
		t.Fatalf("users %d %v, want 2 sessions of [frank]", n, names)
	}
}

// A host's root mounted elsewhere: its /var/run is a symlink to /run,
// absolute, so it leads out of the mounted tree; the collector reads
// <HostRun>/utmp instead.
func TestUsersUtmpUnderRun(t *testing.T) {
	root := fxRoot(t)
	if err := os.MkdirAll(filepath.Join(root, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent-hostmon-test/run", filepath.Join(root, "var/run")); err != nil {
		t.Fatal(err)
	}
	writeUtmp(t, filepath.Join(root, "run/utmp"), utmpRecord(utUserProcess, "gina", "pts/9", "", fxT0))
	c := fxCollector(t, "users", fxEnv(root))
	if n, names := usersField(t, fxCollect(t, c, fxT0)); n != 1 || !slices.Equal(names, []string{"gina"}) {
		t.Fatalf("users %d %v, want gina from <run>/utmp", n, names)
	}
}

func TestUsersUnavailable(t *testing.T) {
	_, err := Build("users", Config{Env: fxEnv(t.TempDir())})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Build on a tree without utmp or logind: %v, want ErrUnavailable", err)
	}
	// Once built, a source that goes away is an error of the interval,
	// not ErrUnavailable, which would stop the collector for good.
	root := fxRoot(t)
	c := fxCollector(t, "users", fxEnv(root))
	if err := os.RemoveAll(filepath.Join(root, "run/systemd")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Collect(t.Context(), fxT0); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Collect without a source: %v, want a plain error", err)
	}
}

func TestUsersStepsDuplicates(t *testing.T) {
	env := Env{Hostname: "h"}
	a := host.UserStat{User: "ann", Terminal: "seat0", Started: 100}
	// Two identical sessions, then one: one logout.
	steps := usersSteps(env, fxT0, []host.UserStat{a, a}, []host.UserStat{a}, true)
	fxCheck(t, steps)
	if len(fxByType(steps, "user.logout")) != 1 || len(fxByType(steps, "user.login")) != 0 {
		t.Fatalf("steps %v", steps)
	}
	// A start time in the future (a clock set back) is not used.
	b := host.UserStat{User: "bo", Terminal: "pts/1", Started: int(fxT0.Unix()) + 3600}
	steps = usersSteps(env, fxT0, nil, []host.UserStat{b}, true)
	if in := fxByType(steps, "user.login"); len(in) != 1 || in[0].Time.Start != fxT0.UnixMilli() {
		t.Fatalf("login %v", in)
	}
	// Nobody: names is an empty list, not null.
	steps = usersSteps(env, fxT0, nil, nil, false)
	fxCheck(t, steps)
	if n, names := usersField(t, steps); n != 0 || names == nil || len(names) != 0 {
		t.Fatalf("users %d %#v", n, names)
	}
}

func TestParseLogindSession(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
		want     host.UserStat
	}{
		{"ssh", "USER=al\nCLASS=user\nTTY=pts/1\nREMOTE_HOST=h\nREALTIME=2000000\n", true,
			host.UserStat{User: "al", Terminal: "pts/1", Host: "h", Started: 2}},
		{"graphical", "USER=al\nCLASS=user\nSEAT=seat0\n", true, host.UserStat{User: "al", Terminal: "seat0"}},
		{"early class", "USER=al\nCLASS=user-early\nTTY=tty1\n", true, host.UserStat{User: "al", Terminal: "tty1"}},
		{"greeter", "USER=gdm\nCLASS=greeter\nSEAT=seat0\n", false, host.UserStat{}},
		{"manager", "USER=al\nCLASS=manager\n", false, host.UserStat{}},
		{"closing", "USER=al\nCLASS=user\nTTY=pts/1\nSTATE=closing\n", false, host.UserStat{}},
		{"no user", "CLASS=user\nTTY=pts/1\n", false, host.UserStat{}},
		{"garbage", "\x00\x01 not a session", false, host.UserStat{}},
	} {
		got, ok := parseLogindSession([]byte(tc.in))
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestUsersRealHost(t *testing.T) {
	b, err := Build("users", Config{Env: Env{Hostname: "real"}})
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := b.(Collector)
	fxCollect(t, c, time.Now())
	steps := fxCollect(t, c, time.Now())
	n, names := usersField(t, steps)
	t.Log(fxByType(steps, "system.users")[0].Event.Description)
	if n < 0 || len(names) > n {
		t.Errorf("users %d names %v", n, names)
	}
}
