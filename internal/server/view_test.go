package server_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

const (
	viewUnspecified = churnv1.ScoreView_SCORE_VIEW_UNSPECIFIED
	viewBasic       = churnv1.ScoreView_SCORE_VIEW_BASIC
	viewFull        = churnv1.ScoreView_SCORE_VIEW_FULL
)

// The fields each view returns for complaints.json (three warnings, an action, an expected
// loss, nothing imputed), as the proto's ScoreView comment lists them.
var (
	basicFields = []string{"customer_id", "model", "probability", "scored_at", "tier", "warnings"}
	fullFields  = []string{"action", "customer_id", "drivers", "drivers_base", "expected_loss", "margin", "model", "probability", "scored_at", "stage", "tier", "warnings"}
)

// populated names the fields of m that are set, sorted.
func populated(m proto.Message) []string {
	var names []string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		names = append(names, string(fd.Name()))
		return true
	})
	slices.Sort(names)
	return names
}

// checkView checks that got holds exactly the fields of view (plus extra, the fields of a cached
// read), with the values of full, the FULL response of the same customer.
func checkView(t *testing.T, what string, view churnv1.ScoreView, got, full *churnv1.ScoreResponse, extra ...string) {
	t.Helper()
	fields := fullFields
	if view == viewBasic {
		fields = basicFields
	}
	fields = append(slices.Clone(fields), extra...)
	slices.Sort(fields)
	if diff := cmp.Diff(fields, populated(got)); diff != "" {
		t.Errorf("%s view %s: fields (-want +got):\n%s", what, view, diff)
	}
	want := proto.Clone(full).(*churnv1.ScoreResponse)
	if view == viewBasic {
		want = &churnv1.ScoreResponse{CustomerId: full.CustomerId, Probability: full.Probability, Tier: full.Tier,
			Model: full.Model, ScoredAt: full.ScoredAt, FromCache: full.FromCache, ModelSuperseded: full.ModelSuperseded}
		for _, w := range full.Warnings {
			want.Warnings = append(want.Warnings, &churnv1.Warning{Code: w.Code})
		}
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("%s view %s (-want +got):\n%s", what, view, diff)
	}
	for i, w := range got.GetWarnings() {
		if view == viewBasic && !slices.Equal(populated(w), []string{"code"}) {
			t.Errorf("%s view BASIC: warnings[%d] has fields %q, want only code", what, i, populated(w))
		}
	}
}

// complaintsAs is complaints.json for customer id with view.
func complaintsAs(t *testing.T, id string, view churnv1.ScoreView) *churnv1.ScoreRequest {
	req := requestFile(t, "complaints")
	req.CustomerId, req.View = id, view
	return req
}

// TestViews asks every scoring RPC for each view over a real gRPC connection and checks exactly
// which fields come back, and that the cache keeps the FULL score whatever view scored it.
func TestViews(t *testing.T) {
	t.Parallel()
	env := startServer(t, 10)
	ctx := context.Background()
	full := wantResponse(t, env.store.Active(), complaintsAs(t, "x", viewUnspecified))
	if got := populated(full); !slices.Equal(got, fullFields) {
		t.Fatalf("complaints.json's FULL response has fields %q, want %q: the fixture changed", got, fullFields)
	}
	fullOf := func(id string) *churnv1.ScoreResponse {
		r := proto.Clone(full).(*churnv1.ScoreResponse)
		r.CustomerId = id
		return r
	}

	for _, view := range []churnv1.ScoreView{viewUnspecified, viewBasic, viewFull} {
		t.Run(view.String(), func(t *testing.T) {
			id := "score-" + view.String()
			resp, err := env.client.Score(ctx, complaintsAs(t, id, view))
			if err != nil {
				t.Fatalf("Score: %v", err)
			}
			checkView(t, "Score", view, resp, fullOf(id))

			// The cache kept the FULL score: a FULL read after a BASIC score returns every field.
			cached := fullOf(id)
			cached.FromCache = true
			for _, read := range []churnv1.ScoreView{viewUnspecified, viewBasic, viewFull} {
				got, err := env.client.GetScore(ctx, &churnv1.GetScoreRequest{CustomerId: id, View: read})
				if err != nil {
					t.Fatalf("GetScore: %v", err)
				}
				checkView(t, "GetScore after Score "+view.String(), read, got, cached, "from_cache")
			}
		})
	}

	t.Run("ScoreBatch", func(t *testing.T) {
		// The batch's view applies to the items that set none; an item's own view wins.
		for _, batchView := range []churnv1.ScoreView{viewUnspecified, viewBasic, viewFull} {
			itemViews := []churnv1.ScoreView{viewUnspecified, viewBasic, viewFull}
			req := &churnv1.ScoreBatchRequest{View: batchView}
			for i, v := range itemViews {
				req.Requests = append(req.Requests, complaintsAs(t, "batch-"+batchView.String()+"-"+itemViews[i].String(), v))
			}
			resp, err := env.client.ScoreBatch(ctx, req)
			if err != nil {
				t.Fatalf("ScoreBatch: %v", err)
			}
			for i, res := range resp.GetResults() {
				view := itemViews[i]
				if view == viewUnspecified {
					view = batchView
				}
				id := req.Requests[i].CustomerId
				checkView(t, "ScoreBatch "+batchView.String()+" item "+itemViews[i].String(), view, res.GetResponse(), fullOf(id))
				got, err := env.client.GetScore(ctx, &churnv1.GetScoreRequest{CustomerId: id})
				if err != nil {
					t.Fatalf("GetScore: %v", err)
				}
				cached := fullOf(id)
				cached.FromCache = true
				checkView(t, "GetScore after ScoreBatch", viewFull, got, cached, "from_cache")
			}
		}
	})

	t.Run("ScoreStream", func(t *testing.T) {
		stream, err := env.client.ScoreStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, view := range []churnv1.ScoreView{viewBasic, viewFull, viewUnspecified} {
			id := "stream-" + view.String()
			if err := stream.Send(complaintsAs(t, id, view)); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			checkView(t, "ScoreStream", view, resp, fullOf(id))
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("Recv after CloseSend: %v, want EOF", err)
		}
	})

	t.Run("ListAtRisk", func(t *testing.T) {
		for _, view := range []churnv1.ScoreView{viewUnspecified, viewBasic, viewFull} {
			page, err := env.client.ListAtRisk(ctx, &churnv1.ListAtRiskRequest{Limit: 1000, View: view})
			if err != nil {
				t.Fatalf("ListAtRisk: %v", err)
			}
			if len(page.GetCustomers()) == 0 {
				t.Fatal("ListAtRisk: empty watchlist")
			}
			for _, got := range page.GetCustomers() {
				cached := fullOf(got.GetCustomerId())
				cached.FromCache = true
				checkView(t, "ListAtRisk", view, got, cached, "from_cache")
			}
		}
	})
}

