package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version describes the running binary for --version: the program, the
// module version (a tag when built by `go install module@version`, else
// "devel"), the VCS revision and time it was built from when the go command
// recorded them (with "+dirty" for uncommitted changes), and the Go version.
func Version(prog string) string {
	v, rev := "devel", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		var revision, when, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
		if len(revision) > 12 {
			revision = revision[:12]
		}
		if revision != "" {
			rev = " (" + revision + dirty
			if when != "" {
				rev += ", " + when
			}
			rev += ")"
		}
	}
	return fmt.Sprintf("%s %s%s %s %s/%s", prog, v, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
