// Package golearntree trains golearn's tree models on a churn training set and exports them into
// the bundle's tree format (bundle.TreeEnsemble), so that they are served by internal/scoring at
// the speed of any other tree ensemble. That is its one job; the request path never imports it
// (nor golearn): only churnctl's training does.
//
// golearn is github.com/sjwhitworth/golearn at v0.0.0-20221228163002-74ae077eafb2, its last
// commit (28 December 2022). Only its trees package is used, which builds without cgo; its
// ensemble package (ensemble.RandomForest) is not, because it pulls in linear_models, which
// needs cgo (liblinear), and because of the randomness described under KindRandomForest.
//
// # What each kind is
//
// KindCART is trees.NewDecisionTreeClassifier: binary splits "x < threshold goes left" on the
// numeric columns, thresholds at midpoints between distinct training values, Gini impurity (or
// entropy, Options.Criterion), grown to Options.MaxDepth levels of splits. golearn stores only
// a label per leaf (the leaf's majority class, 0 on a tie), no class counts, so the leaf's
// positive-class probability is counted here by sending the training rows down golearn's tree:
// p = positives / rows at that leaf. golearn's label is then exactly "p > 0.5", which the export
// checks for every leaf. The export has Comparison bundle.CompareLess and golearn's thresholds,
// so every row reaches the leaf it reaches in golearn; a NaN goes right, as golearn's
// "NaN < t" is false. When no split lowers the impurity golearn keeps a placeholder root,
// "x[0] < 0", whose empty side has a made-up label 0; the export is then one leaf with the
// training rows' positive share. With Options.CARTBins golearn's CART is fitted on the columns'
// quantile bin numbers (the bins of KindID3) and each threshold t becomes the bin edge
// edge[ceil(t)-1], which sends every value where golearn sends its bin.
//
// KindID3 is golearn's ID3 (trees.NewID3DecisionTreeFromRule with pruning off: golearn's pruning
// split draws rows from math/rand's unseedable global source) on discretised columns: golearn's
// ID3 splits a categorical attribute into one child per value and uses it once per path. Each
// column is cut into at most Options.Bins quantile bins of the training values (edges at
// midpoints between adjacent distinct values; a column with no more distinct values than bins
// gets one bin per value). The bins are computed here rather than with golearn's filters because
// its BinningFilter makes equal-width bins, which put nearly every row of a skewed column (usage,
// revenue) into one bin. A row's bin is the number of edges <= x, so "bin < b" is
// "x < edge[b-1]", and a multi-way split on a column becomes a balanced chain of binary
// "x < edge" splits (Comparison bundle.CompareLess) that ends in the child of the row's bin;
// neighbouring bins with the same child share one branch. A NaN goes right, like a value above
// every edge. Leaf probability: golearn's ClassDist at the leaf, float64(positives)/float64(rows),
// exactly as its PredictProba computes it.
//
// golearn's ID3 is not repeatable as it stands, and three things are changed so that it is and
// so that golearn's own Predict and PredictProba on the resulting tree are what the export
// reproduces:
//
//   - The split rule is orderedGain: golearn's information gain with candidates in column order
//     and sums in sorted order. golearn's InformationGainRuleGenerator walks Go maps for both,
//     so ties between attributes (common in small nodes) go a different way from run to run.
//   - Options.MaxDepth: golearn's ID3 has no depth limit, so nodes below MaxDepth levels of
//     splits are made leaves (their ClassDist is kept). ID3 is greedy and top-down, so this is
//     the tree a depth-limited ID3 would have grown.
//   - Bins a node never saw: golearn's Predict sends a value without a child to a child picked
//     by iterating over a Go map ("Suspicious of this", says its source), a different child from
//     run to run. Such bins get a leaf with the split node's own ClassDist instead.
//
// KindRandomForest is golearn's random forest algorithm (ensemble.RandomForest, that is
// meta.BaggedModel of ID3 trees): each of Options.Trees trees is the ID3 of KindID3 on a
// bootstrap sample of the rows (n draws with replacement) restricted to Options.FeaturesPerTree
// distinct columns drawn at random per tree, on the binned columns. The draws are made here from
// math/rand/v2's PCG seeded by (Options.Seed, tree index), because golearn draws from math/rand's
// global source, which cannot be seeded since Go 1.24 (rand.Seed is a no-op), from goroutines
// that race for it: golearn's own forest is not repeatable. Trees are fitted in parallel; the
// result does not depend on their order. golearn's forest predicts by majority vote, which ranks
// rows in only Trees+1 steps and breaks ties in map order; the export instead averages the
// trees' leaf probabilities (soft voting, as scikit-learn's forests do): each leaf holds
// 4*(p - 0.5)/Trees, so that
//
//	margin = 4*(mean p - 0.5), mean p = 0.5 + margin/4,
//
// sigmoid(margin) is a monotone map of the mean leaf probability (it lies in [0.119, 0.881]),
// and sigmoid(margin) > 0.5 exactly when mean p > 0.5. The factor 4 makes sigmoid(margin) follow
// mean p near 0.5 (sigmoid's slope there is 1/4). Probability calibration (Platt or isotonic,
// fitted on held-out rows by the trainer) then maps it to a calibrated probability. Dividing
// logits by the number of trees (a mean of logits) was not used: most leaves of an unpruned ID3
// tree are pure, and their clamped logits (±LogitClamp) would swamp every other tree.
//
// Leaf values of CART and ID3: logit(p) = log(p/(1-p)), clamped to [-LogitClamp, LogitClamp]. A
// pure leaf (p = 0 or 1) has an infinite logit; the clamp keeps the bundle finite, and
// sigmoid(±30) is within 1e-13 of 0 or 1, below bundle.CheckTolerance. One tree, BaseScore 0:
// sigmoid(margin) is golearn's leaf probability.
//
// # Cost
//
// golearn's CART recounts both sides' classes for every candidate threshold, so a fit costs
// about rows x distinct values per column and level: quadratic in the rows of a continuous
// column. Options.CARTBins makes it rows x bins. Measured with BenchmarkFit and a synthetic set
// (20 normal columns) on this project's shared 2-core machine under load:
//
//	                        CART       CART, 32 bins  ID3     forest, 100 trees
//	Iranian, 2,520 x 13     0.6-0.8 s  0.16 s         0.07 s  3-9 s
//	  its test ROC-AUC      0.943      0.967          0.963   0.985
//	synthetic, 2,500 x 20   3.3 s      0.5 s          0.2 s   16 s
//	synthetic, 5,000 x 20   13.7 s     -              0.4 s   27 s
//	synthetic, 10,000 x 20  -          1.5 s          2.1 s   -
//
// (ROC-AUC on the Iranian standard test rows; default options otherwise.) golearn's trees
// walk its instance views row by row through maps, which bounds the forest.
//
// golearn panics on some inputs; every call into it is guarded and a panic comes back as an
// error. Fit checks its context before and after each golearn call (for a forest, between
// trees); a single golearn tree fit cannot be interrupted.
package golearntree

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strings"

	"github.com/churnhq/churn/internal/bundle"
)

