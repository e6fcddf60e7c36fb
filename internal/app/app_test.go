package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/app"
	"github.com/churnhq/churn/internal/app/apptest"
	"github.com/churnhq/churn/internal/cache/redistest"
	"github.com/churnhq/churn/internal/config"
	"github.com/churnhq/churn/models/modeltest"
)

// TestTwoAppsInOneProcess runs two apps side by side (nothing is global), scores with each, and
// stops them by cancelling their contexts (apptest.Start's cleanup).
func TestTwoAppsInOneProcess(t *testing.T) {
	t.Parallel()
	for i := range 2 {
		cfg := config.Default()
		cfg.GRPCAddr, cfg.HTTPAddr, cfg.ShutdownGrace, cfg.StoreDir = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second, t.TempDir()
		a := apptest.Start(t, cfg)

		conn, err := grpc.NewClient(a.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		client := churnv1.NewScoringServiceClient(conn)
		_, err = client.Score(context.Background(), &churnv1.ScoreRequest{CustomerId: ""}, grpc.WaitForReady(true))
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("app %d: Score with an empty id = %v, want InvalidArgument", i, err)
		}
		resp, err := http.Get("http://" + a.HTTPAddr().String() + "/readyz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("app %d: /readyz = %v, %v", i, resp, err)
		} else {
			resp.Body.Close()
		}
		conn.Close()
	}
}

func TestNewFailsOnBusyPort(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.StoreDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	first := apptest.Start(t, cfg)

	cfg.GRPCAddr = first.GRPCAddr().String()
	if _, err := app.New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err == nil {
		t.Fatal("New on a busy gRPC port succeeded")
	}
}

func TestNewRefusesBadRulesFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte("slow_response:\n  avg_first_response_hours: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.RulesFile, cfg.StoreDir = "127.0.0.1:0", "127.0.0.1:0", path, t.TempDir()
	_, err := app.New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "--rules-file") {
		t.Fatalf("New with a bad rules file = %v, want an error naming --rules-file and line 2", err)
	}
}

// A bundle of megabytes goes through the Redis model store, whose client does not inherit the
// score cache's 50ms socket timeouts, and a second replica loads it.
func TestLargeUploadThroughTheRedisModelStore(t *testing.T) {
	addr, _, _ := redistest.StartRedis(t)
	const token = "app-test-admin-token-0123456789"
	start := func() (churnv1.ModelServiceClient, churnv1.ScoringServiceClient) {
		cfg := config.Default()
		cfg.GRPCAddr, cfg.HTTPAddr, cfg.ShutdownGrace = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second
		cfg.RedisAddrs, cfg.ModelStore, cfg.AdminTokens = []string{addr}, "redis", []string{token}
		a := apptest.Start(t, cfg)
		conn, err := grpc.NewClient(a.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return churnv1.NewModelServiceClient(conn), churnv1.NewScoringServiceClient(conn)
	}
	modelsA, _ := start()
	// Trailing white space keeps the bundle valid JSON: 24 MiB in all.
	data := append(modeltest.WithVersion(t, "big-1", nil), bytes.Repeat([]byte(" "), 24<<20)...)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	stream, err := modelsA.UploadModel(ctx, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Metadata{Metadata: &churnv1.UploadMetadata{
		Sha256: modeltest.SHA256(data), SizeBytes: int64(len(data)),
	}}}); err != nil {
		t.Fatal(err)
	}
	for rest := data; len(rest) > 0; {
		n := min(1<<20, len(rest))
		if err := stream.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Chunk{Chunk: rest[:n]}}); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	info, err := stream.CloseAndRecv()
	if err != nil || info.GetVersion() != "big-1" || info.GetSizeBytes() != int64(len(data)) {
		t.Fatalf("UploadModel = %v, %v", info, err)
	}
	// A second replica reads the 24 MiB bundle back at start-up.
	modelsB, _ := start()
	got, err := modelsB.GetModel(ctx, &churnv1.GetModelRequest{Version: "big-1"}, grpc.WaitForReady(true))
	if err != nil || got.GetStatus() != churnv1.ModelStatus_MODEL_STATUS_READY || got.GetSha256() != modeltest.SHA256(data) {
		t.Fatalf("replica b GetModel = %v, %v", got, err)
	}
}

// An app stopped as soon as it is run stops cleanly: Run's shutdown may stop the gRPC server
// before Serve has started, and grpc.ErrServerStopped is then no failure. (It was reported as one
// about one run in ten with -cpu 1; the loop makes the race likely on any machine.)
func TestRunStoppedAtOnceIsNoFailure(t *testing.T) {
	t.Parallel()
	for i := range 20 {
		cfg := config.Default()
		cfg.GRPCAddr, cfg.HTTPAddr, cfg.StoreDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
		a, err := app.New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := a.Run(ctx); err != nil {
			t.Fatalf("run %d: Run with a cancelled context = %v, want nil", i, err)
		}
	}
}
