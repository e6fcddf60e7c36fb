package outcomes_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/outcomes"
)

// FuzzRecord feeds arbitrary RecordOutcomesRequest bytes to the store: every outcome is either
// refused with a FieldError or recorded, and the reports still answer; never a panic.
func FuzzRecord(f *testing.F) {
	rev := 12.5
	for _, req := range []*churnv1.RecordOutcomesRequest{
		{Outcomes: []*churnv1.Outcome{{CustomerId: "a", Type: churnv1.OutcomeType_OUTCOME_TYPE_CHURNED, OccurredAt: timestamppb.New(now), Reason: churnv1.OutcomeReason_OUTCOME_REASON_MOVED, MonthlyRevenue: &rev, Contract: "monthly"}}},
		{Outcomes: []*churnv1.Outcome{{CustomerId: "b", Type: 7, OccurredAt: timestamppb.New(now.Add(time.Hour))}}},
		{Outcomes: []*churnv1.Outcome{{CustomerId: "c", Type: churnv1.OutcomeType_OUTCOME_TYPE_WON_BACK, OccurredAt: &timestamppb.Timestamp{Seconds: -1 << 40}, IdempotencyKey: "k"}}},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var req churnv1.RecordOutcomesRequest
		if proto.Unmarshal(raw, &req) != nil {
			return
		}
		s := newStore(t, score("a", 0.7, now.Add(-time.Hour)))
		for i, r := range s.Record(context.Background(), req.GetOutcomes()) {
			var fe *outcomes.FieldError
			if r.Err != nil && !errors.As(r.Err, &fe) {
				t.Fatalf("outcome %d: %v is not a FieldError", i, r.Err)
			}
		}
		for _, p := range []churnv1.Period{churnv1.Period_PERIOD_DAY, churnv1.Period_PERIOD_WEEK} {
			for _, seg := range []churnv1.Segment{churnv1.Segment_SEGMENT_UNSPECIFIED, churnv1.Segment_SEGMENT_CONTRACT} {
				if _, err := s.ChurnReport(context.Background(), &churnv1.GetChurnReportRequest{From: timestamppb.New(now.AddDate(-1, 0, 0)), To: timestamppb.New(now.Add(time.Hour)), Period: p, Segment: seg}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := s.ModelPerformance(context.Background(), &churnv1.GetModelPerformanceRequest{From: timestamppb.New(now.AddDate(-1, 0, 0)), To: timestamppb.New(now.Add(time.Hour))}); err != nil {
			t.Fatal(err)
		}
	})
}