// Module is the golearn release this package is built and tested against (go.mod pins it; a test
// checks that the two agree), for training records.
const Module = "github.com/sjwhitworth/golearn v0.0.0-20221228163002-74ae077eafb2"

// Kinds of golearn tree model.
const (
	KindCART         = "cart"
	KindID3          = "id3"
	KindRandomForest = "random_forest"
)

// Kinds returns the kinds Fit accepts.
func Kinds() []string { return []string{KindCART, KindID3, KindRandomForest} }

// LogitClamp bounds the magnitude of a CART or ID3 leaf value.
const LogitClamp = 30.0

// Defaults of Options.
const (
	DefaultMaxDepthCART   = 8
	DefaultMaxDepthID3    = 5
	DefaultTrees          = 100
	DefaultBins           = 8
	DefaultCriterion      = "gini"
	MaxTrees              = 2000
	MaxBins               = 256
	maxDepthLimit         = 64
	forestScale           = 4.0
	classAttributeName    = "churn_label"
	positiveClass         = "1"
	negativeClass         = "0"
	defaultColumnNameBase = "c"
)

// Options tune Fit. The zero value is valid: every zero field takes its default.
type Options struct {
	// MaxDepth is the number of levels of golearn splits (a stump is 1): for CART golearn's
	// maxDepth, for ID3 and each forest tree the depth at which golearn's tree is cut. 0 means
	// DefaultMaxDepthCART for CART and DefaultMaxDepthID3 for ID3 and forests; at most 64. An
	// ID3 split on a column of k bins becomes up to ceil(log2 k) binary levels in the export.
	MaxDepth int
	// Trees is the number of trees of a random forest (default DefaultTrees, at most MaxTrees).
	// Ignored by the other kinds.
	Trees int
	// FeaturesPerTree is the number of distinct columns each forest tree sees (golearn's
	// RandomForest "features"); 0 means ceil(d/2), at least 2 (golearn's ID3 makes a leaf of any
	// node with a single attribute left, so one feature would make every tree a leaf). Must be
	// <= d. Ignored by the other kinds. The trees draw columns per tree, not per split, so they
	// need more than the sqrt(d) of per-split forests: on the Iranian data (100 trees, 8 bins)
	// 4 of 13 columns gave a test ROC-AUC of 0.967, 6 gave 0.983, 7 (the default) 0.985.
	FeaturesPerTree int
	// Bins is the largest number of quantile bins per column for ID3 and forests (default
	// DefaultBins, 2..MaxBins). Ignored by CART.
	Bins int
	// CARTBins, when set (2..MaxBins), makes CART cut each column into at most that many
	// quantile bins (as ID3 does) and fit golearn's CART on the bin numbers; the export's
	// thresholds are the bin edges. A fit then costs about rows x bins instead of rows x
	// distinct values (see Cost). 0, the default, fits golearn's CART on the values themselves.
	// Ignored by the other kinds.
	CARTBins int
	// Criterion is CART's impurity, "gini" (default) or "entropy". Ignored by the other kinds.
	Criterion string
	// Seed makes forests repeatable: the same data, options and seed give the same ensemble.
	// CART and ID3 draw no random numbers.
	Seed int64
	// Columns names the d columns (golearn attribute names, used in errors). Empty means
	// c0..c{d-1}. Names must be unique and non-empty.
	Columns []string
}

