package poll_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/poll"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	poll.Until(t, time.Minute, func() bool { return calls.Add(1) == 3 }, "the third call")
	if n := calls.Load(); n != 3 {
		t.Errorf("cond called %d times, want 3", n)
	}
}

// recorder is a testing.TB whose Fatalf records the message and stops the goroutine, as the
// real one does.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	panic(r)
}

func TestUntilFailsAfterTheTimeout(t *testing.T) {
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != r {
				t.Fatalf("Until did not fail the test: recovered %v", p)
			}
		}()
		poll.Until(r, 20*time.Millisecond, func() bool { return false }, "the answer: %d", 42)
	}()
	if !strings.Contains(r.msg, "not within 20ms") || !strings.Contains(r.msg, "the answer: 42") {
		t.Errorf("failure message %q, want the timeout and what did not happen", r.msg)
	}
}
