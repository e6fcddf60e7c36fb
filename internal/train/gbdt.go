package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"sync"

	"github.com/churnhq/churn/internal/bundle"
)

// This file is the project's own gradient-boosted trees trainer. It is written here rather than
// taken from a library because no Go library was good enough (searched November 2026): the
// maintained Go GBDT packages are inference-only (dmitryikh/leaves reads LightGBM/XGBoost
// models, it does not train); rmera/boo trains exact (non-histogram) trees without missing-value
// handling and calls itself not production quality; natemsz/xgoboost is a v0.1 one-author
// release with no importers. The algorithm is the one of XGBoost's "hist" method and LightGBM
// (Chen & Guestrin 2016, "XGBoost: A Scalable Tree Boosting System"; Ke et al. 2017):
//
//   - each column's non-missing training values are cut into at most MaxBins quantile bins; a
//     missing (NaN) value has a bin of its own;
//   - a tree grows best first: of its leaves that can split, the one whose best split gains most
//     splits next. Without MaxLeaves every leaf that can split does, down to MaxDepth, which
//     gives XGBoost's depth-wise tree ("gbdt"); with MaxLeaves growth stops at that many leaves,
//     so the gain decides where the tree grows deep (LightGBM's leaf-wise tree, "gbdt-leafwise");
//   - a node's split is the best over every (sampled) column and bin boundary of the second-order
//     gain G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ), the missing rows tried on each side, which
//     is the split's learned default direction;
//   - histograms of gradient and hessian sums are built for the smaller child and the larger
//     child's are the parent's minus it; a leaf that cannot split gets none;
//   - the data is binned once per fit into uint8 columns (column-major); a histogram reads a
//     leaf's gradients in row order, and a large one is split by columns between goroutines,
//     each column summed by one goroutine in row order, so the fit does not depend on the
//     number of goroutines (TestRunDoesNotDependOnParallelism); scratch space is allocated
//     once per fit, not per tree or node;
//   - a leaf's value is −η·G/(H+λ) (logistic loss: g = p − y, h = p(1 − p));
//   - rounds stop early when the validation log loss has not improved for EarlyStopping rounds,
//     and the ensemble is cut back to its best round.
//
// Every loop is bounded: at most MaxRounds trees (≤ 100000), each with at most MaxLeaves leaves,
// or 2^MaxDepth (MaxDepth ≤ 16) without MaxLeaves, and a leaf splits only with at least
// 2·MinLeafRows rows; ctx is checked before every round.
//
// Splits are stored with the "lt" comparison: bin boundary b of a column is the threshold t_b
// with x < t_b exactly for the values of bins 0..b, so the bundle's trees on raw values agree
// with the binned trees of training.

// GBDTOptions are the hyperparameters of FitGBDT. A zero field that cannot be zero means its
// default (DefaultGBDTOptions); Lambda, MinChildWeight and MinSplitGain may be zero, so start
// from DefaultGBDTOptions rather than the zero value.
type GBDTOptions struct {
	// LearningRate (η) scales every leaf value. Default 0.1.
	LearningRate float64
	// MaxDepth bounds a tree's depth (a stump has depth 1). Default 4.
	MaxDepth int
	// MaxLeaves, when set, bounds a tree's leaves and trees grow best first (LightGBM's
	// num_leaves); 0: no bound, trees of MaxDepth grow while splits gain (XGBoost's
	// max_depth). Default 0.
	MaxLeaves int
	// MaxRounds bounds the number of trees. Default 500.
	MaxRounds int
	// EarlyStopping stops after this many rounds without a better validation log loss.
	// Default 30. Only used with validation rows.
	EarlyStopping int
	// Lambda is the L2 regularisation of leaf values. Default 1.
	Lambda float64
	// MinChildWeight is the least hessian sum of a child. Default 1e-3.
	MinChildWeight float64
	// MinLeafRows is the least number of training rows in a leaf. Default 20.
	MinLeafRows int
	// MinSplitGain is the least gain of a split. Default 0 (any positive gain).
	MinSplitGain float64
	// MaxBins is the number of bins of a column's values, 2..255. Default 255.
	MaxBins int
	// Subsample is the share of training rows each tree sees (drawn without replacement by
	// Seed). Default 1 (all).
	Subsample float64
	// ColSample is the share of columns each tree may split on (drawn by Seed). Default 1.
	ColSample float64
	// Seed seeds the row and column sampling.
	Seed uint64
}

