package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMemoryContract(t *testing.T) {
	testContract(t, func(t *testing.T, now func() time.Time) Cache {
		c := NewMemory(MemoryOptions{TTL: contractTTL, Now: now})
		t.Cleanup(func() { _ = c.Close() })
		return c
	})
}

func TestMemoryEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := NewMemory(MemoryOptions{MaxEntries: 3})
	mustPut(t, c, entry("a", 0.5, high, 1), entry("b", 0.5, high, 2), entry("c", 0.5, high, 3))
	if _, _, err := c.Get(ctx, "a"); err != nil { // a is now the most recently used
		t.Fatalf("Get(a): %v", err)
	}
	mustPut(t, c, entry("d", 0.5, high, 4))
	if _, _, err := c.Get(ctx, "b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(b) after eviction = %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff([]string{"d", "c", "a"}, listIDs(t, c, high)); diff != "" {
		t.Errorf("watchlist after eviction (-want +got):\n%s", diff)
	}
}

func TestMemoryNoTTLKeeps(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	c := NewMemory(MemoryOptions{Now: clock.Now})
	mustPut(t, c, entry("a", 0.5, high, 1))
	clock.Advance(1000 * time.Hour)
	if _, _, err := c.Get(context.Background(), "a"); err != nil {
		t.Errorf("Get without TTL after 1000h: %v", err)
	}
}

func TestMemoryClose(t *testing.T) {
	t.Parallel()
	c := NewMemory(MemoryOptions{})
	mustPut(t, c, entry("a", 0.5, high, 1))
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, _, err := c.Get(context.Background(), "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Close = %v, want ErrNotFound", err)
	}
}
