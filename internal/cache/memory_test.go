package cache

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

func TestMemoryContract(t *testing.T) {
	testContract(t, func(t *testing.T, now func() time.Time) scoreCache {
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

// fullMemory is an in-process cache holding n customers, a quarter in each tier, with 5,000
// distinct expected losses.
func fullMemory(b *testing.B, n int) *Memory {
	m := NewMemory(MemoryOptions{TTL: time.Hour, MaxEntries: n})
	tiers := []churnv1.RiskTier{low, medium, high, critical}
	for i := range n {
		if _, err := m.Put(context.Background(), []*churnv1.ScoreResponse{entry(fmt.Sprintf("c%d", i), 0.5, tiers[i%4], float64(i%5000))}); err != nil {
			b.Fatal(err)
		}
	}
	return m
}

// BenchmarkMemoryListAtRisk is the first page (50) of the HIGH watchlist of a full default-size
// in-process cache (100,000 customers).
func BenchmarkMemoryListAtRisk(b *testing.B) {
	m := fullMemory(b, 100_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := m.ListAtRisk(context.Background(), high, 50, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryPut is one customer's Put into a full default-size in-process cache: each
// replaces a customer already there (its tier and loss move it in the watchlists).
func BenchmarkMemoryPut(b *testing.B) {
	m := fullMemory(b, 100_000)
	tiers := []churnv1.RiskTier{low, medium, high, critical}
	es := make([]*churnv1.ScoreResponse, 1000)
	for i := range es {
		es[i] = entry(fmt.Sprintf("c%d", i*97), 0.5, tiers[(i+1)%4], float64(i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := m.Put(context.Background(), es[i%len(es):i%len(es)+1]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
