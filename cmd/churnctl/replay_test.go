package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache/redistest"
	"github.com/churnhq/churn/internal/config"
	"github.com/churnhq/churn/internal/evaluate"
	"github.com/churnhq/churn/internal/sharedtest"
)

// TestReplayMatchesEvaluate replays the standard test rows of the Iranian churn data through a
// real churnd serving the default model (a bundle trained on that data), and checks the live
// figures against churnctl evaluate's on the same rows: ROC-AUC within 0.005, the same churners,
// and a churn rate of churners / customers.
func TestReplayMatchesEvaluate(t *testing.T) {
	t.Parallel()
	data := sharedtest.Path(t, "data/iranian_churn.csv")
	rows := sharedtest.Path(t, "bench/splits/iranian_churn_test_idx.csv")
	spec := filepath.Join(evalRoot, "models/specs/iranian_churn.json")

	evalOut := filepath.Join(t.TempDir(), "report.json")
	if code, _, stderr := runEval(t, "--model", filepath.Join(evalRoot, "models/default.json"), "--data", data, "--spec", spec, "--rows", rows, "--format", "json", "--out", evalOut); code != 0 {
		t.Fatalf("evaluate: exit code %d, stderr:\n%s", code, stderr)
	}
	raw, err := os.ReadFile(evalOut)
	if err != nil {
		t.Fatal(err)
	}
	var rep evaluate.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}

	addr := startChurnd(t)
	start := time.Now().Add(-time.Minute)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"replay", "--addr", addr, "--data", data, "--spec", spec, "--rows", rows, "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("replay: exit code %d, stderr:\n%s", code, errOut.String())
	}
	var perf churnv1.ModelPerformance
	if err := protojson.Unmarshal(out.Bytes(), &perf); err != nil {
		t.Fatalf("replay's output: %v\n%s", err, out.String())
	}
	if len(perf.GetRows()) != 1 {
		t.Fatalf("%d model rows, want 1: %v", len(perf.GetRows()), &perf)
	}
	live := perf.GetRows()[0]
	t.Logf("live ROC-AUC %.5f (±%.5f), evaluate %.5f; Brier %.5f, evaluate %.5f", live.GetRocAuc(), live.GetRocAucErrorBound(), rep.ROCAUC, live.GetBrier(), rep.Brier)
	if d := math.Abs(live.GetRocAuc() - rep.ROCAUC); d > 0.005 {
		t.Errorf("live ROC-AUC %v, evaluate %v: off by %v", live.GetRocAuc(), rep.ROCAUC, d)
	}
	if live.GetCustomers() != int64(rep.Rows) || live.GetChurned() != int64(rep.Positives) {
		t.Errorf("live customers %d, churned %d; evaluate rows %d, positives %d", live.GetCustomers(), live.GetChurned(), rep.Rows, rep.Positives)
	}
	if math.Abs(live.GetBrier()-rep.Brier) > 1e-9 {
		t.Errorf("live Brier %v, evaluate %v", live.GetBrier(), rep.Brier)
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	churn, err := churnv1.NewOutcomeServiceClient(conn).GetChurnReport(context.Background(), &churnv1.GetChurnReportRequest{
		From: timestamppb.New(start), To: timestamppb.New(time.Now().Add(time.Minute)), Period: churnv1.Period_PERIOD_MONTH,
	})
	if err != nil {
		t.Fatal(err)
	}
	var lost, customers int64
	for _, r := range churn.GetRows() {
		lost += r.GetLost()
		customers += r.GetCustomersAtStart()
		if r.GetCustomersAtStart() > 0 {
			if want := float64(r.GetLost()) / float64(r.GetCustomersAtStart()) * 100; math.Abs(r.GetChurnRatePercent()-want) > 1e-9 {
				t.Errorf("churn rate %v%%, want lost / customers = %v%%", r.GetChurnRatePercent(), want)
			}
		}
	}
	if lost != int64(rep.Positives) || customers != int64(rep.Rows) {
		t.Errorf("churn report: %d lost of %d customers; evaluate has %d churners in %d rows", lost, customers, rep.Positives, rep.Rows)
	}

	// models get shows the same live figures beside the training evaluation.
	c := cli{t: t, addr: addr, env: map[string]string{"CHURN_TOKEN": adminToken}}
	c.run("models", "get", live.GetModel().GetVersion()).want(t, 0, []string{
		fmt.Sprintf("live (last 30 days, outcomes joined to %s's scores): %d customers, %d churned", live.GetModel().GetName(), rep.Rows, rep.Positives),
		fmt.Sprintf("roc-auc %.4f (±%.4f)", live.GetRocAuc(), live.GetRocAucErrorBound()),
	}, nil)
}

