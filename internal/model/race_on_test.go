//go:build race

package model_test

// raceEnabled: under the race detector sync.Pool drops items at random, so pooled buffers are
// sometimes reallocated and allocation counts of pooled paths are not exact.
const raceEnabled = true