// DefaultGBDTOptions are the hyperparameters used unless told otherwise: depth-wise trees of
// depth 4, as XGBoost's baseline in shared/bench, with early stopping.
var DefaultGBDTOptions = GBDTOptions{
	LearningRate: 0.1, MaxDepth: 4, MaxRounds: 500, EarlyStopping: 30, Lambda: 1,
	MinChildWeight: 1e-3, MinLeafRows: 20, MaxBins: 255, Subsample: 1, ColSample: 1,
}

// LeafwiseGBDTOptions are the second configuration churnctl's auto trainer tries: leaf-wise
// trees of at most 31 leaves and depth 8 (docs/MODELS.md compares the two).
var LeafwiseGBDTOptions = func() GBDTOptions {
	o := DefaultGBDTOptions
	o.MaxDepth, o.MaxLeaves = 8, 31
	return o
}()

// withDefaults fills in the zero fields and checks the ranges; errors name the option.
func (o GBDTOptions) withDefaults() (GBDTOptions, error) {
	d := DefaultGBDTOptions
	if o.LearningRate == 0 {
		o.LearningRate = d.LearningRate
	}
	if o.MaxDepth == 0 {
		o.MaxDepth = d.MaxDepth
	}
	if o.MaxRounds == 0 {
		o.MaxRounds = d.MaxRounds
	}
	if o.EarlyStopping == 0 {
		o.EarlyStopping = d.EarlyStopping
	}
	if o.MinLeafRows == 0 {
		o.MinLeafRows = d.MinLeafRows
	}
	if o.MaxBins == 0 {
		o.MaxBins = d.MaxBins
	}
	if o.Subsample == 0 {
		o.Subsample = d.Subsample
	}
	if o.ColSample == 0 {
		o.ColSample = d.ColSample
	}
	return o, o.check()
}

// check checks the ranges; errors name the option as the command line does.
func (o GBDTOptions) check() error {
	switch {
	case !(o.LearningRate > 0 && o.LearningRate <= 1):
		return fmt.Errorf("gbdt-learning-rate %g: want 0 < rate <= 1", o.LearningRate)
	case o.MaxDepth < 1 || o.MaxDepth > 16:
		return fmt.Errorf("gbdt-max-depth %d: want 1..16", o.MaxDepth)
	case o.MaxLeaves < 0 || o.MaxLeaves == 1:
		return fmt.Errorf("gbdt-max-leaves %d: want 0 (no bound) or >= 2", o.MaxLeaves)
	case o.MaxRounds < 1 || o.MaxRounds > 100000:
		return fmt.Errorf("gbdt-max-rounds %d: want 1..100000", o.MaxRounds)
	case o.EarlyStopping < 1:
		return fmt.Errorf("gbdt-early-stopping %d: want >= 1 rounds", o.EarlyStopping)
	case !(o.Lambda >= 0) || math.IsInf(o.Lambda, 0):
		return fmt.Errorf("gbdt-lambda %g: want a finite number >= 0", o.Lambda)
	case !(o.MinChildWeight >= 0) || math.IsInf(o.MinChildWeight, 0):
		return fmt.Errorf("gbdt-min-child-weight %g: want a finite number >= 0", o.MinChildWeight)
	case o.MinLeafRows < 1:
		return fmt.Errorf("gbdt-min-leaf-rows %d: want >= 1", o.MinLeafRows)
	case !(o.MinSplitGain >= 0) || math.IsInf(o.MinSplitGain, 0):
		return fmt.Errorf("gbdt-min-split-gain %g: want a finite number >= 0", o.MinSplitGain)
	case o.MaxBins < 2 || o.MaxBins > maxValueBins:
		return fmt.Errorf("gbdt-max-bins %d: want 2..%d", o.MaxBins, maxValueBins)
	case !(o.Subsample > 0 && o.Subsample <= 1):
		return fmt.Errorf("gbdt-subsample %g: want 0 < share <= 1", o.Subsample)
	case !(o.ColSample > 0 && o.ColSample <= 1):
		return fmt.Errorf("gbdt-colsample %g: want 0 < share <= 1", o.ColSample)
	}
	return nil
}

// Matrix is encoded rows: X is N×D, row-major, NaN where a value is missing (native missing
// policy); Y holds the labels.
type Matrix struct {
	X    []float64
	N, D int
	Y    []bool
}

func (m *Matrix) check() error {
	if m.N <= 0 || m.D <= 0 || len(m.X) != m.N*m.D || len(m.Y) != m.N {
		return fmt.Errorf("matrix: %d values and %d labels for %d×%d", len(m.X), len(m.Y), m.N, m.D)
	}
	return nil
}

