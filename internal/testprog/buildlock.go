package testprog

import (
	"os"
	"path/filepath"
	"syscall"
)

// goBuild runs the go command with args, one such build at a time across
// every test process of this machine. go test runs packages in parallel, and
// several of them build the same programs (stkd, the examples, the C
// library): run together on a cold cache they compile the same packages
// side by side on the same cores; run one after the other, every build but
// the first finds them in the build cache. On a fresh clone with empty
// caches this cut the README's test command by about a third here.
func goBuild(args ...string) ([]byte, error) {
	if f, err := os.OpenFile(filepath.Join(os.TempDir(), "stk-testprog-build.lock"), os.O_CREATE|os.O_RDWR, 0o666); err == nil {
		defer f.Close()
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX) == nil { // released by the close
			defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		}
	}
	return command(args...).CombinedOutput()
}
