package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/cache"
	"github.com/churnhq/churn/internal/metricstest"
	"github.com/churnhq/churn/internal/model"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/internal/retention"
	"github.com/churnhq/churn/internal/server"
	"github.com/churnhq/churn/models"
)

var fixedNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type testEnv struct {
	client churnv1.ScoringServiceClient
	reg    *prometheus.Registry
	store  *modelstore.Store
}

// defaultModels loads the embedded default model and a copy of it under a second version.
func defaultModels(t testing.TB) []*model.Model {
	t.Helper()
	def, err := model.LoadFS(models.FS, models.DefaultName)
	if err != nil {
		t.Fatalf("default model: %v", err)
	}
	b := *def.Bundle
	b.Manifest.Version = "second-version"
	b.Manifest.CreatedAt = b.Manifest.CreatedAt.Add(-time.Hour) // older: the default stays active
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	second, err := model.Load(data)
	if err != nil {
		t.Fatalf("second model: %v", err)
	}
	return []*model.Model{def, second}
}

// startServer runs the scoring service on an in-process bufconn listener and returns a client.
func startServer(t testing.TB, maxBatch int) *testEnv {
	t.Helper()
	store, err := modelstore.New(defaultModels(t), "")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	mem := cache.NewMemory(cache.MemoryOptions{TTL: time.Hour, Now: func() time.Time { return fixedNow }})
	srv, err := server.New(server.Options{Models: store, Cache: mem, MaxBatch: maxBatch, Registerer: reg, Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	_, recS := server.Recovery(slogDiscard())
	recU, _ := server.Recovery(slogDiscard())
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(recU), grpc.ChainStreamInterceptor(recS))
	churnv1.RegisterScoringServiceServer(gs, srv)
	conn := serveBufconn(t, gs)
	return &testEnv{client: churnv1.NewScoringServiceClient(conn), reg: reg, store: store}
}

// basicRequest is testdata/requests/basic.json, the README's example.
func basicRequest(t testing.TB) *churnv1.ScoreRequest { return requestFile(t, "basic") }

// requestFile reads testdata/requests/<name>.json.
func requestFile(t testing.TB, name string) *churnv1.ScoreRequest {
	t.Helper()
	data, err := readRepoFile("testdata/requests/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	req := &churnv1.ScoreRequest{}
	if err := protojson.Unmarshal(data, req); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestScore(t *testing.T) {
	t.Parallel()
	env := startServer(t, 10)
	ctx := context.Background()
	req := basicRequest(t)
	resp, err := env.client.Score(ctx, req)
	if err != nil {
		t.Fatalf("Score: %v", err)
	}
	active := env.store.Active()
	want := wantResponse(t, active, req)
	if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
		t.Errorf("Score (-want +got):\n%s", diff)
	}
	if p := resp.GetProbability(); !(p >= 0 && p <= 1) {
		t.Errorf("probability %v outside [0,1]", p)
	}
	if got := metricstest.Value(t, env.reg, "churn_scores_total", map[string]string{"rpc": "Score", "tier": tierLabel(resp.GetTier())}); got != 1 {
		t.Errorf("churn_scores_total{rpc=Score,tier=%s} = %v, want 1", resp.GetTier(), got)
	}
}

// wantResponse computes the expected response through the model directly.
func wantResponse(t testing.TB, m *model.Model, req *churnv1.ScoreRequest) *churnv1.ScoreResponse {
	t.Helper()
	r, err := m.Explain(req.GetFeatures())
	if err != nil {
		t.Fatalf("model.Explain: %v", err)
	}
	rules := retention.DefaultRules()
	th := m.Bundle.Manifest.Tiers
	insight := rules.Evaluate(retention.Input{Features: req.GetFeatures(), Probability: r.Probability, Tier: r.Tier,
		TierThresholds: retention.TierThresholds{Medium: th.Medium, High: th.High, Critical: th.Critical}})
	want := &churnv1.ScoreResponse{
		CustomerId:    req.GetCustomerId(),
		Probability:   r.Probability,
		Tier:          r.Tier,
		Warnings:      insight.Warnings,
		Action:        insight.Action,
		Stage:         insight.Stage,
		ExpectedLoss:  insight.ExpectedLoss,
		ImputedInputs: r.Imputed,
		Margin:        r.Margin,
		DriversBase:   r.Base,
		Model:         &churnv1.ModelRef{Name: m.Name(), Version: m.Version()},
		ScoredAt:      timestamp(fixedNow),
	}
	for _, d := range r.Drivers() {
		want.Drivers = append(want.Drivers, &churnv1.Driver{Feature: d.Feature, Value: d.Value, Contribution: d.Contribution, Category: d.Category})
	}
	return want
}

func TestScoreWithModelVersion(t *testing.T) {
	t.Parallel()
	env := startServer(t, 10)
	req := basicRequest(t)
	req.ModelVersion = "second-version"
	resp, err := env.client.Score(context.Background(), req)
	if err != nil {
		t.Fatalf("Score: %v", err)
	}
	if got := resp.GetModel().GetVersion(); got != "second-version" {
		t.Errorf("model version %q, want second-version", got)
	}
}

func TestScoreReportsImputedInputs(t *testing.T) {
	t.Parallel()
	env := startServer(t, 10)
	req := basicRequest(t)
	req.Features.Account.TenureMonths = nil
	resp, err := env.client.Score(context.Background(), req)
	if err != nil {
		t.Fatalf("Score: %v", err)
	}
	if len(resp.GetImputedInputs()) != 1 {
		t.Fatalf("imputed inputs %q, want exactly the tenure input", resp.GetImputedInputs())
	}
	active := env.store.Active()
	if diff := cmp.Diff(wantResponse(t, active, req), resp, protocmp.Transform()); diff != "" {
		t.Errorf("Score (-want +got):\n%s", diff)
	}
}

func TestScoreErrors(t *testing.T) {
	t.Parallel()
	env := startServer(t, 10)
	nan, inf, neg := math.NaN(), math.Inf(1), -1.0
	tests := []struct {
		name      string
		mutate    func(r *churnv1.ScoreRequest)
		wantCode  codes.Code
		wantField string
	}{
		{"empty customer id", func(r *churnv1.ScoreRequest) { r.CustomerId = "" }, codes.InvalidArgument, "customer_id"},
		{"over-long customer id", func(r *churnv1.ScoreRequest) { r.CustomerId = strings.Repeat("x", 129) }, codes.InvalidArgument, "customer_id"},
		{"control character in customer id", func(r *churnv1.ScoreRequest) { r.CustomerId = "a\nb" }, codes.InvalidArgument, "customer_id"},
		{"negative complaint count", func(r *churnv1.ScoreRequest) { r.Features.Complaints.Count_30D = &neg }, codes.InvalidArgument, "features.complaints.count_30d"},
		{"NaN tenure", func(r *churnv1.ScoreRequest) { r.Features.Account.TenureMonths = &nan }, codes.InvalidArgument, "features.account.tenure_months"},
		{"infinite response time", func(r *churnv1.ScoreRequest) {
			r.Features.Service = &churnv1.ServiceResponse{AvgFirstResponseHours: &inf}
		}, codes.InvalidArgument, "features.service.avg_first_response_hours"},
		{"negative days", func(r *churnv1.ScoreRequest) {
			r.Features.Activity = &churnv1.Activity{DaysSinceLastActive: &neg}
		}, codes.InvalidArgument, "features.activity.days_since_last_active"},
		{"satisfaction out of range", func(r *churnv1.ScoreRequest) {
			six := 6.0
			r.Features.Account.Satisfaction = &six
		}, codes.InvalidArgument, "features.account.satisfaction"},
		{"NaN numeric map value", func(r *churnv1.ScoreRequest) { r.Features.Numeric["calls"] = nan }, codes.InvalidArgument, "features.numeric.calls"},
		{"malformed model version", func(r *churnv1.ScoreRequest) { r.ModelVersion = "../etc" }, codes.InvalidArgument, "model_version"},
		{"unknown model version", func(r *churnv1.ScoreRequest) { r.ModelVersion = "no-such-version" }, codes.NotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := basicRequest(t)
			tc.mutate(req)
			_, err := env.client.Score(context.Background(), req)
			assertStatus(t, err, tc.wantCode, tc.wantField)
		})
	}
}

// assertStatus checks the code and, for INVALID_ARGUMENT, that BadRequest names the field.
func assertStatus(t *testing.T, err error, code codes.Code, field string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
	if field == "" {
		return
	}
	if !strings.Contains(st.Message(), field) {
		t.Errorf("message %q does not name %s", st.Message(), field)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if len(fields) == 0 || fields[0] != field {
		t.Errorf("BadRequest fields %q, want %q first", fields, field)
	}
}

func TestScoreBatch(t *testing.T) {
	t.Parallel()
	env := startServer(t, 3)
	good := basicRequest(t)
	bad := proto.Clone(good).(*churnv1.ScoreRequest)
	bad.CustomerId = ""
	other := proto.Clone(good).(*churnv1.ScoreRequest)
	other.CustomerId = "cust-0002"
	resp, err := env.client.ScoreBatch(context.Background(), &churnv1.ScoreBatchRequest{Requests: []*churnv1.ScoreRequest{good, bad, other}})
	if err != nil {
		t.Fatalf("ScoreBatch: %v", err)
	}
	active := env.store.Active()
	want := &churnv1.ScoreBatchResponse{Results: []*churnv1.ScoreBatchResult{
		{Outcome: &churnv1.ScoreBatchResult_Response{Response: wantResponse(t, active, good)}},
		{Outcome: &churnv1.ScoreBatchResult_Error{Error: &churnv1.ItemError{
			Code:            int32(codes.InvalidArgument),
			Message:         "requests[1]: customer_id: must not be empty",
			FieldViolations: []*churnv1.FieldViolation{{Field: "customer_id", Description: "must not be empty"}},
		}}},
		{Outcome: &churnv1.ScoreBatchResult_Response{Response: wantResponse(t, active, other)}},
	}}
	if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
		t.Errorf("ScoreBatch (-want +got):\n%s", diff)
	}

	t.Run("over the limit", func(t *testing.T) {
		_, err := env.client.ScoreBatch(context.Background(), &churnv1.ScoreBatchRequest{Requests: []*churnv1.ScoreRequest{good, good, good, good}})
		assertStatus(t, err, codes.ResourceExhausted, "")
	})
	t.Run("empty", func(t *testing.T) {
		_, err := env.client.ScoreBatch(context.Background(), &churnv1.ScoreBatchRequest{})
		assertStatus(t, err, codes.InvalidArgument, "requests")
	})
}

func TestScoreStream(t *testing.T) {
	t.Parallel()
	env := startServer(t, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := env.client.ScoreStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	active := env.store.Active()
	const n = 50
	var want []*churnv1.ScoreResponse
	sendErr := make(chan error, 1)
	reqs := make([]*churnv1.ScoreRequest, n)
	for i := range reqs {
		r := basicRequest(t)
		r.CustomerId = "cust-" + string(rune('A'+i%26)) + strings.Repeat("x", i/26)
		tenure := float64(i)
		r.Features.Account.TenureMonths = &tenure
		if i == 7 {
			r.Features.Complaints.Count_30D = proto.Float64(-3)
			want = append(want, &churnv1.ScoreResponse{CustomerId: r.CustomerId, Error: &churnv1.ItemError{
				Code:            int32(codes.InvalidArgument),
				Message:         "requests[7]: features.complaints.count_30d: must be >= 0, got -3",
				FieldViolations: []*churnv1.FieldViolation{{Field: "features.complaints.count_30d", Description: "must be >= 0, got -3"}},
			}})
		} else {
			want = append(want, wantResponse(t, active, r))
		}
		reqs[i] = r
	}
	go func() {
		for _, r := range reqs {
			if err := stream.Send(r); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
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
	if err := <-sendErr; err != nil {
		t.Fatalf("Send: %v", err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("ScoreStream (-want +got):\n%s", diff)
	}
	if got := metricstest.Value(t, env.reg, "churn_score_errors_total", map[string]string{"rpc": "ScoreStream", "code": "InvalidArgument"}); got != 1 {
		t.Errorf("churn_score_errors_total{rpc=ScoreStream,code=InvalidArgument} = %v, want 1", got)
	}
}

func TestNoActiveModel(t *testing.T) {
	t.Parallel()
	srv, err := server.New(server.Options{Models: emptySource{}, Cache: cache.NewMemory(cache.MemoryOptions{TTL: time.Hour}), MaxBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = srv.Score(context.Background(), basicRequest(t))
	assertStatus(t, err, codes.FailedPrecondition, "")
}

type emptySource struct{}

func (emptySource) Active() *model.Model              { return nil }
func (emptySource) Get(v string) (*model.Model, bool) { return nil, false }

// TestUnscorableIsTheModelsFault: a model that passes the gate (its check vector and probes
// score) but whose probability is not a number for an extreme valid request answers INTERNAL,
// not INVALID_ARGUMENT blaming the caller, counts each in churn_model_unscorable_total by version,
// and logs it once.
func TestUnscorableIsTheModelsFault(t *testing.T) {
	t.Parallel()
	b := bundle.Bundle{
		Manifest: bundle.Manifest{
			FormatVersion: bundle.FormatVersion, Name: "fragile", Version: "fragile-1", CreatedAt: fixedNow,
			Inputs: []bundle.Input{
				{Name: "a", Source: "numeric.a", Type: bundle.TypeNumeric, Missing: bundle.Missing{Policy: bundle.MissingError}},
				{Name: "b", Source: "numeric.b", Type: bundle.TypeNumeric, Missing: bundle.Missing{Policy: bundle.MissingError}},
			},
			Calibration:  bundle.Calibration{Method: bundle.CalibrationNone},
			Tiers:        bundle.Tiers{Medium: 0.3, High: 0.5, Critical: 0.8},
			CheckVectors: []bundle.CheckVector{{Features: json.RawMessage(`{"numeric":{"a":1,"b":1}}`), Probability: 0.5}},
		},
		Model: bundle.Model{Type: bundle.ModelLogistic, Logistic: &bundle.Logistic{Weights: []float64{1e11, -1e11}}},
	}
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	fragile, err := model.Load(data)
	if err != nil {
		t.Fatalf("the test needs a model that passes the gate: %v", err)
	}
	def := defaultModels(t)
	store, err := modelstore.New(append(def, fragile), def[0].Version())
	if err != nil {
		t.Fatal(err)
	}
	srv, logs, reg := loggedServer(t, store)
	req := &churnv1.ScoreRequest{CustomerId: "c1", ModelVersion: "fragile-1", Features: &churnv1.CustomerFeatures{Numeric: map[string]float64{"a": 1e300, "b": 1e300}}}
	for range 3 {
		_, err := srv.Score(context.Background(), req)
		assertStatus(t, err, codes.Internal, "")
		if !strings.Contains(status.Convert(err).Message(), "the model's fault") {
			t.Errorf("message %q does not say whose fault it is", status.Convert(err).Message())
		}
	}
	if got := metricstest.Value(t, reg, "churn_model_unscorable_total", map[string]string{"version": "fragile-1"}); got != 3 {
		t.Errorf("churn_model_unscorable_total{version=fragile-1} = %v, want 3", got)
	}
	if n := strings.Count(logs.String(), "cannot score valid requests"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestUnknownCategoryIsScoredAsMissing: a contract the default model does not know (a new plan
// name upstream) is scored as missing, listed with its value in unknown_categories and counted;
// the proto's own example values are ones the default model does not know.
func TestUnknownCategoryIsScoredAsMissing(t *testing.T) {
	t.Parallel()
	env := startServer(t, 10)
	req := basicRequest(t)
	contract := "month-to-month"
	req.Features.Account.Contract = &contract
	req.Features.Categorical["status"] = "closed"
	resp, err := env.client.Score(context.Background(), req)
	if err != nil {
		t.Fatalf("Score with an unknown contract: %v", err)
	}
	want := []*churnv1.UnknownCategory{{Input: "account.contract", Value: "month-to-month"}, {Input: "status", Value: "closed"}}
	if diff := cmp.Diff(want, resp.GetUnknownCategories(), protocmp.Transform()); diff != "" {
		t.Errorf("unknown_categories (-want +got):\n%s", diff)
	}
	if !slices.Contains(resp.GetImputedInputs(), "account.contract") || !slices.Contains(resp.GetImputedInputs(), "status") {
		t.Errorf("imputed_inputs %v, want account.contract and status among them", resp.GetImputedInputs())
	}
	// Scored as the missing policy scores an absent contract and status.
	req.Features.Account.Contract = nil
	delete(req.Features.Categorical, "status")
	missing, err := env.client.Score(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if missing.GetProbability() != resp.GetProbability() {
		t.Errorf("probability %v with unknown categories, %v with them absent", resp.GetProbability(), missing.GetProbability())
	}
	if got := metricstest.Value(t, env.reg, "churn_unknown_categories_total", map[string]string{"input": "account.contract"}); got != 1 {
		t.Errorf("churn_unknown_categories_total{input=account.contract} = %v, want 1", got)
	}
}

// loggedServer is a scoring server on store (an in-process cache) whose log and metrics the test
// reads.
func loggedServer(t *testing.T, store server.Models) (*server.Server, *bytes.Buffer, *prometheus.Registry) {
	t.Helper()
	logs, reg := new(bytes.Buffer), prometheus.NewRegistry()
	srv, err := server.New(server.Options{
		Models: store, Cache: cache.NewMemory(cache.MemoryOptions{TTL: time.Hour}), MaxBatch: 10, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv, logs, reg
}

// TestUnknownCategoryIsLoggedOncePerInput: a flood of one unknown category is one log line a
// minute per input, every one counted.
func TestUnknownCategoryIsLoggedOncePerInput(t *testing.T) {
	t.Parallel()
	store, err := modelstore.New(defaultModels(t), "")
	if err != nil {
		t.Fatal(err)
	}
	srv, logs, reg := loggedServer(t, store)
	req := basicRequest(t)
	contract := "month-to-month"
	req.Features.Account.Contract = &contract
	for range 5 {
		if _, err := srv.Score(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "input=account.contract"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
	if got := metricstest.Value(t, reg, "churn_unknown_categories_total", map[string]string{"input": "account.contract"}); got != 5 {
		t.Errorf("churn_unknown_categories_total{input=account.contract} = %v, want 5", got)
	}
}
