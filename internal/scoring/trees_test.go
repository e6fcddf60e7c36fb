package scoring_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/scoring"
)

// split is a one-split tree: column feature against threshold, leaves left and right.
func split(feature int32, threshold float64, defaultLeft bool, left, right float64) bundle.Tree {
	return bundle.Tree{
		Feature:     []int32{feature, 0, 0},
		Threshold:   []float64{threshold, 0, 0},
		Left:        []int32{1, -1, -1},
		Right:       []int32{2, -1, -1},
		DefaultLeft: []bool{defaultLeft, false, false},
		Value:       []float64{0, left, right},
	}
}

func TestTreeSplit(t *testing.T) {
	t.Parallel()
	const l, r = -1.5, 2.25 // leaf values: the margin says which way the split went
	inf, nan, negZero := math.Inf(1), math.NaN(), math.Copysign(0, -1)
	tests := []struct {
		name        string
		comparison  string
		threshold   float64
		defaultLeft bool
		x           float64
		want        float64
	}{
		{"lt below", bundle.CompareLess, 1, false, 0.5, l},
		{"lt at the threshold goes right", bundle.CompareLess, 1, false, 1, r},
		{"lt just below the threshold", bundle.CompareLess, 1, false, math.Nextafter(1, 0), l},
		{"lt above", bundle.CompareLess, 1, true, 1.5, r},
		{"le below", bundle.CompareLessEqual, 1, false, 0.5, l},
		{"le at the threshold goes left", bundle.CompareLessEqual, 1, false, 1, l},
		{"le just above the threshold", bundle.CompareLessEqual, 1, true, math.Nextafter(1, 2), r},
		{"le above", bundle.CompareLessEqual, 1, true, 1.5, r},
		{"lt NaN default left", bundle.CompareLess, 1, true, nan, l},
		{"lt NaN default right", bundle.CompareLess, 1, false, nan, r},
		{"le NaN default left", bundle.CompareLessEqual, 1, true, nan, l},
		{"le NaN default right", bundle.CompareLessEqual, 1, false, nan, r},
		{"lt -0 at threshold +0", bundle.CompareLess, 0, true, negZero, r},
		{"le +0 at threshold -0", bundle.CompareLessEqual, negZero, false, 0, l},
		{"le least subnormal above threshold 0", bundle.CompareLessEqual, 0, true, 5e-324, r},
		{"lt +Inf at threshold +Inf", bundle.CompareLess, inf, true, inf, r},
		{"lt largest float below threshold +Inf", bundle.CompareLess, inf, false, math.MaxFloat64, l},
		{"le +Inf at threshold +Inf", bundle.CompareLessEqual, inf, false, inf, l},
		{"le NaN at threshold +Inf, default right", bundle.CompareLessEqual, inf, false, nan, r},
		{"le NaN at threshold +Inf, default left", bundle.CompareLessEqual, inf, true, nan, l},
		{"le +Inf above threshold MaxFloat64", bundle.CompareLessEqual, math.MaxFloat64, true, inf, r},
		{"le MaxFloat64 at threshold MaxFloat64", bundle.CompareLessEqual, math.MaxFloat64, false, math.MaxFloat64, l},
		{"lt -Inf at threshold -Inf", bundle.CompareLess, -inf, true, -inf, r},
		{"le -Inf at threshold -Inf", bundle.CompareLessEqual, -inf, false, -inf, l},
		{"le most negative float above threshold -Inf", bundle.CompareLessEqual, -inf, true, -math.MaxFloat64, r},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tree := split(1, tc.threshold, tc.defaultLeft, l, r)
			e := mustNew(t, newBundle(t, 2, treesModel(tc.comparison, 0, tree), nil))
			x := []float64{123, tc.x}
			if got := e.Margin(x); got != tc.want {
				t.Errorf("Margin(%v) = %g, want %g", x, got, tc.want)
			}
			// The reference evaluator agrees, so it is a fair judge of the random tests.
			if got := refMargin(&bundle.TreeEnsemble{Comparison: tc.comparison, Trees: []bundle.Tree{tree}}, x); got != tc.want {
				t.Errorf("reference Margin(%v) = %g, want %g", x, got, tc.want)
			}
		})
	}
}

