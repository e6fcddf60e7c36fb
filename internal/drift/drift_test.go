package drift_test

import (
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/drift"
	"github.com/churnhq/churn/internal/model"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/models/modeltest"
)

// load makes a model of the default bundle under version; edit may change its manifest.
func load(t *testing.T, version string, edit func(map[string]any)) *model.Model {
	t.Helper()
	m, err := model.Load(modeltest.WithVersion(t, version, edit))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// families gathers reg into name → family.
func families(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// byVersion returns the series of a family by their version label.
func byVersion(mf *dto.MetricFamily) map[string]*dto.Metric {
	out := map[string]*dto.Metric{}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "version" {
				out[l.GetValue()] = m
			}
		}
	}
	return out
}

// reference returns one probability inside each bucket of the bundle's training distribution, as
// many times as the bundle counts, so that the served distribution equals the training one.
func reference(t *testing.T, m *model.Model) []float64 {
	t.Helper()
	s := m.Bundle.Manifest.Training.Scores
	var out []float64
	lower := 0.0
	for i, c := range s.Counts {
		upper := 1.0
		if i < len(s.Edges) {
			upper = s.Edges[i]
		}
		for range c {
			out = append(out, (lower+upper)/2)
		}
		lower = upper
	}
	return out
}

func TestPSI(t *testing.T) {
	// (0.5 - 90.5/101)·ln(...) + ...: computed by hand from the package doc's formula.
	got, ok := drift.PSI([]uint64{50, 50}, []uint64{90, 10})
	if !ok || math.Abs(got-0.8530592449672882) > 1e-12 {
		t.Errorf("PSI([50 50], [90 10]) = %v, %v; want 0.85306", got, ok)
	}
	if got, ok := drift.PSI([]uint64{10, 20, 70}, []uint64{10, 20, 70}); !ok || got != 0 {
		t.Errorf("PSI of a distribution against itself = %v, %v; want 0", got, ok)
	}
	if got, ok := drift.PSI([]uint64{10, 20, 70}, []uint64{100, 200, 700}); !ok || got > 0.01 {
		t.Errorf("PSI of the same shares at ten times the count = %v, %v; want about 0", got, ok)
	}
	ab, _ := drift.PSI([]uint64{30, 70}, []uint64{60, 40})
	ba, _ := drift.PSI([]uint64{60, 40}, []uint64{30, 70})
	if ab <= 0 || math.Abs(ab-ba) > 1e-12 {
		t.Errorf("PSI is symmetric in equal-sized samples and positive: %v, %v", ab, ba)
	}
	for _, tc := range []struct {
		name     string
		exp, act []uint64
	}{
		{"different lengths", []uint64{1, 2}, []uint64{1, 2, 3}},
		{"no buckets", nil, nil},
		{"nothing expected", []uint64{0, 0}, []uint64{1, 1}},
		{"nothing served", []uint64{1, 1}, []uint64{0, 0}},
	} {
		if _, ok := drift.PSI(tc.exp, tc.act); ok {
			t.Errorf("%s: PSI gave a figure", tc.name)
		}
	}
}

// TestMonitor: one histogram per loaded version, a PSI near 0 for the training distribution and
// above the 0.25 threshold for a shifted one, none before MinSamples or for a bundle without a
// training distribution, and no series for a version once it is unloaded.
func TestMonitor(t *testing.T) {
	stable := load(t, "stable", nil)
	shifted := load(t, "shifted", nil)
	young := load(t, "young", nil)
	bare := load(t, "bare", func(m map[string]any) { delete(m["training"].(map[string]any), "scores") })
	store, err := modelstore.New([]*model.Model{stable, shifted, young, bare}, "stable")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	mon, err := drift.New(store, reg)
	if err != nil {
		t.Fatal(err)
	}

	ref := reference(t, stable)
	for _, p := range ref {
		mon.Observe(stable, p)
		mon.Observe(shifted, min(1, p+0.3)) // every customer 30 points riskier
		mon.Observe(bare, p)
	}
	for _, p := range ref[:drift.MinSamples-1] {
		mon.Observe(young, p)
	}
	notLoaded := load(t, "stranger", nil)
	mon.Observe(notLoaded, 0.5)

	fams := families(t, reg)
	hists := byVersion(fams[drift.HistogramName])
	if got := slices.Sorted(maps.Keys(hists)); !slices.Equal(got, []string{"bare", "shifted", "stable", "young"}) {
		t.Fatalf("histogram series for %v, want the four loaded versions", got)
	}
	h := hists["stable"].GetHistogram()
	if h.GetSampleCount() != uint64(len(ref)) || len(h.GetBucket()) != len(bundle.ScoreEdges) {
		t.Errorf("stable: %d samples in %d buckets, want %d in %d", h.GetSampleCount(), len(h.GetBucket()), len(ref), len(bundle.ScoreEdges))
	}
	psi := byVersion(fams[drift.PSIName])
	if got := slices.Sorted(maps.Keys(psi)); !slices.Equal(got, []string{"shifted", "stable"}) {
		t.Fatalf("PSI series for %v, want stable and shifted (bare records no training distribution, young has too few samples)", got)
	}
	if v := psi["stable"].GetGauge().GetValue(); v != 0 {
		t.Errorf("PSI of the training distribution itself = %v, want 0", v)
	}
	if v := psi["shifted"].GetGauge().GetValue(); v <= 0.25 {
		t.Errorf("PSI of a distribution shifted by 0.3 = %v, want above the 0.25 threshold", v)
	}

	if err := store.Remove("shifted"); err != nil {
		t.Fatal(err)
	}
	mon.Observe(shifted, 0.5) // a request that still held the unloaded model
	fams = families(t, reg)
	if _, ok := byVersion(fams[drift.HistogramName])["shifted"]; ok {
		t.Error("an unloaded version still has a histogram")
	}
	if _, ok := byVersion(fams[drift.PSIName])["shifted"]; ok {
		t.Error("an unloaded version still has a PSI")
	}
}

// BenchmarkObserve is the cost drift adds to each score.
func BenchmarkObserve(b *testing.B) {
	m, err := model.Load(modeltest.WithVersion(b, "bench", nil))
	if err != nil {
		b.Fatal(err)
	}
	store, err := modelstore.New([]*model.Model{m}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	mon, err := drift.New(store, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		mon.Observe(m, 0.3)
	}
}
