// Package sharedtest finds the project's shared material (../shared beside the repository: the
// public datasets, the standard test rows, the baselines) for tests. Outside CI a test whose
// file is absent is skipped, saying so; with CI=true it fails, so that CI never passes by
// skipping a real dependency.
package sharedtest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// dir is ../shared from the repository root, found from this file's own path, so that it does
// not depend on the calling package's depth.
func dir() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..", "..", "shared")
}

// Path returns the path of rel (e.g. "data/iranian_churn.csv") under ../shared, skipping the
// test when it is absent, or failing it when CI=true.
func Path(tb testing.TB, rel string) string {
	tb.Helper()
	path := filepath.Join(dir(), rel)
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is missing with CI=true: CI needs ../shared beside the checkout (%v)", rel, err)
		}
		tb.Skipf("%s is not beside the repository (%v)", rel, err)
	}
	return path
}
