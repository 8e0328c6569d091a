package stkdproc_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/stkdproc"
	"github.com/stk-go/stk/internal/syncbuf"
	"github.com/stk-go/stk/internal/testprog"
)

func stkdBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs stkd: skipped with -short")
	}
	dir, err := testprog.Build("../../stkd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	testprog.Track(t)
	return filepath.Join(dir, "stkd")
}

// TestStartStop: Start returns the addresses of the "stkd running" line
// (the UI answers at HTTP), every line goes to Log and OnLine, a Wrap
// program runs stkd, and Stop ends it with SIGTERM.
func TestStartStop(t *testing.T) {
	bin := stkdBin(t)
	var log syncbuf.Buffer
	var lines atomic.Int64
	d, err := stkdproc.Start(context.Background(), bin, stkdproc.Options{
		Args: []string{"--steps-feed", "127.0.0.1:0"}, Wrap: []string{"env", "STK_TOKEN="},
		Log: &log, OnLine: func(string) { lines.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Kill()
	for what, a := range map[string]string{"names": d.Names, "monitor": d.Monitor, "http": d.HTTP, "steps": d.Steps} {
		if a == "" || strings.HasSuffix(a, ":0") {
			t.Errorf("%s address %q, want a bound one", what, a)
		}
	}
	if d.NamesUDP != "" || d.NamesTLS != "" {
		t.Errorf("UDP %q and TLS %q names listeners, want none (DefaultArgs)", d.NamesUDP, d.NamesTLS)
	}
	resp, err := http.Get(d.URL("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %s", resp.Status)
	}
	if rss, err := stkdproc.ProcStatus(d.Pid(), "VmRSS"); err != nil || rss <= 0 {
		t.Errorf("VmRSS of stkd: %d, %v", rss, err)
	}
	if _, err := stkdproc.ProcCPU(d.Pid()); err != nil {
		t.Errorf("CPU time of stkd: %v", err)
	}
	if err := d.Stop(10 * time.Second); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if !strings.Contains(log.String(), stkdproc.RunningMsg) || !strings.Contains(log.String(), "stkd stopping") {
		t.Errorf("Log lacks the start and stop lines:\n%s", log.String())
	}
	if n := int64(strings.Count(log.String(), "\n")); lines.Load() != n {
		t.Errorf("OnLine saw %d lines, Log %d", lines.Load(), n)
	}
	if _, err := stkdproc.ProcStatus(d.Pid(), "VmRSS"); err == nil {
		t.Error("ProcStatus of an exited stkd: no error")
	}
}

// TestStartFails: an stkd that exits at start is an error holding its
// last lines.
func TestStartFails(t *testing.T) {
	bin := stkdBin(t)
	_, err := stkdproc.Start(context.Background(), bin, stkdproc.Options{Args: []string{"--no-such-flag"}})
	if err == nil || !strings.Contains(err.Error(), "exited at start") || !strings.Contains(err.Error(), "no-such-flag") {
		t.Fatalf("stkd --no-such-flag: %v, want an error with its output", err)
	}
}

// TestParseRunning: the addresses of a start-up line, quoted values
// included; other lines are not it.
func TestParseRunning(t *testing.T) {
	line := `time=2026-12-05T21:27:39.584Z level=INFO msg="stkd running" names_tcp=127.0.0.1:33537 names_udp="" names_multicast="" names_tls=127.0.0.1:33289 monitor_tcp=127.0.0.1:41797 monitor_udp="" monitor_tls="" http=127.0.0.1:43467 steps_feed="" cluster_node=""`
	a, ok := stkdproc.ParseRunning(line)
	want := stkdproc.Addrs{Names: "tcp:127.0.0.1:33537", NamesTLS: "tls:127.0.0.1:33289", Monitor: "tcp:127.0.0.1:41797", HTTP: "127.0.0.1:43467"}
	if !ok || a != want {
		t.Errorf("ParseRunning: %+v, %v\nwant %+v", a, ok, want)
	}
	if _, ok := stkdproc.ParseRunning(`level=INFO msg="stkd stopping" names_tcp=1.2.3.4:5`); ok {
		t.Error("ParseRunning took another line")
	}
	if v := stkdproc.LogValue(`a=1 b="x \"y\"" c=`, "b"); v != `x "y"` {
		t.Errorf("LogValue of a quoted value: %q", v)
	}
}
