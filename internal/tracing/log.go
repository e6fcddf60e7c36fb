package tracing

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/peer"
)

// Log keys the handler adds to a line logged with a call's context.
const (
	KeyTraceID = "trace_id"
	KeySpanID  = "span_id"
	KeyPeer    = "peer"
)

// LogHandler wraps h so that a line logged with a context holding a span (every gRPC call's,
// through ServerHandler) carries trace_id and span_id, and one holding a gRPC peer carries peer,
// the caller's address. Lines logged without such a context (start-up, background work) are
// passed on as they are. It is hand-written because it is a few lines on top of slog, cheaper than
// the OpenTelemetry log bridge, which would route the lines through the OpenTelemetry log SDK.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(logHandler); ok {
		return h
	}
	return logHandler{h}
}

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String(KeyTraceID, sc.TraceID().String()), slog.String(KeySpanID, sc.SpanID().String()))
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		r.AddAttrs(slog.String(KeyPeer, p.Addr.String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.Handler.WithGroup(name)}
}
