package golearntree

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strconv"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/sjwhitworth/golearn/base"
	"github.com/sjwhitworth/golearn/trees"
	"golang.org/x/sync/errgroup"
)

// binned is the training set with every column cut into quantile bins, as golearn instances
// with one CategoricalAttribute per column whose values are the bin numbers "0".."k-1".
type binned struct {
	edges [][]float64 // edges[j]: the bin edges of column j, increasing
	attrs []*base.CategoricalAttribute
	class *base.CategoricalAttribute
	inst  *base.DenseInstances
	colOf map[string]int
}

// quantileEdges returns at most bins-1 increasing edges that cut the values into bins of about
// equal counts. With no more distinct values than bins, every distinct value gets its own bin.
// An edge lies between two adjacent distinct values a < b, at a/2 + b/2 (which cannot overflow).
func quantileEdges(values []float64, bins int) []float64 {
	s := slices.Clone(values)
	slices.Sort(s)
	distinct := slices.Compact(slices.Clone(s))
	var edges []float64
	add := func(a, b float64) {
		e := a/2 + b/2
		if e <= a { // a and b adjacent floats: the midpoint rounds down to a
			e = b
		}
		if len(edges) == 0 || e > edges[len(edges)-1] {
			edges = append(edges, e)
		}
	}
	if len(distinct) <= bins {
		for k := 1; k < len(distinct); k++ {
			add(distinct[k-1], distinct[k])
		}
		return edges
	}
	n := len(s)
	for k := 1; k < bins; k++ {
		i := k * n / bins
		// Cut at the end of the run of values equal to s[i-1].
		for i < n && s[i] == s[i-1] {
			i++
		}
		if i < n {
			add(s[i-1], s[i])
		}
	}
	return edges
}

// binOf is the bin of x: the number of edges <= x. So bin(x) < b exactly when x < edges[b-1].
func binOf(edges []float64, x float64) int {
	return sort.Search(len(edges), func(i int) bool { return edges[i] > x })
}

// newBinned computes the bin edges of X's columns and builds golearn instances of the bins.
func newBinned(X []float64, n, d int, y []bool, bins int, columns []string) (*binned, error) {
	bn := &binned{edges: columnEdges(X, n, d, bins), colOf: columnIndex(columns)}
	err := guard("building instances", func() error {
		bn.inst = base.NewDenseInstances()
		specs := make([]base.AttributeSpec, d)
		bn.attrs = make([]*base.CategoricalAttribute, d)
		for j := range d {
			a := base.NewCategoricalAttribute()
			a.SetName(columns[j])
			// Register every bin in order, so that a bin's system value is its number and
			// every attribute knows all its values, also those a tree's rows lack.
			for b := range len(bn.edges[j]) + 1 {
				a.GetSysValFromString(strconv.Itoa(b))
			}
			bn.attrs[j] = a
			specs[j] = bn.inst.AddAttribute(a)
		}
		bn.class = base.NewCategoricalAttribute()
		bn.class.SetName(classAttrName(columns))
		bn.class.GetSysValFromString(negativeClass)
		bn.class.GetSysValFromString(positiveClass)
		cspec := bn.inst.AddAttribute(bn.class)
		if err := bn.inst.AddClassAttribute(bn.class); err != nil {
			return err
		}
		return bn.fill(bn.inst, specs, cspec, X, n, d, y)
	})
	if err != nil {
		return nil, err
	}
	return bn, nil
}

// fill extends inst by n rows and sets the bins of X and the classes of y (all negative when y
// is nil).
func (bn *binned) fill(inst *base.DenseInstances, specs []base.AttributeSpec, cspec base.AttributeSpec, X []float64, n, d int, y []bool) error {
	if err := inst.Extend(n); err != nil {
		return err
	}
	for i := range n {
		for j := range d {
			inst.Set(specs[j], i, base.PackU64ToBytes(uint64(binOf(bn.edges[j], X[i*d+j]))))
		}
		c := uint64(0)
		if y != nil && y[i] {
			c = 1
		}
		inst.Set(cspec, i, base.PackU64ToBytes(c))
	}
	return nil
}

