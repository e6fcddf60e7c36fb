package gcconfig_test

import (
	"errors"
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/churnhq/churn/internal/gcconfig"
)

// isolate restores the collector's settings after the test and runs it with none of the variables
// Apply reads set.
func isolate(t *testing.T) {
	t.Helper()
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	debug.SetGCPercent(percent)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "AUTOMEMLIMIT"} {
		if v, ok := os.LookupEnv(k); ok {
			os.Unsetenv(k)
			t.Cleanup(func() { os.Setenv(k, v) })
		}
	}
}

func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func fixedLimit(n uint64) (memlimit.Provider, *int) {
	calls := new(int)
	return func() (uint64, error) { *calls++; return n, nil }, calls
}

func TestDefaultsUnderACgroupLimit(t *testing.T) {
	isolate(t)
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	const gib = 1 << 30
	s, err := gcconfig.Apply(memlimit.Limit(gib))
	if err != nil {
		t.Fatal(err)
	}
	want := gcconfig.Settings{GCPercent: gcconfig.LimitedGCPercent, GCPercentFrom: "memory limit", MemoryLimit: 966_367_641, MemoryLimitFrom: "cgroup"} // 0.9 GiB, rounded down
	if s != want {
		t.Errorf("settings %+v, want %+v", s, want)
	}
	if got := gcPercent(); got != gcconfig.LimitedGCPercent {
		t.Errorf("GC percent %d, want %d", got, gcconfig.LimitedGCPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != want.MemoryLimit {
		t.Errorf("memory limit %d, want %d", got, want.MemoryLimit)
	}
}

// TestNoMemoryLimit: without a limit Go's defaults stay, GOGC=100 included.
func TestNoMemoryLimit(t *testing.T) {
	isolate(t)
	debug.SetGCPercent(100)
	s, err := gcconfig.Apply(func() (uint64, error) { return 0, memlimit.ErrNoLimit })
	if err != nil {
		t.Fatal(err)
	}
	want := gcconfig.Settings{GCPercent: 100, GCPercentFrom: "go default", MemoryLimit: math.MaxInt64, MemoryLimitFrom: "none"}
	if s != want || gcPercent() != 100 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("settings %+v (runtime %d, %d), want %+v", s, gcPercent(), debug.SetMemoryLimit(-1), want)
	}
}

// TestGOMEMLIMITAlone: a limit from the environment is a limit too: GOGC gets churnd's default,
// and the cgroup is not asked.
func TestGOMEMLIMITAlone(t *testing.T) {
	isolate(t)
	t.Setenv("GOMEMLIMIT", "300MiB")
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(300 << 20)
	limit, calls := fixedLimit(1 << 30)
	s, err := gcconfig.Apply(limit)
	want := gcconfig.Settings{GCPercent: gcconfig.LimitedGCPercent, GCPercentFrom: "memory limit", MemoryLimit: 300 << 20, MemoryLimitFrom: "GOMEMLIMIT"}
	if err != nil || s != want || gcPercent() != gcconfig.LimitedGCPercent || debug.SetMemoryLimit(-1) != 300<<20 || *calls != 0 {
		t.Errorf("settings %+v, err %v, runtime %d, %d, provider called %d times; want %+v, not called", s, err, gcPercent(), debug.SetMemoryLimit(-1), *calls, want)
	}
}

// TestGOGCAlone: GOGC from the environment stays, and the container's limit still applies.
func TestGOGCAlone(t *testing.T) {
	isolate(t)
	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	s, err := gcconfig.Apply(memlimit.Limit(1 << 30))
	want := gcconfig.Settings{GCPercent: 150, GCPercentFrom: "GOGC", MemoryLimit: 966_367_641, MemoryLimitFrom: "cgroup"}
	if err != nil || s != want || gcPercent() != 150 || debug.SetMemoryLimit(-1) != want.MemoryLimit {
		t.Errorf("settings %+v, err %v, runtime %d, %d; want %+v", s, err, gcPercent(), debug.SetMemoryLimit(-1), want)
	}
}

// TestEmptyVariablesAreUnset: GOGC= and GOMEMLIMIT= (templating leaves them so) mean nothing to
// the runtime, so they must not switch off churnd's defaults.
func TestEmptyVariablesAreUnset(t *testing.T) {
	isolate(t)
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	debug.SetGCPercent(100)
	s, err := gcconfig.Apply(memlimit.Limit(1 << 30))
	want := gcconfig.Settings{GCPercent: gcconfig.LimitedGCPercent, GCPercentFrom: "memory limit", MemoryLimit: 966_367_641, MemoryLimitFrom: "cgroup"}
	if err != nil || s != want || gcPercent() != gcconfig.LimitedGCPercent || debug.SetMemoryLimit(-1) != want.MemoryLimit {
		t.Errorf("settings %+v, err %v, runtime %d, %d; want %+v", s, err, gcPercent(), debug.SetMemoryLimit(-1), want)
	}
}

// TestNoCgroup: outside a cgroup, or on a system without cgroups (a developer's Mac), there is
// no limit and nothing to warn about.
func TestNoCgroup(t *testing.T) {
	for _, cause := range []error{memlimit.ErrNoCgroup, memlimit.ErrCgroupsNotSupported} {
		isolate(t)
		debug.SetGCPercent(100)
		s, err := gcconfig.Apply(func() (uint64, error) { return 0, cause })
		want := gcconfig.Settings{GCPercent: 100, GCPercentFrom: "go default", MemoryLimit: math.MaxInt64, MemoryLimitFrom: "none"}
		if err != nil || s != want {
			t.Errorf("%v: settings %+v, err %v; want %+v and no error", cause, s, err, want)
		}
	}
}

func TestAutomemlimit(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		isolate(t)
		t.Setenv("AUTOMEMLIMIT", "off")
		debug.SetMemoryLimit(math.MaxInt64)
		limit, calls := fixedLimit(1 << 30)
		s, err := gcconfig.Apply(limit)
		if err != nil || s.MemoryLimitFrom != "off" || *calls != 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 || s.GCPercentFrom != "go default" {
			t.Errorf("settings %+v, err %v, provider called %d times; want the limit off and Go's GOGC", s, err, *calls)
		}
	})
	t.Run("ratio", func(t *testing.T) {
		isolate(t)
		t.Setenv("AUTOMEMLIMIT", "0.5")
		s, err := gcconfig.Apply(memlimit.Limit(1 << 30))
		if err != nil || s.MemoryLimit != 1<<29 || s.MemoryLimitFrom != "cgroup" {
			t.Errorf("settings %+v, err %v; want half of 1 GiB from the cgroup", s, err)
		}
	})
	t.Run("bad", func(t *testing.T) {
		isolate(t)
		t.Setenv("AUTOMEMLIMIT", "lots")
		debug.SetMemoryLimit(math.MaxInt64)
		s, err := gcconfig.Apply(memlimit.Limit(1 << 30))
		if err == nil || debug.SetMemoryLimit(-1) != math.MaxInt64 || s.MemoryLimitFrom != "none" {
			t.Errorf("settings %+v, err %v, runtime limit %d; want an error and the limit unchanged", s, err, debug.SetMemoryLimit(-1))
		}
		if s.GCPercentFrom != "go default" {
			t.Errorf("GC percent %d from %s: without a limit GOGC stays Go's", s.GCPercent, s.GCPercentFrom)
		}
	})
}

func TestUnreadableCgroup(t *testing.T) {
	isolate(t)
	debug.SetMemoryLimit(math.MaxInt64)
	s, err := gcconfig.Apply(func() (uint64, error) { return 0, errors.New("cannot read memory.max") })
	if err == nil || s.MemoryLimitFrom != "none" || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("settings %+v, err %v; want the error and no limit", s, err)
	}
}
