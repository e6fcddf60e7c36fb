package scoring_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/churnhq/churn/internal/bundle"
)

// TestContributionsSumToMargin: base + Σ contributions is the margin, for logistic models and
// for random ensembles of both comparisons with missing inputs.
func TestContributionsSumToMargin(t *testing.T) {
	const cols = 12
	rng := rand.New(rand.NewPCG(7, 8))
	w := make([]float64, cols)
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	models := map[string]bundle.Model{"logistic": logisticModel(0.3, w...)}
	for _, cmpKind := range []string{bundle.CompareLess, bundle.CompareLessEqual} {
		g := &treeGen{rng: rng, cols: cols, depth: 5, split: 0.8}
		models["trees-"+cmpKind] = treesModel(cmpKind, -0.7, g.trees(40)...)
	}
	for name, model := range models {
		t.Run(name, func(t *testing.T) {
			e := mustNew(t, newBundle(t, cols, model, nil))
			dst := make([]float64, cols)
			for range 500 {
				x := make([]float64, cols)
				for j := range x {
					x[j] = math.Round(rng.NormFloat64()*4) / 4 // ties with thresholds happen
					if name != "logistic" && rng.Float64() < 0.1 {
						x[j] = math.NaN()
					}
				}
				base := e.Contributions(x, dst)
				sum := base
				for _, c := range dst {
					sum += c
				}
				if m := e.Margin(x); math.Abs(sum-m) > 1e-9 {
					t.Fatalf("base %v + contributions = %v, margin %v", base, sum, m)
				}
			}
		})
	}
}

// TestContributionsOfOneTree checks the path attribution on a tree small enough to do by hand:
// root splits column 0 at 1 (leaves -1 | node 2), node 2 splits column 1 at 0 (leaves 2 | 4).
func TestContributionsOfOneTree(t *testing.T) {
	tree := bundle.Tree{
		Feature:     []int32{0, 0, 1, 0, 0},
		Threshold:   []float64{1, 0, 0, 0, 0},
		Left:        []int32{1, -1, 3, -1, -1},
		Right:       []int32{2, -1, 4, -1, -1},
		DefaultLeft: []bool{false, false, true, false, false},
		Value:       []float64{0, -1, 0, 2, 4},
	}
	e := mustNew(t, newBundle(t, 2, treesModel(bundle.CompareLess, 0.5, tree), nil))
	// Expectations: node 2 = (2+4)/2 = 3, root = (-1+3)/2 = 1; base = 0.5 + 1.
	tests := []struct {
		x        []float64
		want     []float64
		wantBase float64
	}{
		{[]float64{0, 0}, []float64{-2, 0}, 1.5},          // left at the root: -1 - 1
		{[]float64{5, -1}, []float64{2, -1}, 1.5},         // right (3 - 1), then left (2 - 3)
		{[]float64{5, math.NaN()}, []float64{2, -1}, 1.5}, // NaN follows the default (left)
		{[]float64{5, 0}, []float64{2, 1}, 1.5},           // x == threshold goes right under "lt"
	}
	dst := make([]float64, 2)
	for _, tc := range tests {
		base := e.Contributions(tc.x, dst)
		if base != tc.wantBase {
			t.Errorf("x=%v: base %v, want %v", tc.x, base, tc.wantBase)
		}
		if diff := cmp.Diff(tc.want, dst); diff != "" {
			t.Errorf("x=%v: contributions (-want +got):\n%s", tc.x, diff)
		}
	}
}

func TestContributionsDoNotAllocate(t *testing.T) {
	g := &treeGen{rng: rand.New(rand.NewPCG(1, 1)), cols: 8, depth: 4}
	e := mustNew(t, newBundle(t, 8, treesModel(bundle.CompareLess, 0, g.trees(20)...), nil))
	x, dst := make([]float64, 8), make([]float64, 8)
	if n := testing.AllocsPerRun(100, func() { e.Contributions(x, dst) }); n != 0 {
		t.Errorf("Contributions allocates %v times", n)
	}
}