// GBDTFit is a fitted ensemble and how it was stopped.
type GBDTFit struct {
	Trees *bundle.TreeEnsemble
	// Rounds is the number of trees kept; BestLoss the validation log loss at that round (0
	// without validation rows).
	Rounds   int
	BestLoss float64
}

// maxValueBins is the most bins of non-missing values: the bin index is a byte, and a column
// with c thresholds has value bins 0..c and its missing bin c+1 <= 255.
const maxValueBins = 255

// FitGBDT fits gradient-boosted trees for the logistic loss on train. With valid, rounds stop
// early on its log loss and the ensemble keeps its best round; without, MaxRounds trees are
// grown. The result is deterministic for the same data and options. progress, when not nil, is
// called with the number of trees after each round. ctx cancels it.
func FitGBDT(ctx context.Context, train Matrix, valid *Matrix, opt GBDTOptions, progress func(round int)) (*GBDTFit, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := train.check(); err != nil {
		return nil, fmt.Errorf("training %v", err)
	}
	if valid != nil {
		if err := valid.check(); err != nil {
			return nil, fmt.Errorf("validation %v", err)
		}
		if valid.D != train.D {
			return nil, fmt.Errorf("validation matrix has %d columns, training %d", valid.D, train.D)
		}
	}
	pos := countTrue(train.Y)
	if pos == 0 || pos == train.N {
		return nil, errors.New("gbdt: the training rows need both a positive and a negative label")
	}
	for i, x := range train.X {
		if math.IsInf(x, 0) {
			return nil, fmt.Errorf("gbdt: training row %d column %d is infinite", i/train.D, i%train.D)
		}
	}
	cuts := binCuts(train, opt.MaxBins)
	off := make([]int, train.D+1)
	for j, c := range cuts {
		off[j+1] = off[j] + len(c) + 2
	}
	b := &booster{
		off:  off,
		opt:  opt,
		n:    train.N,
		d:    train.D,
		cuts: cuts,
		bins: binColumns(train, cuts),
		y:    train.Y,
		rng:  rand.New(rand.NewPCG(opt.Seed, 0x67626474)), // second word: "gbdt"
	}
	base := math.Log(float64(pos) / float64(train.N-pos))
	te := &bundle.TreeEnsemble{BaseScore: base, Comparison: bundle.CompareLess}
	margin := make([]float64, train.N)
	for i := range margin {
		margin[i] = base
	}
	var vbins []uint8
	var vmargin []float64
	if valid != nil {
		vbins = binColumns(*valid, cuts)
		vmargin = make([]float64, valid.N)
		for i := range vmargin {
			vmargin[i] = base
		}
	}
	b.gh = make([]gradPair, train.N)
	b.rows = make([]int32, train.N)
	b.scratch = make([]int32, train.N)
	b.ordered = make([]gradPair, train.N)
	b.miss = make([]uint8, train.D)
	for j, c := range cuts {
		b.miss[j] = missingBin(c)
	}
	b.workers = max(1, min(runtime.GOMAXPROCS(0), maxHistWorkers))
	fit := &GBDTFit{Trees: te, BestLoss: math.Inf(1)}
	best := 0
	for round := range opt.MaxRounds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for i, m := range margin {
			p := Sigmoid(m)
			y := 0.0
			if train.Y[i] {
				y = 1
			}
			b.gh[i] = gradPair{g: p - y, h: max(p*(1-p), 1e-16)}
		}
		t := b.tree(margin)
		te.Trees = append(te.Trees, t.export(cuts))
		if progress != nil {
			progress(round + 1)
		}
		if valid == nil {
			continue
		}
		t.addTo(vmargin, vbins, b.miss, valid.N)
		loss := marginLogLoss(valid.Y, vmargin)
		if loss < fit.BestLoss {
			fit.BestLoss, best = loss, round+1
		} else if round+1-best >= opt.EarlyStopping {
			break
		}
	}
	if valid == nil {
		best, fit.BestLoss = len(te.Trees), 0
	}
	te.Trees = te.Trees[:best]
	fit.Rounds = best
	return fit, nil
}

// marginLogLoss is the mean log loss of margins m, computed from the margins without clipping.
func marginLogLoss(y []bool, m []float64) float64 {
	var s float64
	for i, v := range m {
		if y[i] {
			s += softplus(-v)
		} else {
			s += softplus(v)
		}
	}
	return s / float64(len(m))
}

