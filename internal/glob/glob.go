// Package glob matches strings against the simple globs of the name
// service's access policy and of STEP event-type patterns: '*' stands for
// any run of bytes (dots and slashes included, unlike path.Match) and '?'
// for any one byte. There are no character classes and no escapes.
package glob

// Match reports whether s matches the glob g. It runs in time linear in
// len(g)*len(s) at worst: the usual greedy match that backtracks only to
// the last star.
func Match(g, s string) bool {
	gi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		// A star first: a '*' in g is a wildcard even where s holds a '*'.
		case gi < len(g) && g[gi] == '*':
			star, mark = gi, si
			gi++
		case gi < len(g) && (g[gi] == '?' || g[gi] == s[si]):
			gi++
			si++
		case star >= 0:
			gi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for gi < len(g) && g[gi] == '*' {
		gi++
	}
	return gi == len(g)
}
