package scoring_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/scoring"
)

// newBundle returns a valid bundle of model over width numeric columns (numeric.c0, ...), with
// calibration "none" and tiers 0.25/0.5/0.75; mod adjusts it before validation.
func newBundle(tb testing.TB, width int, model bundle.Model, mod func(*bundle.Bundle)) *bundle.Bundle {
	tb.Helper()
	missing := bundle.Missing{Policy: bundle.MissingImpute}
	if model.Type == bundle.ModelTrees {
		missing = bundle.Missing{Policy: bundle.MissingNative}
	}
	inputs := make([]bundle.Input, width)
	for i := range inputs {
		name := fmt.Sprintf("c%d", i)
		inputs[i] = bundle.Input{Name: name, Source: bundle.NumericPrefix + name, Type: bundle.TypeNumeric, Missing: missing}
	}
	b := &bundle.Bundle{
		Manifest: bundle.Manifest{
			FormatVersion: bundle.FormatVersion,
			Name:          "test",
			Version:       "v1",
			CreatedAt:     time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			Inputs:        inputs,
			Calibration:   bundle.Calibration{Method: bundle.CalibrationNone},
			Tiers:         bundle.Tiers{Medium: 0.25, High: 0.5, Critical: 0.75},
			CheckVectors:  []bundle.CheckVector{{Features: json.RawMessage(`{}`), Probability: 0.5}},
		},
		Model: model,
	}
	if mod != nil {
		mod(b)
	}
	if err := b.Validate(); err != nil {
		tb.Fatalf("test bundle does not validate: %v", err)
	}
	return b
}

// mustNew validates and compiles b or fails the test.
func mustNew(tb testing.TB, b *bundle.Bundle) *scoring.Evaluator {
	tb.Helper()
	if err := b.Validate(); err != nil {
		tb.Fatalf("Validate: %v", err)
	}
	return scoring.New(b)
}

func logisticModel(intercept float64, w ...float64) bundle.Model {
	return bundle.Model{Type: bundle.ModelLogistic, Logistic: &bundle.Logistic{Intercept: intercept, Weights: w}}
}

func treesModel(comparison string, base float64, trees ...bundle.Tree) bundle.Model {
	return bundle.Model{Type: bundle.ModelTrees, Trees: &bundle.TreeEnsemble{BaseScore: base, Comparison: comparison, Trees: trees}}
}

// treeGen makes random trees. The zero value of its knobs gives full trees in breadth-first
// order (XGBoost's layout) with normally distributed thresholds.
type treeGen struct {
	rng   *rand.Rand
	cols  int
	depth int
	// split is the probability that a node above depth splits; 0 means 1 (full trees).
	split float64
	// shuffle numbers the nodes in a random order (children still after their parent) instead
	// of breadth-first.
	shuffle bool
	// threshold draws a threshold; nil means rng.NormFloat64.
	threshold func() float64
}

type genNode struct {
	feature   int32
	threshold float64
	defLeft   bool
	value     float64
	kids      []*genNode
}

func (g *treeGen) grow(d int) *genNode {
	n := &genNode{value: g.rng.NormFloat64() / 10}
	p := g.split
	if p == 0 {
		p = 1
	}
	if d < g.depth && g.rng.Float64() < p {
		n.feature = int32(g.rng.IntN(g.cols))
		if g.threshold != nil {
			n.threshold = g.threshold()
		} else {
			n.threshold = g.rng.NormFloat64()
		}
		n.defLeft = g.rng.IntN(2) == 0
		n.kids = []*genNode{g.grow(d + 1), g.grow(d + 1)}
	}
	return n
}

// tree returns one random tree as bundle arrays.
func (g *treeGen) tree() bundle.Tree {
	root := g.grow(0)
	// Number the nodes: take one from the frontier (the first for breadth-first, a random one
	// when shuffling), give it the next index, put its children on the frontier.
	var order []*genNode
	index := map[*genNode]int32{}
	frontier := []*genNode{root}
	for len(frontier) > 0 {
		k := 0
		if g.shuffle {
			k = g.rng.IntN(len(frontier))
		}
		n := frontier[k]
		frontier = append(frontier[:k], frontier[k+1:]...)
		index[n] = int32(len(order))
		order = append(order, n)
		frontier = append(frontier, n.kids...)
	}
	t := bundle.Tree{}
	for _, n := range order {
		t.Feature = append(t.Feature, n.feature)
		t.Threshold = append(t.Threshold, n.threshold)
		t.DefaultLeft = append(t.DefaultLeft, n.defLeft)
		if n.kids == nil {
			t.Left = append(t.Left, -1)
			t.Right = append(t.Right, -1)
			t.Value = append(t.Value, n.value)
			t.Threshold[len(t.Threshold)-1] = 0
			continue
		}
		t.Left = append(t.Left, index[n.kids[0]])
		t.Right = append(t.Right, index[n.kids[1]])
		t.Value = append(t.Value, 0)
	}
	return t
}

func (g *treeGen) trees(n int) []bundle.Tree {
	ts := make([]bundle.Tree, n)
	for i := range ts {
		ts[i] = g.tree()
	}
	return ts
}

// refMargin is the reference evaluator: the bundle's documented semantics, recursively, over
// the bundle's own arrays.
func refMargin(te *bundle.TreeEnsemble, x []float64) float64 {
	m := te.BaseScore
	for i := range te.Trees {
		m += refLeaf(&te.Trees[i], 0, te.Comparison, x)
	}
	return m
}

func refLeaf(t *bundle.Tree, i int32, comparison string, x []float64) float64 {
	if t.Left[i] == -1 {
		return t.Value[i]
	}
	v, th := x[t.Feature[i]], t.Threshold[i]
	var left bool
	switch {
	case math.IsNaN(v):
		left = t.DefaultLeft[i]
	case comparison == bundle.CompareLess:
		left = v < th
	case comparison == bundle.CompareLessEqual:
		left = v <= th
	default:
		panic("comparison " + comparison)
	}
	if left {
		return refLeaf(t, t.Left[i], comparison, x)
	}
	return refLeaf(t, t.Right[i], comparison, x)
}