// id3Model is a fitted golearn ID3 tree or forest, after settle, with its instances.
type id3Model struct {
	bn    *binned
	trees []*trees.ID3DecisionTree
}

func fitID3(ctx context.Context, X []float64, n, d int, y []bool, opt Options) (*bundle.TreeEnsemble, error) {
	ens, _, err := fitID3Model(ctx, X, n, d, y, opt)
	return ens, err
}

func fitID3Model(ctx context.Context, X []float64, n, d int, y []bool, opt Options) (*bundle.TreeEnsemble, *id3Model, error) {
	bn, err := newBinned(X, n, d, y, opt.Bins, opt.Columns)
	if err != nil {
		return nil, nil, err
	}
	tree, t, err := fitOneID3(ctx, bn, bn.inst, opt.MaxDepth, logit)
	if err != nil {
		return nil, nil, err
	}
	return &bundle.TreeEnsemble{Comparison: bundle.CompareLess, Trees: []bundle.Tree{t}}, &id3Model{bn, []*trees.ID3DecisionTree{tree}}, nil
}

func fitForest(ctx context.Context, X []float64, n, d int, y []bool, opt Options) (*bundle.TreeEnsemble, error) {
	ens, _, err := fitForestModel(ctx, X, n, d, y, opt)
	return ens, err
}