// TestTreeKnown evaluates a small hand-built ensemble whose nodes are numbered depth-first (as
// LightGBM's and scikit-learn's are), with a one-leaf tree and a base score.
func TestTreeKnown(t *testing.T) {
	t.Parallel()
	// Tree 0, depth-first:
	//   0: x0 < 10 (NaN right) ? 1 : 4
	//   1:   x1 < 0 (NaN left) ? 2 : 3
	//   2:     leaf 1
	//   3:     leaf 2
	//   4:   x2 < 5 (NaN right) ? 5 : 6
	//   5:     leaf 4
	//   6:     leaf 8
	deep := bundle.Tree{
		Feature:     []int32{0, 1, 0, 0, 2, 0, 0},
		Threshold:   []float64{10, 0, 0, 0, 5, 0, 0},
		Left:        []int32{1, 2, -1, -1, 5, -1, -1},
		Right:       []int32{4, 3, -1, -1, 6, -1, -1},
		DefaultLeft: []bool{false, true, false, false, false, false, false},
		Value:       []float64{0, 0, 1, 2, 0, 4, 8},
	}
	stump := bundle.Tree{Feature: []int32{0}, Threshold: []float64{0}, Left: []int32{-1}, Right: []int32{-1}, DefaultLeft: []bool{false}, Value: []float64{16}}
	e := mustNew(t, newBundle(t, 3, treesModel(bundle.CompareLess, 32, deep, stump), nil))
	nan := math.NaN()
	tests := []struct {
		x    []float64
		want float64
	}{
		{[]float64{9, -1, 0}, 32 + 1 + 16},
		{[]float64{9, 0, 0}, 32 + 2 + 16},
		{[]float64{9, nan, 0}, 32 + 1 + 16},
		{[]float64{10, -1, 4}, 32 + 4 + 16},
		{[]float64{11, -1, 5}, 32 + 8 + 16},
		{[]float64{nan, -1, nan}, 32 + 8 + 16},
		{[]float64{nan, nan, nan}, 32 + 8 + 16},
	}
	for _, tc := range tests {
		if got := e.Margin(tc.x); got != tc.want {
			t.Errorf("Margin(%v) = %g, want %g", tc.x, got, tc.want)
		}
	}
}

// pool draws values that stress the comparisons: a few small integers, so that inputs often
// equal thresholds, signed zeros, infinities, the extreme finite values, subnormals, and
// normal draws.
func pool(rng *rand.Rand) float64 {
	special := []float64{
		-2, -1, 0, 1, 2, math.Copysign(0, -1), 0.5,
		math.Inf(1), math.Inf(-1), math.MaxFloat64, -math.MaxFloat64,
		5e-324, -5e-324, math.Nextafter(1, 2), math.Nextafter(1, 0),
	}
	if rng.IntN(3) == 0 {
		return rng.NormFloat64()
	}
	return special[rng.IntN(len(special))]
}

// TestTreesRandom compares Margin with the recursive reference evaluator on random ensembles:
// full and ragged trees, breadth-first and shuffled node order, both comparisons, tree counts
// around the interleaving group, inputs with NaN. Margins must be equal, not close.
func TestTreesRandom(t *testing.T) {
	t.Parallel()
	const cols = 12
	rng := rand.New(rand.NewPCG(42, 43))
	for round := range 300 {
		comparison := []string{bundle.CompareLess, bundle.CompareLessEqual}[round%2]
		g := &treeGen{
			rng:       rng,
			cols:      cols,
			depth:     rng.IntN(9),
			shuffle:   rng.IntN(2) == 0,
			threshold: func() float64 { return pool(rng) },
		}
		if rng.IntN(2) == 0 {
			g.split = 0.4 + 0.5*rng.Float64()
		}
		ntrees := []int{1, 2, 7, 8, 9, 15, 16, 17, 33, 100}[rng.IntN(10)]
		te := treesModel(comparison, rng.NormFloat64(), g.trees(ntrees)...)
		e := mustNew(t, newBundle(t, cols, te, nil))
		x := make([]float64, cols+1)
		for range 100 {
			nanRate := rng.Float64()
			for j := range x {
				x[j] = pool(rng)
				if rng.Float64() < nanRate/2 {
					x[j] = math.NaN()
				}
			}
			got, want := e.Margin(x), refMargin(te.Trees, x)
			if got != want {
				t.Fatalf("round %d (%s, %d trees, depth %d, split %g, shuffle %v): Margin(%v) = %.17g, reference %.17g",
					round, comparison, ntrees, g.depth, g.split, g.shuffle, x, got, want)
			}
		}
	}
}

