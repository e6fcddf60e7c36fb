//go:build !race

package golearntree

const raceEnabled = false
