package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/poll"
)

// scoreCache is what the contract suite runs against: *Redis and *Memory have these methods.
type scoreCache interface {
	Put(ctx context.Context, resps []*churnv1.ScoreResponse) ([]float64, error)
	Get(ctx context.Context, customerID string) (*churnv1.ScoreResponse, float64, error)
	ListAtRisk(ctx context.Context, minTier churnv1.RiskTier, limit int, pageToken string) ([]*churnv1.ScoreResponse, string, error)
}

var (
	_ scoreCache = (*Redis)(nil)
	_ scoreCache = (*Memory)(nil)
)

// none is the previous probability of a customer with none cached: NaN, which cmp compares equal
// to NaN under equateNaNs.
var (
	none       = math.NaN()
	equateNaNs = cmpopts.EquateNaNs()
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

// entry makes a scored customer's response.
func entry(id string, p float64, tier churnv1.RiskTier, loss float64) *churnv1.ScoreResponse {
	return &churnv1.ScoreResponse{
		CustomerId:   id,
		Probability:  p,
		Tier:         tier,
		ExpectedLoss: loss,
		Model:        &churnv1.ModelRef{Name: "gbm", Version: "v1"},
		Warnings: []*churnv1.Warning{{
			Code: churnv1.WarningCode_WARNING_CODE_HIGH_RISK, Message: "tier", Value: p, Threshold: 0.5,
		}},
	}
}

func mustPut(t *testing.T, c scoreCache, resps ...*churnv1.ScoreResponse) []float64 {
	t.Helper()
	prevs, err := c.Put(context.Background(), resps)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if len(prevs) != len(resps) {
		t.Fatalf("Put returned %d previous, want %d", len(prevs), len(resps))
	}
	return prevs
}

// listIDs pages through the watchlist and returns the customer ids in order.
func listIDs(t *testing.T, c scoreCache, minTier churnv1.RiskTier) []string {
	t.Helper()
	var ids []string
	tok := ""
	for range 1000 {
		page, next, err := c.ListAtRisk(context.Background(), minTier, 7, tok)
		if err != nil {
			t.Fatalf("ListAtRisk: %v", err)
		}
		ids = append(ids, pageIDs(page)...)
		if next == "" {
			return ids
		}
		tok = next
	}
	t.Fatal("ListAtRisk: more than 1000 pages")
	return nil
}

func pageIDs(page []*churnv1.ScoreResponse) []string {
	ids := make([]string, len(page))
	for i, r := range page {
		ids[i] = r.GetCustomerId()
	}
	return ids
}

// testContract is the behaviour every score cache has. newCache returns an empty cache with TTL
// contractTTL whose clock is now (a Redis cache uses now for the write time only; its TTL runs on the
// server's clock).
func testContract(t *testing.T, newCache func(t *testing.T, now func() time.Time) scoreCache) {
	ctx := context.Background()

	t.Run("PutGetRoundTrip", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, newFakeClock().Now)
		e := entry("cust-1", 0.42, high, 1234.5)
		if got := mustPut(t, c, e); !math.IsNaN(got[0]) {
			t.Errorf("first Put previous = %v, want none (NaN)", got[0])
		}
		if e.FromCache {
			t.Error("Put set FromCache on the caller's response")
		}
		got, prev, err := c.Get(ctx, "cust-1")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		want := proto.CloneOf(e)
		want.FromCache = true
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
		if !math.IsNaN(prev) {
			t.Errorf("Get previous = %v, want none (NaN)", prev)
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
		want := []float64{0.2, none, 0.7}
		if diff := cmp.Diff(want, prevs, equateNaNs); diff != "" {
			t.Errorf("second Put previous (-want +got):\n%s", diff)
		}
		resp, prev, err := c.Get(ctx, "a")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if resp.GetProbability() != 0.9 || prev != 0.7 {
			t.Errorf("Get = p %v, previous %v; want p 0.9, previous 0.7", resp.GetProbability(), prev)
		}
		if _, prev, err := c.Get(ctx, "b"); err != nil || !math.IsNaN(prev) {
			t.Errorf("Get(b) previous = %v, %v; want none (NaN)", prev, err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, newFakeClock().Now)
		mustPut(t, c, entry("known", 0.5, medium, 5))
		if resp, prev, err := c.Get(ctx, "unknown"); !errors.Is(err, ErrNotFound) || resp != nil || !math.IsNaN(prev) {
			t.Errorf("Get(unknown) = %v, %v, %v; want nil, NaN, ErrNotFound", resp, prev, err)
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
		bad.Warnings = []*churnv1.Warning{{Message: "not UTF-8: \xff"}}
		if _, err := c.Put(ctx, []*churnv1.ScoreResponse{entry("good", 0.9, critical, 9), bad}); err == nil {
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
		// Redis expires each hash on its own clock, microseconds apart: wait for both.
		poll.Until(t, contractTTL+5*time.Second, func() bool {
			_, _, errX := c.Get(ctx, "x")
			_, _, errY := c.Get(ctx, "y")
			return errors.Is(errX, ErrNotFound) && errors.Is(errY, ErrNotFound)
		}, "Get(x) and Get(y) return ErrNotFound after the TTL")
		if ids := listIDs(t, c, medium); len(ids) != 0 {
			t.Errorf("ListAtRisk after the TTL = %v, want none", ids)
		}
		if prevs := mustPut(t, c, entry("x", 0.5, medium, 5)); !math.IsNaN(prevs[0]) {
			t.Errorf("Put after expiry previous = %v, want none (NaN)", prevs[0])
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
		p1, next1, err := c.ListAtRisk(ctx, medium, 3, "")
		if err != nil {
			t.Fatalf("page 1: %v", err)
		}
		if diff := cmp.Diff([]string{"c1", "c2", "c3"}, pageIDs(p1)); diff != "" {
			t.Errorf("page 1 (-want +got):\n%s", diff)
		}
		for _, r := range p1 {
			if !r.GetFromCache() {
				t.Errorf("page 1 %s: FromCache false", r.GetCustomerId())
			}
		}
		if next1 == "" {
			t.Fatal("page 1: no next page token")
		}
		// Inserted above the cursor: not on later pages, and nothing shifts.
		mustPut(t, c, entry("a0", 0.95, critical, 10_000), entry("c2b", 0.85, high, 600))
		p2, next2, err := c.ListAtRisk(ctx, medium, 3, next1)
		if err != nil {
			t.Fatalf("page 2: %v", err)
		}
		if diff := cmp.Diff([]string{"c4", "c5", "c6"}, pageIDs(p2)); diff != "" {
			t.Errorf("page 2 (-want +got):\n%s", diff)
		}
		// Inserted below the cursor: on the last page.
		mustPut(t, c, entry("z9", 0.35, medium, 1))
		p3, next3, err := c.ListAtRisk(ctx, medium, 3, next2)
		if err != nil {
			t.Fatalf("page 3: %v", err)
		}
		if diff := cmp.Diff([]string{"c7", "c8", "z9"}, pageIDs(p3)); diff != "" {
			t.Errorf("page 3 (-want +got):\n%s", diff)
		}
		if next3 != "" {
			t.Errorf("page 3 next token = %q, want none", next3)
		}
		// The same token gives the same page again.
		again, _, err := c.ListAtRisk(ctx, medium, 3, next2)
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
			if _, _, err := c.ListAtRisk(ctx, medium, 10, tok); !errors.Is(err, ErrBadPageToken) {
				t.Errorf("ListAtRisk(token %q) error = %v, want ErrBadPageToken", tok, err)
			}
		}
		for _, limit := range []int{0, -1, MaxPageSize + 1} {
			if _, _, err := c.ListAtRisk(ctx, medium, limit, ""); err == nil {
				t.Errorf("ListAtRisk(limit %d) error = nil, want one", limit)
			}
		}
		if _, _, err := c.ListAtRisk(ctx, critical+1, 10, ""); err == nil {
			t.Error("ListAtRisk(unknown tier) error = nil, want one")
		}
		if p, _, err := c.ListAtRisk(ctx, medium, MaxPageSize, ""); err != nil || len(p) != 1 {
			t.Errorf("ListAtRisk(limit %d) = %d responses, %v; want 1, nil", MaxPageSize, len(p), err)
		}
	})

	t.Run("PutOfAThousand", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, newFakeClock().Now)
		// A full ScoreBatch (--max-batch 1000): the Redis cache sends it in chunks of 256. dup is
		// Put twice, in the first chunk and in the third: the second write wins and sees the first.
		tiers := []churnv1.RiskTier{low, medium, high, critical}
		resps := make([]*churnv1.ScoreResponse, 1000)
		for i := range resps {
			resps[i] = entry(fmt.Sprintf("k%04d", i), float64(i%100)/100, tiers[i%4], float64(i))
		}
		resps[10] = entry("dup", 0.3, high, 10_000)
		resps[700] = entry("dup", 0.6, low, 20_000)
		prevs := mustPut(t, c, resps...)
		for i, p := range prevs {
			want := none
			if i == 700 {
				want = 0.3
			}
			if !cmp.Equal(p, want, equateNaNs) {
				t.Errorf("previous of %s (#%d) = %v, want %v", resps[i].GetCustomerId(), i, p, want)
			}
		}
		var want []string
		for i := len(resps) - 1; i >= 0; i-- { // expected loss descending
			if id := resps[i].GetCustomerId(); id != "dup" {
				got, prev, err := c.Get(ctx, id)
				if err != nil || got.GetProbability() != resps[i].GetProbability() || !math.IsNaN(prev) {
					t.Fatalf("Get(%s) = %v, %v, %v; want probability %v, no previous", id, got.GetProbability(), prev, err, resps[i].GetProbability())
				}
				if resps[i].GetTier() >= medium {
					want = append(want, id)
				}
			}
		}
		if got, prev, err := c.Get(ctx, "dup"); err != nil || got.GetProbability() != 0.6 || prev != 0.3 {
			t.Errorf("Get(dup) = %v, %v, %v; want 0.6 with previous 0.3", got.GetProbability(), prev, err)
		}
		if diff := cmp.Diff(want, listIDs(t, c, medium)); diff != "" {
			t.Errorf("watchlist (-want +got):\n%s", diff)
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
					if _, err := c.Put(ctx, []*churnv1.ScoreResponse{entry(id, 0.5, high, float64(i))}); err != nil {
						t.Errorf("Put: %v", err)
						return
					}
					if _, _, err := c.Get(ctx, id); err != nil {
						t.Errorf("Get: %v", err)
						return
					}
					if _, _, err := c.ListAtRisk(ctx, high, 5, ""); err != nil {
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
