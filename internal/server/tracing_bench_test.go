package server_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/internal/server"
	"github.com/churnhq/churn/internal/tracing"
)

// discardExporter takes spans and drops them: what a sampled span costs in the process.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkScoreTracing is one unary Score call through gRPC on bufconn, with the logging
// interceptor at Info (a successful call is not logged) and the server span in each setting:
// tracing=none has no stats handler (churnd before tracing); tracing=noop is otelgrpc with
// OpenTelemetry's no-op tracer (no ids); tracing=off is churnd's default (ids for the logs,
// nothing sampled or exported); tracing=sampled samples every call, adds the span attributes and
// hands each span to an exporter that drops it.
func BenchmarkScoreTracing(b *testing.B) {
	for _, mode := range []string{"none", "noop", "off", "sampled"} {
		b.Run("tracing="+mode, func(b *testing.B) {
			logger := slog.New(tracing.LogHandler(slog.NewJSONHandler(discardWriter{}, nil)))
			var opts []grpc.ServerOption
			switch mode {
			case "noop":
				opts = append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler(
					otelgrpc.WithTracerProvider(tracenoop.NewTracerProvider()),
					otelgrpc.WithPropagators(tracing.Propagator()),
					otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()))))
			case "off", "sampled":
				o := tracing.Options{SampleRatio: 1}
				if mode == "sampled" {
					o.Exporter = discardExporter{}
				}
				tp, err := tracing.New(context.Background(), o)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { tp.Shutdown(context.Background()) })
				opts = append(opts, grpc.StatsHandler(tp.ServerHandler()))
			}
			store, err := modelstore.New(defaultModels(b), "")
			if err != nil {
				b.Fatal(err)
			}
			srv, err := server.New(server.Options{Models: store, Cache: cache.NewMemory(cache.MemoryOptions{TTL: time.Hour}), MaxBatch: 1, Logger: logger})
			if err != nil {
				b.Fatal(err)
			}
			logU, logS := server.Logging(logger)
			gs := grpc.NewServer(append(opts, grpc.ChainUnaryInterceptor(logU), grpc.ChainStreamInterceptor(logS))...)
			churnv1.RegisterScoringServiceServer(gs, srv)
			client := churnv1.NewScoringServiceClient(serveBufconn(b, gs))
			req := basicRequest(b)
			ctx := context.Background()
			b.ReportAllocs()
			cpu0, cpuOK := processCPU()
			for b.Loop() {
				if _, err := client.Score(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			if cpu1, ok := processCPU(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
