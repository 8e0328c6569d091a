package main

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testprog"
)

// --version prints the version and exits 0; --log-format json makes every
// log line a JSON object.
func TestVersionAndJSONLogs(t *testing.T) {
	out, err := exec.Command(filepath.Join(bin, "stepmon"), "--version").Output()
	if err != nil {
		t.Fatalf("stepmon --version: %v", err)
	}
	if v := strings.TrimSpace(string(out)); !strings.HasPrefix(v, "stepmon ") || !strings.Contains(v, runtime.Version()) {
		t.Fatalf("--version printed %q", v)
	}

	p := testprog.Start(t, filepath.Join(bin, "stepmon"), "--log-format", "json", "--quiet", "--name-server", "",
		"--stkd-http", "", "--collectors", "cpu", "--interval", "100ms")
	p.WaitFor(t, `"msg":"stepmon running"`, 10*time.Second)
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	lines := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m["level"] == nil {
			t.Fatalf("not a JSON log line: %q (%v)", sc.Text(), err)
		}
		lines++
	}
	if lines == 0 {
		t.Fatal("no log line")
	}
	if out, err := exec.Command(filepath.Join(bin, "stepmon"), "--log-format", "xml").CombinedOutput(); err == nil || !strings.Contains(string(out), "--log-format") {
		t.Fatalf("--log-format xml: %v %s", err, out)
	}
}
