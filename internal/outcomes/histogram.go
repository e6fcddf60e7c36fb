package outcomes

import (
	"math"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// Bins is the number of fixed-width bins of predicted probability in a histogram: width 0.001.
const Bins = 1000

// deciles is the number of rows of the calibration table: churnctl evaluate's equal-width bins.
const deciles = 10

// histogram is what the live quality of one model version over one day needs, in a fixed size
// (about 8 KB) whatever the number of customers: per outcome class (0 retained, 1 churned) the
// count per probability bin, the count and sum of probabilities per calibration decile, and the
// sums of p and p² for the exact mean and Brier score.
type histogram struct {
	bins   [2][Bins]uint32
	decN   [2][deciles]int64
	decSum [2][deciles]float64
	sumP   [2]float64
	sumP2  [2]float64
}

// binOf is the bin of a probability in [0, 1]; 1 falls in the last.
func binOf(p float64, n int) int {
	return min(max(int(p*float64(n)), 0), n-1)
}

// add counts one customer of class y (true: churned) predicted p.
func (h *histogram) add(p float64, churned bool) {
	for _, in := range histIncrs(p, churned) {
		h.apply(in.name, in.by)
	}
}

// merge adds o into h.
func (h *histogram) merge(o *histogram) {
	for c := range 2 {
		for b := range Bins {
			h.bins[c][b] += o.bins[c][b]
		}
		for d := range deciles {
			h.decN[c][d] += o.decN[c][d]
			h.decSum[c][d] += o.decSum[c][d]
		}
		h.sumP[c] += o.sumP[c]
		h.sumP2[c] += o.sumP2[c]
	}
}

// performance computes the live figures into out (its model and period are the caller's).
//
// ROC-AUC is the share of (churner, non-churner) pairs ranked right, pairs within one bin counting
// one half. The exact ROC-AUC ranks those pairs by their exact probabilities, each worth 0 or 1
// (or one half when tied), so the two differ by at most half the share of pairs sharing a bin: that
// bound is reported with the figure. Pairs tied on exactly the same probability count one half in
// both, so the bound is conservative.
func (h *histogram) performance(out *churnv1.ModelPeriodPerformance) {
	var neg, pos float64
	for d := range deciles {
		neg += float64(h.decN[0][d])
		pos += float64(h.decN[1][d])
	}
	n := neg + pos
	out.Customers = int64(n)
	out.Churned = int64(pos)
	if n == 0 {
		return
	}
	out.ObservedChurnRate = pos / n
	out.MeanPredicted = (h.sumP[0] + h.sumP[1]) / n
	out.Brier = (h.sumP2[0] + h.sumP2[1] - 2*h.sumP[1] + pos) / n
	if out.Brier < 0 { // rounding of the sums
		out.Brier = 0
	}
	if pos > 0 && neg > 0 {
		var right, same, negBelow float64
		for b := range Bins {
			p, q := float64(h.bins[1][b]), float64(h.bins[0][b])
			right += p*negBelow + 0.5*p*q
			same += p * q
			negBelow += q
		}
		out.RocAuc = right / (pos * neg)
		out.RocAucErrorBound = 0.5 * same / (pos * neg)
	}
	out.Calibration = make([]*churnv1.CalibrationDecile, deciles)
	for d := range deciles {
		row := &churnv1.CalibrationDecile{Decile: int32(d + 1), Customers: h.decN[0][d] + h.decN[1][d]}
		if row.Customers > 0 {
			row.MeanPredicted = (h.decSum[0][d] + h.decSum[1][d]) / float64(row.Customers)
			row.ObservedChurnRate = float64(h.decN[1][d]) / float64(row.Customers)
		}
		out.Calibration[d] = row
	}
	if pos > 0 {
		out.LiftTop_10 = h.lift(0.10, n, pos)
	}
}

// lift is the churn rate among the top share of customers by predicted probability over the
// observed rate. The top count is ceil(share × n), at least 1, as churnctl evaluate takes it; the
// bin at the cut counts in proportion, the expected result of breaking ties within it at random.
func (h *histogram) lift(share, n, pos float64) float64 {
	k := math.Max(math.Ceil(share*n-1e-9), 1)
	var taken, churners float64
	for b := Bins - 1; b >= 0 && taken < k; b-- {
		q := float64(h.bins[0][b]) + float64(h.bins[1][b])
		if q == 0 {
			continue
		}
		take := math.Min(q, k-taken)
		churners += float64(h.bins[1][b]) * take / q
		taken += take
	}
	return churners / k / (pos / n)
}