// binCuts returns each column's thresholds t_0 < t_1 < …: at most maxBins-1 of them, at the
// quantiles of the column's distinct non-missing values weighted by their counts, each halfway
// between two neighbouring distinct values (a column with few distinct values gets one bin per
// value).
func binCuts(m Matrix, maxBins int) [][]float64 {
	cuts := make([][]float64, m.D)
	vals := make([]float64, 0, m.N)
	for j := range m.D {
		vals = vals[:0]
		for i := range m.N {
			if x := m.X[i*m.D+j]; !math.IsNaN(x) {
				vals = append(vals, x)
			}
		}
		if len(vals) == 0 {
			continue
		}
		slices.Sort(vals)
		distinct := slices.Compact(slices.Clone(vals))
		var c []float64
		if len(distinct) <= maxBins {
			for k := 1; k < len(distinct); k++ {
				c = append(c, midpoint(distinct[k-1], distinct[k]))
			}
		} else {
			for k := 1; k < maxBins; k++ {
				// The value at quantile k/maxBins and the next larger distinct value.
				q := vals[k*len(vals)/maxBins]
				next := sort.SearchFloat64s(distinct, q) + 1
				if next >= len(distinct) {
					break
				}
				t := midpoint(q, distinct[next])
				if len(c) == 0 || t > c[len(c)-1] {
					c = append(c, t)
				}
			}
		}
		cuts[j] = c
	}
	return cuts
}

// midpoint is a threshold t with a < t <= b for a < b: halfway, or b when a and b are adjacent
// floats.
func midpoint(a, b float64) float64 {
	t := a + (b-a)/2
	if !(t > a) || t > b {
		return b
	}
	return t
}

// binColumns bins m column-major: bins[j*N+i] is row i's bin of column j, the number of the
// column's thresholds at or below the value (so x < t_b exactly when bin <= b), or for a missing
// value the column's missing bin, one past its last value bin (missingBin).
func binColumns(m Matrix, cuts [][]float64) []uint8 {
	bins := make([]uint8, m.N*m.D)
	for j := range m.D {
		c := cuts[j]
		col := bins[j*m.N : (j+1)*m.N]
		for i := range m.N {
			x := m.X[i*m.D+j]
			if math.IsNaN(x) {
				col[i] = missingBin(c)
				continue
			}
			col[i] = uint8(sort.Search(len(c), func(k int) bool { return c[k] > x }))
		}
	}
	return bins
}

// missingBin is the missing bin of a column with thresholds cuts.
func missingBin(cuts []float64) uint8 { return uint8(len(cuts) + 1) }

// booster holds one fit's binned data and scratch space, all of it allocated once per fit.
type booster struct {
	opt  GBDTOptions
	n, d int
	cuts [][]float64
	bins []uint8 // column-major
	miss []uint8 // miss[j] is column j's missing bin
	// off[j] is column j's first slot in a histogram; a column has a slot per value bin and
	// one for missing values, so a 0/1 column takes 3 slots.
	off  []int
	y    []bool
	gh   []gradPair // each row's gradient and hessian in the current round
	rng  *rand.Rand
	cols []int // columns the current tree may split on
	// rows are the current tree's rows, partitioned in place as it grows: a leaf's rows are a
	// slice of it. ordered holds the gradients of a leaf's rows in that order (histogram).
	rows    []int32
	ordered []gradPair
	// free holds histograms for reuse.
	free [][]histBin
	// scratch is partition space.
	scratch []int32
	// leaves holds the current tree's leaves and inner nodes by node number.
	leaves []leafState
	// workers is the number of goroutines that build a large histogram, each over its own
	// columns (so the sums, and the fit, do not depend on it).
	workers int
}

// gradPair is one row's gradient and hessian, side by side for the histogram loop.
type gradPair struct{ g, h float64 }

// maxHistWorkers bounds the goroutines of one histogram.
const maxHistWorkers = 8

// parallelCells is the least number of row × column cells of a histogram worth splitting
// between goroutines (a smaller histogram takes a few µs, about what starting a goroutine
// costs). A variable so that a test can split every histogram.
var parallelCells = 1 << 15

// histBin is the sums of one bin of one column in one node.
type histBin struct {
	g, h float64
	n    int32
}

// gtree is a tree under construction, in the bundle's layout plus each split's bin boundary.
type gtree struct {
	feature []int32
	bin     []uint8 // a split's boundary: bins <= bin go left
	left    []int32
	right   []int32
	defLeft []bool
	value   []float64
}

