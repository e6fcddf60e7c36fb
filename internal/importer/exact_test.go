package importer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/scoring"
)

// TestFloat32LessThreshold checks x < T == float32(x) < t on every value where it could go wrong:
// the threshold, its float64 and float32 neighbours, and values around them.
func TestFloat32LessThreshold(t *testing.T) {
	t.Parallel()
	ts := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 93.3, -93.3, 0.1, 1e-45, -1e-45, 1.1754944e-38,
		math.MaxFloat32, -math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)), 16777216, 16777217, 0.5, 2}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		ts = append(ts, math.Float32frombits(r.Uint32()))
	}
	for _, th := range ts {
		if th != th {
			continue
		}
		T, err := float32LessThreshold(th)
		if err != nil {
			t.Fatal(err)
		}
		xs := []float64{T, math.Nextafter(T, math.Inf(1)), math.Nextafter(T, math.Inf(-1)), float64(th),
			math.Nextafter(float64(th), math.Inf(1)), math.Nextafter(float64(th), math.Inf(-1)),
			float64(math.Nextafter32(th, float32(math.Inf(-1)))), float64(math.Nextafter32(th, float32(math.Inf(1)))),
			0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.MaxFloat64, -math.MaxFloat64}
		for k := range 20 {
			xs = append(xs, T+(r.Float64()-0.5)*math.Abs(T)*1e-7*float64(k))
		}
		for _, x := range xs {
			if want := float32(x) < th; (x < T) != want {
				t.Errorf("threshold %v (T %v): x = %v: x < T is %v, float32(x) < t is %v", th, T, x, x < T, want)
			}
		}
	}
	if _, err := float32LessThreshold(float32(math.NaN())); err == nil {
		t.Error("a NaN threshold was accepted")
	}
}

// lgbDecide is LightGBM's numerical decision (Tree::NumericalDecision, include/LightGBM/tree.h),
// the oracle of the missing-type tests: true is left.
func lgbDecide(x, threshold float64, decisionType int) bool {
	mt := (decisionType >> 2) & 3
	if math.IsNaN(x) && mt != lgbMissingNaN {
		x = 0
	}
	if (mt == lgbMissingZero && x >= -lgbZero && x <= lgbZero) || (mt == lgbMissingNaN && math.IsNaN(x)) {
		return decisionType&lgbDefaultLeft != 0
	}
	return x <= threshold
}

// lgbModelText makes a LightGBM text model of one tree over one feature.
func lgbModelText(tree string) string {
	return "tree\nversion=v3\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=0\n" +
		"objective=binary sigmoid:1\nfeature_names=x\nfeature_infos=none\ntree_sizes=1\n\nTree=0\n" + tree +
		"\nshrinkage=1\n\n\nend of trees\n\nfeature_importances:\n\nparameters:\nend of parameters\n"
}

// evaluator compiles a one-input bundle around a parsed model.
func evaluator(t *testing.T, m *Model) *scoring.Evaluator {
	t.Helper()
	b := &bundle.Bundle{
		Manifest: bundle.Manifest{FormatVersion: 1, Name: "t", Version: "v1", CreatedAt: time.Unix(1, 0),
			Inputs:       []bundle.Input{{Name: "x", Source: "numeric.x", Type: bundle.TypeNumeric, Missing: bundle.Missing{Policy: bundle.MissingNative}}},
			Calibration:  bundle.Calibration{Method: bundle.CalibrationNone},
			Tiers:        bundle.Tiers{Medium: 0.5, High: 0.5, Critical: 0.5},
			CheckVectors: []bundle.CheckVector{{Features: []byte("{}")}}},
		Model: bundle.Model{Type: bundle.ModelTrees, Trees: m.Trees},
	}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	return scoring.New(b)
}

// probes are the values where missing types differ: NaN, the zero band and its edges, and each
// threshold's neighbours.
func probes(thresholds ...float64) []float64 {
	xs := []float64{math.NaN(), 0, math.Copysign(0, -1), lgbZero, -lgbZero, 1e-36, -1e-36,
		math.Nextafter(lgbZero, 1), math.Nextafter(-lgbZero, -1), math.Nextafter(lgbZero, 0), math.Nextafter(-lgbZero, 0),
		1, -1, 1e-30, -1e-30, 5, -5}
	for _, th := range thresholds {
		xs = append(xs, th, math.Nextafter(th, math.Inf(1)), math.Nextafter(th, math.Inf(-1)))
	}
	return xs
}

var lgbThresholds = []float64{-1, -lgbZero, math.Nextafter(-lgbZero, -1), -1e-36, 0, 1e-36, lgbZero, math.Nextafter(lgbZero, 1), 1}

// TestLightGBMMissingTypes checks every decision type (missing None, Zero, NaN; default left or
// right) at thresholds around the zero band against LightGBM's own rule.
func TestLightGBMMissingTypes(t *testing.T) {
	t.Parallel()
	for _, dt := range []int{0, 2, 4, 6, 8, 10} {
		for _, th := range lgbThresholds {
			name := fmt.Sprintf("decision_type=%d threshold=%v", dt, th)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				text := lgbModelText(fmt.Sprintf("num_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold=%v\ndecision_type=%d\nleft_child=-1\nright_child=-2\nleaf_value=-1 1",
					strconvG(th), dt))
				m, err := ParseLightGBM([]byte(text))
				if err != nil {
					t.Fatal(err)
				}
				e := evaluator(t, m)
				for _, x := range probes(th) {
					want := 1.0
					if lgbDecide(x, th, dt) {
						want = -1
					}
					if got := e.Margin([]float64{x}); got != want {
						t.Errorf("x = %v: margin %v, LightGBM %v", x, got, want)
					}
				}
			})
		}
	}
}

// TestLightGBMNestedZeroMissing: zero-as-missing splits under each other are rewritten with
// copied subtrees, and every path still agrees with LightGBM.
func TestLightGBMNestedZeroMissing(t *testing.T) {
	t.Parallel()
	// node 0: x <= -1 (zero missing, default left) → node 1 | leaf 2
	// node 1: x <= 0.5 (zero missing, default right) → leaf 0 | leaf 1
	text := lgbModelText("num_leaves=3\nnum_cat=0\nsplit_feature=0 0\nthreshold=-1 0.5\ndecision_type=6 4\nleft_child=1 -1\nright_child=-3 -2\nleaf_value=10 20 30")
	m, err := ParseLightGBM([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	e := evaluator(t, m)
	oracle := func(x float64) float64 {
		if lgbDecide(x, -1, 6) {
			if lgbDecide(x, 0.5, 4) {
				return 10
			}
			return 20
		}
		return 30
	}
	for _, x := range probes(-1, 0.5) {
		if got, want := e.Margin([]float64{x}), oracle(x); got != want {
			t.Errorf("x = %v: margin %v, LightGBM %v", x, got, want)
		}
	}
	if n := len(m.Trees.Trees[0].Left); n <= 5 {
		t.Errorf("%d nodes: the rewrite should have copied subtrees", n)
	}
}

func strconvG(x float64) string { return strings.ReplaceAll(fmt.Sprintf("%.17g", x), "+", "") }
