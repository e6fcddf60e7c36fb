package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/app"
	"github.com/churnhq/churn/internal/app/apptest"
	"github.com/churnhq/churn/internal/config"
	"github.com/churnhq/churn/internal/drift"
)

// TestScoreDrift scores the default model's held-out rows through gRPC, as customers like those
// it was trained on, and reads /metrics: the probability histogram counts them and the drift
// index is below the 0.1 "stable" threshold. Then a population of the riskiest of those rows
// only: the index passes 0.25, where the alert fires.
func TestScoreDrift(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ShutdownGrace, cfg.StoreDir = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second, t.TempDir()
	a := apptest.Start(t, cfg)
	conn, err := grpc.NewClient(a.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := churnv1.NewScoringServiceClient(conn)

	data, err := os.ReadFile("../../testdata/golden/default_model.json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Features    json.RawMessage `json:"features"`
		Probability float64         `json:"probability"`
	}
	if err := json.Unmarshal(data, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) < drift.MinSamples {
		t.Fatalf("%d golden rows, the drift index needs %d", len(rows), drift.MinSamples)
	}
	var all, risky []*churnv1.ScoreRequest
	for i, r := range rows {
		var f churnv1.CustomerFeatures
		if err := protojson.Unmarshal(r.Features, &f); err != nil {
			t.Fatal(err)
		}
		req := &churnv1.ScoreRequest{CustomerId: fmt.Sprintf("c%d", i), Features: &f}
		all = append(all, req)
		if r.Probability > 0.5 {
			risky = append(risky, req)
		}
	}
	batch := func(reqs []*churnv1.ScoreRequest) {
		t.Helper()
		resp, err := client.ScoreBatch(context.Background(), &churnv1.ScoreBatchRequest{Requests: reqs}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range resp.GetResults() {
			if r.GetError() != nil {
				t.Fatalf("item %d: %v", i, r.GetError())
			}
		}
	}

	batch(all)
	version := "iranian-gbdt-2026.11.23"
	if got := metricValue(t, a, drift.HistogramName+"_count", version); got != float64(len(all)) {
		t.Errorf("%s_count = %v, want %d", drift.HistogramName, got, len(all))
	}
	if psi := metricValue(t, a, drift.PSIName, version); psi >= 0.1 {
		t.Errorf("PSI of the held-out rows = %v, want below 0.1", psi)
	} else {
		t.Logf("PSI of the %d held-out rows: %.4f", len(all), psi)
	}

	for range 4 * len(all) / len(risky) {
		batch(risky)
	}
	if psi := metricValue(t, a, drift.PSIName, version); psi <= 0.25 {
		t.Errorf("PSI after a flood of risky customers = %v, want above 0.25", psi)
	} else {
		t.Logf("PSI after four times as many risky rows: %.4f", psi)
	}
}

// metricValue reads the sample of name{version="..."} from the app's /metrics.
func metricValue(t *testing.T, a *app.App, name, version string) float64 {
	t.Helper()
	_, body := get(t, a, "/metrics")
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+`{version="`+version+`"}`) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no %s{version=%q}", name, version)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