// TestValidateGuardsNew: New compiles without checking, relying on bundle.Validate; every bundle
// it could not evaluate must fail Validate.
func TestValidateGuardsNew(t *testing.T) {
	t.Parallel()
	good := func() *bundle.Bundle {
		return newBundle(t, 2, treesModel(bundle.CompareLess, 0, split(1, 0.5, true, -1, 1)), nil)
	}
	tree := func(mod func(*bundle.Tree)) func(*bundle.Bundle) {
		return func(b *bundle.Bundle) { mod(&b.Model.Trees.Trees[0]) }
	}
	// logistic makes the bundle a logistic regression: its inputs impute (native is for trees).
	logistic := func(m bundle.Model) func(*bundle.Bundle) {
		return func(b *bundle.Bundle) {
			b.Model = m
			for i := range b.Manifest.Inputs {
				b.Manifest.Inputs[i].Missing = bundle.Missing{Policy: bundle.MissingImpute}
			}
		}
	}
	tests := []struct {
		name string
		mod  func(*bundle.Bundle)
		want string
	}{
		{"unknown model type", func(b *bundle.Bundle) { logistic(b.Model)(b); b.Model.Type = "svm" }, "unknown type"},
		{"no inputs", func(b *bundle.Bundle) { b.Manifest.Inputs = nil }, "inputs is empty"},
		{"trees missing", func(b *bundle.Bundle) { b.Model.Trees = nil }, "trees parameters"},
		{"logistic missing", logistic(bundle.Model{Type: bundle.ModelLogistic}), "logistic parameters"},
		{"both parameter sets", func(b *bundle.Bundle) { b.Model.Logistic = &bundle.Logistic{Weights: []float64{1, 2}} }, "trees parameters only"},
		{"weights for other columns", logistic(logisticModel(0, 1, 2, 3)), "3 weights for 2 columns"},
		{"infinite weight", logistic(logisticModel(0, 1, math.Inf(1))), "must be finite"},
		{"NaN intercept", logistic(logisticModel(math.NaN(), 1, 2)), "must be finite"},
		{"unknown comparison", func(b *bundle.Bundle) { b.Model.Trees.Comparison = "gt" }, "comparison"},
		{"no trees", func(b *bundle.Bundle) { b.Model.Trees.Trees = nil }, "empty"},
		{"infinite base score", func(b *bundle.Bundle) { b.Model.Trees.BaseScore = math.Inf(-1) }, "base_score"},
		{"empty tree", tree(func(tr *bundle.Tree) { *tr = bundle.Tree{} }), "0 nodes"},
		{"short arrays", tree(func(tr *bundle.Tree) { tr.Value = tr.Value[:2] }), "one entry per node"},
		{"child before parent", tree(func(tr *bundle.Tree) { tr.Left[2], tr.Right[2] = 0, 1 }), "must come after"},
		{"child out of range", tree(func(tr *bundle.Tree) { tr.Right[0] = 3 }), "must come after"},
		{"half a leaf", tree(func(tr *bundle.Tree) { tr.Right[1] = 2 }), "left == right == -1"},
		{"one child twice", tree(func(tr *bundle.Tree) { tr.Right[0] = 1 }), "two splits"},
		{"shared child", func(b *bundle.Bundle) {
			// 0 splits to 1 and 2; 1 splits to 3 and 4; 2 splits to 3 and 4 as well.
			b.Model.Trees.Trees[0] = bundle.Tree{
				Feature: make([]int32, 5), Threshold: make([]float64, 5), DefaultLeft: make([]bool, 5), Value: make([]float64, 5),
				Left: []int32{1, 3, 3, -1, -1}, Right: []int32{2, 4, 4, -1, -1},
			}
		}, "two splits"},
		{"negative feature", tree(func(tr *bundle.Tree) { tr.Feature[0] = -1 }), "feature -1"},
		{"feature past the width", tree(func(tr *bundle.Tree) { tr.Feature[0] = 2 }), "feature 2"},
		{"NaN threshold", tree(func(tr *bundle.Tree) { tr.Threshold[0] = math.NaN() }), "threshold is NaN"},
		{"infinite leaf", tree(func(tr *bundle.Tree) { tr.Value[2] = math.Inf(1) }), "not finite"},
		{"leaves that could overflow", func(b *bundle.Bundle) {
			b.Model.Trees.Trees = append(b.Model.Trees.Trees, split(0, 0, true, 1e308, 0))
		}, "overflow"},
		{"unknown calibration", func(b *bundle.Bundle) { b.Manifest.Calibration.Method = "beta" }, "unknown method"},
		{"NaN platt", func(b *bundle.Bundle) {
			b.Manifest.Calibration = bundle.Calibration{Method: bundle.CalibrationPlatt, A: math.NaN()}
		}, "platt"},
		{"one isotonic point", func(b *bundle.Bundle) {
			b.Manifest.Calibration = bundle.Calibration{Method: bundle.CalibrationIsotonic, X: []float64{0.5}, Y: []float64{0.5}}
		}, "length >= 2"},
		{"isotonic decreasing x", func(b *bundle.Bundle) {
			b.Manifest.Calibration = bundle.Calibration{Method: bundle.CalibrationIsotonic, X: []float64{0.5, 0.4}, Y: []float64{0.1, 0.2}}
		}, "non-decreasing"},
		{"isotonic y above 1", func(b *bundle.Bundle) {
			b.Manifest.Calibration = bundle.Calibration{Method: bundle.CalibrationIsotonic, X: []float64{0.4, 0.5}, Y: []float64{0.1, 1.2}}
		}, "y in [0,1]"},
		{"tiers out of order", func(b *bundle.Bundle) { b.Manifest.Tiers = bundle.Tiers{Medium: 0.5, High: 0.4, Critical: 0.9} }, "tiers"},
		{"zero tier", func(b *bundle.Bundle) { b.Manifest.Tiers = bundle.Tiers{Medium: 0, High: 0.4, Critical: 0.9} }, "tiers"},
		{"NaN tier", func(b *bundle.Bundle) { b.Manifest.Tiers = bundle.Tiers{Medium: 0.1, High: math.NaN(), Critical: 0.9} }, "tiers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := good()
			tc.mod(b)
			err := b.Validate()
			if err == nil {
				t.Fatal("Validate accepted the bundle")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// TestUnreachableNodes: nodes no walk reaches are allowed (Validate allows them) and ignored.
func TestUnreachableNodes(t *testing.T) {
	t.Parallel()
	tr := split(0, 0.5, true, -1, 1)
	tr.Feature = append(tr.Feature, 0)
	tr.Threshold = append(tr.Threshold, 0)
	tr.Left = append(tr.Left, -1)
	tr.Right = append(tr.Right, -1)
	tr.DefaultLeft = append(tr.DefaultLeft, false)
	tr.Value = append(tr.Value, 1000)
	e := mustNew(t, newBundle(t, 1, treesModel(bundle.CompareLess, 0, tr), nil))
	for x, want := range map[float64]float64{0: -1, 1: 1} {
		if got := e.Margin([]float64{x}); got != want {
			t.Errorf("Margin([%g]) = %g, want %g", x, got, want)
		}
	}
}

func ExampleEvaluator() {
	b := &bundle.Bundle{
		Manifest: bundle.Manifest{
			FormatVersion: bundle.FormatVersion, Name: "example", Version: "v1", CreatedAt: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC),
			Inputs: []bundle.Input{
				{Name: "complaints", Source: "complaints.count_30d", Type: bundle.TypeNumeric, Missing: bundle.Missing{Policy: bundle.MissingError}},
				{Name: "tenure", Source: "account.tenure_months", Type: bundle.TypeNumeric, Missing: bundle.Missing{Policy: bundle.MissingError}},
			},
			Calibration:  bundle.Calibration{Method: bundle.CalibrationNone},
			Tiers:        bundle.Tiers{Medium: 0.3, High: 0.6, Critical: 0.85},
			CheckVectors: []bundle.CheckVector{{Features: json.RawMessage(`{"complaints": {"count30d": 3}, "account": {"tenureMonths": 12}}`), Probability: 0.69}},
		},
		Model: bundle.Model{Type: bundle.ModelLogistic, Logistic: &bundle.Logistic{Intercept: -1, Weights: []float64{0.8, -0.05}}},
	}
	if err := b.Validate(); err != nil { // bundle.Parse validates a bundle it reads
		fmt.Println(err)
		return
	}
	e := scoring.New(b)
	x := []float64{3, 12} // 3 complaints, 12 months
	m := e.Margin(x)
	p := e.Probability(m)
	fmt.Printf("margin %.2f, probability %.3f, tier %v\n", m, p, e.Tier(p))
	// Output: margin 0.80, probability 0.690, tier HIGH
}
