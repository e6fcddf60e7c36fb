// Package gcconfig sets the Go garbage collector's defaults for churnd.
//
// churnd's live heap is small (the model and whatever the score cache holds) next to what every
// request allocates and drops (the request, the response and gRPC's buffers, a few KB). With Go's
// default GOGC=100 the collector then runs many times a second; on the 2-vCPU machines where it
// was measured, GOGC=200 gave 15–36% more Score throughput with the in-process cache and 1–24%
// with Redis (docs/PERFORMANCE.md, "Stop 9"), for a heap that may grow to three times the live
// heap instead of twice.
//
// That trade of memory for CPU is only safe when churnd knows how much memory it has. So when it
// runs under a cgroup memory limit (a container), GOMEMLIMIT becomes MemoryLimitRatio of it (the
// collector works harder as the heap nears it), and with a memory limit in force, from the
// container or from GOMEMLIMIT, GOGC defaults to LimitedGCPercent. Without one, Go's own defaults
// stay. Reading the limit of cgroup v1 and v2 hierarchies is
// github.com/KimMachineGun/automemlimit's job.
//
// The environment wins: GOGC and GOMEMLIMIT, when set, are left as the runtime read them, and
// AUTOMEMLIMIT (a ratio in (0, 1], or "off") changes or disables the container limit's share.
package gcconfig

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// LimitedGCPercent is churnd's GOGC when the environment sets none and a memory limit is in force.
const LimitedGCPercent = 200

// MemoryLimitRatio is the share of a cgroup memory limit that becomes GOMEMLIMIT.
const MemoryLimitRatio = 0.9

// Settings is what Apply left in force, for the start-up log.
type Settings struct {
	GCPercent       int    // -1: off
	GCPercentFrom   string // "GOGC", "memory limit" (LimitedGCPercent) or "go default"
	MemoryLimit     int64  // bytes; math.MaxInt64: none
	MemoryLimitFrom string // "GOMEMLIMIT", "cgroup", "none" or "off" (AUTOMEMLIMIT=off)
}

// Apply sets the collector's defaults; limit reports the memory limit (memlimit.FromCgroup in
// churnd). A process outside any cgroup, or on a system without cgroups, has no limit, as when
// limit returns memlimit.ErrNoLimit. Another error (a cgroup file it cannot read, a bad
// AUTOMEMLIMIT) leaves the memory limit as it was: churnd runs on and logs it. An empty GOGC or
// GOMEMLIMIT counts as unset, as it does for the Go runtime.
func Apply(limit memlimit.Provider) (Settings, error) {
	var s Settings
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok && v == "" {
		os.Unsetenv("GOMEMLIMIT") // else memlimit would take it for a setting and skip the cgroup
	}
	fromEnv := os.Getenv("GOMEMLIMIT") != ""
	noLimit := false
	provider := func() (uint64, error) {
		n, err := limit()
		if errors.Is(err, memlimit.ErrNoCgroup) || errors.Is(err, memlimit.ErrCgroupsNotSupported) {
			err = memlimit.ErrNoLimit
		}
		noLimit = errors.Is(err, memlimit.ErrNoLimit)
		return n, err
	}
	n, err := memlimit.Set(memlimit.WithProvider(provider), memlimit.WithRatio(MemoryLimitRatio))
	s.MemoryLimit = n
	switch {
	case fromEnv:
		s.MemoryLimitFrom = "GOMEMLIMIT"
	case os.Getenv("AUTOMEMLIMIT") == "off":
		s.MemoryLimitFrom = "off"
	case noLimit || err != nil || n == math.MaxInt64:
		s.MemoryLimitFrom = "none"
	default:
		s.MemoryLimitFrom = "cgroup"
	}

	switch {
	case os.Getenv("GOGC") != "":
		s.GCPercent, s.GCPercentFrom = currentGCPercent(), "GOGC"
	case s.MemoryLimit != math.MaxInt64:
		debug.SetGCPercent(LimitedGCPercent)
		s.GCPercent, s.GCPercentFrom = LimitedGCPercent, "memory limit"
	default:
		s.GCPercent, s.GCPercentFrom = currentGCPercent(), "go default"
	}
	if err != nil {
		return s, fmt.Errorf("memory limit: %w", err)
	}
	return s, nil
}

// currentGCPercent reads the collector's GOGC without changing it.
func currentGCPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}
