package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// daemon is a churnd process started by a test.
type daemon struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string
	exited   chan error
}

// binDir holds the binaries the tests build, once per test run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "churnd-test-")
	if err != nil {
		panic(err) // a test binary that cannot make a temporary directory cannot run
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var builds sync.Map // package path → *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// buildBinary builds a command of this module (e.g. "./cmd/churnd") once per test run, with cgo
// as given, and returns the binary's path.
func buildBinary(t *testing.T, pkg string, cgo bool) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, &buildResult{})
	b := v.(*buildResult)
	b.once.Do(func() {
		b.path = filepath.Join(binDir, filepath.Base(pkg))
		build := exec.Command("go", "build", "-o", b.path, pkg)
		build.Dir = "../.."
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if cgo {
			build.Env = append(os.Environ(), "CGO_ENABLED=1")
		}
		b.out, b.err = build.CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, b.err, b.out)
	}
	return b.path
}

// startDaemon starts the real churnd binary on free loopback ports; it reads the bound addresses
// from the JSON log.
func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	bin := buildBinary(t, "./cmd/churnd", false)
	cmd := exec.Command(bin, append([]string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--shutdown-grace", "20s", "--store-dir", filepath.Join(t.TempDir(), "store")}, args...)...)
	cmd.Env = []string{} // no CHURN_ variables leak in from the test's environment
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, exited: make(chan error, 1)}
	addrs := make(chan [2]string, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var grpcAddr, httpAddr string
		sent := false
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Logf("churnd: %s", sc.Text())
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch line.Msg {
			case "grpc listening":
				grpcAddr = line.Addr
			case "http listening":
				httpAddr = line.Addr
			}
			if grpcAddr != "" && httpAddr != "" && !sent {
				addrs <- [2]string{grpcAddr, httpAddr}
				sent = true
			}
		}
		d.exited <- cmd.Wait()
	}()
	// Kill a churnd still running, and wait for the log reader so it never logs after the test.
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-readerDone
	})
	select {
	case a := <-addrs:
		d.grpcAddr, d.httpAddr = a[0], a[1]
	case err := <-d.exited:
		t.Fatalf("churnd exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("churnd did not log its listening addresses within 30s")
	}
	return d
}

func TestChurndEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the churnd binary; skipped with -short")
	}
	d := startDaemon(t)
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Health and reflection.
	hr, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "churn.v1.ScoringService"})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v; want SERVING", hr, err)
	}
	services := listServices(ctx, t, conn)
	for _, want := range []string{"churn.v1.ScoringService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !strings.Contains(services, want) {
			t.Errorf("reflection lists %s, missing %s", services, want)
		}
	}

	// Score the README's example request.
	data, err := os.ReadFile("../../testdata/requests/basic.json")
	if err != nil {
		t.Fatal(err)
	}
	req := &churnv1.ScoreRequest{}
	if err := protojson.Unmarshal(data, req); err != nil {
		t.Fatal(err)
	}
	client := churnv1.NewScoringServiceClient(conn)
	resp, err := client.Score(ctx, req)
	if err != nil {
		t.Fatalf("Score: %v", err)
	}
	if p := resp.GetProbability(); !(p >= 0 && p <= 1) || resp.GetTier() == churnv1.RiskTier_RISK_TIER_UNSPECIFIED || resp.GetModel().GetVersion() == "" {
		t.Errorf("Score = %v: want a probability in [0,1], a tier and a model version", resp)
	}

	// Metrics and health over HTTP.
	metrics := httpGet(t, "http://"+d.httpAddr+"/metrics")
	for _, want := range []string{
		`churn_grpc_server_handled_total{grpc_code="OK",grpc_method="Score",grpc_service="churn.v1.ScoringService",grpc_type="unary"} 1`,
		`churn_grpc_server_handling_seconds_bucket{grpc_method="Score",grpc_service="churn.v1.ScoringService",grpc_type="unary",le="+Inf"} 1`,
		`churn_model_active_info{name="churn-default"`,
		`go_goroutines`,
		`go_build_info{checksum="",path="github.com/churnhq/churn",version="`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if got := httpGet(t, "http://"+d.httpAddr+"/healthz"); got != "ok\n" {
		t.Errorf("/healthz = %q, want ok", got)
	}

	// The same request over the HTTP/JSON API, as the README's curl example sends it.
	hresp, err := http.Post("http://"+d.httpAddr+"/v1/score", "application/x-www-form-urlencoded", strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(hresp.Body)
	hresp.Body.Close()
	if err != nil || hresp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/score: %v %s %v", hresp.Status, body, err)
	}
	viaHTTP := &churnv1.ScoreResponse{}
	if err := protojson.Unmarshal(body, viaHTTP); err != nil {
		t.Fatalf("POST /v1/score answered %s: %v", body, err)
	}
	if viaHTTP.GetProbability() != resp.GetProbability() || viaHTTP.GetCustomerId() != req.GetCustomerId() {
		t.Errorf("POST /v1/score = %v, want the gRPC answer's probability %v", viaHTTP, resp.GetProbability())
	}

	// SIGTERM while a stream is open: the stream still completes, then churnd exits 0.
	stream, err := client.ScoreStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	notServing := watchNotServing(ctx, t, conn)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	notServing()
	if err := stream.Send(req); err != nil {
		t.Fatalf("Send after SIGTERM: %v", err)
	}
	if r, err := stream.Recv(); err != nil || r.GetProbability() != resp.GetProbability() {
		t.Fatalf("in-flight stream after SIGTERM: %v, %v", r, err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v, want EOF", err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Fatalf("churnd exit: %v, want status 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("churnd did not exit within 20s of SIGTERM")
	}
}

// watchNotServing opens a health watch on conn and returns a func that waits until it reports
// NOT_SERVING, the first step of the shutdown. Open it before the shutdown starts: once churnd has
// sent GOAWAY and closed its listener, a new RPC (the watch) can only fail to dial.
func watchNotServing(ctx context.Context, t *testing.T, conn *grpc.ClientConn) (wait func()) {
	t.Helper()
	// The watch is an RPC too: end it, or the graceful stop waits for it.
	ctx, cancel := context.WithCancel(ctx)
	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: "churn.v1.ScoringService"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		cancel()
		t.Fatalf("health watch before the shutdown: %v, %v; want SERVING", r, err)
	}
	return func() {
		t.Helper()
		defer cancel()
		for {
			r, err := watch.Recv()
			if err != nil {
				t.Fatalf("health watch: %v", err)
			}
			if r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
				return
			}
		}
	}
}

func listServices(ctx context.Context, t *testing.T, conn *grpc.ClientConn) string {
	t.Helper()
	rc, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range r.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	rc.CloseSend()
	return strings.Join(names, " ")
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	return string(body)
}

func TestVersionFlag(t *testing.T) {
	t.Parallel()
	var stdout, stderr strings.Builder
	if code := run([]string{"--version"}, func(string) string { return "" }, &stdout, &stderr); code != 0 {
		t.Fatalf("--version: exit %d, stderr %q", code, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "churnd ") || !strings.Contains(stdout.String(), "(go1.") {
		t.Errorf("--version printed %q, want \"churnd <version> (go…)\"", stdout.String())
	}
}

func TestRunBadConfig(t *testing.T) {
	var out strings.Builder
	if code := run([]string{"--max-batch", "0"}, func(string) string { return "" }, io.Discard, &out); code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if !strings.Contains(out.String(), "--max-batch") {
		t.Errorf("output %q does not name --max-batch", out.String())
	}
	out.Reset()
	if code := run(nil, func(k string) string { return map[string]string{"CHURN_MODEL_DIR": "/nonexistent-dir"}[k] }, io.Discard, &out); code != 1 {
		t.Errorf("missing model dir: exit code %d, want 1", code)
	}
	if !strings.Contains(out.String(), "model directory") {
		t.Errorf("output %q does not explain the missing model directory", out.String())
	}
}
