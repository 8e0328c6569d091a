package testprog

import (
	"testing"
	"time"
)

// TestRun: a program's stdout and stderr come back apart, with its exit
// status.
func TestRun(t *testing.T) {
	out, errOut, code := Run(t, 10*time.Second, "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
	if out != "out\n" || errOut != "err\n" || code != 3 {
		t.Fatalf("Run: stdout %q, stderr %q, status %d; want \"out\\n\", \"err\\n\", 3", out, errOut, code)
	}
	if _, _, code := Run(t, 10*time.Second, "/bin/sh", "-c", "true"); code != 0 {
		t.Fatalf("Run of true: status %d", code)
	}
}
