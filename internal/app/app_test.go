package app_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
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
	"github.com/churnhq/churn/internal/poll"
	"github.com/churnhq/churn/internal/registry"
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
	// A second replica lists it from its record, and reads the 24 MiB bundle back when a request
	// names it.
	modelsB, scoringB := start()
	got, err := modelsB.GetModel(ctx, &churnv1.GetModelRequest{Version: "big-1"}, grpc.WaitForReady(true))
	if err != nil || got.GetStatus() != churnv1.ModelStatus_MODEL_STATUS_STORED || got.GetSha256() != modeltest.SHA256(data) {
		t.Fatalf("replica b GetModel before any request = %v, %v; want it STORED", got, err)
	}
	resp, err := scoringB.Score(context.Background(), &churnv1.ScoreRequest{CustomerId: "c-1", ModelVersion: "big-1"})
	if err != nil || resp.GetModel().GetVersion() != "big-1" {
		t.Fatalf("replica b Score with model_version big-1 = %v, %v", resp, err)
	}
	got, err = modelsB.GetModel(ctx, &churnv1.GetModelRequest{Version: "big-1"})
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

// get fetches an HTTP path of the app: status code and body.
func get(t *testing.T, a *app.App, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + a.HTTPAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// The model store's active version lost its record and bundle (Redis evicted them, or failed
// over to a replica without them) before this replica started: it serves its embedded default,
// and says so where an operator looks (/readyz not ready with the reason, the
// churn_model_active_mismatch gauge, ListModels' replica state), refuses to activate what it
// cannot store, and is ready once the version is uploaded again. Before the fix it logged a line
// and answered ok everywhere.
func TestReplicaThatCannotServeTheStoresActiveVersionIsNotReady(t *testing.T) {
	t.Parallel()
	addr, _, _ := redistest.StartRedis(t)
	ctx := context.Background()
	probe := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { probe.Close() })
	seed, err := registry.NewRedisBackend(registry.RedisBackendOptions{Client: probe})
	if err != nil {
		t.Fatal(err)
	}
	data := modeltest.WithVersion(t, "ghost-1", nil)
	if err := seed.Put(ctx, registry.Record{Version: "ghost-1", SHA256: modeltest.SHA256(data), Size: int64(len(data))}, data); err != nil {
		t.Fatal(err)
	}
	if err := seed.Activate(ctx, registry.Activation{Version: "ghost-1", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := probe.Del(ctx, "churn:models:{models}:bundle:ghost-1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := probe.HDel(ctx, "churn:models:{models}:records", "ghost-1").Err(); err != nil {
		t.Fatal(err)
	}

	const token = "app-test-admin-token-0123456789"
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ShutdownGrace = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second
	cfg.RedisAddrs, cfg.ModelStore, cfg.AdminTokens = []string{addr}, "redis", []string{token}
	a := apptest.Start(t, cfg)

	if code, body := get(t, a, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"ghost-1"`) {
		t.Fatalf("/readyz = %d %q; want 503 naming ghost-1", code, body)
	}
	if code, _ := get(t, a, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d; the process is alive, want 200", code)
	}
	if _, body := get(t, a, "/metrics"); !strings.Contains(body, "\nchurn_model_active_mismatch 1\n") {
		t.Fatal("/metrics lacks churn_model_active_mismatch 1")
	}
	conn, err := grpc.NewClient(a.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	models, scoring := churnv1.NewModelServiceClient(conn), churnv1.NewScoringServiceClient(conn)
	admin := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	list, err := models.ListModels(admin, &churnv1.ListModelsRequest{}, grpc.WaitForReady(true))
	if rs := list.GetReplica(); err != nil || rs.GetInSync() || rs.GetStoreActiveVersion() != "ghost-1" || rs.GetServedVersion() == "ghost-1" || !strings.Contains(rs.GetMessage(), "upload it again") {
		t.Fatalf("ListModels replica = %v, %v; want out of step with ghost-1, saying what to do", rs, err)
	}
	_, err = models.ActivateModel(admin, &churnv1.ActivateModelRequest{Version: "ghost-1"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "record") || !strings.Contains(err.Error(), "bundle") {
		t.Fatalf("ActivateModel(ghost-1) = %v; want FAILED_PRECONDITION naming the missing record and bundle", err)
	}

	stream, err := models.UploadModel(admin)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Metadata{Metadata: &churnv1.UploadMetadata{Sha256: modeltest.SHA256(data)}}}); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Chunk{Chunk: data}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("upload of ghost-1 again: %v", err)
	}
	poll.Until(t, 10*time.Second, func() bool { code, _ := get(t, a, "/readyz"); return code == http.StatusOK }, "/readyz ready once ghost-1 is back")
	if _, body := get(t, a, "/metrics"); !strings.Contains(body, "\nchurn_model_active_mismatch 0\n") {
		t.Fatal("/metrics lacks churn_model_active_mismatch 0 after converging")
	}
	resp, err := scoring.Score(ctx, &churnv1.ScoreRequest{CustomerId: "c-1"})
	if err != nil || resp.GetModel().GetVersion() != "ghost-1" {
		t.Fatalf("Score = %v, %v; want ghost-1", resp.GetModel(), err)
	}
}

// --model-version may name a version of the model store: it is loaded from there and served
// while the store has no active version. A version that is nowhere fails the start-up.
func TestModelVersionFromTheModelStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	disk, err := registry.OpenDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := modeltest.WithVersion(t, "pinned-1", nil)
	if err := disk.Put(context.Background(), registry.Record{Version: "pinned-1", SHA256: modeltest.SHA256(data), Size: int64(len(data))}, data); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ShutdownGrace, cfg.StoreDir = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second, dir
	cfg.ModelVersion = "nope-9"
	if _, err := app.New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err == nil || !strings.Contains(err.Error(), "--model-version") {
		t.Fatalf("New with a --model-version that is nowhere = %v, want an error naming the flag", err)
	}
	cfg.ModelVersion = "pinned-1"
	a := apptest.Start(t, cfg)
	conn, err := grpc.NewClient(a.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	resp, err := churnv1.NewScoringServiceClient(conn).Score(context.Background(), &churnv1.ScoreRequest{CustomerId: "c-1"}, grpc.WaitForReady(true))
	if err != nil || resp.GetModel().GetVersion() != "pinned-1" {
		t.Fatalf("Score = %v, %v; want the stored pinned-1", resp.GetModel(), err)
	}
}

// TestModelDirLogsWhichBundleIsActive: with two bundles in --model-dir the newest by created_at
// becomes active, and the log says so as a warning, naming the other; --model-version names the
// active one instead, and the log says that.
func TestModelDirLogsWhichBundleIsActive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, created := range map[string]string{"older-1": "2026-01-01T00:00:00Z", "newer-1": "2026-06-01T00:00:00Z"} {
		data := modeltest.WithVersion(t, name, func(m map[string]any) { m["created_at"] = created })
		if err := os.WriteFile(filepath.Join(dir, name+".json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		modelVersion, active string
		want                 []string
	}{
		{"", "newer-1", []string{`level=WARN msg="active model: the newest by created_at of the bundles loaded; set --model-version to choose another" version=newer-1`, `others=[older-1]`}},
		{"older-1", "older-1", []string{`level=INFO msg="active model: named by --model-version" version=older-1`}},
	} {
		cfg := config.Default()
		cfg.GRPCAddr, cfg.HTTPAddr, cfg.ShutdownGrace, cfg.StoreDir = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second, t.TempDir()
		cfg.ModelDir, cfg.ModelVersion = dir, tc.modelVersion
		var log lockedBuffer
		a, err := app.New(cfg, slog.New(slog.NewTextHandler(&log, nil)), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		// Stop once it serves: the active model answers.
		conn, err := grpc.NewClient(a.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := churnv1.NewScoringServiceClient(conn).Score(context.Background(), &churnv1.ScoreRequest{CustomerId: "c-1"}, grpc.WaitForReady(true))
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if err != nil || resp.GetModel().GetVersion() != tc.active {
			t.Errorf("--model-version %q: Score = %v, %v; want model %s", tc.modelVersion, resp.GetModel(), err, tc.active)
		}
		got := log.String()
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("--model-version %q: the log lacks %q:\n%s", tc.modelVersion, w, got)
			}
		}
	}
}

// lockedBuffer is a bytes.Buffer that the app's goroutines may write while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRedisThatRefusesConnectionsIsUnavailable: with the Redis cache's address refusing
// connections, GetScore answers UNAVAILABLE ("unreachable"), not DEADLINE_EXCEEDED, and Score
// answers without the cache. go-redis's own command retries, 8 ms and more apart by default,
// used to outlast the 50 ms cache timeout, so a Redis that was down read as a slow one
// (make soak found it; docs/PERFORMANCE.md, "Soak").
func TestRedisThatRefusesConnectionsIsUnavailable(t *testing.T) {
	t.Parallel()
	closed, stop, _ := redistest.StartRedis(t)
	stop() // the port now refuses connections
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ShutdownGrace, cfg.StoreDir = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second, t.TempDir()
	cfg.RedisAddrs = []string{closed}
	a := apptest.Start(t, cfg)

	conn, err := grpc.NewClient(a.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := churnv1.NewScoringServiceClient(conn)
	ctx := context.Background()
	if _, err := client.Score(ctx, &churnv1.ScoreRequest{CustomerId: "c-1", Features: &churnv1.CustomerFeatures{}}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("Score with Redis refusing connections: %v, want an answer without the cache", err)
	}
	for i := range 5 {
		_, err := client.GetScore(ctx, &churnv1.GetScoreRequest{CustomerId: "c-1"})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("GetScore %d with Redis refusing connections: %v, want Unavailable", i, err)
		}
	}
}
