package golearntree

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/sjwhitworth/golearn/base"
	"github.com/sjwhitworth/golearn/trees"
)

// cartNode mirrors golearn's unexported trees.classifierNode, read through its exported fields
// (by encoding/json, which writes float64 in the shortest form that reads back to the same bits).
// A split sends x[Feature] < Threshold left; a nil child is a leaf whose label is LeftLabel or
// RightLabel.
type cartNode struct {
	Left, Right           *cartNode
	Threshold             float64
	Feature               int64
	LeftLabel, RightLabel int64
}

// cartModel is a fitted golearn CART tree with the instances it was fitted on.
type cartModel struct {
	tree  *trees.CARTDecisionTreeClassifier
	inst  *base.DenseInstances
	edges [][]float64 // bin edges of the columns when Options.CARTBins is set, else nil
}

// floatInstances makes golearn instances of X with one FloatAttribute per column (named
// columns[j]) and a FloatAttribute class holding 0 or 1, as golearn's CART requires.
func floatInstances(X []float64, n, d int, y []bool, columns []string) (*base.DenseInstances, error) {
	var inst *base.DenseInstances
	err := guard("building instances", func() error {
		inst = base.NewDenseInstances()
		specs := make([]base.AttributeSpec, d)
		for j := range d {
			specs[j] = inst.AddAttribute(base.NewFloatAttribute(columns[j]))
		}
		cls := base.NewFloatAttribute(classAttrName(columns))
		cspec := inst.AddAttribute(cls)
		if err := inst.AddClassAttribute(cls); err != nil {
			return err
		}
		if err := inst.Extend(n); err != nil {
			return err
		}
		for i := range n {
			for j := range d {
				inst.Set(specs[j], i, base.PackFloatToBytes(X[i*d+j]))
			}
			label := 0.0
			if y != nil && y[i] {
				label = 1
			}
			inst.Set(cspec, i, base.PackFloatToBytes(label))
		}
		return nil
	})
	return inst, err
}

func fitCART(ctx context.Context, X []float64, n, d int, y []bool, opt Options) (*bundle.TreeEnsemble, error) {
	ens, _, err := fitCARTModel(ctx, X, n, d, y, opt)
	return ens, err
}

