package scoring_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/scoring"
	"github.com/churnhq/churn/models/modeltest"
)

// refContributions is the reference path attribution (Saabas), over the bundle's own arrays: a
// node's expectation is the mean of its children's, and each split on the path adds the change of
// expectation from the node to the child taken to its column. It returns the base.
func refContributions(te *bundle.TreeEnsemble, x, dst []float64) float64 {
	clear(dst)
	base := te.BaseScore
	for ti := range te.Trees {
		t := &te.Trees[ti]
		mean := make([]float64, len(t.Left))
		for i := len(t.Left) - 1; i >= 0; i-- { // children come after their parent
			mean[i] = t.Value[i]
			if t.Left[i] != -1 {
				mean[i] = (mean[t.Left[i]] + mean[t.Right[i]]) / 2
			}
		}
		base += mean[0]
		for i := int32(0); t.Left[i] != -1; {
			v, th := x[t.Feature[i]], t.Threshold[i]
			left := v < th || (te.Comparison == bundle.CompareLessEqual && v == th)
			if math.IsNaN(v) {
				left = t.DefaultLeft[i]
			}
			next := t.Right[i]
			if left {
				next = t.Left[i]
			}
			dst[t.Feature[i]] += mean[next] - mean[i]
			i = next
		}
	}
	return base
}

// chain is a tree that splits column d at depth d, going right, for depth columns: its leaves'
// paths touch up to depth columns each, so its path table would be quadratic in depth.
func chain(depth int, rng *rand.Rand) bundle.Tree {
	var t bundle.Tree
	for d := range depth {
		// Node 2d splits; its left child 2d+1 is a leaf, its right child 2d+2 goes on.
		t.Feature = append(t.Feature, int32(d), 0)
		t.Threshold = append(t.Threshold, rng.NormFloat64(), 0)
		t.Left = append(t.Left, int32(2*d+1), -1)
		t.Right = append(t.Right, int32(2*d+2), -1)
		t.DefaultLeft = append(t.DefaultLeft, rng.IntN(2) == 0, false)
		t.Value = append(t.Value, 0, rng.NormFloat64())
	}
	t.Feature = append(t.Feature, 0)
	t.Threshold = append(t.Threshold, 0)
	t.Left, t.Right = append(t.Left, -1), append(t.Right, -1)
	t.DefaultLeft = append(t.DefaultLeft, false)
	t.Value = append(t.Value, rng.NormFloat64())
	return t
}

// TestExplain: Explain returns Margin's margin bit for bit, and base + Σ contributions is the
// margin; for trees the contributions are the reference attribution's, whether the forest has a
// path table (random ensembles of both comparisons, with missing inputs) or is too large for one
// (chains of depth 64 over 64 columns take the walk-down attribution).
func TestExplain(t *testing.T) {
	const cols = 64
	rng := rand.New(rand.NewPCG(7, 8))
	w := make([]float64, cols)
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	models := map[string]bundle.Model{"logistic": logisticModel(0.3, w...)}
	special := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), 5e-324, 0.25, -0.5}
	for _, cmpKind := range []string{bundle.CompareLess, bundle.CompareLessEqual} {
		g := &treeGen{rng: rng, cols: cols, depth: 5, split: 0.8}
		models["trees-"+cmpKind] = treesModel(cmpKind, -0.7, g.trees(41)...)
		// Few columns (so they repeat along paths), nodes numbered in random order, thresholds
		// at zeros, infinities, the least subnormal and values the inputs hit.
		g = &treeGen{rng: rng, cols: 3, depth: 7, split: 0.85, shuffle: true, threshold: func() float64 { return special[rng.IntN(len(special))] }}
		models["trees-shuffled-"+cmpKind] = treesModel(cmpKind, 0.1, g.trees(13)...)
		models["chains-"+cmpKind] = treesModel(cmpKind, 0.2, chain(64, rng), chain(64, rng), chain(3, rng))
	}
	for name, model := range models {
		t.Run(name, func(t *testing.T) {
			e := mustNew(t, newBundle(t, cols, model, nil))
			if model.Trees != nil {
				if got, want := scoring.HasPathTable(e), strings.HasPrefix(name, "trees"); got != want {
					t.Fatalf("path table %v, want %v", got, want)
				}
			}
			dst, want := make([]float64, cols), make([]float64, cols)
			for range 500 {
				x := make([]float64, cols)
				for j := range x {
					x[j] = math.Round(rng.NormFloat64()*4) / 4 // ties with thresholds happen
					switch r := rng.Float64(); {
					case name == "logistic":
					case r < 0.1:
						x[j] = math.NaN()
					case r < 0.2:
						x[j] = special[rng.IntN(len(special))]
					}
				}
				m, base := e.Explain(x, dst)
				if mm := e.Margin(x); math.Float64bits(m) != math.Float64bits(mm) {
					t.Fatalf("Explain's margin %v, Margin %v", m, mm)
				}
				sum := base
				for _, c := range dst {
					sum += c
				}
				if math.Abs(sum-m) > 1e-9 {
					t.Fatalf("base %v + contributions = %v, margin %v", base, sum, m)
				}
				if model.Trees == nil {
					continue
				}
				wantBase := refContributions(model.Trees, x, want)
				if math.Abs(base-wantBase) > 1e-12 {
					t.Fatalf("base %v, reference %v", base, wantBase)
				}
				if diff := cmp.Diff(want, dst, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) <= 1e-12 })); diff != "" {
					t.Fatalf("x=%v: contributions (-reference +got):\n%s", x, diff)
				}
			}
		})
	}
}

