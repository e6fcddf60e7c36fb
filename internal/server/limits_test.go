package server_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/metricstest"
	"github.com/churnhq/churn/internal/poll"
	"github.com/churnhq/churn/internal/server"
)

// An upload that announces 64 MiB and sends 1 KiB allocates about what arrived, not what was
// announced (it allocated the 64 MiB up front before). Not parallel: it reads the process's
// allocation counter, which the parallel tests would move.
func TestUploadBufferFollowsReceivedBytes(t *testing.T) {
	env := startModelServer(t, 64<<20)
	admin := withToken(context.Background(), adminToken)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	stream, err := env.models.UploadModel(admin)
	if err != nil {
		t.Fatal(err)
	}
	md := &churnv1.UploadMetadata{Sha256: strings.Repeat("0", 64), SizeBytes: 64 << 20}
	if err := stream.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Metadata{Metadata: md}}); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Chunk{Chunk: make([]byte, 1024)}}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.CloseAndRecv()
	runtime.ReadMemStats(&after)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "1024 of 67108864 bytes arrived") {
		t.Fatalf("UploadModel = %v, want INVALID_ARGUMENT for the truncated upload", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
		t.Errorf("an upload announcing 64 MiB and sending 1 KiB allocated %d bytes; want well under 8 MiB", got)
	}
}

func TestLimitsShedPerClass(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	l, err := server.NewLimits(server.LimitsOptions{MaxInFlight: 2, MaxStreams: 1, MaxUploads: 1, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	churnv1.RegisterScoringServiceServer(gs, churnv1.UnimplementedScoringServiceServer{})
	churnv1.RegisterModelServiceServer(gs, churnv1.UnimplementedModelServiceServer{})
	l.Classify(gs.GetServiceInfo())

	// take starts a call of method; its slot is returned when the returned cancel is called,
	// as gRPC cancels a stream's context when the call ends.
	take := func(method string) (context.CancelFunc, error) {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := l.Tap(ctx, &tap.Info{FullMethodName: method})
		return cancel, err
	}
	const (
		score  = "/churn.v1.ScoringService/Score"
		stream = "/churn.v1.ScoringService/ScoreStream"
		upload = "/churn.v1.ModelService/UploadModel"
	)
	var held []context.CancelFunc
	for _, m := range []string{score, "/churn.v1.ModelService/ListModels", stream, upload} {
		cancel, err := take(m)
		if err != nil {
			t.Fatalf("%s within the limits: %v", m, err)
		}
		held = append(held, cancel)
	}
	for _, m := range []string{score, "/unknown.Service/Method", stream, upload} {
		if _, err := take(m); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("%s over its limit: %v, want RESOURCE_EXHAUSTED", m, err)
		}
	}
	for class, want := range map[string]float64{server.ClassUnary: 2, server.ClassStream: 1, server.ClassUpload: 1} {
		if got := metricstest.Value(t, reg, "churn_grpc_in_flight", map[string]string{"class": class}); got != want {
			t.Errorf("in flight %s = %v, want %v", class, got, want)
		}
		if got := metricstest.Value(t, reg, "churn_grpc_shed_total", map[string]string{"class": class}); got != map[string]float64{server.ClassUnary: 2, server.ClassStream: 1, server.ClassUpload: 1}[class] {
			t.Errorf("shed %s = %v", class, got)
		}
	}
	// A call that ends gives its slot back (context.AfterFunc runs in a goroutine of its own).
	held[2]()
	waitGauge(t, reg, server.ClassStream, 0)
	if _, err := take(stream); err != nil {
		t.Errorf("a stream after one ended: %v", err)
	}
	for _, cancel := range held {
		cancel()
	}
}

// waitGauge waits until churn_grpc_in_flight{class} is want.
func waitGauge(t *testing.T, reg prometheus.Gatherer, class string, want float64) {
	t.Helper()
	poll.Until(t, 10*time.Second, func() bool {
		return metricstest.Value(t, reg, "churn_grpc_in_flight", map[string]string{"class": class}) == want
	}, "churn_grpc_in_flight{class=%s} is %v", class, want)
}

func TestNewLimitsRefusesZero(t *testing.T) {
	t.Parallel()
	if _, err := server.NewLimits(server.LimitsOptions{MaxInFlight: 1, MaxStreams: 0, MaxUploads: 1}); err == nil {
		t.Fatal("NewLimits with no streams allowed succeeded")
	}
}

func TestDefaultDeadline(t *testing.T) {
	t.Parallel()
	interceptor := server.DefaultDeadline(time.Hour)
	deadlineOf := func(ctx context.Context) (time.Time, bool) {
		var dl time.Time
		var ok bool
		_, err := interceptor(ctx, nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
			dl, ok = ctx.Deadline()
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return dl, ok
	}
	start := time.Now()
	if dl, ok := deadlineOf(context.Background()); !ok || dl.Before(start.Add(time.Hour)) || dl.After(time.Now().Add(time.Hour)) {
		t.Errorf("a call without a deadline got %v, %v; want one an hour away", dl, ok)
	}
	own, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want, _ := own.Deadline()
	if dl, ok := deadlineOf(own); !ok || !dl.Equal(want) {
		t.Errorf("a call with its own deadline got %v, want it kept (%v)", dl, want)
	}
}