func (t *gtree) addNode() int32 {
	t.feature = append(t.feature, 0)
	t.bin = append(t.bin, 0)
	t.left = append(t.left, -1)
	t.right = append(t.right, -1)
	t.defLeft = append(t.defLeft, false)
	t.value = append(t.value, 0)
	return int32(len(t.left) - 1)
}

// export converts the tree to the bundle's form: the threshold of a split at boundary b is the
// column's cut t_b ("lt").
func (t *gtree) export(cuts [][]float64) bundle.Tree {
	out := bundle.Tree{
		Feature:     slices.Clone(t.feature),
		Threshold:   make([]float64, len(t.left)),
		Left:        slices.Clone(t.left),
		Right:       slices.Clone(t.right),
		DefaultLeft: slices.Clone(t.defLeft),
		Value:       slices.Clone(t.value),
	}
	for i := range t.left {
		if t.left[i] != -1 {
			out.Threshold[i] = cuts[t.feature[i]][t.bin[i]]
		}
	}
	return out
}

// leafOf walks row i of column-major bins (n rows) to its leaf; miss[j] is column j's
// missing bin.
func (t *gtree) leafOf(bins, miss []uint8, n, i int) int32 {
	k := int32(0)
	for t.left[k] != -1 {
		f := t.feature[k]
		b := bins[int(f)*n+i]
		switch {
		case b == miss[f]:
			if t.defLeft[k] {
				k = t.left[k]
			} else {
				k = t.right[k]
			}
		case b <= t.bin[k]:
			k = t.left[k]
		default:
			k = t.right[k]
		}
	}
	return k
}

// addTo adds the tree's leaf values to the margins of the n binned rows.
func (t *gtree) addTo(margin []float64, bins, miss []uint8, n int) {
	for i := range n {
		margin[i] += t.value[t.leafOf(bins, miss, n, i)]
	}
}

// tree grows one tree on the current gradients, best first: of the leaves that can split, the
// one whose best split gains most splits next, until the tree has MaxLeaves leaves (LightGBM's
// leaf-wise growth, scikit-learn's HistGradientBoosting) or no leaf can split. MaxDepth bounds
// every path; without MaxLeaves every leaf that can split does, which is the depth-wise tree.
// It adds the tree's leaf values to margin, the training rows' margins.
func (b *booster) tree(margin []float64) *gtree {
	rows, all := b.sampleRows()
	b.sampleCols()
	maxLeaves := b.opt.MaxLeaves
	if maxLeaves == 0 {
		maxLeaves = 1 << b.opt.MaxDepth // a tree of MaxDepth has at most this many leaves
	}
	// A leaf has at least MinLeafRows rows, so a tree has at most n/MinLeafRows leaves; with
	// room for every node, no leaf moves while the tree grows.
	maxLeaves = max(1, min(maxLeaves, len(rows)/b.opt.MinLeafRows))
	if cap(b.leaves) < 2*maxLeaves {
		b.leaves = make([]leafState, 0, 2*maxLeaves)
	}
	b.leaves = b.leaves[:0]
	t := &gtree{}
	root := b.newLeaf(t, rows, 0)
	root.hist = b.histogram(rows, all)
	for _, i := range rows {
		root.g += b.gh[i].g
		root.h += b.gh[i].h
	}
	b.evaluate(root)
	open := []int32{root.node}
	for leaves := 1; leaves < maxLeaves; leaves++ {
		best := -1
		for k, node := range open {
			l := &b.leaves[node]
			if l.ok && (best < 0 || l.split.gain > b.leaves[open[best]].split.gain) {
				best = k
			}
		}
		if best < 0 {
			break
		}
		last := leaves+1 == maxLeaves // the new leaves will not split
		left, right := b.splitLeaf(t, &b.leaves[open[best]], last)
		open = append(open[:best], open[best+1:]...)
		open = append(open, left, right)
	}
	for _, node := range open {
		l := &b.leaves[node]
		v := -b.opt.LearningRate * l.g / (l.h + b.opt.Lambda)
		t.value[node] = v
		if l.hist != nil {
			b.free = append(b.free, l.hist)
		}
		if all {
			for _, i := range l.rows {
				margin[i] += v
			}
		}
	}
	if !all { // the rows the tree did not see have no leaf yet
		t.addTo(margin, b.bins, b.miss, b.n)
	}
	return t
}