// TestExplainOneTree checks the path attribution on a tree small enough to do by hand:
// root splits column 0 at 1 (leaves -1 | node 2), node 2 splits column 1 at 0 (leaves 2 | 4).
func TestExplainOneTree(t *testing.T) {
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
		x              []float64
		want           []float64
		wantMargin     float64
		wantBase       float64
		wantMarginNote string
	}{
		{[]float64{0, 0}, []float64{-2, 0}, -0.5, 1.5, "left at the root: -1 - 1"},
		{[]float64{5, -1}, []float64{2, -1}, 2.5, 1.5, "right (3 - 1), then left (2 - 3)"},
		{[]float64{5, math.NaN()}, []float64{2, -1}, 2.5, 1.5, "NaN follows the default (left)"},
		{[]float64{5, 0}, []float64{2, 1}, 4.5, 1.5, "x == threshold goes right under lt"},
	}
	dst := make([]float64, 2)
	for _, tc := range tests {
		m, base := e.Explain(tc.x, dst)
		if m != tc.wantMargin || base != tc.wantBase {
			t.Errorf("x=%v (%s): margin %v, base %v, want %v, %v", tc.x, tc.wantMarginNote, m, base, tc.wantMargin, tc.wantBase)
		}
		if diff := cmp.Diff(tc.want, dst); diff != "" {
			t.Errorf("x=%v (%s): contributions (-want +got):\n%s", tc.x, tc.wantMarginNote, diff)
		}
	}
}

func TestExplainAllocations(t *testing.T) {
	const cols = 64
	rng := rand.New(rand.NewPCG(1, 1))
	g := &treeGen{rng: rng, cols: cols, depth: 4}
	for name, model := range map[string]bundle.Model{
		"path table": treesModel(bundle.CompareLess, 0, g.trees(20)...),
		"walk":       treesModel(bundle.CompareLess, 0, chain(64, rng), chain(64, rng)),
		"logistic":   logisticModel(0, make([]float64, cols)...),
	} {
		e := mustNew(t, newBundle(t, cols, model, nil))
		if model.Trees != nil && scoring.HasPathTable(e) != (name == "path table") {
			t.Fatalf("%s: path table %v", name, scoring.HasPathTable(e))
		}
		x, dst := make([]float64, cols), make([]float64, cols)
		if n := testing.AllocsPerRun(100, func() { e.Explain(x, dst) }); n != 0 {
			t.Errorf("%s: Explain allocates %v times", name, n)
		}
	}
}

// TestExplainDeepChain: a chain as deep as bundle.MaxTreeDepth allows, alternating two columns,
// gets a path table of at most two steps a leaf, and its contributions are the reference's.
func TestExplainDeepChain(t *testing.T) {
	const depth = bundle.MaxTreeDepth
	rng := rand.New(rand.NewPCG(5, 5))
	tree := chain(depth, rng)
	for d := range depth {
		tree.Feature[2*d] = int32(d % 2)
		tree.Threshold[2*d] = -1 - rng.Float64() // most inputs go right, deep into the chain
	}
	model := treesModel(bundle.CompareLess, 0, tree)
	e := mustNew(t, newBundle(t, 2, model, nil))
	if !scoring.HasPathTable(e) {
		t.Fatal("no path table for a chain over two columns")
	}
	if n := scoring.PathSteps(e); n > 2*(depth+1) {
		t.Errorf("%d steps for %d leaves of at most two columns", n, depth+1)
	}
	dst, want := make([]float64, 2), make([]float64, 2)
	for range 20 {
		x := []float64{rng.NormFloat64() * 3, rng.NormFloat64() * 3}
		m, base := e.Explain(x, dst)
		if mm := e.Margin(x); m != mm {
			t.Fatalf("Explain's margin %v, Margin %v", m, mm)
		}
		wantBase := refContributions(model.Trees, x, want)
		if math.Abs(base-wantBase) > 1e-12 || math.Abs(dst[0]-want[0]) > 1e-9 || math.Abs(dst[1]-want[1]) > 1e-9 {
			t.Fatalf("x=%v: base %v, contributions %v; reference %v, %v", x, base, dst, wantBase, want)
		}
	}
}

// TestExplainNegativeZero: a margin of -0 (BaseScore -0 and a one-leaf tree of -0) stays -0 in
// Explain as in Margin: the short last group's missing trees are not added.
func TestExplainNegativeZero(t *testing.T) {
	negZero := math.Copysign(0, -1)
	leaf := bundle.Tree{Feature: []int32{0}, Threshold: []float64{0}, Left: []int32{-1}, Right: []int32{-1}, DefaultLeft: []bool{false}, Value: []float64{negZero}}
	e := mustNew(t, newBundle(t, 1, treesModel(bundle.CompareLess, negZero, leaf), nil))
	m, _ := e.Explain([]float64{1}, make([]float64, 1))
	if !math.Signbit(m) || m != 0 || !math.Signbit(e.Margin([]float64{1})) {
		t.Errorf("Explain's margin %v (sign bit %v), Margin's sign bit %v; want -0 from both", m, math.Signbit(m), math.Signbit(e.Margin([]float64{1})))
	}
}

// TestDefaultModelHasPathTable: the shipped default model gets its drivers from the path table.
func TestDefaultModelHasPathTable(t *testing.T) {
	e := mustNew(t, modeltest.Default(t))
	if !scoring.HasPathTable(e) || scoring.PathSteps(e) == 0 {
		t.Errorf("the default model has no path table (%d steps)", scoring.PathSteps(e))
	}
}
