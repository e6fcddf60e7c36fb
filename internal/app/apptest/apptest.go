// Package apptest starts the whole service in a test's process: app.New with a discarded log and
// a registry of its own, Run in a goroutine, and a cleanup that stops it and fails the test when
// Run returns an error.
package apptest

import (
	"context"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/churnhq/churn/internal/app"
	"github.com/churnhq/churn/internal/config"
)

// Start builds an app from cfg and runs it until the test ends.
func Start(t testing.TB, cfg config.Config) *app.App {
	t.Helper()
	return StartWithRegistry(t, cfg, prometheus.NewRegistry())
}

// StartWithRegistry is Start with the metrics registry given, for tests that read what the app
// counted.
func StartWithRegistry(t testing.TB, cfg config.Config, reg *prometheus.Registry) *app.App {
	t.Helper()
	a, err := app.New(cfg, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("app Run: %v", err)
		}
	})
	return a
}
