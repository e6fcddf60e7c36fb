package server_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// serveBufconn serves gs on an in-process bufconn listener and returns a client connection to
// it; both are stopped when the test ends.
func serveBufconn(t testing.TB, gs *grpc.Server) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	go gs.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
	})
	return conn
}

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// readRepoFile reads a file by its path from the repository root.
func readRepoFile(path string) ([]byte, error) {
	return os.ReadFile(filepath.Join("..", "..", path))
}

func tierLabel(t churnv1.RiskTier) string { return t.String()[len("RISK_TIER_"):] }
