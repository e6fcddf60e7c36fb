package app_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/app"
	"github.com/churnhq/churn/internal/config"
)

// collector is an OTLP/gRPC trace receiver on loopback that keeps what it is sent.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
	names []string // service.name of each request's resources
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				c.names = append(c.names, kv.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// startCollector serves OTLP over gRPC, or over HTTP at OTLP's path /v1/traces, on loopback and
// returns its URL (for HTTP without the path, which churnd adds).
func startCollector(t *testing.T, protocol string) (*collector, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	if protocol == "grpc" {
		gs := grpc.NewServer()
		coltracepb.RegisterTraceServiceServer(gs, c)
		go gs.Serve(lis)
		t.Cleanup(gs.Stop)
		return c, "http://" + lis.Addr().String()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if err == nil {
			err = proto.Unmarshal(body, req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, _ := c.Export(r.Context(), req)
		out, _ := proto.Marshal(resp)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(lis)
	t.Cleanup(func() { hs.Close() })
	return c, "http://" + lis.Addr().String()
}

// churnd with --otlp-endpoint exports a Score call's span over OTLP (gRPC or HTTP), in the
// caller's trace and with the model version and tier, by the time it has stopped; the log line of
// a failed call carries the trace id of that call's exported span.
func TestTracesExportedOverOTLP(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{"grpc", "http/protobuf"} {
		t.Run(strings.ReplaceAll(protocol, "/", "-"), func(t *testing.T) {
			t.Parallel()
			testTracesExported(t, protocol)
		})
	}
}

func testTracesExported(t *testing.T, protocol string) {
	coll, endpoint := startCollector(t, protocol)
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ShutdownGrace, cfg.StoreDir = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second, t.TempDir()
	cfg.OTLPEndpoint, cfg.OTLPProtocol = endpoint, protocol
	var log lockedBuffer
	a, err := app.New(cfg, slog.New(slog.NewJSONHandler(&log, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	conn, err := grpc.NewClient(a.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client := churnv1.NewScoringServiceClient(conn)
	const traceID = "5b8efff798038103d269b633813fc60c"
	callCtx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-eee19b7ec3c1b174-01")
	resp, err := client.Score(callCtx, &churnv1.ScoreRequest{CustomerId: "c-1"}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Score(context.Background(), &churnv1.ScoreRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Score without an id = %v, want InvalidArgument", err)
	}
	conn.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	// Run has returned: the tracer provider was shut down and flushed its spans.
	coll.mu.Lock()
	defer coll.mu.Unlock()
	var traced, failed *tracepb.Span
	for _, s := range coll.spans {
		if s.GetName() != "churn.v1.ScoringService/Score" {
			continue
		}
		if hex.EncodeToString(s.GetTraceId()) == traceID {
			traced = s
		} else {
			failed = s
		}
	}
	if traced == nil || failed == nil {
		t.Fatalf("collector got %d spans, want both Score calls': %v", len(coll.spans), coll.spans)
	}
	got := map[string]string{}
	for _, kv := range traced.GetAttributes() {
		got[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	if got["churn.model.version"] != resp.GetModel().GetVersion() || got["churn.risk.tier"] != strings.TrimPrefix(resp.GetTier().String(), "RISK_TIER_") {
		t.Errorf("span attributes %v, want the model version %s and tier %s", got, resp.GetModel().GetVersion(), resp.GetTier())
	}
	for _, name := range coll.names {
		if name != "churnd" {
			t.Errorf("service.name %q, want churnd", name)
		}
	}

	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "grpc call" && m["code"] == "InvalidArgument" {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no log line of the failed call:\n%s", log.String())
	}
	if want := hex.EncodeToString(failed.GetTraceId()); line["trace_id"] != want {
		t.Errorf("failed call logged with trace_id %v, want its span's %s: %v", line["trace_id"], want, line)
	}
	if want := hex.EncodeToString(failed.GetSpanId()); line["span_id"] != want {
		t.Errorf("failed call logged with span_id %v, want its span's %s", line["span_id"], want)
	}
	if p, _ := line["peer"].(string); !strings.HasPrefix(p, "127.0.0.1:") {
		t.Errorf("failed call logged with peer %v, want the client's loopback address", line["peer"])
	}
}
