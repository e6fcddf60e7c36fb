package train

import (
	"math"
	"slices"
	"sort"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/evaluate"
)

// This file fits the bundle's probability calibrations on held-out margins and applies them
// exactly as internal/scoring does.

// FitPlatt fits p = sigmoid(A·margin + B) to the labels by maximum likelihood (Newton's method
// with step halving, from A = 1, B = 0: the identity map). It is Platt scaling on the margin,
// without Platt's target smoothing (the held-out sets here are thousands of rows).
func FitPlatt(margin []float64, y []bool) bundle.Calibration {
	a, b := 1.0, 0.0
	loss := func(a, b float64) float64 {
		var s float64
		for i, m := range margin {
			z := a*m + b
			if y[i] {
				s += softplus(-z)
			} else {
				s += softplus(z)
			}
		}
		return s
	}
	cur := loss(a, b)
	for range 100 {
		var ga, gb, haa, hab, hbb float64
		for i, m := range margin {
			p := Sigmoid(a*m + b)
			r := p
			if y[i] {
				r = p - 1
			}
			w := max(p*(1-p), 1e-12)
			ga += r * m
			gb += r
			haa += w * m * m
			hab += w * m
			hbb += w
		}
		det := haa*hbb - hab*hab
		if !(det > 0) {
			break
		}
		da := (hbb*ga - hab*gb) / det
		db := (haa*gb - hab*ga) / det
		step := 1.0
		improved := false
		for range 30 {
			na, nb := a-step*da, b-step*db
			if l := loss(na, nb); l <= cur {
				a, b, cur, improved = na, nb, l, true
				break
			}
			step /= 2
		}
		if !improved || math.Abs(da)+math.Abs(db) < 1e-10 {
			break
		}
	}
	return bundle.Calibration{Method: bundle.CalibrationPlatt, A: a, B: b}
}

// FitIsotonic fits a non-decreasing map from s = sigmoid(margin) to the churn rate by pool
// adjacent violators, as scikit-learn's IsotonicRegression (rows with equal s are pooled first).
// Each block's level is then its churn rate smoothed by half a churner and half a non-churner,
// (positives + 0.5) / (rows + 1), so that no probability is exactly 0 or 1 (a block of 40
// non-churners would otherwise give its customers a certain "never", and one churner among them
// an infinite log loss); where smoothing puts a block at or below the one before it (a small
// block is pulled towards 0.5 more than a large one), the two are pooled, and so on until the
// levels rise strictly. The points are each block's lowest and highest s with its level; the
// bundle interpolates linearly between them.
//
// The first version of this function restored the order by a running maximum instead of
// pooling: a small bottom block, say one non-churner at the lowest score (0.5/2 = 0.25), lifted
// the many blocks after it to its level and tied every customer up to a churn rate of 25% at one
// probability; on a 23,000-row dataset that cost 0.036 of out-of-fold ROC-AUC (issue 13,
// TestFitIsotonicKeepsTheRankingAfterALoneBottomRow). Pooling on smoothed levels during the pass
// itself (its second version) is no better: each new row, a block of one, is smoothed to 0.25 or
// 0.75 and pooled into the block before it, which flattened the top of the map (the highest
// level on iranian_churn's logistic margins fell from 0.99 to 0.89).
func FitIsotonic(margin []float64, y []bool) bundle.Calibration {
	idx := make([]int, len(margin))
	for i := range idx {
		idx[i] = i
	}
	s := make([]float64, len(margin))
	for i, m := range margin {
		s[i] = Sigmoid(m)
	}
	sort.SliceStable(idx, func(a, b int) bool { return s[idx[a]] < s[idx[b]] })
	type block struct {
		lo, hi   float64
		pos, cnt float64
	}
	merge := func(a, b block) block { return block{lo: a.lo, hi: b.hi, pos: a.pos + b.pos, cnt: a.cnt + b.cnt} }
	// pool appends b to blocks and pools the last two while the last one's level is not above
	// the one before it, by rate (a block's churn rate) or by smoothed level.
	pool := func(blocks []block, b block, level func(block) float64) []block {
		blocks = append(blocks, b)
		for n := len(blocks); n >= 2 && level(blocks[n-1]) <= level(blocks[n-2]); n = len(blocks) {
			blocks = append(blocks[:n-2], merge(blocks[n-2], blocks[n-1]))
		}
		return blocks
	}
	rate := func(b block) float64 { return b.pos / b.cnt }
	smoothed := func(b block) float64 { return (b.pos + 0.5) / (b.cnt + 1) }
	var blocks []block
	for k := 0; k < len(idx); {
		v := s[idx[k]]
		b := block{lo: v, hi: v}
		for ; k < len(idx) && s[idx[k]] == v; k++ {
			b.cnt++
			if y[idx[k]] {
				b.pos++
			}
		}
		blocks = pool(blocks, b, rate)
	}
	var levels []block
	for _, b := range blocks {
		levels = pool(levels, b, smoothed)
	}
	c := bundle.Calibration{Method: bundle.CalibrationIsotonic}
	for _, b := range levels {
		c.X = append(c.X, b.lo)
		c.Y = append(c.Y, smoothed(b))
		if b.hi > b.lo {
			c.X = append(c.X, b.hi)
			c.Y = append(c.Y, smoothed(b))
		}
	}
	if len(c.X) == 1 {
		c.X = append(c.X, c.X[0])
		c.Y = append(c.Y, c.Y[0])
	}
	return c
}

