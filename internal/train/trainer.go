package train

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/churnhq/churn/internal/bundle"
)

// Trainer is one model family that Run can fit: how it wants its rows encoded and how it fits a
// bundle.Model on them. Run cross-fits every trainer it is given, calibrates each on its
// out-of-fold margins and keeps the best (see Run). A new family plugs in by returning a
// Trainer; a tree learner that outputs a bundle.TreeEnsemble needs only TreeTrainer.
type Trainer struct {
	// Name is the trainer's name on the command line and in the training record ("logistic",
	// "gbdt", "golearn-cart").
	Name string
	// Describe is a phrase for the manifest description, e.g. "logistic regression (C=1)".
	Describe string
	// Encoding is how the rows are encoded for Fit (and for serving).
	Encoding Encoding
	// Params are the hyperparameters for the training record.
	Params map[string]float64
	// Fit fits a model on in.Train. in.Valid, when set, are held-out rows it may stop early on;
	// in.Rounds, when > 0, fixes the number of boosting rounds (trainers without rounds ignore
	// it). The model must be a logistic regression or a tree ensemble over the encoded columns.
	// Fit must return soon after ctx is done (Run gives each trainer a deadline, Config.Budget)
	// and must bound its own loops: a fit that cannot converge returns an error saying so.
	Fit func(ctx context.Context, in FitInput) (*Fitted, error)
}

// FitInput is what a Trainer's Fit gets.
type FitInput struct {
	Train  Matrix
	Valid  *Matrix
	Rounds int
	// Progress, when not nil, is called from Fit's goroutine as the fit advances, with its
	// boosting round or solver iteration so far (Run reports it as Progress.Round).
	Progress func(round int)
}

// Fitted is a Trainer's model. Rounds is the number of boosting rounds it chose (0 when the
// family has none); Run refits on all training rows with the mean of the folds' rounds.
type Fitted struct {
	Model  bundle.Model
	Rounds int
}

// LogisticTrainer is L2-regularised logistic regression with inverse strength c (FitLogistic),
// on standardised inputs.
func LogisticTrainer(c float64) Trainer {
	return Trainer{
		Name:     "logistic",
		Describe: fmt.Sprintf("Logistic regression (C=%g)", c),
		Encoding: EncodeStandardized,
		Params:   map[string]float64{"c": c},
		Fit: func(ctx context.Context, in FitInput) (*Fitted, error) {
			fit, err := FitLogistic(ctx, in.Train, c, in.Progress)
			if err != nil {
				return nil, err
			}
			return &Fitted{Model: bundle.Model{
				Type:     bundle.ModelLogistic,
				Logistic: &bundle.Logistic{Intercept: fit.Intercept, Weights: fit.Weights},
			}}, nil
		},
	}
}

// GBDTTrainer is gradient-boosted trees (FitGBDT) on raw inputs with native missing values. Its
// name is "gbdt" for depth-wise trees and "gbdt-leafwise" with MaxLeaves set.
func GBDTTrainer(opt GBDTOptions) Trainer {
	o, err := opt.withDefaults()
	name := "gbdt"
	if o.MaxLeaves > 0 {
		name = "gbdt-leafwise"
	}
	return Trainer{
		Name: name,
		Describe: fmt.Sprintf("Gradient-boosted trees (learning rate %g, depth %d, %d leaves, lambda %g, early stopping %d)",
			o.LearningRate, o.MaxDepth, o.MaxLeaves, o.Lambda, o.EarlyStopping),
		Encoding: EncodeRaw,
		Params: map[string]float64{
			"learning_rate": o.LearningRate, "max_depth": float64(o.MaxDepth), "max_leaves": float64(o.MaxLeaves), "max_rounds": float64(o.MaxRounds),
			"early_stopping": float64(o.EarlyStopping), "lambda": o.Lambda, "min_child_weight": o.MinChildWeight,
			"min_leaf_rows": float64(o.MinLeafRows), "max_bins": float64(o.MaxBins), "subsample": o.Subsample,
			"colsample": o.ColSample,
		},
		Fit: func(ctx context.Context, in FitInput) (*Fitted, error) {
			if err != nil {
				return nil, err
			}
			o := o
			if in.Rounds > 0 {
				o.MaxRounds = in.Rounds
				in.Valid = nil
			}
			fit, err := FitGBDT(ctx, in.Train, in.Valid, o, in.Progress)
			if err != nil {
				return nil, err
			}
			return &Fitted{Model: bundle.Model{Type: bundle.ModelTrees, Trees: fit.Trees}, Rounds: fit.Rounds}, nil
		},
	}
}

