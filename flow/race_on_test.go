//go:build race

package flow

// raceEnabled: the race detector is on (it allocates on its own, and
// sync.Pool drops items at random under it).
const raceEnabled = true