// Fit trains golearn's tree model of the given kind (KindCART, KindID3 or KindRandomForest) on
// X and y and returns it as a bundle.TreeEnsemble.
//
// X is row-major, n rows by d columns: the bundle's encoded input columns in bundle column order,
// as train.Prep.Encode produces them (numeric, one-hot 0/1 columns for categories); every value
// must be finite. y[i] is true when row i churned; both classes must occur. The ensemble reads
// the same d columns: Feature indices are column indices of X.
//
// The returned ensemble's sigmoid(margin) is, for CART and ID3, golearn's positive-class
// probability of the leaf the row reaches (to within the LogitClamp of pure leaves), and its
// class, sigmoid(margin) > 0.5, is golearn's predicted class; for a random forest it is
// sigmoid(4*(mean leaf probability - 0.5)), a monotone map for calibration to fix (see the
// package doc). Comparison is bundle.CompareLess and BaseScore 0 for every kind. The trainer
// should use a missing policy other than native for the inputs (golearn never sees a missing
// value; a NaN goes right at every split).
//
// For churnctl: --trainer golearn-cart, golearn-id3 and golearn-rf are KindCART, KindID3 and
// KindRandomForest; --seed is Options.Seed; Options.Columns may be the manifest's Columns().
// Calibrate the result on held-out rows (Platt or isotonic on the margins internal/scoring
// computes for the exported ensemble): a forest's sigmoid(margin) is not a probability, and a
// pure CART or ID3 leaf says 1e-13 or 1-1e-13. Check vectors should likewise come from
// internal/scoring on the finished bundle.
//
// Errors name the bad argument (row and column for a non-finite value); a cancelled ctx, an
// unknown kind, n*d != len(X), len(y) != n, one class only and a golearn panic are errors.
func Fit(ctx context.Context, kind string, X []float64, n, d int, y []bool, opt Options) (ens *bundle.TreeEnsemble, err error) {
	if ctx == nil {
		return nil, errors.New("golearntree: nil context")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("golearntree: %w", err)
	}
	if err := checkData(X, n, d, y); err != nil {
		return nil, fmt.Errorf("golearntree: %w", err)
	}
	opt, err = opt.withDefaults(kind, d)
	if err != nil {
		return nil, fmt.Errorf("golearntree: %w", err)
	}
	switch kind {
	case KindCART:
		ens, err = fitCART(ctx, X, n, d, y, opt)
	case KindID3:
		ens, err = fitID3(ctx, X, n, d, y, opt)
	case KindRandomForest:
		ens, err = fitForest(ctx, X, n, d, y, opt)
	}
	if err != nil {
		return nil, fmt.Errorf("golearntree: %s: %w", kind, err)
	}
	return ens, nil
}

func checkData(X []float64, n, d int, y []bool) error {
	if n <= 0 || d <= 0 {
		return fmt.Errorf("want n > 0 rows and d > 0 columns, got n=%d, d=%d", n, d)
	}
	if d > bundle.MaxColumns {
		return fmt.Errorf("d=%d columns, at most %d", d, bundle.MaxColumns)
	}
	if n > len(X)/d || n*d != len(X) {
		return fmt.Errorf("len(X)=%d is not n*d=%d*%d", len(X), n, d)
	}
	if len(y) != n {
		return fmt.Errorf("len(y)=%d, want n=%d", len(y), n)
	}
	for i, v := range X {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("row %d, column %d of X is %v: golearn's trees need finite values (impute missing values first)", i/d, i%d, v)
		}
	}
	pos := 0
	for _, c := range y {
		if c {
			pos++
		}
	}
	if pos == 0 || pos == n {
		return fmt.Errorf("y has one class only (%d positive of %d rows): a classifier needs both", pos, n)
	}
	return nil
}

