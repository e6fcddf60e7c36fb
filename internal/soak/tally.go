package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxProblems is how many problem descriptions a run keeps (all are counted).
const maxProblems = 20

// errKey is a kind of failed call: its method, gRPC code and why the README documents the code
// for what the soak does ("" when it does not: see allowed).
type errKey struct {
	method string
	code   codes.Code
	reason string
}

func (k errKey) String() string {
	s := k.method + "/" + k.code.String()
	if k.reason != "" {
		return s + " (" + k.reason + ")"
	}
	return s
}

// tally counts what the load did, for the interval since the last sample and for the whole run.
// It is shared by every load goroutine.
type tally struct {
	mu             sync.Mutex
	ok             map[string]int64 // method → customers scored (calls for GetScore), this interval
	errs           map[errKey]int64 // this interval
	total          map[errKey]int64
	okTotal        map[string]int64
	first          map[errKey]string // the first message of each kind
	slowest        time.Duration     // the longest Score call, this interval
	abandoned      int64             // this interval
	abandonedTotal int64
	events         []string // this interval
	problems       []string
	nProblems      int
}

func newTally() *tally {
	return &tally{ok: map[string]int64{}, errs: map[errKey]int64{}, total: map[errKey]int64{},
		okTotal: map[string]int64{}, first: map[errKey]string{}}
}

func (t *tally) add(method string, n int) {
	t.mu.Lock()
	t.ok[method] += int64(n)
	t.okTotal[method] += int64(n)
	t.mu.Unlock()
}

// took notes how long a Score call took.
func (t *tally) took(d time.Duration) {
	t.mu.Lock()
	t.slowest = max(t.slowest, d)
	t.mu.Unlock()
}

// fail counts a failed call or item.
func (t *tally) fail(method string, code codes.Code, msg string, reason string) {
	k := errKey{method, code, reason}
	t.mu.Lock()
	t.errs[k]++
	t.total[k]++
	if _, seen := t.first[k]; !seen {
		t.first[k] = shorten(msg)
	}
	t.mu.Unlock()
}

// failErr counts a failed call by its status.
func (t *tally) failErr(method string, err error, allowed func(codes.Code) string) {
	st := status.Convert(err)
	t.fail(method, st.Code(), st.Message(), allowed(st.Code()))
}

func (t *tally) abandon(n int) {
	t.mu.Lock()
	t.abandoned += int64(n)
	t.abandonedTotal += int64(n)
	t.mu.Unlock()
}

// event notes something the schedule did (a swap, a restart), shown with the next sample.
func (t *tally) event(format string, args ...any) {
	t.mu.Lock()
	t.events = append(t.events, fmt.Sprintf(format, args...))
	t.mu.Unlock()
}

// problem records a failure that is not a call's status (a response naming the wrong model, a
// short stream, a failed scrape); every problem fails the run.
func (t *tally) problem(format string, args ...any) {
	msg := fmt.Sprintf("%s %s", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
	t.mu.Lock()
	t.nProblems++
	if len(t.problems) < maxProblems {
		t.problems = append(t.problems, shorten(msg))
	}
	t.events = append(t.events, "PROBLEM: "+shorten(fmt.Sprintf(format, args...)))
	t.mu.Unlock()
}

// interval is what happened since the last call to take.
type interval struct {
	ok        map[string]int64
	errs      map[errKey]int64
	slowest   time.Duration
	abandoned int64
	events    []string
}

func (t *tally) take() interval {
	t.mu.Lock()
	defer t.mu.Unlock()
	iv := interval{ok: t.ok, errs: t.errs, slowest: t.slowest, abandoned: t.abandoned, events: t.events}
	t.ok, t.errs, t.slowest, t.abandoned, t.events = map[string]int64{}, map[errKey]int64{}, 0, 0, nil
	return iv
}

// errorsText is the interval's errors, e.g. "GetScore/Unavailable (documented)×3", or "-".
func (iv interval) errorsText() string {
	if len(iv.errs) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range sortedKeys(iv.errs) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, iv.errs[k]))
	}
	return strings.Join(parts, " ")
}

func sortedKeys(m map[errKey]int64) []errKey {
	return slices.SortedFunc(maps.Keys(m), func(a, b errKey) int {
		return strings.Compare(a.String(), b.String())
	})
}

// shorten keeps a message to one line of at most 200 bytes.
func shorten(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