// leafState is a leaf of the tree being grown: its rows, histogram, sums and best split.
type leafState struct {
	node  int32
	rows  []int32
	hist  []histBin
	g, h  float64
	depth int // the root's is 0
	split split
	ok    bool // split is valid
}

// newLeaf adds a node to t and its leaf state to b.leaves (within its capacity: no leaf moves).
func (b *booster) newLeaf(t *gtree, rows []int32, depth int) *leafState {
	node := t.addNode()
	b.leaves = append(b.leaves, leafState{node: node, rows: rows, depth: depth})
	return &b.leaves[node]
}

// evaluate finds l's best split, if l may split.
func (b *booster) evaluate(l *leafState) {
	if !b.mayGrow(len(l.rows), l.depth) {
		return
	}
	l.split, l.ok = b.bestSplit(l.hist, l.g, l.h, len(l.rows))
}

// mayGrow says whether a leaf of rows at depth may split at all (evaluate looks for the split).
func (b *booster) mayGrow(rows, depth int) bool {
	return depth < b.opt.MaxDepth && rows >= 2*b.opt.MinLeafRows
}

// splitLeaf turns l's node into its split and returns the nodes of the two new leaves. With
// last (the tree is full after this split), or when neither new leaf may split, their
// histograms are not built: nothing would read them.
func (b *booster) splitLeaf(t *gtree, l *leafState, last bool) (int32, int32) {
	s := l.split
	k := l.node
	t.feature[k], t.bin[k], t.defLeft[k] = int32(s.feature), s.bin, s.defLeft
	// Stable partition of rows into left then right.
	col := b.bins[s.feature*b.n : (s.feature+1)*b.n]
	rows := l.rows
	miss := b.miss[s.feature]
	// Without branches: each row is written to both sides and the side it belongs to advances.
	rest := b.scratch[:len(rows)]
	nl, nr := 0, 0
	for _, i := range rows {
		bin := col[i]
		l := 0
		if bin == miss && s.defLeft || bin != miss && bin <= s.bin {
			l = 1
		}
		rows[nl] = i
		rest[nr] = i
		nl += l
		nr += 1 - l
	}
	copy(rows[nl:], rest[:nr])
	left := b.newLeaf(t, rows[:nl], l.depth+1)
	left.g, left.h = s.gl, s.hl
	right := b.newLeaf(t, rows[nl:], l.depth+1)
	right.g, right.h = l.g-s.gl, l.h-s.hl
	t.left[k], t.right[k] = left.node, right.node
	if last || !b.mayGrow(len(left.rows), left.depth) && !b.mayGrow(len(right.rows), right.depth) {
		b.free = append(b.free, l.hist)
		l.hist = nil
		return left.node, right.node
	}
	// The smaller child's histogram is built; the larger's is the parent's minus it.
	if len(left.rows) <= len(right.rows) {
		left.hist = b.histogram(left.rows, false)
		right.hist = b.subtract(l.hist, left.hist)
	} else {
		right.hist = b.histogram(right.rows, false)
		left.hist = b.subtract(l.hist, right.hist)
	}
	l.hist = nil
	b.evaluate(left)
	b.evaluate(right)
	return left.node, right.node
}

// sampleRows returns the rows of this tree, sorted, and whether they are all the rows: all, or
// a Subsample share drawn by the seed.
func (b *booster) sampleRows() ([]int32, bool) {
	rows := b.rows
	for i := range rows {
		rows[i] = int32(i)
	}
	if b.opt.Subsample >= 1 {
		return rows, true
	}
	k := max(1, int(math.Round(b.opt.Subsample*float64(b.n))))
	b.rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	rows = rows[:k]
	slices.Sort(rows)
	return rows, k == b.n
}

// sampleCols sets the columns of this tree: all, or a ColSample share drawn by the seed.
func (b *booster) sampleCols() {
	b.cols = b.cols[:0]
	for j := range b.d {
		b.cols = append(b.cols, j)
	}
	if b.opt.ColSample >= 1 {
		return
	}
	k := max(1, int(math.Round(b.opt.ColSample*float64(b.d))))
	b.rng.Shuffle(len(b.cols), func(i, j int) { b.cols[i], b.cols[j] = b.cols[j], b.cols[i] })
	b.cols = b.cols[:k]
	slices.Sort(b.cols)
}

