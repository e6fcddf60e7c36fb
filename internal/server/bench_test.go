package server_test

import (
	"context"
	"math"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	churnv1 "github.com/churnhq/churn/api/churn/v1"

	"github.com/churnhq/churn/internal/cache"
	"github.com/churnhq/churn/internal/model"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/internal/retention"
	"github.com/churnhq/churn/internal/server"
)

// BenchmarkScoreInProcess is one Score call without gRPC, with the FULL view (the request sets
// none): validation, feature mapping, evaluation, drivers, rules, tiering, the response message
// and the in-process cache's write. BenchmarkScoreInProcessBasic is the same with the BASIC view.
// The name of the FULL one is kept so that older records compare. wire-B/op is the size of the
// response as gRPC would send it; cpu-ns/op the process's CPU per call (see BenchmarkEnrichment).
func BenchmarkScoreInProcess(b *testing.B) {
	benchScoreInProcess(b, churnv1.ScoreView_SCORE_VIEW_UNSPECIFIED)
}

// BenchmarkScoreInProcessBasic is BenchmarkScoreInProcess with the BASIC view.
func BenchmarkScoreInProcessBasic(b *testing.B) {
	benchScoreInProcess(b, churnv1.ScoreView_SCORE_VIEW_BASIC)
}

func benchScoreInProcess(b *testing.B, view churnv1.ScoreView) {
	store, err := modelstore.New(defaultModels(b), "")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(server.Options{Models: store, Cache: cache.NewMemory(cache.MemoryOptions{TTL: time.Hour}), MaxBatch: 1, Registerer: prometheus.NewRegistry(), Now: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	req := basicRequest(b)
	req.View = view
	ctx := context.Background()
	var last *churnv1.ScoreResponse
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	for b.Loop() {
		if last, err = srv.Score(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	if cpu1, ok := processCPU(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
	b.ReportMetric(float64(proto.Size(last)), "wire-B/op")
}

// BenchmarkModelScore is the scoring path alone: mapping, evaluation and tier, no response.
func BenchmarkModelScore(b *testing.B) {
	store, err := modelstore.New(defaultModels(b), "")
	if err != nil {
		b.Fatal(err)
	}
	m := store.Active()
	req := basicRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Score(req.GetFeatures()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestScoreAllocations pins the allocation counts: none for mapping, evaluation and tiering;
// for a whole in-process Score with the in-process cache, 13 for basic.json with either view
// (a view trims the response in place, after the cache has it): the response with its timestamp
// and model reference (1; three before issue 16); the drivers, their messages in one block and the slice of them (3);
// the rules' warning, its message, the slice of warnings, the action and its reason (5); the
// one-response slice handed to the cache, the cache's marshalled copy, its entry and the slice
// of previous probabilities (4). Gated at that count, so that any regression shows.
func TestScoreAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts under -short are not needed")
	}
	store, err := modelstore.New(defaultModels(t), "")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Models: store, Cache: cache.NewMemory(cache.MemoryOptions{TTL: time.Hour}), MaxBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	req := basicRequest(t)
	m := store.Active()
	if raceEnabled {
		return // pooled buffers are dropped at random under -race; counted in the plain run
	}
	if n := testing.AllocsPerRun(200, func() {
		if _, err := m.Score(req.GetFeatures()); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("model.Score allocates %v times per call, want 0", n)
	}
	const maxScoreAllocs = 11
	for _, view := range []churnv1.ScoreView{churnv1.ScoreView_SCORE_VIEW_FULL, churnv1.ScoreView_SCORE_VIEW_BASIC} {
		req.View = view
		if n := testing.AllocsPerRun(200, func() {
			if _, err := srv.Score(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		}); n > maxScoreAllocs {
			t.Errorf("Score with view %s allocates %v times per call, want at most %d", view, n, maxScoreAllocs)
		}
	}
}

// BenchmarkEnrichment measures what issue 4 adds to scoring one customer in process: the
// drivers (with the margin they add up to), the early-warning rules, the action, the stage and
// the expected loss, as Server.score calls them. path=bare is the model's Score alone (mapping,
// evaluation, tier); path=enriched is the same plus the enrichment, so the difference of the
// two, in the same run, is the added cost (`benchstat -col /path`). With the logistic default
// model req=basic raises one warning and gets a let-go action; req=complaints raises three and
// gets a make-amends action.
//
// cpu-ns/op is the CPU time of the whole process (every thread, so the collector's background
// work too) per call: on a shared, loaded machine it moves far less than the wall time, which
// also counts the time spent waiting for a core.
//
// CHURN_BENCH_MODEL names another bundle to measure instead of the default model (here and in
// BenchmarkEnrichmentRetained), one that reads the same requests: a model trained on the same
// spec, e.g. with churnctl train --trainer logistic. A relative path is from internal/server,
// where go test runs the benchmarks.
func BenchmarkEnrichment(b *testing.B) {
	m := enrichmentModel(b)
	rules := retention.DefaultRules()
	for _, file := range []string{"basic", "complaints"} {
		req := requestFile(b, file)
		for _, enrich := range []bool{false, true} {
			path := "bare"
			if enrich {
				path = "enriched"
			}
			b.Run("req="+file+"/path="+path, func(b *testing.B) {
				var sink float64
				b.ReportAllocs()
				cpu0, cpuOK := processCPU()
				for b.Loop() {
					if !enrich {
						r, err := m.Score(req.GetFeatures())
						if err != nil {
							b.Fatal(err)
						}
						sink += r.Probability
						continue
					}
					ex, err := m.Explain(req.GetFeatures())
					if err != nil {
						b.Fatal(err)
					}
					res := rules.Evaluate(retention.Input{Features: req.GetFeatures(), Probability: ex.Probability, Tier: ex.Tier})
					sink += ex.Probability + ex.Base + ex.Margin + res.ExpectedLoss + float64(len(ex.Drivers())+len(res.Warnings))
				}
				if cpu1, ok := processCPU(); ok && cpuOK {
					b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
				}
				if math.IsNaN(sink) {
					b.Fatal("NaN score")
				}
			})
		}
	}
}

// enrichmentModel is the default model, or the bundle that CHURN_BENCH_MODEL names.
func enrichmentModel(b *testing.B) *model.Model {
	if path := os.Getenv("CHURN_BENCH_MODEL"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		m, err := model.Load(data)
		if err != nil {
			b.Fatalf("CHURN_BENCH_MODEL %s: %v", path, err)
		}
		b.Logf("model %s %s", m.Bundle.Manifest.Name, m.Bundle.Manifest.Version)
		return m
	}
	return defaultModels(b)[0]
}

// BenchmarkEnrichmentRetained is BenchmarkEnrichment for complaints.json with a live heap like
// churnd's when its in-process cache is full: the results of the last 100,000 customers stay
// reachable, and each enriched call replaces the oldest (as the cache's eviction does). Both paths
// start from the same filled ring, so the difference is again the enrichment's cost, now with a
// collector that runs less often but marks more.
func BenchmarkEnrichmentRetained(b *testing.B) {
	if testing.Short() {
		b.Skip("fills 100,000 results")
	}
	m := enrichmentModel(b)
	rules := retention.DefaultRules()
	req := requestFile(b, "complaints")
	type kept struct {
		drivers []model.Driver
		res     retention.Result
	}
	enrich := func() kept {
		ex, err := m.Explain(req.GetFeatures())
		if err != nil {
			b.Fatal(err)
		}
		return kept{ex.Drivers(), rules.Evaluate(retention.Input{Features: req.GetFeatures(), Probability: ex.Probability, Tier: ex.Tier})}
	}
	ring := make([]kept, 100_000)
	for _, path := range []string{"bare", "enriched"} {
		b.Run("path="+path, func(b *testing.B) {
			for i := range ring {
				ring[i] = enrich()
			}
			b.ReportAllocs()
			cpu0, cpuOK := processCPU()
			i := 0
			for b.Loop() {
				if path == "bare" {
					if _, err := m.Score(req.GetFeatures()); err != nil {
						b.Fatal(err)
					}
					continue
				}
				ring[i] = enrich()
				i = (i + 1) % len(ring)
			}
			if cpu1, ok := processCPU(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// BenchmarkScoreStream is one ScoreStream message through gRPC on bufconn, sent and answered in
// turn: receive, score, cache, send. It measures what the stream's receiving goroutine (the idle
// timeout's price) adds per message.
func BenchmarkScoreStream(b *testing.B) {
	env := startServer(b, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := env.client.ScoreStream(ctx)
	if err != nil {
		b.Fatal(err)
	}
	req := basicRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := stream.Send(req); err != nil {
			b.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			b.Fatal(err)
		}
	}
}
