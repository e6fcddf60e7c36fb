// Package poll waits, in tests, for a condition that another goroutine or process makes true and
// cannot announce on a channel (a replica following a model store, a server coming up): it checks
// the condition at a short interval until it holds, and fails the test, saying what did not
// happen, once a deadline passes. Every test that waits this way uses Until, so that no test
// sleeps for a fixed time hoping the condition holds by then.
package poll

import (
	"fmt"
	"testing"
	"time"
)

// Interval is how often Until checks its condition.
const Interval = 5 * time.Millisecond

// Until checks cond now and then every Interval until it returns true, and fails t with the
// formatted message when it has not within timeout. It returns how long the wait took.
func Until(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("not within %v: %s", timeout, fmt.Sprintf(format, args...))
		}
		<-tick.C
	}
	return time.Since(start)
}
