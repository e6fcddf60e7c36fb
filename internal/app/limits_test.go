package app_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/app"
	"github.com/churnhq/churn/internal/app/apptest"
	"github.com/churnhq/churn/internal/config"
	"github.com/churnhq/churn/internal/metricstest"
	"github.com/churnhq/churn/internal/poll"
	"github.com/churnhq/churn/models/modeltest"
)

// wait bounds every wait of these tests; none asserts how long anything took.
const wait = 30 * time.Second

// limitsConfig is a config on free loopback ports whose limits the test then makes small.
func limitsConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.StoreDir, cfg.ShutdownGrace = "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), 5*time.Second
	return cfg
}

func dialApp(t *testing.T, a *app.App) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(a.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func scoreRequest(t *testing.T) *churnv1.ScoreRequest {
	t.Helper()
	data, err := os.ReadFile("../../testdata/requests/basic.json")
	if err != nil {
		t.Fatal(err)
	}
	req := &churnv1.ScoreRequest{}
	if err := protojson.Unmarshal(data, req); err != nil {
		t.Fatal(err)
	}
	return req
}

// scoreAll makes n concurrent Score calls on conn and fails the test on any error.
func scoreAll(t *testing.T, conn *grpc.ClientConn, n int) {
	t.Helper()
	client, req := churnv1.NewScoringServiceClient(conn), scoreRequest(t)
	errs := make(chan error, n)
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := client.Score(ctx, req, grpc.WaitForReady(true))
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Score: %v", err)
		}
	}
}

func inFlight(t *testing.T, reg prometheus.Gatherer, class string) float64 {
	return metricstest.Value(t, reg, "churn_grpc_in_flight", map[string]string{"class": class})
}

// Issue 12, item 2: streams that never half-close are held up to --max-streams; the rest are
// refused at once with RESOURCE_EXHAUSTED, and Score calls, which have their own bound, are all
// answered meanwhile.
func TestIdleStreamsAreShedWhileScoreIsAnswered(t *testing.T) {
	t.Parallel()
	cfg := limitsConfig(t)
	cfg.MaxStreams, cfg.GRPCMaxStreamsPerConn, cfg.StreamIdleTimeout = 20, 10, time.Hour
	reg := prometheus.NewRegistry()
	a := apptest.StartWithRegistry(t, cfg, reg)

	// 3 connections × 10 streams (each connection's own limit), none sending anything.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outcomes := make(chan error, 30)
	for range 3 {
		client := churnv1.NewScoringServiceClient(dialApp(t, a))
		for range 10 {
			s, err := client.ScoreStream(ctx, grpc.WaitForReady(true))
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				_, err := s.Recv() // a held stream blocks here until the test ends
				outcomes <- err
			}()
		}
	}
	for i := range 10 {
		select {
		case err := <-outcomes:
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("refusal %d: %v, want RESOURCE_EXHAUSTED", i, err)
			}
		case <-time.After(wait):
			t.Fatalf("only %d of the 10 streams over --max-streams were refused", i)
		}
	}
	poll.Until(t, wait, func() bool { return inFlight(t, reg, "stream") == 20 }, "20 streams held")

	scoreAll(t, dialApp(t, a), 100)

	select {
	case err := <-outcomes:
		t.Fatalf("a held stream ended: %v", err)
	default:
	}
	if got := metricstest.Value(t, reg, "churn_grpc_shed_total", map[string]string{"class": "stream"}); got != 10 {
		t.Errorf("churn_grpc_shed_total{class=stream} = %v, want 10", got)
	}
	if got := metricstest.Value(t, reg, "churn_grpc_shed_total", map[string]string{"class": "unary"}); got != 0 {
		t.Errorf("churn_grpc_shed_total{class=unary} = %v, want 0", got)
	}
}