// TestUnknownView: a view that ScoreView does not have is INVALID_ARGUMENT naming the field, for
// every RPC that takes one; in a batch or a stream, for that item only.
func TestUnknownView(t *testing.T) {
	t.Parallel()
	env := startServer(t, 10)
	ctx := context.Background()
	const bad = churnv1.ScoreView(7)

	_, err := env.client.Score(ctx, complaintsAs(t, "c1", bad))
	assertStatus(t, err, codes.InvalidArgument, "view")
	_, err = env.client.GetScore(ctx, &churnv1.GetScoreRequest{CustomerId: "c1", View: bad})
	assertStatus(t, err, codes.InvalidArgument, "view")
	_, err = env.client.ListAtRisk(ctx, &churnv1.ListAtRiskRequest{View: bad})
	assertStatus(t, err, codes.InvalidArgument, "view")
	_, err = env.client.ScoreBatch(ctx, &churnv1.ScoreBatchRequest{View: bad, Requests: []*churnv1.ScoreRequest{complaintsAs(t, "c1", viewUnspecified)}})
	assertStatus(t, err, codes.InvalidArgument, "view")

	wantItem := &churnv1.ItemError{
		Code:            int32(codes.InvalidArgument),
		Message:         "requests[1]: view: must be SCORE_VIEW_UNSPECIFIED, SCORE_VIEW_BASIC or SCORE_VIEW_FULL",
		FieldViolations: []*churnv1.FieldViolation{{Field: "view", Description: "must be SCORE_VIEW_UNSPECIFIED, SCORE_VIEW_BASIC or SCORE_VIEW_FULL"}},
	}
	batch, err := env.client.ScoreBatch(ctx, &churnv1.ScoreBatchRequest{Requests: []*churnv1.ScoreRequest{
		complaintsAs(t, "c1", viewBasic), complaintsAs(t, "c2", bad)}})
	if err != nil {
		t.Fatalf("ScoreBatch: %v", err)
	}
	if diff := cmp.Diff(wantItem, batch.GetResults()[1].GetError(), protocmp.Transform()); diff != "" {
		t.Errorf("ScoreBatch item with an unknown view (-want +got):\n%s", diff)
	}
	if batch.GetResults()[0].GetResponse() == nil {
		t.Errorf("ScoreBatch: the good item was not scored: %v", batch.GetResults()[0])
	}

	stream, err := env.client.ScoreStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []*churnv1.ScoreRequest{complaintsAs(t, "c1", viewBasic), complaintsAs(t, "c2", bad)} {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var got []*churnv1.ScoreResponse
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		got = append(got, resp)
	}
	if len(got) != 2 {
		t.Fatalf("ScoreStream: %d responses, want 2", len(got))
	}
	if diff := cmp.Diff(&churnv1.ScoreResponse{CustomerId: "c2", Error: wantItem}, got[1], protocmp.Transform()); diff != "" {
		t.Errorf("ScoreStream item with an unknown view (-want +got):\n%s", diff)
	}
}
