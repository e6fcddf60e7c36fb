package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// contractTTL is the TTL the contract suite's caches are made with.
const contractTTL = 2 * time.Second

// fakeClock is a clock the tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	low      = churnv1.RiskTier_RISK_TIER_LOW
	medium   = churnv1.RiskTier_RISK_TIER_MEDIUM
	high     = churnv1.RiskTier_RISK_TIER_HIGH
	critical = churnv1.RiskTier_RISK_TIER_CRITICAL
)

// entry makes an Entry whose response carries the same values.
func entry(id string, p float64, tier churnv1.RiskTier, loss float64) Entry {
	return Entry{
		CustomerID: id,
		Response: &churnv1.ScoreResponse{
			CustomerId:   id,
			Probability:  p,
			Tier:         tier,
			ExpectedLoss: loss,
			Model:        &churnv1.ModelRef{Name: "gbm", Version: "v1"},
			Warnings: []*churnv1.Warning{{
				Code: churnv1.WarningCode_WARNING_CODE_HIGH_RISK, Message: "tier", Value: p, Threshold: 0.5,
			}},
		},
		Probability:  p,
		Tier:         tier,
		ExpectedLoss: loss,
	}
}

// eventually polls cond every 10ms until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, msg)
		}
		<-tick.C
	}
}

func mustPut(t *testing.T, c Cache, entries ...Entry) []Previous {
	t.Helper()
	prevs, err := c.Put(context.Background(), entries)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if len(prevs) != len(entries) {
		t.Fatalf("Put returned %d previous, want %d", len(prevs), len(entries))
	}
	return prevs
}

// listAll pages through the watchlist and returns the customer ids in order.
func listIDs(t *testing.T, c Cache, minTier churnv1.RiskTier) []string {
	t.Helper()
	var ids []string
	tok := ""
	for range 100 {
		page, err := c.ListAtRisk(context.Background(), minTier, 7, tok)
		if err != nil {
			t.Fatalf("ListAtRisk: %v", err)
		}
		for _, r := range page.Responses {
			ids = append(ids, r.GetCustomerId())
		}
		if page.NextPageToken == "" {
			return ids
		}
		tok = page.NextPageToken
	}
	t.Fatal("ListAtRisk: more than 100 pages")
	return nil
}

func pageIDs(p Page) []string {
	ids := make([]string, len(p.Responses))
	for i, r := range p.Responses {
		ids[i] = r.GetCustomerId()
	}
	return ids
}

