package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/internal/server"
)

// lockedBuffer is a log destination the server's goroutines write while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		m := map[string]any{}
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// A caller repeating a bad request gets one log line per method, code and period, not one per
// call.
func TestFailedCallsAreLoggedThrottled(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	logU, logS := server.Logging(slog.New(slog.NewJSONHandler(&logs, nil)))
	store, err := modelstore.New(defaultModels(t), "")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Models: store, Cache: cache.NewMemory(cache.MemoryOptions{TTL: time.Hour}), MaxBatch: 10})
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(logU), grpc.ChainStreamInterceptor(logS))
	churnv1.RegisterScoringServiceServer(gs, srv)
	client := churnv1.NewScoringServiceClient(serveBufconn(t, gs))

	for range 50 {
		if _, err := client.Score(context.Background(), &churnv1.ScoreRequest{}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("Score without an id = %v", err)
		}
	}
	for range 3 {
		if _, err := client.GetScore(context.Background(), &churnv1.GetScoreRequest{CustomerId: "nobody"}); status.Code(err) != codes.NotFound {
			t.Fatalf("GetScore of an unknown customer = %v", err)
		}
	}
	counts := map[string]int{}
	for _, l := range logs.lines(t) {
		if l["msg"] == "grpc call" {
			counts[l["method"].(string)+" "+l["code"].(string)]++
		}
	}
	want := map[string]int{"/churn.v1.ScoringService/Score InvalidArgument": 1, "/churn.v1.ScoringService/GetScore NotFound": 1}
	if len(counts) != len(want) {
		t.Fatalf("log lines by method and code = %v, want %v", counts, want)
	}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("log lines by method and code = %v, want %v", counts, want)
		}
	}
}
