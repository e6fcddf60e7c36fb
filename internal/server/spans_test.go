package server_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/internal/poll"
	"github.com/churnhq/churn/internal/server"
	"github.com/churnhq/churn/internal/tracing"
)

// tracedEnv is a scoring server behind the stats handler and logging interceptor churnd uses,
// with its spans in memory and its log lines in logs.
type tracedEnv struct {
	client churnv1.ScoringServiceClient
	health healthpb.HealthClient
	spans  *tracetest.InMemoryExporter
	logs   *lockedBuffer
}

// startTraced starts the server; exporting false is churnd's default (nothing sampled, nothing
// exported, ids only).
func startTraced(t *testing.T, exporting bool) *tracedEnv {
	t.Helper()
	env := &tracedEnv{spans: tracetest.NewInMemoryExporter(), logs: &lockedBuffer{}}
	opts := tracing.Options{SampleRatio: 1}
	if exporting {
		opts.Exporter = env.spans
	}
	tp, err := tracing.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	logger := slog.New(tracing.LogHandler(slog.NewJSONHandler(env.logs, nil)))
	store, err := modelstore.New(defaultModels(t), "")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Models: store, Cache: cache.NewMemory(cache.MemoryOptions{TTL: time.Hour}), MaxBatch: 10, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	logU, logS := server.Logging(logger)
	gs := grpc.NewServer(grpc.StatsHandler(tp.ServerHandler()), grpc.ChainUnaryInterceptor(logU), grpc.ChainStreamInterceptor(logS))
	churnv1.RegisterScoringServiceServer(gs, srv)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	conn := serveBufconn(t, gs)
	env.client, env.health = churnv1.NewScoringServiceClient(conn), healthpb.NewHealthClient(conn)
	return env
}

// span waits for the one ended span of a method (the server ends it just after the client has
// its answer) and returns it.
func (e *tracedEnv) span(t *testing.T, method string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	poll.Until(t, 10*time.Second, func() bool {
		found = found[:0]
		for _, s := range e.spans.GetSpans() {
			if s.Name == method {
				found = append(found, s)
			}
		}
		return len(found) > 0
	}, "a span of %s", method)
	if len(found) != 1 {
		t.Fatalf("%d spans of %s, want 1", len(found), method)
	}
	return found[0]
}