// TestReplayTwoReplicasOnRedis splits the standard test rows between two churnd replicas sharing
// one Redis: either replica then reports the figures of all the rows, as one replica would.
func TestReplayTwoReplicasOnRedis(t *testing.T) {
	t.Parallel()
	data := sharedtest.Path(t, "data/iranian_churn.csv")
	rows := sharedtest.Path(t, "bench/splits/iranian_churn_test_idx.csv")
	spec := filepath.Join(evalRoot, "models/specs/iranian_churn.json")
	raw, err := os.ReadFile(rows)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSpace(string(raw)), "\n")
	dir := t.TempDir()
	halves := []string{filepath.Join(dir, "a.csv"), filepath.Join(dir, "b.csv")}
	mid := len(lines) / 2
	for i, part := range [][]string{lines[:mid], lines[mid:]} {
		if err := os.WriteFile(halves[i], []byte(strings.Join(part, "")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	redisAddr, _, _ := redistest.StartRedis(t)
	var addrs []string
	for range 2 {
		// A score cache write that misses --cache-timeout leaves the score uncached (Score fails
		// open) and its outcome unjoined: give a loaded test machine time.
		addrs = append(addrs, startChurnd(t, func(c *config.Config) { c.RedisAddrs, c.CacheTimeout = []string{redisAddr}, 5*time.Second }))
	}
	var outs [2]churnv1.ModelPerformance
	for i, addr := range addrs {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"replay", "--addr", addr, "--data", data, "--spec", spec, "--rows", halves[i], "--json"}, &out, &errOut); code != 0 {
			t.Fatalf("replay on replica %d: exit code %d, stderr:\n%s", i, code, errOut.String())
		}
	}
	// Ask each replica for the figures of the whole replay.
	from, to := timestamppb.New(time.Now().Add(-time.Hour)), timestamppb.New(time.Now().Add(time.Hour))
	for i, addr := range addrs {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		perf, err := churnv1.NewOutcomeServiceClient(conn).GetModelPerformance(context.Background(), &churnv1.GetModelPerformanceRequest{From: from, To: to})
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		outs[i].Rows = perf.GetRows()
	}
	want := replayEvaluate(t, data, spec, rows)
	for i := range outs {
		if len(outs[i].GetRows()) != 1 {
			t.Fatalf("replica %d: %d model rows, want 1", i, len(outs[i].GetRows()))
		}
		r := outs[i].GetRows()[0]
		if r.GetCustomers() != int64(want.Rows) || r.GetChurned() != int64(want.Positives) || math.Abs(r.GetRocAuc()-want.ROCAUC) > 0.005 {
			t.Errorf("replica %d: %d customers, %d churned, ROC-AUC %v; evaluate: %d rows, %d positives, %v", i, r.GetCustomers(), r.GetChurned(), r.GetRocAuc(), want.Rows, want.Positives, want.ROCAUC)
		}
	}
}

// replayEvaluate runs churnctl evaluate with the default model on rows and returns its report.
func replayEvaluate(t *testing.T, data, spec, rows string) evaluate.Report {
	t.Helper()
	out := filepath.Join(t.TempDir(), "report.json")
	if code, _, stderr := runEval(t, "--model", filepath.Join(evalRoot, "models/default.json"), "--data", data, "--spec", spec, "--rows", rows, "--format", "json", "--out", out); code != 0 {
		t.Fatalf("evaluate: exit code %d, stderr:\n%s", code, stderr)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep evaluate.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}
