package hostmon

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/step"
)

// The testdata/process-lifetime trees (btime 04:40, 08:00:00 is tick
// 1200000), scanned at 08:00:00, +1, +3, +6 and +7 s:
//
//	pid  name   started  t0 t1 t2 t3 t4
//	300  sleep  +0.5 s       x           (short-lived)
//	300  sleep  +2.5 s          x        (the pid reused; short-lived)
//	400  nginx  +0.8 s       x  x  x     (long-lived: 5.2 s at t3)
//	450  cron   +0.9 s       x  x  x  x  (long-lived)
//	460  bash   +0.95 s      x           (short-lived)
//	500  sleep  +2.6 s          x        (short-lived)
var lifetimeTimes = []time.Duration{0, time.Second, 3 * time.Second, 6 * time.Second, 7 * time.Second}

// lifetimeRounds runs a collector with opts over the five trees and
// returns each round's STEPs.
func lifetimeRounds(t *testing.T, opts ProcessOptions) [][]*step.Step {
	return lifetimeRoundsFrom(t, 0, opts)
}

// lifetimeRoundsFrom starts with tree first (the collector's first scan).
func lifetimeRoundsFrom(t *testing.T, first int, opts ProcessOptions) [][]*step.Step {
	t.Helper()
	root := newEvRoot(t, "process-lifetime/t0")
	c := newFilteredProcesses(t, root.link, opts)
	var rounds [][]*step.Step
	for i, d := range lifetimeTimes[first:] {
		root.set(filepath.Join("process-lifetime", "t"+string(rune('0'+first+i))))
		rounds = append(rounds, fxCollect(t, c, fxT0.Add(d)))
	}
	return rounds
}

// checkRounds compares each round's evSummary with want.
func checkRounds(t *testing.T, rounds [][]*step.Step, want []string) {
	t.Helper()
	for i := range rounds {
		if got := evSummary(rounds[i]); got != want[i] {
			t.Errorf("t%d:\n%s\nwant\n%s", i, got, want[i])
		}
	}
}

// TestProcessMinLifetime: with the default minimum lifetime (5 s), a
// process that appears and is gone within it yields no process.start or
// process.exit, only a count in the short-lived summary (here every 5 s);
// a long-lived one is reported once it is 5 s old, with its real start
// time, and its exit later with its run time. cron is excluded by name.
func TestProcessMinLifetime(t *testing.T) {
	rounds := lifetimeRounds(t, ProcessOptions{SummaryInterval: 5 * time.Second, Exclude: []string{"cron"}})
	checkRounds(t, rounds, []string{
		"system.processes\n",
		"system.processes\n",
		"system.processes\n",
		"process.start 400 nginx\nsystem.processes.short_lived\nsystem.processes\n",
		"process.exit 400 nginx\nsystem.processes\n",
	})

	started := time.Unix(1763700000+12000, 800e6)
	start := rounds[3][0]
	if evField(t, start, "start_time") != float64(started.UnixMilli()) || start.Time.Start != fxT0.Add(6*time.Second).UnixMilli() ||
		evField(t, start, "cmdline") != "nginx -g daemon off;" || evField(t, start, "ppid") != 1.0 {
		t.Errorf("nginx start: %+v %v", start.Time, start.Space.Fields)
	}
	// Seen alive at +6 s, gone at +7 s: it ran 5.2 to 6.2 s.
	if got := evField(t, rounds[4][0], "runtime_seconds"); got != 5.7 {
		t.Errorf("nginx ran %v s, want 5.7", got)
	}

	sum := rounds[3][1]
	if IsMetric(sum) {
		t.Error("the short-lived summary is marked a metric: stepmon --events would hide it")
	}
	top, _ := evField(t, sum, "top").(map[string]any)
	if evField(t, sum, "count") != 4.0 || evField(t, sum, "period_seconds") != 6.0 || evField(t, sum, "per_minute") != 40.0 ||
		evField(t, sum, "min_lifetime_seconds") != 5.0 || evField(t, sum, "others") != 0.0 || evField(t, sum, "distinct_names") != 2.0 ||
		len(top) != 2 || top["sleep"] != int64(3) || top["bash"] != int64(1) {
		t.Errorf("summary: %v", sum.Space.Fields)
	}
	if want := "4 short-lived processes (ended within 5s) in the last 6s: sleep 3, bash 1"; sum.Event.Description != want {
		t.Errorf("summary description %q, want %q", sum.Event.Description, want)
	}
}