func fitCARTModel(ctx context.Context, X []float64, n, d int, y []bool, opt Options) (*bundle.TreeEnsemble, *cartModel, error) {
	var edges [][]float64
	if opt.CARTBins > 0 {
		edges = columnEdges(X, n, d, opt.CARTBins)
		X = binColumns(X, n, d, edges)
	}
	inst, err := floatInstances(X, n, d, y, opt.Columns)
	if err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	tree := trees.NewDecisionTreeClassifier(opt.Criterion, int64(opt.MaxDepth), []int64{0, 1})
	if err := guard("CART Fit", func() error { return tree.Fit(inst) }); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	// golearn numbers the features in the order of base.NonClassFloatAttributes; map them back
	// to columns by name rather than assume that order.
	var golearnCols []int
	err = guard("reading attributes", func() error {
		colOf := columnIndex(opt.Columns)
		for _, a := range base.NonClassFloatAttributes(inst) {
			j, ok := colOf[a.GetName()]
			if !ok {
				return fmt.Errorf("golearn attribute %q is not a column", a.GetName())
			}
			golearnCols = append(golearnCols, j)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	root, err := readCART(tree)
	if err != nil {
		return nil, nil, err
	}
	t, err := exportCART(root, golearnCols, X, n, d, y)
	if err != nil {
		return nil, nil, err
	}
	if edges != nil {
		if err := thresholdsToEdges(&t, edges); err != nil {
			return nil, nil, err
		}
	}
	return &bundle.TreeEnsemble{Comparison: bundle.CompareLess, Trees: []bundle.Tree{t}}, &cartModel{tree, inst, edges}, nil
}

// columnEdges returns the quantile bin edges of each column of X.
func columnEdges(X []float64, n, d, bins int) [][]float64 {
	edges := make([][]float64, d)
	col := make([]float64, n)
	for j := range d {
		for i := range n {
			col[i] = X[i*d+j]
		}
		edges[j] = quantileEdges(col, bins)
	}
	return edges
}

// binColumns returns X with every value replaced by its bin number.
func binColumns(X []float64, n, d int, edges [][]float64) []float64 {
	out := make([]float64, n*d)
	for i := range n {
		for j := range d {
			out[i*d+j] = float64(binOf(edges[j], X[i*d+j]))
		}
	}
	return out
}

// thresholdsToEdges turns the thresholds of a CART tree fitted on bin numbers into thresholds on
// the values. golearn's threshold t lies between two bin numbers a < b, and bin(x) < t exactly
// when bin(x) <= ceil(t)-1, that is x < edges[ceil(t)-1] (binOf).
func thresholdsToEdges(t *bundle.Tree, edges [][]float64) error {
	for i := range t.Left {
		if t.Left[i] == -1 {
			continue
		}
		e := edges[t.Feature[i]]
		k := int(math.Ceil(t.Threshold[i])) - 1
		if k < 0 || k >= len(e) {
			return fmt.Errorf("golearn's CART split column %d at bin %v, outside its %d bins", t.Feature[i], t.Threshold[i], len(e)+1)
		}
		t.Threshold[i] = e[k]
	}
	return nil
}

func columnIndex(columns []string) map[string]int {
	m := make(map[string]int, len(columns))
	for j, c := range columns {
		m[c] = j
	}
	return m
}

// readCART copies golearn's tree out of its unexported node type.
func readCART(tree *trees.CARTDecisionTreeClassifier) (*cartNode, error) {
	if tree.RootNode == nil {
		return nil, errors.New("golearn's CART Fit left no root node")
	}
	raw, err := json.Marshal(tree.RootNode)
	if err != nil {
		return nil, fmt.Errorf("reading golearn's CART tree: %w", err)
	}
	var root cartNode
	if err := json.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("reading golearn's CART tree: %w", err)
	}
	return &root, nil
}

// exportCART lays golearn's tree out as a bundle.Tree and sets each leaf to the logit of the
// share of positive training rows that reach it (see the package doc). It checks that golearn's
// own label of every leaf that training rows reach is "share > 0.5": golearn computed it from the
// same rows, so any difference would mean the export routes rows differently.
func exportCART(root *cartNode, golearnCols []int, X []float64, n, d int, y []bool) (bundle.Tree, error) {
	var b treeBuilder
	var labels []int64 // golearn's label per bundle node (-1 for a split)
	var parent []int32
	var emit func(nd *cartNode, up int32, depth int) (int32, error)
	emit = func(nd *cartNode, up int32, depth int) (int32, error) {
		if depth > maxDepthLimit {
			return 0, fmt.Errorf("golearn's CART tree is deeper than %d", maxDepthLimit)
		}
		if nd.Feature < 0 || nd.Feature >= int64(len(golearnCols)) {
			return 0, fmt.Errorf("golearn's CART split on feature %d of %d", nd.Feature, len(golearnCols))
		}
		if math.IsNaN(nd.Threshold) {
			return 0, errors.New("golearn's CART split at a NaN threshold")
		}
		i := b.split(golearnCols[nd.Feature], nd.Threshold)
		labels, parent = append(labels, -1), append(parent, up)
		side := func(child *cartNode, label int64) (int32, error) {
			if child != nil {
				return emit(child, i, depth+1)
			}
			labels, parent = append(labels, label), append(parent, i)
			return b.leaf(0), nil
		}
		l, err := side(nd.Left, nd.LeftLabel)
		if err != nil {
			return 0, err
		}
		r, err := side(nd.Right, nd.RightLabel)
		if err != nil {
			return 0, err
		}
		b.setChildren(i, l, r)
		return i, nil
	}
	if _, err := emit(root, -1, 1); err != nil {
		return bundle.Tree{}, err
	}
	t := b.t
	rows := make([]int, len(t.Left))
	pos := make([]int, len(t.Left))
	for r := range n {
		x := X[r*d : r*d+d]
		for i := int32(0); ; {
			rows[i]++
			if y[r] {
				pos[i]++
			}
			if t.Left[i] == -1 {
				break
			}
			if x[t.Feature[i]] < t.Threshold[i] {
				i = t.Left[i]
			} else {
				i = t.Right[i]
			}
		}
	}
	if len(t.Left) == 3 && (rows[1] == 0 || rows[2] == 0) {
		// golearn found no split that lowers the impurity and kept its placeholder root,
		// "x[0] < 0", with a made-up label on the side no row reaches: one leaf is its model.
		return bundle.Tree{Feature: []int32{0}, Threshold: []float64{0}, Left: []int32{-1}, Right: []int32{-1},
			DefaultLeft: []bool{false}, Value: []float64{logit(float64(pos[0]) / float64(rows[0]))}}, nil
	}
	for i := range t.Left {
		if t.Left[i] != -1 {
			continue
		}
		k := int32(i)
		for rows[k] == 0 && parent[k] >= 0 {
			k = parent[k]
		}
		p := float64(pos[k]) / float64(rows[k])
		if rows[i] > 0 && (p > 0.5) != (labels[i] == 1) {
			return bundle.Tree{}, fmt.Errorf("leaf %d: golearn labels it %d but %d of its %d training rows are positive: the export does not route rows as golearn does", i, labels[i], pos[i], rows[i])
		}
		t.Value[i] = logit(p)
	}
	return t, nil
}
