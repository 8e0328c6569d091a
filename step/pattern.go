package step

import (
	"fmt"
	"strings"

	"github.com/stk-go/stk/internal/glob"
)

// Pattern selects event types. It is a comma-separated list of globs in
// which '*' matches any run of characters, dots included: "system.cpu.*"
// matches "system.cpu.high"; "system.*" matches every system event;
// "*.high,*.critical" two families. The empty pattern matches everything.
type Pattern struct {
	globs []string
}

// ParsePattern compiles s. Globs may hold the characters of event types
// and '*'.
func ParsePattern(s string) (Pattern, error) {
	var p Pattern
	if strings.TrimSpace(s) == "" {
		return p, nil
	}
	for _, g := range strings.Split(s, ",") {
		g = strings.TrimSpace(g)
		if g == "" {
			return Pattern{}, fmt.Errorf("pattern %q has an empty entry", s)
		}
		if len(g) > MaxTypeLen {
			return Pattern{}, fmt.Errorf("pattern entry %q is longer than %d bytes", g, MaxTypeLen)
		}
		for i := 0; i < len(g); i++ {
			c := g[i]
			if !(c == '*' || c == '.' || c == '_' || c == '-' ||
				c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return Pattern{}, fmt.Errorf("pattern entry %q: only letters, digits, '_', '-', '.' and '*' are allowed", g)
			}
		}
		p.globs = append(p.globs, g)
	}
	return p, nil
}

// MustPattern is ParsePattern for patterns known to be valid; it panics
// otherwise.
func MustPattern(s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// All reports whether p matches every type.
func (p Pattern) All() bool { return len(p.globs) == 0 }

// String returns p in the form ParsePattern reads.
func (p Pattern) String() string { return strings.Join(p.globs, ",") }

// Match reports whether eventType matches one of p's globs.
func (p Pattern) Match(eventType string) bool {
	if len(p.globs) == 0 {
		return true
	}
	for _, g := range p.globs {
		if glob.Match(g, eventType) {
			return true
		}
	}
	return false
}
