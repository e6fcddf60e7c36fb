// Command churnd is the churn scoring service: a gRPC server that scores customers' churn risk
// with the active model bundle, and an HTTP server for the same API as JSON (/v1/...), /metrics,
// /healthz and /readyz. The wiring lives in internal/app; this file parses the configuration,
// builds the logger and the metrics registry, and runs the app until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"syscall"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"

	"github.com/churnhq/churn/internal/app"
	"github.com/churnhq/churn/internal/buildinfo"
	"github.com/churnhq/churn/internal/config"
	"github.com/churnhq/churn/internal/gcconfig"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := config.Parse(args, getenv, stderr)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if errors.Is(err, config.ErrVersion) {
		fmt.Fprintln(stdout, buildinfo.Read().String("churnd"))
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "churnd: %v\n", err)
		return 2
	}
	logger := newLogger(cfg, stderr)
	// go-redis logs connection failures through a package-level logger, once per failed dial:
	// during an outage that is a flood. Its lines go to debug; the cache reports failures itself.
	redis.SetLogger(redisLogger{logger.With("component", "redis")})
	// OpenTelemetry reports a failed span export (the collector down) through its process-wide
	// error handler, which would print to stderr outside the JSON log; each also counts in
	// churn_trace_export_failures_total.
	otelLog := logger.With("component", "otel")
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { otelLog.Warn("opentelemetry", "err", err) }))

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.Collector(),
	)

	gc, err := gcconfig.Apply(memlimit.FromCgroup)
	if err != nil {
		logger.Warn("garbage collector: no memory limit set", "err", err)
	}
	attrs := []any{"gogc", gc.GCPercent, "gogc_from", gc.GCPercentFrom, "memory_limit_from", gc.MemoryLimitFrom}
	if gc.MemoryLimit != math.MaxInt64 {
		attrs = append(attrs, "memory_limit_bytes", gc.MemoryLimit)
	}
	logger.Info("garbage collector", attrs...)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(cfg, logger, reg)
	if err != nil {
		logger.Error("start-up failed", "err", err)
		return 1
	}
	if err := a.Run(ctx); err != nil {
		logger.Error("server failed", "err", err)
		return 1
	}
	return 0
}

// redisLogger adapts go-redis's internal logging to slog at debug level.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if r.l.Enabled(ctx, slog.LevelDebug) {
		r.l.DebugContext(ctx, fmt.Sprintf(format, v...))
	}
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