// fitForestModel is golearn's RandomForest (meta.BaggedModel of ID3 trees) with seeded draws:
// tree t draws its bootstrap rows, then its columns, from PCG(seed, t), so trees do not depend
// on each other or on the order they are fitted in.
func fitForestModel(ctx context.Context, X []float64, n, d int, y []bool, opt Options) (*bundle.TreeEnsemble, *id3Model, error) {
	bn, err := newBinned(X, n, d, y, opt.Bins, opt.Columns)
	if err != nil {
		return nil, nil, err
	}
	m := &id3Model{bn: bn, trees: make([]*trees.ID3DecisionTree, opt.Trees)}
	ens := &bundle.TreeEnsemble{Comparison: bundle.CompareLess, Trees: make([]bundle.Tree, opt.Trees)}
	scale := forestScale / float64(opt.Trees)
	value := func(p float64) float64 { return scale * (p - 0.5) }
	// Trees are independent (each has its own random source), so they are fitted in parallel;
	// the result does not depend on the order they finish in.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for t := range opt.Trees {
		g.Go(func() error {
			tree, bt, err := fitForestTree(gctx, bn, n, d, t, value, opt)
			if err != nil {
				return fmt.Errorf("tree %d: %w", t, err)
			}
			m.trees[t], ens.Trees[t] = tree, bt
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, err
	}
	return ens, m, nil
}

// fitForestTree fits tree t of a forest: its bootstrap rows, then its columns, are drawn from
// PCG(seed, t).
func fitForestTree(ctx context.Context, bn *binned, n, d, t int, value func(float64) float64, opt Options) (*trees.ID3DecisionTree, bundle.Tree, error) {
	rng := rand.New(rand.NewPCG(uint64(opt.Seed), uint64(t)))
	rows := make([]int, n)
	for i := range rows {
		rows[i] = rng.IntN(n)
	}
	// As meta.BaggedModel.generateTrainingAttrs: draw columns until enough are distinct.
	var cols []int
	for len(cols) < opt.FeaturesPerTree {
		if j := rng.IntN(d); !slices.Contains(cols, j) {
			cols = append(cols, j)
		}
	}
	var view base.FixedDataGrid
	err := guard("sampling", func() error {
		attrs := make([]base.Attribute, 0, len(cols)+1)
		for _, j := range cols {
			attrs = append(attrs, bn.attrs[j])
		}
		attrs = append(attrs, bn.class)
		view = base.NewInstancesViewFromVisible(bn.inst, rows, attrs)
		return nil
	})
	if err != nil {
		return nil, bundle.Tree{}, err
	}
	return fitOneID3(ctx, bn, view, opt.MaxDepth, value)
}

// fitOneID3 fits golearn's ID3 on data, settles the tree (see settle) and exports it with leaf
// values value(p).
func fitOneID3(ctx context.Context, bn *binned, data base.FixedDataGrid, maxDepth int, value func(p float64) float64) (*trees.ID3DecisionTree, bundle.Tree, error) {
	if err := ctx.Err(); err != nil {
		return nil, bundle.Tree{}, err
	}
	tree := trees.NewID3DecisionTreeFromRule(0, orderedGain{bn.colOf})
	if err := guard("ID3 Fit", func() error { return tree.Fit(data) }); err != nil {
		return nil, bundle.Tree{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, bundle.Tree{}, err
	}
	if tree.Root == nil {
		return nil, bundle.Tree{}, errors.New("golearn's ID3 Fit left no root node")
	}
	if err := bn.settle(tree.Root, 1, maxDepth); err != nil {
		return nil, bundle.Tree{}, err
	}
	t, err := bn.export(tree.Root, value)
	return tree, t, err
}

// settle makes golearn's tree what the export reproduces (see the package doc): nodes deeper
// than maxDepth levels of splits become leaves, and each split gets a child for every bin of
// its column, a leaf with the split's ClassDist for the bins it never saw.
func (bn *binned) settle(nd *trees.DecisionTreeNode, level, maxDepth int) error {
	if nd.Children == nil {
		return nil
	}
	if level > maxDepth {
		nd.Children = nil
		return nil
	}
	j, err := bn.splitColumn(nd)
	if err != nil {
		return err
	}
	var gap *trees.DecisionTreeNode
	for b := range len(bn.edges[j]) + 1 {
		key := strconv.Itoa(b)
		if _, ok := nd.Children[key]; ok {
			continue
		}
		if gap == nil {
			gap = &trees.DecisionTreeNode{
				Type: trees.LeafNode, ClassDist: nd.ClassDist, Class: nd.Class,
				ClassAttr: nd.ClassAttr, SplitRule: &trees.DecisionTreeRule{},
			}
		}
		nd.Children[key] = gap
	}
	if len(nd.Children) != len(bn.edges[j])+1 {
		return fmt.Errorf("golearn's ID3 split on %q has %d children for %d bins", bn.attrs[j].GetName(), len(nd.Children), len(bn.edges[j])+1)
	}
	for _, c := range nd.Children {
		if c != gap {
			if err := bn.settle(c, level+1, maxDepth); err != nil {
				return err
			}
		}
	}
	return nil
}

func (bn *binned) splitColumn(nd *trees.DecisionTreeNode) (int, error) {
	if nd.SplitRule == nil || nd.SplitRule.SplitAttr == nil {
		return 0, errors.New("golearn's ID3 tree has a split without a rule")
	}
	a, ok := nd.SplitRule.SplitAttr.(*base.CategoricalAttribute)
	if !ok {
		return 0, fmt.Errorf("golearn's ID3 split on %s, want a categorical attribute", nd.SplitRule.SplitAttr)
	}
	j, ok := bn.colOf[a.GetName()]
	if !ok {
		return 0, fmt.Errorf("golearn's ID3 split on %q, not a column", a.GetName())
	}
	return j, nil
}

// leafProbability is golearn's PredictProba of a leaf for the positive class, computed as it
// does: float64(count) / float64(total of ClassDist).
func leafProbability(nd *trees.DecisionTreeNode) (float64, error) {
	total := 0
	for _, c := range nd.ClassDist {
		total += c
	}
	if total <= 0 {
		return 0, errors.New("golearn's ID3 tree has a leaf without rows")
	}
	return float64(nd.ClassDist[positiveClass]) / float64(total), nil
}

// export lays a settled golearn tree out as a bundle.Tree. A split on column j with children per
// bin becomes a balanced chain of "x < edge" splits over the runs of neighbouring bins that share
// a child.
func (bn *binned) export(root *trees.DecisionTreeNode, value func(p float64) float64) (bundle.Tree, error) {
	var b treeBuilder
	type run struct {
		first int // first bin of the run
		child *trees.DecisionTreeNode
	}
	var emit func(nd *trees.DecisionTreeNode, depth int) (int32, error)
	var chain func(j int, runs []run, depth int) (int32, error)
	emit = func(nd *trees.DecisionTreeNode, depth int) (int32, error) {
		if depth > maxDepthLimit+1 {
			return 0, fmt.Errorf("golearn's ID3 tree is deeper than %d", maxDepthLimit)
		}
		if nd.Children == nil {
			p, err := leafProbability(nd)
			if err != nil {
				return 0, err
			}
			return b.leaf(value(p)), nil
		}
		j, err := bn.splitColumn(nd)
		if err != nil {
			return 0, err
		}
		var runs []run
		for bin := range len(bn.edges[j]) + 1 {
			c := nd.Children[strconv.Itoa(bin)]
			if c == nil {
				return 0, fmt.Errorf("golearn's ID3 split on %q has no child for bin %d", bn.attrs[j].GetName(), bin)
			}
			if len(runs) == 0 || runs[len(runs)-1].child != c {
				runs = append(runs, run{bin, c})
			}
		}
		return chain(j, runs, depth)
	}
	chain = func(j int, runs []run, depth int) (int32, error) {
		if len(runs) == 1 {
			return emit(runs[0].child, depth+1)
		}
		m := len(runs) / 2
		i := b.split(j, bn.edges[j][runs[m].first-1])
		l, err := chain(j, runs[:m], depth)
		if err != nil {
			return 0, err
		}
		r, err := chain(j, runs[m:], depth)
		if err != nil {
			return 0, err
		}
		b.setChildren(i, l, r)
		return i, nil
	}
	if _, err := emit(root, 1); err != nil {
		return bundle.Tree{}, err
	}
	return b.t, nil
}

// orderedGain is golearn's InformationGainRuleGenerator for categorical attributes, made
// repeatable. golearn's own is not: it lists the candidate attributes by iterating over a Go map
// (base.AttributeDifferenceReferences) and keeps the first with the largest gain, so where two
// attributes tie (common in small nodes) a different one wins from run to run; and it sums the
// entropy terms over maps too, so the rounding of a sum changes from run to run. Here the
// candidates are taken in column order (so a tie goes to the lower column) and the same terms are
// added in sorted order of the attribute's values and of the classes. The tree is still grown by
// golearn's trees.InferID3Tree.
type orderedGain struct{ colOf map[string]int }

// GenerateSplitRule implements trees.RuleGenerator.
func (g orderedGain) GenerateSplitRule(f base.FixedDataGrid) *trees.DecisionTreeRule {
	candidates := base.AttributeDifferenceReferences(f.AllAttributes(), f.AllClassAttributes())
	slices.SortFunc(candidates, func(a, b base.Attribute) int { return g.colOf[a.GetName()] - g.colOf[b.GetName()] })
	if len(candidates) == 0 {
		return nil
	}
	h := baseEntropy(base.GetClassDistribution(f))
	var best base.Attribute
	bestGain := math.Inf(-1)
	for _, a := range candidates {
		if gain := h - splitEntropy(base.GetClassDistributionAfterSplit(f, a)); gain > bestGain {
			best, bestGain = a, gain
		}
	}
	return &trees.DecisionTreeRule{SplitAttr: best}
}

// baseEntropy is golearn's getBaseEntropy, summed in sorted class order.
func baseEntropy(dist map[string]int) float64 {
	count := 0
	for _, c := range dist {
		count += c
	}
	h := 0.0
	for _, k := range slices.Sorted(maps.Keys(dist)) {
		p := float64(dist[k]) / float64(count)
		h -= p * math.Log(p) / math.Log(2)
	}
	return h
}

// splitEntropy is golearn's getSplitEntropy, summed in sorted value and class order.
func splitEntropy(s map[string]map[string]int) float64 {
	count := 0
	for _, dist := range s {
		for _, c := range dist {
			count += c
		}
	}
	h := 0.0
	for _, a := range slices.Sorted(maps.Keys(s)) {
		total := 0.0
		for _, c := range s[a] {
			total += float64(c) // integers: exact in any order
		}
		for _, c := range slices.Sorted(maps.Keys(s[a])) {
			h -= float64(s[a][c]) / float64(count) * math.Log(float64(s[a][c])/float64(count)) / math.Log(2)
		}
		h += total / float64(count) * math.Log(total/float64(count)) / math.Log(2)
	}
	return h
}
