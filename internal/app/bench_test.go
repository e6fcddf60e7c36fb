package app_test

import (
	"context"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/app/apptest"
	"github.com/churnhq/churn/internal/config"
)

// BenchmarkScoreGRPC is one Score call through the whole churnd of config.Default (the default
// model, the in-process cache, every interceptor: metrics, logging, recovery, auth with a scoring
// token, the default deadline) over loopback TCP, one call at a time, per view. It is the
// benchmark to profile for what the gRPC edge costs around the handler (docs/PERFORMANCE.md,
// "Views (issue 16)"); the client runs in the same process, so its cost is in the figure too, and
// in cpu-ns/op, the process's CPU per call (client and server, collector included).
func BenchmarkScoreGRPC(b *testing.B) {
	const token = "bench-scoring-token-0123456789abcdef"
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ShutdownGrace, cfg.StoreDir = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second, b.TempDir()
	cfg.ScoringTokens = []string{token}
	a := apptest.Start(b, cfg)
	conn, err := grpc.NewClient(a.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	client := churnv1.NewScoringServiceClient(conn)
	data, err := os.ReadFile("../../testdata/requests/basic.json")
	if err != nil {
		b.Fatal(err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	for _, view := range []churnv1.ScoreView{churnv1.ScoreView_SCORE_VIEW_FULL, churnv1.ScoreView_SCORE_VIEW_BASIC} {
		req := &churnv1.ScoreRequest{}
		if err := protojson.Unmarshal(data, req); err != nil {
			b.Fatal(err)
		}
		req.View = view
		if _, err := client.Score(ctx, req, grpc.WaitForReady(true)); err != nil {
			b.Fatal(err)
		}
		b.Run("view="+view.String()[len("SCORE_VIEW_"):], func(b *testing.B) {
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
