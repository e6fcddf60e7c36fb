package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache/redistest"
	"github.com/churnhq/churn/internal/poll"
	"github.com/churnhq/churn/internal/sharedtest"
)

const e2eAdminToken = "e2e-admin-token-0123456789"

// churnctl runs the real churnctl binary and returns its stdout; a non-zero exit fails the test.
func churnctl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(buildBinary(t, "./cmd/churnctl", true), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("churnctl %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// stopDaemon sends SIGTERM and waits for a clean exit.
func stopDaemon(t *testing.T, d *daemon) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Fatalf("churnd exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("churnd did not exit within 30s of SIGTERM")
	}
}

// load calls Score on one churnd without pause and records failures and the versions that
// answered.
type load struct {
	calls, failures atomic.Int64
	last            atomic.Value // string: the version of the latest response
	mu              sync.Mutex
	versions        []string // each version in the order it first answered
}

func (l *load) run(ctx context.Context, t *testing.T, client churnv1.ScoringServiceClient, req *churnv1.ScoreRequest) {
	for ctx.Err() == nil {
		resp, err := client.Score(context.Background(), req)
		l.calls.Add(1)
		if err != nil {
			l.failures.Add(1)
			t.Logf("Score failed: %v", err)
			continue
		}
		v := resp.GetModel().GetVersion()
		l.last.Store(v)
		l.mu.Lock()
		if len(l.versions) == 0 || l.versions[len(l.versions)-1] != v {
			l.versions = append(l.versions, v)
		}
		l.mu.Unlock()
	}
}

func (l *load) lastVersion() string {
	v, _ := l.last.Load().(string)
	return v
}

// waitVersion waits until the load sees version, and returns how long after start it did.
func waitVersion(t *testing.T, l *load, version string, start time.Time, within time.Duration) time.Duration {
	t.Helper()
	poll.Until(t, within-time.Since(start), func() bool { return l.lastVersion() == version },
		"the replica answers with %q", version)
	return time.Since(start)
}

func dial(t *testing.T, addr string) churnv1.ScoringServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return churnv1.NewScoringServiceClient(conn)
}

// TestModelLifecycleEndToEnd is issue 5's acceptance run with the real binaries: train a bundle
// with churnctl, upload it to one churnd, activate it while both replicas take Score calls (no
// call fails; both switch, the second through Redis pub/sub), restart the first (the activation
// survives), roll back, and the second follows again.
func TestModelLifecycleEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs churnd and churnctl; skipped with -short")
	}
	data := sharedtest.Path(t, "data/iranian_churn.csv")
	bundlePath := filepath.Join(t.TempDir(), "e2e.json")
	churnctl(t, "train", "--data", data, "--spec", "../../models/specs/iranian_churn.json",
		"--version", "e2e-retrained-1", "--created", "2026-11-23T00:00:00Z", "--out", bundlePath)

	redisAddr, _, _ := redistest.StartRedis(t)
	flags := []string{"--redis-addr", redisAddr, "--model-store", "redis", "--admin-tokens", e2eAdminToken,
		"--model-sync-interval", "1m"} // an hour-long safety net would do: pub/sub must carry the change
	a := startDaemon(t, flags...)
	b := startDaemon(t, flags...)
	ctl := func(d *daemon, args ...string) string {
		return churnctl(t, append(args, "--addr", d.grpcAddr, "--token", e2eAdminToken)...)
	}
	ctl(a, "upload", "--quiet", bundlePath)

	reqJSON, err := os.ReadFile("../../testdata/requests/basic.json")
	if err != nil {
		t.Fatal(err)
	}
	req := &churnv1.ScoreRequest{}
	if err := protojson.Unmarshal(reqJSON, req); err != nil {
		t.Fatal(err)
	}
	clientA, clientB := dial(t, a.grpcAddr), dial(t, b.grpcAddr)
	first, err := clientA.Score(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	original := first.GetModel().GetVersion()

	// Two callers per replica, each with its own record: one caller's responses must switch
	// version once and never back.
	ctx, cancel := context.WithCancel(context.Background())
	loads := []*load{{}, {}, {}, {}}
	clients := []churnv1.ScoringServiceClient{clientA, clientA, clientB, clientB}
	var wg sync.WaitGroup
	for i, l := range loads {
		wg.Add(1)
		go func() { defer wg.Done(); l.run(ctx, t, clients[i], req) }()
	}
	for _, l := range loads {
		waitVersion(t, l, original, time.Now(), 10*time.Second)
	}
	start := time.Now()
	ctl(a, "models", "activate", "e2e-retrained-1")
	for i, l := range loads {
		took := waitVersion(t, l, "e2e-retrained-1", start, 5*time.Second)
		t.Logf("caller %d (replica %c) answered with the new version %v after the activate command started", i, "aabb"[i], took)
	}
	cancel()
	wg.Wait()
	var calls int64
	for i, l := range loads {
		calls += l.calls.Load()
		if l.failures.Load() != 0 {
			t.Errorf("caller %d: %d of %d calls failed during the activation", i, l.failures.Load(), l.calls.Load())
		}
		if len(l.versions) != 2 || l.versions[0] != original || l.versions[1] != "e2e-retrained-1" {
			t.Errorf("caller %d saw versions %v, want %s then e2e-retrained-1", i, l.versions, original)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d Score calls during the activation, none failed", calls)

	// A restart keeps the activation.
	stopDaemon(t, a)
	a = startDaemon(t, flags...)
	clientA = dial(t, a.grpcAddr)
	if resp, err := clientA.Score(context.Background(), req); err != nil || resp.GetModel().GetVersion() != "e2e-retrained-1" {
		t.Fatalf("after a restart Score names %q (%v), want e2e-retrained-1", resp.GetModel().GetVersion(), err)
	}

	// Roll back on a; b follows.
	ctl(a, "models", "rollback")
	if resp, err := clientA.Score(context.Background(), req); err != nil || resp.GetModel().GetVersion() != original {
		t.Fatalf("after rollback a answers with %q (%v), want %s", resp.GetModel().GetVersion(), err, original)
	}
	poll.Until(t, 5*time.Second, func() bool {
		resp, err := clientB.Score(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetModel().GetVersion() == original
	}, "b answers with %q after the rollback", original)
	list := &churnv1.ListModelsResponse{}
	if err := protojson.Unmarshal([]byte(ctl(b, "models", "list", "--json")), list); err != nil {
		t.Fatalf("models list --json: %v", err)
	}
	if list.GetActiveVersion() != original || len(list.GetModels()) != 2 || len(list.GetActivations()) != 3 {
		t.Fatalf("models list on b = %v", list)
	}
}