func (o Options) withDefaults(kind string, d int) (Options, error) {
	switch kind {
	case KindCART, KindID3, KindRandomForest:
	default:
		return o, fmt.Errorf("unknown kind %q (want %s)", kind, strings.Join(Kinds(), ", "))
	}
	if o.MaxDepth < 0 || o.MaxDepth > maxDepthLimit {
		return o, fmt.Errorf("options.max_depth %d: want 0 (default) to %d", o.MaxDepth, maxDepthLimit)
	}
	if o.MaxDepth == 0 {
		o.MaxDepth = DefaultMaxDepthID3
		if kind == KindCART {
			o.MaxDepth = DefaultMaxDepthCART
		}
	}
	if o.Trees < 0 || o.Trees > MaxTrees {
		return o, fmt.Errorf("options.trees %d: want 0 (default) to %d", o.Trees, MaxTrees)
	}
	if o.Trees == 0 {
		o.Trees = DefaultTrees
	}
	if o.Bins == 0 {
		o.Bins = DefaultBins
	}
	if o.Bins < 2 || o.Bins > MaxBins {
		return o, fmt.Errorf("options.bins %d: want 0 (default) or 2 to %d", o.Bins, MaxBins)
	}
	if o.CARTBins != 0 && (o.CARTBins < 2 || o.CARTBins > MaxBins) {
		return o, fmt.Errorf("options.cart_bins %d: want 0 (off) or 2 to %d", o.CARTBins, MaxBins)
	}
	if o.FeaturesPerTree < 0 || o.FeaturesPerTree > d {
		return o, fmt.Errorf("options.features_per_tree %d: want 0 (default) to d=%d", o.FeaturesPerTree, d)
	}
	if o.FeaturesPerTree == 0 {
		o.FeaturesPerTree = min(d, max(2, (d+1)/2))
	}
	switch o.Criterion {
	case "":
		o.Criterion = DefaultCriterion
	case "gini", "entropy":
	default:
		return o, fmt.Errorf("options.criterion %q (want gini or entropy)", o.Criterion)
	}
	if o.Columns == nil {
		o.Columns = make([]string, d)
		for j := range o.Columns {
			o.Columns[j] = fmt.Sprintf("%s%d", defaultColumnNameBase, j)
		}
	} else {
		if len(o.Columns) != d {
			return o, fmt.Errorf("options.columns has %d names for d=%d columns", len(o.Columns), d)
		}
		seen := make(map[string]int, d)
		for j, c := range o.Columns {
			if c == "" {
				return o, fmt.Errorf("options.columns[%d] is empty", j)
			}
			if k, dup := seen[c]; dup {
				return o, fmt.Errorf("options.columns[%d] %q repeats options.columns[%d]", j, c, k)
			}
			seen[c] = j
		}
		o.Columns = append([]string(nil), o.Columns...)
	}
	return o, nil
}

// classAttrName is a name for the class attribute that no column has.
func classAttrName(columns []string) string {
	name := classAttributeName
	for {
		clash := false
		for _, c := range columns {
			if c == name {
				clash = true
				break
			}
		}
		if !clash {
			return name
		}
		name += "_"
	}
}

// guard runs f and turns a golearn panic into an error.
func guard(what string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("golearn panicked in %s: %v\n%s", what, r, debug.Stack())
		}
	}()
	return f()
}

// logit is log(p/(1-p)) clamped to [-LogitClamp, LogitClamp].
func logit(p float64) float64 {
	switch {
	case p <= 0:
		return -LogitClamp
	case p >= 1:
		return LogitClamp
	}
	return max(-LogitClamp, min(LogitClamp, math.Log(p/(1-p))))
}

// treeBuilder accumulates one bundle.Tree in preorder, so children come after their parent.
type treeBuilder struct{ t bundle.Tree }

func (b *treeBuilder) leaf(v float64) int32 {
	i := int32(len(b.t.Left))
	b.t.Feature = append(b.t.Feature, 0)
	b.t.Threshold = append(b.t.Threshold, 0)
	b.t.Left = append(b.t.Left, -1)
	b.t.Right = append(b.t.Right, -1)
	b.t.DefaultLeft = append(b.t.DefaultLeft, false)
	b.t.Value = append(b.t.Value, v)
	return i
}

// split adds a split node whose children are set later by setChildren. A NaN goes right (see
// the package doc).
func (b *treeBuilder) split(feature int, threshold float64) int32 {
	i := b.leaf(0)
	b.t.Feature[i] = int32(feature)
	b.t.Threshold[i] = threshold
	return i
}

func (b *treeBuilder) setChildren(i, l, r int32) { b.t.Left[i], b.t.Right[i] = l, r }
