package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Recovery turns a panic in a handler into INTERNAL, logs it with its stack, and counts it in
// the metrics interceptor outside it (interceptor order: metrics → logging → recovery).
func Recovery(logger *slog.Logger) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	handler := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	return recovery.UnaryServerInterceptor(handler), recovery.StreamServerInterceptor(handler)
}

// Logging logs every call that ends with a server-side error at Error, client errors at Info,
// and successful calls only at Debug, with method, code, duration_ms (milliseconds, to the
// microsecond) and, for a failure, err; the logger's handler adds the call's trace_id, span_id
// and peer (internal/tracing.LogHandler). Failed calls are logged at most once per method, code and
// 10 s, with how many were left out since (suppressed_since_last): a caller sending bad requests
// in a loop cannot flood the log. Every call, logged or not, is counted by the metrics
// interceptor (churn_grpc_server_handled_total, by method and code). It is hand-written (a few
// lines) so that the hot path costs one level check when debug logging is off.
func Logging(logger *slog.Logger) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	throttle := &throttledLog{every: 10 * time.Second}
	log := func(ctx context.Context, method string, start time.Time, err error) {
		code := status.Code(err)
		level := levelOf(code)
		if !logger.Enabled(ctx, level) {
			return
		}
		attrs := []slog.Attr{
			slog.String("method", method),
			slog.String("code", code.String()),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		}
		if err != nil {
			ok, suppressed := throttle.allow(method + " " + code.String())
			if !ok {
				return
			}
			attrs = append(attrs, slog.String("err", status.Convert(err).Message()), slog.Int("suppressed_since_last", suppressed))
		}
		logger.LogAttrs(ctx, level, "grpc call", attrs...)
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		log(ctx, info.FullMethod, start, err)
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		log(ss.Context(), info.FullMethod, start, err)
		return err
	}
	return unary, stream
}

// maxThrottleKeys bounds a throttledLog's keys. Its callers' keys come from bounded sets (the
// registered methods × the gRPC codes, the limit classes); past the bound, keys share one.
const maxThrottleKeys = 1024

// throttledLog lets at most one line per key and period through and says how many it held back
// since, so that a flood of failures (an attacker's bad calls, a Redis outage, shed load) costs a
// line per period, not one per failure. The failures themselves are counted in metrics by their
// callers. The zero value with every set is ready to use.
type throttledLog struct {
	every time.Duration
	now   func() time.Time // time.Now when nil

	mu   sync.Mutex
	keys map[string]*throttleState
}

type throttleState struct {
	last       time.Time
	suppressed int
}

// allow reports whether a line for key may be logged now, and how many lines for key were held
// back since the last one let through.
func (t *throttledLog) allow(key string) (ok bool, suppressed int) {
	now := time.Now
	if t.now != nil {
		now = t.now
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.keys == nil {
		t.keys = map[string]*throttleState{}
	}
	st, found := t.keys[key]
	if !found {
		if len(t.keys) >= maxThrottleKeys {
			key = "(other)"
			st = t.keys[key]
		}
		if st == nil {
			st = &throttleState{}
			t.keys[key] = st
		}
	}
	at := now()
	if !st.last.IsZero() && at.Sub(st.last) < t.every {
		st.suppressed++
		return false, 0
	}
	suppressed, st.last, st.suppressed = st.suppressed, at, 0
	return true, suppressed
}

// log logs err at Warn under msg, throttled as one key; ctx is the call's, for its trace id.
func (t *throttledLog) log(ctx context.Context, logger *slog.Logger, msg string, err error) {
	if ok, suppressed := t.allow(msg); ok {
		logger.WarnContext(ctx, msg, "err", err, "suppressed_since_last", suppressed)
	}
}

func levelOf(c codes.Code) slog.Level {
	switch c {
	case codes.OK:
		return slog.LevelDebug
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return slog.LevelError
	}
	return slog.LevelInfo
}