func (b *booster) newHist() []histBin {
	if k := len(b.free); k > 0 {
		h := b.free[k-1]
		b.free = b.free[:k-1]
		clear(h)
		return h
	}
	// 256 slots past the last column: every column's slots can be read as a [256]histBin,
	// indexed by a bin without a bounds check (histColumns).
	return make([]histBin, b.off[b.d]+256)
}

// histogram sums the gradients of rows per column and bin (sampled columns only); all says rows
// are every row in order. A large histogram is split by columns between b.workers goroutines:
// each column is still summed by one goroutine in row order, so the sums do not depend on the
// number of goroutines.
func (b *booster) histogram(rows []int32, all bool) []histBin {
	hist := b.newHist()
	gh := b.gh
	if !all {
		// The rows' gradients in row order, read sequentially by every column below.
		gh = b.ordered[:len(rows)]
		for k, i := range rows {
			gh[k] = b.gh[i]
		}
	}
	cols := b.cols
	w := min(b.workers, len(cols))
	if w < 2 || len(rows)*len(cols) < parallelCells {
		b.histColumns(hist, cols, rows, gh, all)
		return hist
	}
	var wg sync.WaitGroup
	per := (len(cols) + w - 1) / w
	for start := per; start < len(cols); start += per {
		part := cols[start:min(start+per, len(cols))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.histColumns(hist, part, rows, gh, all)
		}()
	}
	b.histColumns(hist, cols[:per], rows, gh, all)
	wg.Wait()
	return hist
}

// lowSlots is the most histogram slots of a column that histColumns sums with interleaved
// accumulators.
const lowSlots = 16

// histColumns adds the gradients gh of rows (gh[k] is rows[k]'s, or with all gh[i] is row i's)
// to hist's slots of cols.
//
// A column with few bins (a 0/1 column has 3 slots) sends long runs of rows to the same slot,
// and each addition waits for the previous one to that slot; such a column is summed in four
// interleaved accumulators (row k into accumulator k mod 4), added up in a fixed order at the
// end, so that four additions are under way at once.
func (b *booster) histColumns(hist []histBin, cols []int, rows []int32, gh []gradPair, all bool) {
	var acc [4][lowSlots]histBin
	for _, j := range cols {
		col := b.bins[j*b.n : (j+1)*b.n]
		hj := hist[b.off[j]:b.off[j+1]]
		if len(hj) <= lowSlots {
			acc = [4][lowSlots]histBin{}
			if all {
				sumInterleaved(&acc, col, gh[:len(col)])
			} else {
				sumInterleavedRows(&acc, col, rows, gh[:len(rows)])
			}
			for s := range hj {
				e := &hj[s]
				e.g = ((acc[0][s].g + acc[1][s].g) + acc[2][s].g) + acc[3][s].g
				e.h = ((acc[0][s].h + acc[1][s].h) + acc[2][s].h) + acc[3][s].h
				e.n = acc[0][s].n + acc[1][s].n + acc[2][s].n + acc[3][s].n
			}
			continue
		}
		slots := (*[256]histBin)(hist[b.off[j] : b.off[j]+256])
		if all {
			gh := gh[:len(col)]
			for i, c := range col {
				e := &slots[c]
				e.g += gh[i].g
				e.h += gh[i].h
				e.n++
			}
			continue
		}
		gh := gh[:len(rows)]
		for k, i := range rows {
			e := &slots[col[i]]
			e.g += gh[k].g
			e.h += gh[k].h
			e.n++
		}
	}
}

// sumInterleaved adds gh[i] to accumulator i mod 4 at slot col[i].
func sumInterleaved(acc *[4][lowSlots]histBin, col []uint8, gh []gradPair) {
	n := len(col)
	k := 0
	for ; k+4 <= n; k += 4 {
		c, g := col[k:k+4:k+4], gh[k:k+4:k+4]
		e0, e1, e2, e3 := &acc[0][c[0]], &acc[1][c[1]], &acc[2][c[2]], &acc[3][c[3]]
		e0.g += g[0].g
		e0.h += g[0].h
		e0.n++
		e1.g += g[1].g
		e1.h += g[1].h
		e1.n++
		e2.g += g[2].g
		e2.h += g[2].h
		e2.n++
		e3.g += g[3].g
		e3.h += g[3].h
		e3.n++
	}
	for ; k < n; k++ {
		e := &acc[k%4][col[k]]
		e.g += gh[k].g
		e.h += gh[k].h
		e.n++
	}
}

