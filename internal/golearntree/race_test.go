//go:build race

package golearntree

// raceEnabled: the race detector makes golearn's map- and allocation-heavy fitting about ten
// times slower, so TestFaithful fits CART and the forest on fewer training rows under it.
const raceEnabled = true