// AutoTrainers are the candidates of churnctl train's default trainer, auto: logistic regression
// with inverse regularisation c, depth-wise gradient-boosted trees with gbdt and leaf-wise ones
// with leafwise (gbdt's options with MaxLeaves set). Run keeps the best by cross-fitted Brier
// score. The quality bar (docs/MODELS.md) is measured with them.
func AutoTrainers(c float64, gbdt, leafwise GBDTOptions) []Trainer {
	gbdt.MaxLeaves = 0
	return []Trainer{LogisticTrainer(c), GBDTTrainer(gbdt), GBDTTrainer(leafwise)}
}

// TreeFunc fits a tree ensemble on X (row-major n×d over the encoded columns) and labels y.
type TreeFunc func(ctx context.Context, X []float64, n, d int, y []bool) (*bundle.TreeEnsemble, error)

// TreeTrainer makes a Trainer of a tree learner, for example
//
//	train.TreeTrainer("golearn-cart", "golearn CART", train.EncodeRawImputed, nil,
//		func(ctx context.Context, X []float64, n, d int, y []bool) (*bundle.TreeEnsemble, error) {
//			return golearntree.Fit(ctx, "cart", X, n, d, y, opt)
//		})
//
// enc is EncodeRaw when the learner takes NaN for missing values (and learns default
// directions), EncodeRawImputed when every value must be present.
//
// fit runs on a goroutine of its own, and the Trainer returns as soon as ctx is done even if fit
// does not: a library's fit (golearn's) checks ctx only between its own calls, and one call can
// outlast a budget. fit's result is then dropped when it arrives; until then it keeps its
// goroutine and the rows it was given.
func TreeTrainer(name, describe string, enc Encoding, params map[string]float64, fit TreeFunc) Trainer {
	return Trainer{
		Name: name, Describe: describe, Encoding: enc, Params: params,
		Fit: func(ctx context.Context, in FitInput) (*Fitted, error) {
			if err := in.Train.check(); err != nil {
				return nil, err
			}
			type result struct {
				te  *bundle.TreeEnsemble
				err error
			}
			done := make(chan result, 1) // buffered: an abandoned fit can still send and end
			go func() {
				te, err := fit(ctx, in.Train.X, in.Train.N, in.Train.D, in.Train.Y)
				done <- result{te, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-ctx.Done():
				return nil, fmt.Errorf("%s: %w", name, ctx.Err())
			}
			if r.err != nil {
				return nil, r.err
			}
			if r.te == nil {
				return nil, fmt.Errorf("%s returned no trees", name)
			}
			return &Fitted{Model: bundle.Model{Type: bundle.ModelTrees, Trees: r.te}}, nil
		},
	}
}

// modelMargin is a fitted model's margin for the encoded row x, summed as the serving code sums
// it.
func modelMargin(m *bundle.Model, x []float64) float64 {
	if m.Type == bundle.ModelLogistic {
		return margin(m.Logistic.Intercept, m.Logistic.Weights, x)
	}
	return treesMargin(m.Trees, x)
}

// checkModel checks a trainer's model against the width of the encoded rows.
func checkModel(name string, m *bundle.Model, width int) error {
	switch {
	case m.Type == bundle.ModelLogistic && m.Logistic != nil && m.Trees == nil:
		if len(m.Logistic.Weights) != width {
			return fmt.Errorf("trainer %s: %d weights for %d columns", name, len(m.Logistic.Weights), width)
		}
	case m.Type == bundle.ModelTrees && m.Trees != nil && m.Logistic == nil:
		if len(m.Trees.Trees) == 0 {
			return fmt.Errorf("trainer %s: no trees", name)
		}
		for t, tr := range m.Trees.Trees {
			if err := checkTree(&tr, width); err != nil {
				return fmt.Errorf("trainer %s: tree %d: %v", name, t, err)
			}
		}
	default:
		return fmt.Errorf("trainer %s: model type %q without its parameters", name, m.Type)
	}
	return nil
}

// checkTree checks what walking a tree relies on (the bundle validates the rest): parallel
// arrays of one length, children after their parent and inside the tree, split columns below
// width.
func checkTree(t *bundle.Tree, width int) error {
	n := len(t.Left)
	if n == 0 || len(t.Right) != n || len(t.Feature) != n || len(t.Threshold) != n || len(t.DefaultLeft) != n || len(t.Value) != n {
		return errors.New("feature, threshold, left, right, default_left and value must have one entry per node, at least one")
	}
	for i := range n {
		l, r := t.Left[i], t.Right[i]
		if l == -1 && r == -1 {
			continue
		}
		if l <= int32(i) || r <= int32(i) || int(l) >= n || int(r) >= n {
			return fmt.Errorf("node %d: children %d, %d must come after it and be < %d", i, l, r, n)
		}
		if t.Feature[i] < 0 || int(t.Feature[i]) >= width {
			return fmt.Errorf("node %d: column %d outside 0..%d", i, t.Feature[i], width-1)
		}
	}
	return nil
}

// encoded is a dataset's rows encoded by one Prep.
type encoded struct {
	pp    *Prep
	x     []float64 // len(rows)×width
	y     []bool
	known []bool // false: the row has an unseen category
}

func encode(pp *Prep, ds *Dataset, rows []int) *encoded {
	d := pp.Width()
	e := &encoded{pp: pp, x: make([]float64, len(rows)*d), y: labels(ds, rows), known: make([]bool, len(rows))}
	for k, i := range rows {
		e.known[k] = pp.Encode(ds.Rows[i], e.x[k*d:(k+1)*d])
	}
	return e
}

// subset is the matrix of positions pos of e.
func (e *encoded) subset(pos []int) Matrix {
	d := e.pp.Width()
	m := Matrix{X: make([]float64, 0, len(pos)*d), N: len(pos), D: d, Y: make([]bool, 0, len(pos))}
	for _, k := range pos {
		m.X = append(m.X, e.x[k*d:(k+1)*d]...)
		m.Y = append(m.Y, e.y[k])
	}
	return m
}

func (e *encoded) all() Matrix {
	return Matrix{X: e.x, N: len(e.y), D: e.pp.Width(), Y: e.y}
}

// StratifiedFolds assigns each of the labels to one of k folds, each fold with (within one row)
// the same share of positives, by a seeded shuffle. It returns fold[i] in 0..k-1.
func StratifiedFolds(labels []bool, k int, seed uint64) ([]int, error) {
	if k < 2 {
		return nil, fmt.Errorf("folds: want at least 2, got %d", k)
	}
	pos := countTrue(labels)
	if pos < k || len(labels)-pos < k {
		return nil, fmt.Errorf("folds: %d positive and %d negative rows cannot fill %d folds", pos, len(labels)-pos, k)
	}
	fold := make([]int, len(labels))
	rng := rand.New(rand.NewPCG(seed, 0x666f6c6473)) // second word: "folds"
	byLabel := rowsByLabel(labels)
	next := 0
	for _, rows := range byLabel {
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		for _, i := range rows {
			fold[i] = next % k
			next++
		}
	}
	return fold, nil
}

// errNoTrainer is returned by Run without a trainer.
var errNoTrainer = errors.New("no trainer given")

// positions returns the positions whose fold is (in == true) or is not f.
func positions(fold []int, f int, in bool) []int {
	var out []int
	for i, g := range fold {
		if (g == f) == in {
			out = append(out, i)
		}
	}
	return slices.Clip(out)
}