// A stream whose client sends nothing for --stream-idle-timeout is ended with
// DEADLINE_EXCEEDED, whether it never sent or went quiet after a request; its slot is returned.
// An upload that goes quiet is ended the same way.
func TestIdleStreamsAreClosed(t *testing.T) {
	t.Parallel()
	const token = "limits-test-admin-token-0123456789"
	cfg := limitsConfig(t)
	// Long enough that the test's own steps (open, then send) never look idle on a loaded machine.
	cfg.StreamIdleTimeout, cfg.AdminTokens = time.Second, []string{token}
	reg := prometheus.NewRegistry()
	a := apptest.StartWithRegistry(t, cfg, reg)
	conn := dialApp(t, a)
	client := churnv1.NewScoringServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	silent, err := client.ScoreStream(ctx, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := silent.Recv(); status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "no message for 1s") {
		t.Errorf("a stream that sends nothing: %v, want DEADLINE_EXCEEDED for the idle timeout", err)
	}

	quiet, err := client.ScoreStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := quiet.Send(scoreRequest(t)); err != nil {
		t.Fatal(err)
	}
	if resp, err := quiet.Recv(); err != nil || resp.GetError() != nil {
		t.Fatalf("first response: %v, %v", resp, err)
	}
	if _, err := quiet.Recv(); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a stream quiet after one request: %v, want DEADLINE_EXCEEDED", err)
	}

	data := modeltest.WithVersion(t, "idle-1", nil)
	md := &churnv1.UploadMetadata{Sha256: modeltest.SHA256(data), SizeBytes: int64(len(data))}
	up, err := churnv1.NewModelServiceClient(conn).UploadModel(withBearer(ctx, token))
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Metadata{Metadata: md}}); err != nil {
		t.Fatal(err)
	}
	if err := up.RecvMsg(&churnv1.ModelInfo{}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("an upload that stops sending: %v, want DEADLINE_EXCEEDED", err)
	}
	poll.Until(t, wait, func() bool { return inFlight(t, reg, "stream") == 0 && inFlight(t, reg, "upload") == 0 },
		"the idle streams' slots are returned")
}

// Connections without calls are closed after --grpc-max-conn-idle, and a connection past
// --grpc-max-conn-age plus its grace is closed with the calls still on it.
func TestConnectionIdleAndAgeLimits(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		cfg := limitsConfig(t)
		cfg.MaxConnIdle = 50 * time.Millisecond
		conn := dialApp(t, apptest.Start(t, cfg))
		scoreAll(t, conn, 1)
		poll.Until(t, wait, func() bool { return conn.GetState() == connectivity.Idle },
			"the server closes the connection once it has no calls (state %s)", conn.GetState())
	})
	t.Run("age", func(t *testing.T) {
		t.Parallel()
		cfg := limitsConfig(t)
		cfg.MaxConnAge, cfg.MaxConnAgeGrace, cfg.StreamIdleTimeout = 100*time.Millisecond, 100*time.Millisecond, time.Hour
		client := churnv1.NewScoringServiceClient(dialApp(t, apptest.Start(t, cfg)))
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		s, err := client.ScoreStream(ctx, grpc.WaitForReady(true))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
			t.Errorf("a stream held past the connection's age and grace: %v, want UNAVAILABLE", err)
		}
	})
}

// Issue 12, item 4: at most --max-uploads uploads run at once; one more is refused with
// RESOURCE_EXHAUSTED, scoring goes on, and once an upload ends the next is taken.
func TestConcurrentUploadsAreBounded(t *testing.T) {
	t.Parallel()
	const token = "limits-test-admin-token-0123456789"
	cfg := limitsConfig(t)
	cfg.MaxUploads, cfg.AdminTokens = 1, []string{token}
	reg := prometheus.NewRegistry()
	a := apptest.StartWithRegistry(t, cfg, reg)
	conn := dialApp(t, a)
	models := churnv1.NewModelServiceClient(conn)
	ctx, cancel := context.WithTimeout(withBearer(context.Background(), token), wait)
	defer cancel()

	first := modeltest.WithVersion(t, "bounded-1", nil)
	held, err := models.UploadModel(ctx, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	md := &churnv1.UploadMetadata{Sha256: modeltest.SHA256(first), SizeBytes: int64(len(first))}
	if err := held.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Metadata{Metadata: md}}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, wait, func() bool { return inFlight(t, reg, "upload") == 1 }, "the first upload holds the slot")

	second := modeltest.WithVersion(t, "bounded-2", nil)
	if _, err := uploadBundle(ctx, models, second); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--max-uploads") {
		t.Fatalf("an upload over --max-uploads: %v, want RESOURCE_EXHAUSTED naming the flag", err)
	}
	scoreAll(t, conn, 10)

	if err := held.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Chunk{Chunk: first}}); err != nil {
		t.Fatal(err)
	}
	if info, err := held.CloseAndRecv(); err != nil || info.GetVersion() != "bounded-1" {
		t.Fatalf("the held upload, completed: %v, %v", info, err)
	}
	poll.Until(t, wait, func() bool { return inFlight(t, reg, "upload") == 0 }, "the upload's slot is returned")
	if info, err := uploadBundle(ctx, models, second); err != nil || info.GetVersion() != "bounded-2" {
		t.Fatalf("an upload once the slot is free: %v, %v", info, err)
	}
}

