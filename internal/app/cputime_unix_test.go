//go:build unix

package app_test

import "syscall"

// processCPU is the CPU time the process has used so far, in nanoseconds, on all its threads
// (user and system), so it includes the garbage collector's background work.
func processCPU() (int64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), true
}