// callLog returns the "grpc call" log line of a method.
func (e *tracedEnv) callLog(t *testing.T, method string) map[string]any {
	t.Helper()
	for _, l := range e.logs.lines(t) {
		if l["msg"] == "grpc call" && l["method"] == "/"+method {
			return l
		}
	}
	t.Fatalf("no grpc call log line of %s in %v", method, e.logs.lines(t))
	return nil
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// A Score call through a real client produces a server span that carries the model version and
// the risk tier the response has.
func TestScoreSpanCarriesModelVersionAndTier(t *testing.T) {
	t.Parallel()
	env := startTraced(t, true)
	resp, err := env.client.Score(context.Background(), basicRequest(t))
	if err != nil {
		t.Fatal(err)
	}
	span := env.span(t, "churn.v1.ScoringService/Score")
	a := attrs(span)
	if got := a[server.AttrModelVersion].AsString(); got != resp.GetModel().GetVersion() || got == "" {
		t.Errorf("span %s = %q, want the response's model version %q", server.AttrModelVersion, got, resp.GetModel().GetVersion())
	}
	if got, want := a[server.AttrRiskTier].AsString(), tierLabel(resp.GetTier()); got != want {
		t.Errorf("span %s = %q, want %q", server.AttrRiskTier, got, want)
	}
	if span.SpanKind.String() != "server" || span.Status.Code.String() != "Unset" {
		t.Errorf("span kind %v, status %v; want a server span without error", span.SpanKind, span.Status)
	}
}

// A batch's span carries the version and how many customers fell in each tier or failed.
func TestScoreBatchSpanCountsTiersAndErrors(t *testing.T) {
	t.Parallel()
	env := startTraced(t, true)
	good := basicRequest(t)
	resp, err := env.client.ScoreBatch(context.Background(), &churnv1.ScoreBatchRequest{Requests: []*churnv1.ScoreRequest{good, {}, good}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for _, r := range resp.GetResults() {
		if s := r.GetResponse(); s != nil {
			want[server.AttrScoresPrefix+strings.ToLower(tierLabel(s.GetTier()))]++
		}
	}
	a := attrs(env.span(t, "churn.v1.ScoringService/ScoreBatch"))
	for _, tier := range []string{"low", "medium", "high", "critical"} {
		key := server.AttrScoresPrefix + tier
		if got := a[attribute.Key(key)].AsInt64(); got != want[key] {
			t.Errorf("span %s = %d, want %d", key, got, want[key])
		}
	}
	if got := a[server.AttrScoreErrors].AsInt64(); got != 1 {
		t.Errorf("span %s = %d, want 1", server.AttrScoreErrors, got)
	}
	if got := a[server.AttrModelVersion].AsString(); got != resp.GetResults()[0].GetResponse().GetModel().GetVersion() {
		t.Errorf("span %s = %q", server.AttrModelVersion, got)
	}
}

// A stream's span, ended with the stream, counts its customers like a batch's.
func TestScoreStreamSpanCountsTiersAndErrors(t *testing.T) {
	t.Parallel()
	env := startTraced(t, true)
	stream, err := env.client.ScoreStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	scored := 0
	for _, req := range []*churnv1.ScoreRequest{basicRequest(t), {}, basicRequest(t)} {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetError() == nil {
			scored++
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Fatal("the stream answered after the last request")
	}
	a := attrs(env.span(t, "churn.v1.ScoringService/ScoreStream"))
	var total int64
	for _, tier := range []string{"low", "medium", "high", "critical"} {
		total += a[attribute.Key(server.AttrScoresPrefix+tier)].AsInt64()
	}
	if total != int64(scored) || a[server.AttrScoreErrors].AsInt64() != 1 {
		t.Errorf("span counts %d scored and %d errors, want %d and 1: %v", total, a[server.AttrScoreErrors].AsInt64(), scored, a)
	}
}

// A call carrying a W3C traceparent is a child of the caller's span, in the caller's trace.
func TestIncomingTraceparentIsContinued(t *testing.T) {
	t.Parallel()
	env := startTraced(t, true)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-"+parentID+"-01")
	if _, err := env.client.Score(ctx, basicRequest(t)); err != nil {
		t.Fatal(err)
	}
	span := env.span(t, "churn.v1.ScoringService/Score")
	if got := span.SpanContext.TraceID().String(); got != traceID {
		t.Errorf("trace id %s, want the caller's %s", got, traceID)
	}
	if got := span.Parent.SpanID().String(); got != parentID || !span.Parent.IsRemote() {
		t.Errorf("parent span %s (remote %v), want the caller's %s", got, span.Parent.IsRemote(), parentID)
	}
}

// The log line of a failed call carries its span's trace id and span id, the peer, and its
// duration in milliseconds.
func TestFailedCallLogCarriesTraceID(t *testing.T) {
	t.Parallel()
	env := startTraced(t, true)
	if _, err := env.client.Score(context.Background(), &churnv1.ScoreRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Score without an id = %v, want InvalidArgument", err)
	}
	span := env.span(t, "churn.v1.ScoringService/Score")
	line := env.callLog(t, "churn.v1.ScoringService/Score")
	if got, want := line[tracing.KeyTraceID], span.SpanContext.TraceID().String(); got != want {
		t.Errorf("log %s = %v, want the span's %s; line %v", tracing.KeyTraceID, got, want, line)
	}
	if got, want := line[tracing.KeySpanID], span.SpanContext.SpanID().String(); got != want {
		t.Errorf("log %s = %v, want the span's %s", tracing.KeySpanID, got, want)
	}
	if p, _ := line[tracing.KeyPeer].(string); p == "" {
		t.Errorf("log line without %s: %v", tracing.KeyPeer, line)
	}
	if d, ok := line["duration_ms"].(float64); !ok || d < 0 {
		t.Errorf("log duration_ms = %v, want milliseconds", line["duration_ms"])
	}
	if got := attrs(span)["rpc.response.status_code"].AsString(); got != "INVALID_ARGUMENT" {
		t.Errorf("span rpc.response.status_code = %q, want INVALID_ARGUMENT", got)
	}
}

// With tracing off (churnd's default) nothing is recorded, but a failed call's log line still
// carries a trace id: a fresh one, or the caller's when it sent a traceparent.
func TestTraceIDsWithTracingOff(t *testing.T) {
	t.Parallel()
	env := startTraced(t, false)
	if _, err := env.client.Score(context.Background(), &churnv1.ScoreRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Score without an id = %v, want InvalidArgument", err)
	}
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	if _, err := env.client.GetScore(ctx, &churnv1.GetScoreRequest{CustomerId: "nobody"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetScore of an unknown customer = %v, want NotFound", err)
	}
	fresh, _ := env.callLog(t, "churn.v1.ScoringService/Score")[tracing.KeyTraceID].(string)
	if len(fresh) != 32 || fresh == strings.Repeat("0", 32) {
		t.Errorf("log trace_id %q, want a fresh trace id", fresh)
	}
	if got := env.callLog(t, "churn.v1.ScoringService/GetScore")[tracing.KeyTraceID]; got != traceID {
		t.Errorf("log trace_id %v, want the caller's %s", got, traceID)
	}
	if n := len(env.spans.GetSpans()); n != 0 {
		t.Errorf("%d spans exported with tracing off", n)
	}
}

// Health checks, which probes make every few seconds, are not traced.
func TestHealthChecksAreNotTraced(t *testing.T) {
	t.Parallel()
	env := startTraced(t, true)
	if _, err := env.health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.client.Score(context.Background(), basicRequest(t)); err != nil {
		t.Fatal(err)
	}
	env.span(t, "churn.v1.ScoringService/Score") // the health check was answered before it
	for _, s := range env.spans.GetSpans() {
		if strings.HasPrefix(s.Name, "grpc.health") {
			t.Errorf("health check traced: span %s", s.Name)
		}
	}
}
