package glob

import (
	"strings"
	"testing"
	"time"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		g, s string
		want bool
	}{
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		{"*", "", true},
		{"*", "anything.at/all", true},
		{"**", "x", true},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"abc", "abcd", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"?", "", false},
		{"system.cpu.*", "system.cpu.high", true},
		{"system.cpu.*", "system.cpu", false},
		{"system.*", "system.disk.full", true},
		{"*.high", "system.cpu.high", true},
		{"*.high", "system.cpu.higher", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a*bc", "abcbc", true}, // backtracks past the first "bc"
		{"a*", "a*b", true},     // a '*' in s is matched by the wildcard
		{"a*b", "a*b", true},
		{"a*?", "a", false},
		{"a*?", "ab", true},
	} {
		if got := Match(c.g, c.s); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.g, c.s, got, c.want)
		}
	}
}

// TestMatchLinear: a pattern that makes naive recursive matchers
// exponential stays fast.
func TestMatchLinear(t *testing.T) {
	g := strings.Repeat("a*", 30) + "b"
	s := strings.Repeat("a", 3000)
	start := time.Now()
	if Match(g, s) {
		t.Fatal("matched a string without a b")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v: backtracking is not linear", d)
	}
}
