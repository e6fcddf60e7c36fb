package outcomes_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/google/go-cmp/cmp"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache"
	"github.com/churnhq/churn/internal/cache/redistest"
	"github.com/churnhq/churn/internal/outcomes"
)

// TestRedisReplicasMatchInProcess: two replicas on one Redis, each recording half the outcomes
// (and retrying the other's), report what one in-process store holding them all reports.
func TestRedisReplicasMatchInProcess(t *testing.T) {
	addr, _, _ := redistest.StartRedis(t)
	scores := cache.NewMemory(cache.MemoryOptions{Now: clock}) // the score cache the replicas share
	newReplica := func(r *outcomes.RedisOptions) *outcomes.Store {
		s, err := outcomes.New(outcomes.Options{Scores: scores, HorizonMonths: 12, Now: clock, Registerer: prometheus.NewRegistry(), Redis: r, MaxContracts: 3})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var replicas []*outcomes.Store
	for range 2 {
		client := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { client.Close() })
		replicas = append(replicas, newReplica(&outcomes.RedisOptions{Client: client}))
	}
	local := newReplica(nil)

	rng := rand.New(rand.NewPCG(3, 4))
	var outs []*churnv1.Outcome
	var put []*churnv1.ScoreResponse
	for i := range 400 {
		id := fmt.Sprintf("c%d", i)
		sc := score(id, rng.Float64(), now.Add(-time.Duration(rng.IntN(72))*time.Hour-time.Hour))
		sc.Warnings = []*churnv1.Warning{{Code: churnv1.WarningCode(1 + rng.IntN(8))}}
		if i%7 == 0 {
			sc.Model.Version = "v2"
		}
		if i%11 != 0 { // some customers were never scored
			put = append(put, sc)
		}
		o := outcome(id, rng.Float64() < 0.3, now.Add(-time.Duration(rng.IntN(60))*time.Minute))
		o.Contract = []string{"monthly", "yearly", "", "two-year", "weekly"}[rng.IntN(5)]
		if o.GetType() == churnv1.OutcomeType_OUTCOME_TYPE_CHURNED {
			o.Reason = churnv1.OutcomeReason(rng.IntN(10))
			if rng.IntN(2) == 0 {
				rev := float64(rng.IntN(200))
				o.MonthlyRevenue = &rev
			}
		}
		if i%13 == 0 {
			o.Type, o.Reason, o.MonthlyRevenue = churnv1.OutcomeType_OUTCOME_TYPE_WON_BACK, 0, nil
		}
		outs = append(outs, o)
	}
	if _, err := scores.Put(context.Background(), put); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	half := len(outs) / 2
	for i, r := range replicas[0].Record(ctx, outs[:half]) {
		if r.Err != nil || r.Duplicate {
			t.Fatalf("replica 0, outcome %d: %+v", i, r)
		}
	}
	for i, r := range replicas[1].Record(ctx, outs) { // the first half again: retries
		if r.Err != nil || r.Duplicate != (i < half) {
			t.Fatalf("replica 1, outcome %d: %+v, want duplicate %v", i, r, i < half)
		}
	}
	local.Record(ctx, outs)

	base := &churnv1.BaseCount{Period: churnv1.Period_PERIOD_MONTH, PeriodStart: timestamppb.New(now), Customers: 1000}
	for _, s := range []*outcomes.Store{replicas[0], local} {
		if err := s.SetBases(ctx, []*churnv1.BaseCount{base}); err != nil {
			t.Fatal(err)
		}
	}
	from, to := timestamppb.New(now.AddDate(0, 0, -40)), timestamppb.New(now.Add(time.Hour))
	for _, p := range []churnv1.Period{churnv1.Period_PERIOD_DAY, churnv1.Period_PERIOD_MONTH} {
		for seg := range churnv1.Segment_name {
			req := &churnv1.GetChurnReportRequest{From: from, To: to, Period: p, Segment: churnv1.Segment(seg)}
			want, err := local.ChurnReport(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(want.GetRows()) == 0 || (p == churnv1.Period_PERIOD_MONTH && seg == 0 && !want.GetRows()[len(want.GetRows())-1].GetBaseReported()) {
				t.Fatalf("period %s, segment %d: rows %v", p, seg, want.GetRows())
			}
			for i, r := range replicas {
				got, err := r.ChurnReport(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(want, got, protocmp.Transform(), cmp.Comparer(approx)); d != "" {
					t.Errorf("replica %d, period %s, segment %s: (-in process +redis)\n%s", i, p, churnv1.Segment(seg), d)
				}
			}
		}
		req := &churnv1.GetModelPerformanceRequest{From: from, To: to, Period: p}
		want, err := local.ModelPerformance(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(want.GetRows()) == 0 {
			t.Fatal("no model rows")
		}
		for i, r := range replicas {
			got, err := r.ModelPerformance(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got, protocmp.Transform(), cmp.Comparer(approx)); d != "" {
				t.Errorf("replica %d, period %s: model performance (-in process +redis)\n%s", i, p, d)
			}
		}
	}
}

// approx compares floats to 1e-9, relative: Redis adds them up in its own order and precision.
func approx(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}