// TestProcessMinLifetimeFirstScan: processes the first scan finds young
// (started just before the monitor) are treated as any new process: no
// exit for one that ends young (it is counted), a start for one that
// lives long enough. Old ones are not reported (the first scan learns
// them), but their exits are.
func TestProcessMinLifetimeFirstScan(t *testing.T) {
	rounds := lifetimeRoundsFrom(t, 1, ProcessOptions{SummaryInterval: 5 * time.Second})
	checkRounds(t, rounds, []string{
		"system.processes\n",
		"system.processes\n",
		"process.start 400 nginx\nprocess.start 450 cron\nsystem.processes.short_lived\nsystem.processes\n",
		"process.exit 400 nginx\nsystem.processes\n",
	})
	if sum := rounds[2][2]; evField(t, sum, "count") != 4.0 || evField(t, sum, "period_seconds") != 5.0 {
		t.Errorf("summary: %v", sum.Space.Fields)
	}
	// A minimum lifetime shorter than every process's age at the first
	// scan: nothing is young, the exits of what the first scan saw are
	// reported, as without one.
	rounds = lifetimeRoundsFrom(t, 1, ProcessOptions{MinLifetime: 10 * time.Millisecond, SummaryInterval: -1})
	checkRounds(t, rounds, []string{
		"system.processes\n",
		"process.exit 300 sleep\nprocess.exit 460 bash\nprocess.start 300 sleep\nprocess.start 500 sleep\nsystem.processes\n",
		"process.exit 300 sleep\nprocess.exit 500 sleep\nsystem.processes\n",
		"process.exit 400 nginx\nsystem.processes\n",
	})
}

// TestProcessNameFilters: Include limits the processes reported to the
// names it matches, Exclude drops names and wins over Include; a process
// left out is not counted as short-lived either.
func TestProcessNameFilters(t *testing.T) {
	// Every process a scan sees, but only nginx (sleep is included and
	// excluded: excluded).
	rounds := lifetimeRounds(t, ProcessOptions{MinLifetime: -1, SummaryInterval: -1, Include: []string{"ngin*", "sleep"}, Exclude: []string{"sleep"}})
	checkRounds(t, rounds, []string{
		"system.processes\n",
		"process.start 400 nginx\nsystem.processes\n",
		"system.processes\n",
		"system.processes\n",
		"process.exit 400 nginx\nsystem.processes\n",
	})
	// Without filters and without a minimum lifetime, everything.
	rounds = lifetimeRounds(t, ProcessOptions{MinLifetime: -1, SummaryInterval: -1})
	checkRounds(t, rounds, []string{
		"system.processes\n",
		"process.start 300 sleep\nprocess.start 400 nginx\nprocess.start 450 cron\nprocess.start 460 bash\nsystem.processes\n",
		"process.exit 300 sleep\nprocess.exit 460 bash\nprocess.start 300 sleep\nprocess.start 500 sleep\nsystem.processes\n",
		"process.exit 300 sleep\nprocess.exit 500 sleep\nsystem.processes\n",
		"process.exit 400 nginx\nsystem.processes\n",
	})
	// Only cron, with the default minimum lifetime: reported at +6 s,
	// when it is 5.1 s old; the short-lived sleeps and bash are not cron.
	rounds = lifetimeRounds(t, ProcessOptions{SummaryInterval: 5 * time.Second, Include: []string{"cron"}})
	checkRounds(t, rounds, []string{
		"system.processes\n",
		"system.processes\n",
		"system.processes\n",
		"process.start 450 cron\nsystem.processes\n",
		"system.processes\n",
	})
	// Only sleep: the summary counts the three sleeps alone.
	rounds = lifetimeRounds(t, ProcessOptions{SummaryInterval: 5 * time.Second, Include: []string{"sleep"}})
	if got := evSummary(rounds[3]); got != "system.processes.short_lived\nsystem.processes\n" {
		t.Fatalf("t3:\n%s", got)
	}
	if sum := rounds[3][0]; evField(t, sum, "count") != 3.0 {
		t.Errorf("summary with only sleep included: %v", sum.Space.Fields)
	}
}

func TestProcessOptionsValidate(t *testing.T) {
	_, err := Build("processes", Config{Env: evEnv(filepath.Join("testdata", "process-lifetime", "t0", "proc")), Processes: ProcessOptions{Exclude: []string{"[a-"}}})
	if err == nil || !strings.Contains(err.Error(), `"[a-"`) {
		t.Fatalf("malformed pattern: %v", err)
	}
}
