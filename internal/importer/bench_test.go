package importer

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/scoring"
)

// syntheticXGBoost writes an XGBoost 1.7 JSON model of full trees of the given depth over nf
// features, with random float32 thresholds and default directions: the shape of the anchor's
// model (300 trees of depth 4, ../shared/bench/ANCHORS.md), which is too big to commit.
func syntheticXGBoost(trees, depth, nf int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	type tree struct {
		Param           map[string]string `json:"tree_param"`
		SplitIndices    []int             `json:"split_indices"`
		SplitConditions []float32         `json:"split_conditions"`
		Left            []int             `json:"left_children"`
		Right           []int             `json:"right_children"`
		DefaultLeft     []int             `json:"default_left"`
		SplitType       []int             `json:"split_type"`
	}
	ts := make([]tree, trees)
	info := make([]int, trees)
	for k := range ts {
		n := 1<<(depth+1) - 1
		t := tree{Param: map[string]string{"num_nodes": fmt.Sprint(n), "size_leaf_vector": "0"}}
		for i := range n {
			if i < 1<<depth-1 {
				t.SplitIndices = append(t.SplitIndices, r.IntN(nf))
				t.SplitConditions = append(t.SplitConditions, float32(r.NormFloat64()))
				t.Left = append(t.Left, 2*i+1)
				t.Right = append(t.Right, 2*i+2)
			} else {
				t.SplitIndices = append(t.SplitIndices, 0)
				t.SplitConditions = append(t.SplitConditions, float32(r.NormFloat64()*0.1))
				t.Left = append(t.Left, -1)
				t.Right = append(t.Right, -1)
			}
			t.DefaultLeft = append(t.DefaultLeft, r.IntN(2))
			t.SplitType = append(t.SplitType, 0)
		}
		ts[k] = t
	}
	doc := map[string]any{"version": []int{1, 7, 4}, "learner": map[string]any{
		"learner_model_param": map[string]string{"base_score": "5E-1", "num_class": "0", "num_feature": fmt.Sprint(nf), "num_target": "1"},
		"objective":           map[string]string{"name": "binary:logistic"},
		"gradient_booster":    map[string]any{"name": "gbtree", "model": map[string]any{"tree_info": info, "trees": ts}},
	}}
	data, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return data
}

// compile makes an evaluator of a parsed tree model with every input native-missing.
func compile(b *testing.B, m *Model) *scoring.Evaluator {
	b.Helper()
	features := map[string]SchemaFeature{}
	for i, f := range m.Features {
		features[f] = SchemaFeature{Source: fmt.Sprintf("numeric.f%d", i)}
	}
	l, err := (&Schema{Features: features}).layout(m.Features, bundle.ModelTrees)
	if err != nil {
		b.Fatal(err)
	}
	bd := &bundle.Bundle{Manifest: bundle.Manifest{FormatVersion: 1, Name: "bench", Version: "v1", CreatedAt: time.Unix(1, 0), Inputs: l.inputs,
		Calibration: bundle.Calibration{Method: bundle.CalibrationNone}, Tiers: bundle.Tiers{Medium: 0.5, High: 0.5, Critical: 0.5},
		CheckVectors: []bundle.CheckVector{{Features: []byte("{}")}}},
		Model: bundle.Model{Type: bundle.ModelTrees, Trees: m.Trees}}
	if err := bd.Validate(); err != nil {
		b.Fatal(err)
	}
	return scoring.New(bd)
}

// BenchmarkImportedXGBoost scores one customer (margin + probability, input vector ready) with
// an imported XGBoost model: the committed 60x4 model on its own rows, and synthetic models of
// the anchor's shape (300 trees of depth 4; ANCHORS.md: a compact evaluator 0.80 µs).
func BenchmarkImportedXGBoost(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(dir, "xgb_wa.json"))
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "xgb_wa_rows.csv"))
	if err != nil {
		b.Fatal(err)
	}
	rows, err := ParseRows(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name  string
		model []byte
		nf    int
	}{
		{"xgb_wa/60x4", data, 8},
		{"synthetic/300x4", syntheticXGBoost(300, 4, 20, 1), 20},
		{"synthetic/300x6", syntheticXGBoost(300, 6, 20, 2), 20},
	}
	// CHURN_BENCH_XGB_JSON adds a model file of any size, e.g. the anchor's own model (see
	// testdata/README.md), scored on standard normal inputs.
	if path := os.Getenv("CHURN_BENCH_XGB_JSON"); path != "" {
		m, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		parsed, err := ParseXGBoost(m)
		if err != nil {
			b.Fatal(err)
		}
		cases = append(cases, struct {
			name  string
			model []byte
			nf    int
		}{"file/" + filepath.Base(path), m, len(parsed.Features)})
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			m, err := ParseXGBoost(tc.model)
			if err != nil {
				b.Fatal(err)
			}
			e := compile(b, m)
			// Inputs: the committed rows, or random rows (10% missing in the synthetic models).
			var xs [][]float64
			if tc.name == "xgb_wa/60x4" {
				for _, r := range rows.Rows {
					xs = append(xs, r.Values)
				}
			} else {
				r := rand.New(rand.NewPCG(3, 4))
				for range 1024 {
					x := make([]float64, tc.nf)
					for i := range x {
						x[i] = r.NormFloat64()
						if r.IntN(10) == 0 && !strings.HasPrefix(tc.name, "file/") {
							x[i] = math.NaN()
						}
					}
					xs = append(xs, x)
				}
			}
			b.ReportAllocs()
			i, sum := 0, 0.0
			for b.Loop() {
				sum += e.Probability(e.Margin(xs[i]))
				i++
				if i == len(xs) {
					i = 0
				}
			}
			if math.IsNaN(sum) {
				b.Fatal("NaN probability")
			}
		})
	}
}
