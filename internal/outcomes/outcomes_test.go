package outcomes_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache"
	"github.com/churnhq/churn/internal/evaluate"
	"github.com/churnhq/churn/internal/outcomes"
)

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

// newStore returns a store over a real in-process score cache holding the given scores.
func newStore(t *testing.T, scores ...*churnv1.ScoreResponse) *outcomes.Store {
	t.Helper()
	c := cache.NewMemory(cache.MemoryOptions{Now: clock})
	if len(scores) > 0 {
		if _, err := c.Put(context.Background(), scores); err != nil {
			t.Fatal(err)
		}
	}
	s, err := outcomes.New(outcomes.Options{Scores: c, HorizonMonths: 12, Now: clock, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func score(id string, p float64, at time.Time) *churnv1.ScoreResponse {
	tier := churnv1.RiskTier_RISK_TIER_LOW
	if p >= 0.5 {
		tier = churnv1.RiskTier_RISK_TIER_HIGH
	}
	return &churnv1.ScoreResponse{
		CustomerId: id, Probability: p, Tier: tier,
		Model:    &churnv1.ModelRef{Name: "m", Version: "v1"},
		ScoredAt: timestamppb.New(at),
		Stage:    churnv1.LifecycleStage_LIFECYCLE_STAGE_MATURE,
		Action:   &churnv1.RetentionAction{Type: churnv1.ActionType_ACTION_TYPE_WIN_BACK},
	}
}

func outcome(id string, churned bool, at time.Time) *churnv1.Outcome {
	t := churnv1.OutcomeType_OUTCOME_TYPE_RETAINED
	if churned {
		t = churnv1.OutcomeType_OUTCOME_TYPE_CHURNED
	}
	return &churnv1.Outcome{CustomerId: id, Type: t, OccurredAt: timestamppb.New(at)}
}

// TestBinnedAUC checks the histogram's ROC-AUC against internal/evaluate's exact one on random
// scores, within the error bound the store reports, and the exact figures (Brier, counts, the
// calibration table) against evaluate's.
func TestBinnedAUC(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 3000
	var scores []*churnv1.ScoreResponse
	var outs []*churnv1.Outcome
	var y []bool
	var p []float64
	for i := range n {
		id := fmt.Sprintf("c%d", i)
		churned := rng.Float64() < 0.2
		pr := rng.Float64() * 0.6
		if churned {
			pr = 0.3 + 0.7*rng.Float64()
		}
		scores = append(scores, score(id, pr, now.Add(-time.Hour)))
		outs = append(outs, outcome(id, churned, now.Add(-time.Minute)))
		y, p = append(y, churned), append(p, pr)
	}
	s := newStore(t, scores...)
	for i, r := range s.Record(context.Background(), outs) {
		if r.Err != nil || r.Duplicate || r.Score == nil {
			t.Fatalf("outcome %d: %+v", i, r)
		}
	}
	perf, err := s.ModelPerformance(context.Background(), &churnv1.GetModelPerformanceRequest{From: timestamppb.New(now.Add(-48 * time.Hour)), To: timestamppb.New(now)})
	if err != nil {
		t.Fatal(err)
	}
	if len(perf.GetRows()) != 1 {
		t.Fatalf("rows = %d, want 1", len(perf.GetRows()))
	}
	row := perf.GetRows()[0]
	auc, err := evaluate.ROCAUC(y, p)
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(row.GetRocAuc() - auc); d > row.GetRocAucErrorBound()+1e-12 {
		t.Errorf("binned ROC-AUC %v, exact %v: off by %v, more than the bound %v", row.GetRocAuc(), auc, d, row.GetRocAucErrorBound())
	}
	if b := evaluate.Brier(y, p); math.Abs(row.GetBrier()-b) > 1e-9 {
		t.Errorf("Brier %v, want %v", row.GetBrier(), b)
	}
	churners := 0
	for _, v := range y {
		if v {
			churners++
		}
	}
	if row.GetCustomers() != n || row.GetChurned() != int64(churners) {
		t.Errorf("customers %d churned %d, want %d %d", row.GetCustomers(), row.GetChurned(), n, churners)
	}
	for i, bin := range evaluate.CalibrationTable(y, p) {
		got := row.GetCalibration()[i]
		if got.GetCustomers() != int64(bin.Count) || math.Abs(got.GetMeanPredicted()-bin.MeanPredicted) > 1e-9 || math.Abs(got.GetObservedChurnRate()-bin.ObservedRate) > 1e-12 {
			t.Errorf("calibration %d: got %v, evaluate has %+v", i+1, got, bin)
		}
	}
}

// TestRetryCountsOnce records a batch twice, with and without keys, and checks the report counts
// each outcome once.
func TestRetryCountsOnce(t *testing.T) {
	s := newStore(t, score("a", 0.9, now.Add(-time.Hour)), score("b", 0.1, now.Add(-time.Hour)))
	keyed := outcome("a", true, now.Add(-time.Minute))
	keyed.IdempotencyKey = "batch-1/0"
	batch := []*churnv1.Outcome{keyed, outcome("b", false, now.Add(-time.Minute))}
	for try := range 2 {
		for i, r := range s.Record(context.Background(), batch) {
			if r.Err != nil || r.Duplicate != (try == 1) {
				t.Fatalf("try %d, outcome %d: %+v", try, i, r)
			}
		}
	}
	// The same key with another customer is still a retry: the key wins.
	again := outcome("b", true, now.Add(-time.Second))
	again.IdempotencyKey = "batch-1/0"
	if r := s.Record(context.Background(), []*churnv1.Outcome{again}); !r[0].Duplicate {
		t.Fatalf("reused key: %+v", r[0])
	}
	rep, err := s.ChurnReport(context.Background(), &churnv1.GetChurnReportRequest{From: timestamppb.New(now.Add(-time.Hour)), To: timestamppb.New(now), Period: churnv1.Period_PERIOD_DAY})
	if err != nil {
		t.Fatal(err)
	}
	want := &churnv1.ChurnKPIs{
		PeriodStart: timestamppb.New(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)), PeriodEnd: timestamppb.New(time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)),
		CustomersAtStart: 2, Lost: 1, Retained: 1, ChurnRatePercent: 50, RetentionRatePercent: 50, LostWithoutRevenue: 1,
		Reasons:  []*churnv1.ReasonCount{{Lost: 1}},
		Warnings: nil,
		Actions:  []*churnv1.ActionOutcome{{Action: churnv1.ActionType_ACTION_TYPE_WIN_BACK, Churned: 1, Retained: 1}},
	}
	if len(rep.GetRows()) != 1 || !proto.Equal(rep.GetRows()[0], want) {
		t.Fatalf("report rows %v, want one row %v", rep.GetRows(), want)
	}
}

// TestJoinBeforeOutcome: a score issued after the outcome is not joined.
func TestJoinBeforeOutcome(t *testing.T) {
	s := newStore(t, score("late", 0.9, now.Add(-time.Minute)))
	r := s.Record(context.Background(), []*churnv1.Outcome{outcome("late", true, now.Add(-time.Hour)), outcome("never", true, now.Add(-time.Hour))})
	for i := range r {
		if r[i].Err != nil || r[i].Score != nil {
			t.Errorf("outcome %d: %+v, want recorded unjoined", i, r[i])
		}
	}
}

func TestValidate(t *testing.T) {
	rev := math.NaN()
	neg := -1.0
	for _, tc := range []struct {
		name, field string
		edit        func(*churnv1.Outcome)
	}{
		{"empty id", "customer_id", func(o *churnv1.Outcome) { o.CustomerId = "" }},
		{"no type", "type", func(o *churnv1.Outcome) { o.Type = 0 }},
		{"unknown type", "type", func(o *churnv1.Outcome) { o.Type = 42 }},
		{"no time", "occurred_at", func(o *churnv1.Outcome) { o.OccurredAt = nil }},
		{"future", "occurred_at", func(o *churnv1.Outcome) { o.OccurredAt = timestamppb.New(now.Add(time.Hour)) }},
		{"too old", "occurred_at", func(o *churnv1.Outcome) { o.OccurredAt = timestamppb.New(now.AddDate(-2, 0, 0)) }},
		{"unknown reason", "reason", func(o *churnv1.Outcome) { o.Reason = 99 }},
		{"reason of a retained", "reason", func(o *churnv1.Outcome) {
			o.Type = churnv1.OutcomeType_OUTCOME_TYPE_RETAINED
			o.Reason = churnv1.OutcomeReason_OUTCOME_REASON_PRICE
		}},
		{"NaN revenue", "monthly_revenue", func(o *churnv1.Outcome) { o.MonthlyRevenue = &rev }},
		{"negative revenue", "monthly_revenue", func(o *churnv1.Outcome) { o.MonthlyRevenue = &neg }},
		{"control in key", "idempotency_key", func(o *churnv1.Outcome) { o.IdempotencyKey = "a\nb" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			o := outcome("c1", true, now.Add(-time.Minute))
			tc.edit(o)
			r := s.Record(context.Background(), []*churnv1.Outcome{o, outcome("c2", false, now.Add(-time.Minute))})
			var fe *outcomes.FieldError
			if !errors.As(r[0].Err, &fe) || fe.Field != tc.field {
				t.Fatalf("error %v, want a FieldError on %s", r[0].Err, tc.field)
			}
			if r[1].Err != nil {
				t.Fatalf("the good outcome beside it: %v", r[1].Err)
			}
		})
	}
}

// TestGauges: the live-quality gauges of the served version equal GetModelPerformance's figures.
func TestGauges(t *testing.T) {
	c := cache.NewMemory(cache.MemoryOptions{Now: clock})
	var scores []*churnv1.ScoreResponse
	var outs []*churnv1.Outcome
	for i := range 40 {
		id := fmt.Sprintf("c%d", i)
		scores = append(scores, score(id, float64(i)/40, now.Add(-time.Hour)))
		outs = append(outs, outcome(id, i%3 == 0 || i > 30, now.Add(-time.Minute)))
	}
	if _, err := c.Put(context.Background(), scores); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := outcomes.New(outcomes.Options{Scores: c, Now: clock, Registerer: reg, GaugeVersions: func() []string { return []string{"v1", "v2"} }})
	if err != nil {
		t.Fatal(err)
	}
	s.Record(context.Background(), outs)
	perf, err := s.ModelPerformance(context.Background(), &churnv1.GetModelPerformanceRequest{From: timestamppb.New(now.Add(-time.Hour)), To: timestamppb.New(now)})
	if err != nil {
		t.Fatal(err)
	}
	want := perf.GetRows()[0]
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != 1 || m.GetGauge() == nil {
				continue
			}
			got[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	for name, w := range map[string]float64{
		"churn_model_live_roc_auc/v1": want.GetRocAuc(), "churn_model_live_brier/v1": want.GetBrier(),
		"churn_model_live_customers/v1": 40, "churn_model_live_customers/v2": 0,
	} {
		if g, ok := got[name]; !ok || math.Abs(g-w) > 1e-12 {
			t.Errorf("%s = %v (present %v), want %v", name, g, ok, w)
		}
	}
	if _, ok := got["churn_model_live_roc_auc/v2"]; ok {
		t.Error("a version without outcomes has a ROC-AUC gauge")
	}
}