// uploadBundle uploads data in one chunk; a refusal arrives as CloseAndRecv's status.
func uploadBundle(ctx context.Context, models churnv1.ModelServiceClient, data []byte) (*churnv1.ModelInfo, error) {
	s, err := models.UploadModel(ctx)
	if err != nil {
		return nil, err
	}
	md := &churnv1.UploadMetadata{Sha256: modeltest.SHA256(data), SizeBytes: int64(len(data))}
	for _, m := range []*churnv1.UploadModelRequest{
		{Part: &churnv1.UploadModelRequest_Metadata{Metadata: md}},
		{Part: &churnv1.UploadModelRequest_Chunk{Chunk: data}},
	} {
		if err := s.Send(m); errors.Is(err, io.EOF) {
			break // refused: the status follows
		} else if err != nil {
			return nil, err
		}
	}
	return s.CloseAndRecv()
}

// httpConn is a raw keep-alive connection to the HTTP port.
type httpConn struct {
	net.Conn
	r *bufio.Reader
}

func dialHTTP(t *testing.T, a *app.App) *httpConn {
	t.Helper()
	c, err := net.Dial("tcp", a.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	return &httpConn{Conn: c, r: bufio.NewReader(c)}
}

// get sends GET path and reads the response.
func (c *httpConn) get(path string) (*http.Response, error) {
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: churnd\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}

// Issue 12, item 3: the HTTP port holds at most --http-max-conns connections; with it full of
// idle keep-alive connections, a new one waits (it is not served) while gRPC calls go on, and is
// served as soon as one closes.
func TestHTTPPortFloodLeavesGRPCWorking(t *testing.T) {
	t.Parallel()
	cfg := limitsConfig(t)
	cfg.HTTPMaxConns, cfg.HTTPIdleTimeout, cfg.HTTPReadTimeout = 4, time.Hour, time.Hour
	a := apptest.Start(t, cfg)
	var held []*httpConn
	for range 4 {
		c := dialHTTP(t, a)
		if resp, err := c.get("/healthz"); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz within the limit: %v, %v", resp, err)
		}
		held = append(held, c)
	}
	extra := dialHTTP(t, a)
	served := make(chan error, 1)
	go func() {
		resp, err := extra.get("/healthz")
		if err == nil && resp.StatusCode != http.StatusOK {
			err = errors.New(resp.Status)
		}
		served <- err
	}()

	scoreAll(t, dialApp(t, a), 20)

	select {
	case err := <-served:
		t.Fatalf("a connection over --http-max-conns was served (%v)", err)
	default:
	}
	held[0].Close()
	if err := <-served; err != nil {
		t.Fatalf("the waiting connection, once one closed: %v", err)
	}
}

// Idle keep-alive connections and requests that never finish arriving are closed.
func TestHTTPTimeoutsCloseConnections(t *testing.T) {
	t.Parallel()
	cfg := limitsConfig(t)
	cfg.HTTPIdleTimeout, cfg.HTTPReadTimeout = 50*time.Millisecond, 50*time.Millisecond
	a := apptest.Start(t, cfg)

	idle := dialHTTP(t, a)
	if resp, err := idle.get("/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %v, %v", resp, err)
	}
	if _, err := idle.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("an idle keep-alive connection: read %v, want EOF (closed by the server)", err)
	}

	slow := dialHTTP(t, a)
	if _, err := io.WriteString(slow, "GET /healthz HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, slow.r); err != nil {
		t.Errorf("a request that never finishes: %v, want the server to close the connection", err)
	}
}

func withBearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}
