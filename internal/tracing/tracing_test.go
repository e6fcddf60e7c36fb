package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"

	"github.com/churnhq/churn/internal/tracing"
)

// logLine logs one line through LogHandler, with ctx and a logger derived by With, and decodes it.
func logLine(t *testing.T, ctx context.Context) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	logger := slog.New(tracing.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	logger.InfoContext(ctx, "hello")
	m := map[string]any{}
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	if m["component"] != "test" {
		t.Errorf("the logger's own attributes were lost: %v", m)
	}
	return m
}

func TestLogHandlerAddsTheCallsIDsAndPeer(t *testing.T) {
	t.Parallel()
	tp, err := tracing.New(context.Background(), tracing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tp.TracerProvider().Tracer("test").Start(context.Background(), "call")
	defer span.End()
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000}})
	line := logLine(t, ctx)
	sc := span.SpanContext()
	if !sc.IsValid() || span.IsRecording() {
		t.Fatalf("with tracing off a span has ids (%v) and records nothing (recording %v)", sc.IsValid(), span.IsRecording())
	}
	want := map[string]string{tracing.KeyTraceID: sc.TraceID().String(), tracing.KeySpanID: sc.SpanID().String(), tracing.KeyPeer: "192.0.2.7:40000"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %s", k, line[k], v)
		}
	}
}

func TestLogHandlerLeavesLinesOutsideCallsAlone(t *testing.T) {
	t.Parallel()
	line := logLine(t, context.Background())
	for _, k := range []string{tracing.KeyTraceID, tracing.KeySpanID, tracing.KeyPeer} {
		if v, ok := line[k]; ok {
			t.Errorf("a line without a call has %s=%v", k, v)
		}
	}
}

// Wrapping twice adds the keys once.
func TestLogHandlerWrapsOnce(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := tracing.LogHandler(tracing.LogHandler(slog.NewJSONHandler(&buf, nil)))
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2},
	}))
	slog.New(h).InfoContext(ctx, "hello")
	if n := bytes.Count(buf.Bytes(), []byte(tracing.KeyTraceID)); n != 1 {
		t.Errorf("%s appears %d times in %s", tracing.KeyTraceID, n, buf.String())
	}
}

// BenchmarkServerHandler is the stats handler's work for one unary call, without gRPC: tag the
// call (read the traceparent, start the span), then the call's events from Begin to End. It is
// what tracing adds to a call in each setting: handler=noop is otelgrpc with OpenTelemetry's no-op
// tracer, handler=off churnd's default (ids, nothing sampled), handler=sampled every call sampled
// and handed to an exporter that drops it. parent=yes calls carry a traceparent.
func BenchmarkServerHandler(b *testing.B) {
	noopHandler := otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tracenoop.NewTracerProvider()),
		otelgrpc.WithPropagators(tracing.Propagator()), otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()))
	off, err := tracing.New(context.Background(), tracing.Options{})
	if err != nil {
		b.Fatal(err)
	}
	sampled, err := tracing.New(context.Background(), tracing.Options{SampleRatio: 1, Exporter: discardExporter{}})
	if err != nil {
		b.Fatal(err)
	}
	for _, h := range []struct {
		name string
		h    stats.Handler
	}{{"noop", noopHandler}, {"off", off.ServerHandler()}, {"sampled", sampled.ServerHandler()}} {
		for _, parent := range []bool{false, true} {
			md := metadata.MD{}
			name := "handler=" + h.name + "/parent=no"
			if parent {
				md.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
				name = "handler=" + h.name + "/parent=yes"
			}
			b.Run(name, func(b *testing.B) {
				base := metadata.NewIncomingContext(context.Background(), md)
				info := &stats.RPCTagInfo{FullMethodName: "/churn.v1.ScoringService/Score"}
				now := time.Now()
				b.ReportAllocs()
				for b.Loop() {
					ctx := h.h.TagRPC(base, info)
					h.h.HandleRPC(ctx, &stats.Begin{BeginTime: now})
					h.h.HandleRPC(ctx, &stats.InPayload{Length: 200, WireLength: 205})
					h.h.HandleRPC(ctx, &stats.OutHeader{})
					h.h.HandleRPC(ctx, &stats.OutPayload{Length: 900, WireLength: 905})
					h.h.HandleRPC(ctx, &stats.OutTrailer{})
					h.h.HandleRPC(ctx, &stats.End{BeginTime: now, EndTime: now})
				}
			})
		}
	}
}

type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }
