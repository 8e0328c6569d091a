// Package leakcheck lets a test check that it leaves no goroutine behind.
package leakcheck

import (
	"runtime"
	"testing"
	"time"
)

// Check records the number of goroutines now and, when the test ends (after
// the cleanups registered later, which close what the test opened), polls
// for up to two seconds until there are no more than that, then fails with a
// dump of every goroutine. Call it first in a test; do not use it in
// parallel tests.
func Check(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d goroutines before the test, %d after it\n%s", before, n, buf)
				return
			}
			time.Sleep(5 * time.Millisecond) // goroutines need a moment to exit
		}
	})
}
