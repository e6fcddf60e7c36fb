package server

import (
	"fmt"
	"testing"
	"time"
)

func TestAppendChunkGrowsWithWhatArrives(t *testing.T) {
	t.Parallel()
	chunk := make([]byte, 300)
	// Announced 1000: the buffer doubles with the bytes, and its last growth stops at the
	// announced size, so the complete upload is held once.
	var data []byte
	var caps []int
	for range 3 {
		data = appendChunk(data, chunk, 1000)
		caps = append(caps, cap(data))
	}
	data = appendChunk(data, chunk[:100], 1000)
	caps = append(caps, cap(data))
	if got, want := fmt.Sprint(caps), "[300 600 1000 1000]"; got != want {
		t.Errorf("capacities %s, want %s", got, want)
	}
	// Announced 64 MiB, one chunk arrived: the buffer holds the chunk, not the announcement.
	if got := cap(appendChunk(nil, chunk, 64<<20)); got != len(chunk) {
		t.Errorf("capacity after one chunk of a 64 MiB announcement = %d, want %d", got, len(chunk))
	}
	// Nothing announced: doubling alone.
	data = nil
	for range 3 {
		data = appendChunk(data, chunk, 0)
	}
	if cap(data) != 1200 || len(data) != 900 {
		t.Errorf("unannounced: len %d cap %d, want 900 and 1200", len(data), cap(data))
	}
}

func TestThrottledLogLetsOneLinePerKeyAndPeriod(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tl := &throttledLog{every: 10 * time.Second, now: func() time.Time { return now }}
	type result struct {
		ok         bool
		suppressed int
	}
	allow := func(key string) result {
		ok, n := tl.allow(key)
		return result{ok, n}
	}
	if got := allow("Score InvalidArgument"); got != (result{true, 0}) {
		t.Fatalf("first line = %v", got)
	}
	for range 5 {
		if got := allow("Score InvalidArgument"); got.ok {
			t.Fatal("a second line within the period was let through")
		}
	}
	if got := allow("Score NotFound"); got != (result{true, 0}) {
		t.Errorf("another key = %v, want its own first line", got)
	}
	now = now.Add(10 * time.Second)
	if got := allow("Score InvalidArgument"); got != (result{true, 5}) {
		t.Errorf("after the period = %v, want let through with 5 suppressed", got)
	}
	// Past maxThrottleKeys, new keys share one state: the map stays bounded.
	for i := range 2 * maxThrottleKeys {
		tl.allow(fmt.Sprint("key-", i))
	}
	if n := len(tl.keys); n > maxThrottleKeys+1 {
		t.Errorf("%d keys kept, want at most %d", n, maxThrottleKeys+1)
	}
}
