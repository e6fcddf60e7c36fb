package app_test

import (
	"context"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/app/apptest"
	"github.com/churnhq/churn/internal/config"
)

// TestRecordOutcomes goes through churnd as a caller does: score two customers, report their
// outcomes in a batch with a bad one, retry the batch, and read the report: the bad outcome is
// refused with its field named, the retry counts once, and the scoring token is needed.
func TestRecordOutcomes(t *testing.T) {
	t.Parallel()
	const token = "scoring-token-0123456789"
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ShutdownGrace, cfg.StoreDir = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second, t.TempDir()
	cfg.ScoringTokens = []string{token}
	a := apptest.Start(t, cfg)
	conn, err := grpc.NewClient(a.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	outcomes := churnv1.NewOutcomeServiceClient(conn)
	anon := context.Background()
	ctx := metadata.AppendToOutgoingContext(anon, "authorization", "Bearer "+token)

	raw, err := os.ReadFile("../../testdata/requests/basic.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		req := &churnv1.ScoreRequest{}
		if err := protojson.Unmarshal(raw, req); err != nil {
			t.Fatal(err)
		}
		req.CustomerId = id
		if _, err := churnv1.NewScoringServiceClient(conn).Score(ctx, req, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	}

	now := time.Now()
	rev := 50.0
	batch := &churnv1.RecordOutcomesRequest{Outcomes: []*churnv1.Outcome{
		{CustomerId: "a", Type: churnv1.OutcomeType_OUTCOME_TYPE_CHURNED, OccurredAt: timestamppb.New(now), Reason: churnv1.OutcomeReason_OUTCOME_REASON_PRICE, MonthlyRevenue: &rev},
		{CustomerId: "b", Type: churnv1.OutcomeType_OUTCOME_TYPE_RETAINED, OccurredAt: timestamppb.New(now.Add(time.Hour))},
		{CustomerId: "b", Type: churnv1.OutcomeType_OUTCOME_TYPE_RETAINED, OccurredAt: timestamppb.New(now)},
		{CustomerId: "", Type: churnv1.OutcomeType_OUTCOME_TYPE_RETAINED, OccurredAt: timestamppb.New(now)},
	}}
	if _, err := outcomes.RecordOutcomes(anon, batch); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without a token: %v, want Unauthenticated", err)
	}
	for try := range 2 {
		resp, err := outcomes.RecordOutcomes(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		res := resp.GetResults()
		if len(res) != 4 {
			t.Fatalf("%d results, want 4", len(res))
		}
		for i, want := range map[int]string{1: "outcomes[1].occurred_at", 3: "outcomes[3].customer_id"} {
			e := res[i].GetError()
			if codes.Code(e.GetCode()) != codes.InvalidArgument || len(e.GetFieldViolations()) != 1 || e.GetFieldViolations()[0].GetField() != want {
				t.Errorf("try %d, outcome %d: error %v, want INVALID_ARGUMENT on %s", try, i, e, want)
			}
		}
		for _, i := range []int{0, 2} {
			if res[i].GetError() != nil || res[i].GetDuplicate() != (try == 1) || res[i].GetScoredBy().GetVersion() == "" {
				t.Errorf("try %d, outcome %d: %v, want recorded (duplicate on the retry) and joined to a score", try, i, res[i])
			}
		}
	}

	rep, err := outcomes.GetChurnReport(ctx, &churnv1.GetChurnReportRequest{
		From: timestamppb.New(now.Add(-time.Hour)), To: timestamppb.New(now.Add(time.Hour)), Period: churnv1.Period_PERIOD_MONTH,
	})
	if err != nil {
		t.Fatal(err)
	}
	var lost, atStart int64
	var revenue float64
	for _, r := range rep.GetRows() {
		lost += r.GetLost()
		atStart += r.GetCustomersAtStart()
		revenue += r.GetRevenueLostPerMonth()
	}
	if lost != 1 || atStart != 2 || revenue != 50 {
		t.Errorf("report %v: lost %d of %d, revenue %v; want 1 of 2, 50", rep, lost, atStart, revenue)
	}
	if _, err := outcomes.GetChurnReport(ctx, &churnv1.GetChurnReportRequest{From: timestamppb.New(now)}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a report without to: %v, want InvalidArgument", err)
	}
}
