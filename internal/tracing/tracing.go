// Package tracing traces churnd's gRPC calls with OpenTelemetry and ties every log line of a call
// to its trace. It builds the tracer provider from the configuration, the gRPC stats handler
// (otelgrpc) that starts a span for every call and continues a caller's W3C trace context, and a
// slog handler that adds the call's trace id, span id and peer to each line logged with the call's
// context.
//
// Every call gets a trace id, exported or not: without an OTLP endpoint the provider samples
// nothing and has no exporter, so a span costs its ids and one small allocation (measured in
// docs/PERFORMANCE.md), and the ids still correlate the call's log lines with each other and with
// the caller's trace. With an endpoint, sampled spans go to it in batches over OTLP (gRPC or
// HTTP).
package tracing

import (
	"context"
	"fmt"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/stats"
)

// ServiceName is the service.name of churnd's spans unless OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES say otherwise.
const ServiceName = "churnd"

// Options configure a Provider.
type Options struct {
	// Endpoint is the OTLP collector's URL (http://host:4317 for plaintext, https:// for TLS;
	// checked by internal/config); empty: nothing is exported and nothing is sampled.
	Endpoint string
	// Protocol is grpc (the default when empty) or http/protobuf; over HTTP an Endpoint without a
	// path gets OTLP's /v1/traces.
	Protocol string
	// SampleRatio is the share of new traces sampled (0..1, checked by internal/config) when
	// exporting; a call that arrives with a trace context follows its caller's sampling decision.
	SampleRatio float64
	// Exporter, when set, receives the sampled spans instead of an OTLP endpoint (tests use
	// tracetest's in-memory exporter). It is called synchronously, at the end of each span.
	Exporter sdktrace.SpanExporter
	// Registerer receives the export metrics; a fresh registry when nil.
	Registerer prometheus.Registerer
}

// Provider is the tracer provider of one churnd.
type Provider struct {
	sdk       *sdktrace.TracerProvider
	exporting bool
}

// New builds the provider. With neither Endpoint nor Exporter it samples nothing and exports
// nothing, but still gives every call a trace id and span id.
func New(ctx context.Context, o Options) (*Provider, error) {
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(ServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the above
	)
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES: say so rather than run with half a resource.
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	switch {
	case o.Exporter != nil:
		opts = append(opts, sdktrace.WithSampler(sampler(o.SampleRatio)),
			sdktrace.WithSyncer(countExports(o.Exporter, o.Registerer)))
	case o.Endpoint != "":
		exp, err := otlpExporter(ctx, o.Protocol, o.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
		}
		// The batcher's queue is bounded (2048 spans by default, OTEL_BSP_MAX_QUEUE_SIZE): when
		// the collector cannot keep up, spans are dropped, calls never wait for it.
		opts = append(opts, sdktrace.WithSampler(sampler(o.SampleRatio)),
			sdktrace.WithBatcher(countExports(exp, o.Registerer)))
	default:
		opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
	}
	return &Provider{sdk: sdktrace.NewTracerProvider(opts...), exporting: o.Exporter != nil || o.Endpoint != ""}, nil
}

// otlpExporter makes the exporter of a protocol. It connects lazily and retries on its own;
// OTEL_EXPORTER_OTLP_HEADERS, _CERTIFICATE, _TIMEOUT and _COMPRESSION (and their _TRACES_ forms)
// apply.
func otlpExporter(ctx context.Context, protocol, endpoint string) (sdktrace.SpanExporter, error) {
	switch protocol {
	case "", "grpc":
		return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(endpoint))
	case "http/protobuf":
		if u, err := url.Parse(endpoint); err == nil && (u.Path == "" || u.Path == "/") {
			u.Path = "/v1/traces"
			endpoint = u.String()
		}
		return otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	}
	return nil, fmt.Errorf("protocol %q is neither grpc nor http/protobuf", protocol)
}

// sampler samples the given share of new traces and follows the caller's decision otherwise.
func sampler(ratio float64) sdktrace.Sampler {
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
}

// Exporting reports whether sampled spans are exported anywhere.
func (p *Provider) Exporting() bool { return p.exporting }

// TracerProvider is the provider, for instrumentation.
func (p *Provider) TracerProvider() trace.TracerProvider { return p.sdk }

// Shutdown exports the spans still queued and stops the exporter, within ctx's deadline.
func (p *Provider) Shutdown(ctx context.Context) error { return p.sdk.Shutdown(ctx) }

// Propagator is the wire format of trace context churnd reads: W3C traceparent and tracestate.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// ServerHandler is the gRPC stats handler that starts a server span for every call but the
// health checks (probes every few seconds would drown the traces), continuing the trace context
// the call carries. Its OpenTelemetry metrics are off: churnd's metrics are Prometheus's.
func (p *Provider) ServerHandler() stats.Handler {
	return otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(p.sdk),
		otelgrpc.WithPropagators(Propagator()),
		otelgrpc.WithMeterProvider(noop.NewMeterProvider()),
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
	)
}

// exportMetrics count what the exporter did, so that a collector that is down shows.
type exportMetrics struct {
	spans    *prometheus.CounterVec
	failures prometheus.Counter
}

// countingExporter counts the spans exported and the exports that failed. The SDK reports each
// failure itself through OpenTelemetry's error handler, which churnd's main sends to the log.
type countingExporter struct {
	sdktrace.SpanExporter
	m exportMetrics
}

func countExports(e sdktrace.SpanExporter, reg prometheus.Registerer) sdktrace.SpanExporter {
	f := promauto.With(reg)
	m := exportMetrics{
		spans: f.NewCounterVec(prometheus.CounterOpts{Name: "churn_trace_spans_exported_total",
			Help: "Spans handed to the trace exporter, by result (ok, error)."}, []string{"result"}),
		failures: f.NewCounter(prometheus.CounterOpts{Name: "churn_trace_export_failures_total",
			Help: "Exports of a batch of spans that failed (the collector unreachable or refusing)."}),
	}
	m.spans.WithLabelValues("ok")
	m.spans.WithLabelValues("error")
	return &countingExporter{SpanExporter: e, m: m}
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	result := "ok"
	if err != nil {
		result = "error"
		e.m.failures.Inc()
	}
	e.m.spans.WithLabelValues(result).Add(float64(len(spans)))
	return err
}