// sumInterleavedRows adds gh[k] to accumulator k mod 4 at slot col[rows[k]].
func sumInterleavedRows(acc *[4][lowSlots]histBin, col []uint8, rows []int32, gh []gradPair) {
	n := len(rows)
	k := 0
	for ; k+4 <= n; k += 4 {
		r, g := rows[k:k+4:k+4], gh[k:k+4:k+4]
		e0, e1, e2, e3 := &acc[0][col[r[0]]], &acc[1][col[r[1]]], &acc[2][col[r[2]]], &acc[3][col[r[3]]]
		e0.g += g[0].g
		e0.h += g[0].h
		e0.n++
		e1.g += g[1].g
		e1.h += g[1].h
		e1.n++
		e2.g += g[2].g
		e2.h += g[2].h
		e2.n++
		e3.g += g[3].g
		e3.h += g[3].h
		e3.n++
	}
	for ; k < n; k++ {
		e := &acc[k%4][col[rows[k]]]
		e.g += gh[k].g
		e.h += gh[k].h
		e.n++
	}
}

// split is a candidate split of a node.
type split struct {
	gain    float64
	feature int
	bin     uint8
	defLeft bool
	gl, hl  float64 // sums of the left child
	nl      int
}

// subtract turns parent into parent − child over the sampled columns and returns it.
func (b *booster) subtract(parent, child []histBin) []histBin {
	for _, j := range b.cols {
		p := parent[b.off[j]:b.off[j+1]]
		c := child[b.off[j]:b.off[j+1]]
		for k := range p {
			p[k].g -= c[k].g
			p[k].h -= c[k].h
			p[k].n -= c[k].n
		}
	}
	return parent
}

// bestSplit finds the split of the largest gain over the sampled columns, trying the missing
// rows on each side; ok is false when no split satisfies the constraints with a gain above
// MinSplitGain.
func (b *booster) bestSplit(hist []histBin, g, h float64, n int) (split, bool) {
	lambda, minW, minN := b.opt.Lambda, b.opt.MinChildWeight, b.opt.MinLeafRows
	parent := g * g / (h + lambda)
	best := split{gain: b.opt.MinSplitGain}
	found := false
	try := func(j int, bin int, defLeft bool, gl, hl float64, nl int) {
		gr, hr, nr := g-gl, h-hl, n-nl
		if nl < minN || nr < minN || hl < minW || hr < minW {
			return
		}
		gain := gl*gl/(hl+lambda) + gr*gr/(hr+lambda) - parent
		if gain > best.gain {
			best = split{gain: gain, feature: j, bin: uint8(bin), defLeft: defLeft, gl: gl, hl: hl, nl: nl}
			found = true
		}
	}
	for _, j := range b.cols {
		nb := len(b.cuts[j]) // boundaries 0..nb-1
		if nb == 0 {
			continue
		}
		hj := hist[b.off[j]:b.off[j+1]]
		miss := hj[nb+1]
		var gl, hl float64
		nl := 0
		for bin := range nb {
			gl += hj[bin].g
			hl += hj[bin].h
			nl += int(hj[bin].n)
			if miss.n == 0 {
				// No missing rows here: the default goes to the side with more weight.
				try(j, bin, hl >= h-hl, gl, hl, nl)
				continue
			}
			try(j, bin, false, gl, hl, nl)
			try(j, bin, true, gl+miss.g, hl+miss.h, nl+int(miss.n))
		}
	}
	return best, found
}

// treesMargin is the margin of a tree ensemble for x, in the serving code's order: the base
// score, then each tree's leaf value in tree order.
func treesMargin(te *bundle.TreeEnsemble, x []float64) float64 {
	m := te.BaseScore
	for t := range te.Trees {
		tr := &te.Trees[t]
		k := int32(0)
		for tr.Left[k] != -1 {
			v := x[tr.Feature[k]]
			var goLeft bool
			switch {
			case math.IsNaN(v):
				goLeft = tr.DefaultLeft[k]
			case te.Comparison == bundle.CompareLessEqual:
				goLeft = v <= tr.Threshold[k]
			default:
				goLeft = v < tr.Threshold[k]
			}
			if goLeft {
				k = tr.Left[k]
			} else {
				k = tr.Right[k]
			}
		}
		m += tr.Value[k]
	}
	return m
}

// Validate checks every option as given (a zero learning rate, depth, round count, early
// stopping, leaf rows, bin count or share is an error here, not the default); errors name the
// option as the command line does, e.g. "gbdt-max-depth 0: want 1..16".
func (o GBDTOptions) Validate() error { return o.check() }