// Calibrate returns the probability of a margin under c, computed as internal/scoring does:
// sigmoid(margin) for none, sigmoid(A·margin + B) for Platt, and for isotonic the linear
// interpolation of (X, Y) at sigmoid(margin), clamped to the end values (numpy.interp).
func Calibrate(c *bundle.Calibration, margin float64) float64 {
	var p float64
	switch c.Method {
	case bundle.CalibrationPlatt:
		p = Sigmoid(c.A*margin + c.B)
	case bundle.CalibrationIsotonic:
		p = interpolate(c.X, c.Y, Sigmoid(margin))
	default:
		p = Sigmoid(margin)
	}
	return min(max(p, 0), 1)
}

// interpolate is numpy.interp(s, xs, ys) for non-decreasing xs: where several points share an x,
// the last one's y applies at exactly that x.
func interpolate(xs, ys []float64, s float64) float64 {
	last := len(xs) - 1
	if s < xs[0] {
		return ys[0]
	}
	if s >= xs[last] {
		return ys[last]
	}
	// The last i with xs[i] <= s; then xs[i] < xs[i+1].
	i := sort.Search(len(xs), func(k int) bool { return xs[k] > s }) - 1
	slope := (ys[i+1] - ys[i]) / (xs[i+1] - xs[i])
	return slope*(s-xs[i]) + ys[i]
}

// calibrationMethods are tried in this order. A later (more flexible) method replaces the one
// chosen so far only when, on the out-of-fold rows calibrated by nested cross-fitting, it lowers
// the Brier score by more than calibrationMargin and it costs no ranking: within each fold (one
// map), its ROC-AUC is on average at most rankingTolerance below the uncalibrated margins'.
// Isotonic maps tie the customers of a block and can cost ranking; Platt's map is increasing and
// costs none (unless it is a decreasing one). The ranking is measured within folds because the
// bundle has one map: pooling the folds would count as a cost that each fold's map is a little
// different. With neither, the bundle keeps sigmoid(margin), which is what a logistic
// regression's own fit is calibrated for.
var calibrationMethods = []string{bundle.CalibrationNone, bundle.CalibrationPlatt, bundle.CalibrationIsotonic}

const (
	calibrationMargin = 1e-4
	rankingTolerance  = 5e-4
)

// fitCalibration fits one method on margins m and labels y.
func fitCalibration(method string, m []float64, y []bool) bundle.Calibration {
	switch method {
	case bundle.CalibrationPlatt:
		return FitPlatt(m, y)
	case bundle.CalibrationIsotonic:
		return FitIsotonic(m, y)
	}
	return bundle.Calibration{Method: bundle.CalibrationNone}
}

// CalibrationChoice is the chosen calibration with the cross-fitted figures of each method.
type CalibrationChoice struct {
	Calibration bundle.Calibration
	// Brier and ROCAUC are each method's Brier score and ROC-AUC on the out-of-fold rows, each
	// fold calibrated by a map fitted on the other folds. ROCAUC["none"] is the uncalibrated
	// margins' (ranked as numbers, so that margins a sigmoid rounds to 1 stay apart).
	Brier, ROCAUC map[string]float64
	// RankingCost is each method's loss of ROC-AUC within a fold, averaged over the folds
	// weighted by their rows (folds with one label left out).
	RankingCost map[string]float64
	// Probabilities are the out-of-fold rows' probabilities under the chosen method, each fold
	// calibrated by a map fitted on the other folds.
	Probabilities []float64
}

// chooseCalibration picks none, Platt or isotonic for out-of-fold margins (fold[i] is row i's
// fold, 0..k-1) by the Brier score and the ranking cost of nested cross-fitting
// (calibrationMethods), and fits the chosen map on all rows. y must have both labels.
func chooseCalibration(m []float64, y []bool, fold []int, k int) (CalibrationChoice, error) {
	ch := CalibrationChoice{Brier: map[string]float64{}, ROCAUC: map[string]float64{}, RankingCost: map[string]float64{}}
	rawAUC, err := evaluate.ROCAUC(y, rankScores(m))
	if err != nil {
		return ch, err
	}
	best := ""
	for _, method := range calibrationMethods {
		p := make([]float64, len(m))
		var cost, weight float64
		for f := range k {
			var fm, om []float64 // the other folds' margins, this fold's
			var fy, oy []bool
			for i := range m {
				if fold[i] != f {
					fm = append(fm, m[i])
					fy = append(fy, y[i])
				} else {
					om = append(om, m[i])
					oy = append(oy, y[i])
				}
			}
			c := fitCalibration(method, fm, fy)
			op := make([]float64, 0, len(om))
			for i := range m {
				if fold[i] == f {
					p[i] = Calibrate(&c, m[i])
					op = append(op, p[i])
				}
			}
			before, err1 := evaluate.ROCAUC(oy, rankScores(om))
			after, err2 := evaluate.ROCAUC(oy, op)
			if err1 == nil && err2 == nil { // both labels in the fold
				cost += float64(len(om)) * (before - after)
				weight += float64(len(om))
			}
		}
		if weight > 0 {
			cost /= weight
		}
		br := evaluate.Brier(y, p)
		auc := rawAUC
		if method != bundle.CalibrationNone {
			if auc, err = evaluate.ROCAUC(y, p); err != nil {
				return ch, err
			}
		}
		ch.Brier[method], ch.ROCAUC[method], ch.RankingCost[method] = br, auc, cost
		if best == "" || (br < ch.Brier[best]-calibrationMargin && cost <= rankingTolerance) {
			best, ch.Probabilities = method, p
		}
	}
	ch.Calibration = fitCalibration(best, m, y)
	ch.Probabilities = slices.Clip(ch.Probabilities)
	return ch, nil
}
