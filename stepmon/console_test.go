package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/hostmon"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"
)

func TestConsoleLines(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 678e6, time.Local)
	env := hostmon.Env{Hostname: "db-2"}
	metric := env.NewMetric("system.cpu", "cpu 12%", at)
	alert := env.NewStep("system.memory.high", "memory use at 91% (critical threshold 90%)", at)
	alert.Set("level", step.LevelCritical)
	file := env.NewStep("file.create", "created /tmp/evil\x1b[2J\nname", at)

	var out bytes.Buffer
	c := newConsole(&out, false, true, false, testutil.Discard())
	for _, s := range []*step.Step{metric, alert, file} {
		c.print(s)
	}
	want := "2026-01-02 15:04:05.678 METRIC     system.cpu           db-2 cpu 12%\n" +
		"2026-01-02 15:04:05.678 \x1b[1;31mCRITICAL\x1b[0m   system.memory.high   db-2 memory use at 91% (critical threshold 90%)\n" +
		"2026-01-02 15:04:05.678 INFO       file.create          db-2 created /tmp/evil [2J name\n"
	if out.String() != want {
		t.Errorf("human lines:\n%q\nwant\n%q", out.String(), want)
	}

	out.Reset()
	c = newConsole(&out, false, false, true, testutil.Discard()) // no colour, events only
	for _, s := range []*step.Step{metric, alert} {
		c.print(s)
	}
	if got := out.String(); strings.Contains(got, "\x1b") || strings.Contains(got, "system.cpu ") || !strings.Contains(got, " CRITICAL   system.memory.high") {
		t.Errorf("events only, no colour: %q", got)
	}

	out.Reset()
	c = newConsole(&out, true, false, false, testutil.Discard())
	c.print(alert)
	c.print(metric)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("JSON output %q: want two lines", out.String())
	}
	for _, l := range lines {
		if _, err := step.Parse([]byte(l)); err != nil {
			t.Errorf("JSON line %q: %v", l, err)
		}
	}
}
