//go:build !unix

package app_test

// processCPU is not measured here; benchmarks report wall time only.
func processCPU() (int64, bool) { return 0, false }