// testContract is the behaviour every Cache has. newCache returns an empty cache with TTL
// contractTTL whose clock is now (a Redis cache uses now for the write time only; its TTL runs on the
// server's clock).
func testContract(t *testing.T, newCache func(t *testing.T, now func() time.Time) Cache) {
	ctx := context.Background()

	t.Run("PutGetRoundTrip", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, newFakeClock().Now)
		e := entry("cust-1", 0.42, high, 1234.5)
		if got := mustPut(t, c, e); got[0] != (Previous{}) {
			t.Errorf("first Put previous = %+v, want none", got[0])
		}
		if e.Response.FromCache {
			t.Error("Put set FromCache on the caller's response")
		}
		got, prev, err := c.Get(ctx, "cust-1")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		want := proto.CloneOf(e.Response)
		want.FromCache = true
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
		if prev != (Previous{}) {
			t.Errorf("Get previous = %+v, want none", prev)
		}
		// The returned response is the caller's: changing it does not change the cache.
		got.Probability = 0.99
		again, _, err := c.Get(ctx, "cust-1")
		if err != nil || again.GetProbability() != 0.42 {
			t.Errorf("Get after mutating a returned response = %v, %v; want probability 0.42", again.GetProbability(), err)
		}
	})

	t.Run("PreviousOnSecondPut", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, newFakeClock().Now)
		mustPut(t, c, entry("a", 0.2, low, 10), entry("b", 0.3, medium, 20))
		prevs := mustPut(t, c, entry("a", 0.7, high, 70), entry("c", 0.1, low, 1), entry("a", 0.9, critical, 90))
		want := []Previous{{Found: true, Probability: 0.2}, {}, {Found: true, Probability: 0.7}}
		if diff := cmp.Diff(want, prevs); diff != "" {
			t.Errorf("second Put previous (-want +got):\n%s", diff)
		}
		resp, prev, err := c.Get(ctx, "a")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if resp.GetProbability() != 0.9 || prev != (Previous{Found: true, Probability: 0.7}) {
			t.Errorf("Get = p %v, previous %+v; want p 0.9, previous {true 0.7}", resp.GetProbability(), prev)
		}
		if _, prev, _ := c.Get(ctx, "b"); prev != (Previous{}) {
			t.Errorf("Get(b) previous = %+v, want none", prev)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, newFakeClock().Now)
		mustPut(t, c, entry("known", 0.5, medium, 5))
		if _, _, err := c.Get(ctx, "unknown"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(unknown) error = %v, want ErrNotFound", err)
		}
	})

	t.Run("EmptyPut", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, newFakeClock().Now)
		prevs, err := c.Put(ctx, nil)
		if err != nil || len(prevs) != 0 {
			t.Errorf("Put(nil) = %v, %v; want empty, nil", prevs, err)
		}
	})

	t.Run("UnmarshallableResponseWritesNothing", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, newFakeClock().Now)
		bad := entry("bad", 0.9, critical, 9)
		bad.Response.Warnings = []*churnv1.Warning{{Message: "not UTF-8: \xff"}}
		if _, err := c.Put(ctx, []Entry{entry("good", 0.9, critical, 9), bad}); err == nil {
			t.Fatal("Put of a response with a non-UTF-8 string succeeded")
		}
		for _, id := range []string{"good", "bad"} {
			if _, _, err := c.Get(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%s) after the failed Put: error = %v, want ErrNotFound (nothing written)", id, err)
			}
		}
	})

	t.Run("TTLExpiry", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		c := newCache(t, clock.Now)
		mustPut(t, c, entry("x", 0.8, critical, 800), entry("y", 0.6, high, 600))
		if _, _, err := c.Get(ctx, "x"); err != nil {
			t.Fatalf("Get before expiry: %v", err)
		}
		clock.Advance(contractTTL + time.Second)
		eventually(t, contractTTL+5*time.Second, func() bool {
			_, _, err := c.Get(ctx, "x")
			return errors.Is(err, ErrNotFound)
		}, "Get(x) returns ErrNotFound after the TTL")
		if _, _, err := c.Get(ctx, "y"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(y) after the TTL = %v, want ErrNotFound", err)
		}
		if ids := listIDs(t, c, medium); len(ids) != 0 {
			t.Errorf("ListAtRisk after the TTL = %v, want none", ids)
		}
		if prevs := mustPut(t, c, entry("x", 0.5, medium, 5)); prevs[0] != (Previous{}) {
			t.Errorf("Put after expiry previous = %+v, want none", prevs[0])
		}
		if ids := listIDs(t, c, medium); !cmp.Equal(ids, []string{"x"}) {
			t.Errorf("ListAtRisk after a new Put = %v, want [x]", ids)
		}
	})

	t.Run("WatchlistPagination", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, newFakeClock().Now)
		mustPut(t, c,
			entry("c1", 0.9, critical, 900),
			entry("c2", 0.8, high, 800),
			entry("c4", 0.6, medium, 500), // ties with c3 across the first page boundary
			entry("c3", 0.7, high, 500),
			entry("c5", 0.5, medium, 400),
			entry("c6", 0.6, critical, 300),
			entry("c7", 0.4, medium, 200),
			entry("c8", 0.3, medium, 100),
			entry("low1", 0.1, low, 5000), // LOW: never on the watchlist
		)
		p1, err := c.ListAtRisk(ctx, medium, 3, "")
		if err != nil {
			t.Fatalf("page 1: %v", err)
		}
		if diff := cmp.Diff([]string{"c1", "c2", "c3"}, pageIDs(p1)); diff != "" {
			t.Errorf("page 1 (-want +got):\n%s", diff)
		}
		for _, r := range p1.Responses {
			if !r.GetFromCache() {
				t.Errorf("page 1 %s: FromCache false", r.GetCustomerId())
			}
		}
		if p1.NextPageToken == "" {
			t.Fatal("page 1: no next page token")
		}
		// Inserted above the cursor: not on later pages, and nothing shifts.
		mustPut(t, c, entry("a0", 0.95, critical, 10_000), entry("c2b", 0.85, high, 600))
		p2, err := c.ListAtRisk(ctx, medium, 3, p1.NextPageToken)
		if err != nil {
			t.Fatalf("page 2: %v", err)
		}
		if diff := cmp.Diff([]string{"c4", "c5", "c6"}, pageIDs(p2)); diff != "" {
			t.Errorf("page 2 (-want +got):\n%s", diff)
		}
		// Inserted below the cursor: on the last page.
		mustPut(t, c, entry("z9", 0.35, medium, 1))
		p3, err := c.ListAtRisk(ctx, medium, 3, p2.NextPageToken)
		if err != nil {
			t.Fatalf("page 3: %v", err)
		}
		if diff := cmp.Diff([]string{"c7", "c8", "z9"}, pageIDs(p3)); diff != "" {
			t.Errorf("page 3 (-want +got):\n%s", diff)
		}
		if p3.NextPageToken != "" {
			t.Errorf("page 3 next token = %q, want none", p3.NextPageToken)
		}
		// The same token gives the same page again.
		again, err := c.ListAtRisk(ctx, medium, 3, p2.NextPageToken)
		if err != nil || !cmp.Equal(pageIDs(again), pageIDs(p3)) {
			t.Errorf("page 3 again = %v, %v; want %v", pageIDs(again), err, pageIDs(p3))
		}
		want := []string{"a0", "c1", "c2", "c2b", "c3", "c4", "c5", "c6", "c7", "c8", "z9"}
		if diff := cmp.Diff(want, listIDs(t, c, medium)); diff != "" {
			t.Errorf("whole watchlist (-want +got):\n%s", diff)
		}
	})

	t.Run("TierDropLeavesWatchlist", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, newFakeClock().Now)
		mustPut(t, c, entry("u", 0.9, critical, 90), entry("v", 0.7, high, 70))
		if diff := cmp.Diff([]string{"u", "v"}, listIDs(t, c, high)); diff != "" {
			t.Errorf("before (-want +got):\n%s", diff)
		}
		mustPut(t, c, entry("u", 0.1, low, 900))
		if diff := cmp.Diff([]string{"v"}, listIDs(t, c, medium)); diff != "" {
			t.Errorf("after u drops to LOW (-want +got):\n%s", diff)
		}
		mustPut(t, c, entry("v", 0.4, medium, 40))
		if ids := listIDs(t, c, high); len(ids) != 0 {
			t.Errorf("HIGH after v drops to MEDIUM = %v, want none", ids)
		}
		if diff := cmp.Diff([]string{"v"}, listIDs(t, c, medium)); diff != "" {
			t.Errorf("MEDIUM after v drops to MEDIUM (-want +got):\n%s", diff)
		}
		// A new expected loss re-ranks.
		mustPut(t, c, entry("w", 0.5, medium, 50), entry("v", 0.4, medium, 60))
		if diff := cmp.Diff([]string{"v", "w"}, listIDs(t, c, medium)); diff != "" {
			t.Errorf("after re-rank (-want +got):\n%s", diff)
		}
	})

	t.Run("MinTierFilter", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, newFakeClock().Now)
		mustPut(t, c,
			entry("l", 0.1, low, 1000),
			entry("m", 0.4, medium, 400),
			entry("h", 0.6, high, 300),
			entry("k", 0.9, critical, 200),
		)
		for _, tc := range []struct {
			min  churnv1.RiskTier
			want []string
		}{
			{churnv1.RiskTier_RISK_TIER_UNSPECIFIED, []string{"m", "h", "k"}},
			{low, []string{"m", "h", "k"}},
			{medium, []string{"m", "h", "k"}},
			{high, []string{"h", "k"}},
			{critical, []string{"k"}},
		} {
			if diff := cmp.Diff(tc.want, listIDs(t, c, tc.min)); diff != "" {
				t.Errorf("min %v (-want +got):\n%s", tc.min, diff)
			}
		}
	})

	t.Run("BadArguments", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, newFakeClock().Now)
		mustPut(t, c, entry("m", 0.4, medium, 400))
		for _, tok := range []string{
			"not base64!",
			"dGhpcyBpcyBub3QgYSB0b2tlbg", // "this is not a token"
			encodeToken(1, "x")[:4],
			"djI6MTp4",    // "v2:1:x"
			"djE6YWJjOng", // "v1:abc:x"
			"djE6MTo",     // "v1:1:"
			"djE6TmFOOng", // "v1:NaN:x"
		} {
			if _, err := c.ListAtRisk(ctx, medium, 10, tok); !errors.Is(err, ErrBadPageToken) {
				t.Errorf("ListAtRisk(token %q) error = %v, want ErrBadPageToken", tok, err)
			}
		}
		for _, limit := range []int{0, -1, MaxPageSize + 1} {
			if _, err := c.ListAtRisk(ctx, medium, limit, ""); err == nil {
				t.Errorf("ListAtRisk(limit %d) error = nil, want one", limit)
			}
		}
		if _, err := c.ListAtRisk(ctx, critical+1, 10, ""); err == nil {
			t.Error("ListAtRisk(unknown tier) error = nil, want one")
		}
		if p, err := c.ListAtRisk(ctx, medium, MaxPageSize, ""); err != nil || len(p.Responses) != 1 {
			t.Errorf("ListAtRisk(limit %d) = %d responses, %v; want 1, nil", MaxPageSize, len(p.Responses), err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, newFakeClock().Now)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 25 {
					id := fmt.Sprintf("g%d-%d", g, i)
					if _, err := c.Put(ctx, []Entry{entry(id, 0.5, high, float64(i))}); err != nil {
						t.Errorf("Put: %v", err)
						return
					}
					if _, _, err := c.Get(ctx, id); err != nil {
						t.Errorf("Get: %v", err)
						return
					}
					if _, err := c.ListAtRisk(ctx, high, 5, ""); err != nil {
						t.Errorf("ListAtRisk: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		if ids := listIDs(t, c, high); len(ids) != 100 {
			t.Errorf("ListAtRisk after concurrent Puts: %d customers, want 100", len(ids))
		}
	})
}
