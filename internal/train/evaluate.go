package train

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/churnhq/churn/internal/bundle"
)

// This file evaluates predicted probabilities against labels with the definitions of
// scikit-learn's metrics, so that figures compare with shared/bench/BASELINES.md.

// CalibrationBins is the number of equal-width bins of a calibration table.
const CalibrationBins = 10

// Evaluate measures probabilities p against labels y (true = churned). It needs at least one
// row of each label (ROC-AUC and PR-AUC are undefined otherwise) and probabilities in [0, 1].
func Evaluate(split string, y []bool, p []float64) (*bundle.Metrics, error) {
	if len(y) != len(p) {
		return nil, fmt.Errorf("evaluate: %d labels for %d probabilities", len(y), len(p))
	}
	for i, v := range p {
		if !(v >= 0 && v <= 1) {
			return nil, fmt.Errorf("evaluate: probability %d is %g, not in [0, 1]", i, v)
		}
	}
	roc, err := ROCAUC(y, p)
	if err != nil {
		return nil, err
	}
	ap, err := AveragePrecision(y, p)
	if err != nil {
		return nil, err
	}
	return &bundle.Metrics{
		Split:       split,
		Rows:        len(y),
		Positives:   countTrue(y),
		ROCAUC:      roc,
		PRAUC:       ap,
		LogLoss:     LogLoss(y, p),
		Brier:       Brier(y, p),
		Calibration: CalibrationTable(y, p),
	}, nil
}

func countTrue(y []bool) int {
	n := 0
	for _, v := range y {
		if v {
			n++
		}
	}
	return n
}

// errOneClass is returned when the rows hold a single label value.
var errOneClass = errors.New("evaluate: the rows need both a positive and a negative label")

// step is one distinct threshold of a ranking: the cumulative true and false positives of the
// rows scored at or above it.
type step struct{ tp, fp float64 }

// steps sorts the rows by decreasing score and returns the cumulative counts at each distinct
// score (rows with equal scores enter together, as in sklearn's _binary_clf_curve), with the
// totals of positives and negatives.
func steps(y []bool, p []float64) (out []step, pos, neg float64) {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] > p[idx[b]] })
	var tp, fp float64
	for k, i := range idx {
		if y[i] {
			tp++
		} else {
			fp++
		}
		if k == len(idx)-1 || p[idx[k+1]] != p[i] {
			out = append(out, step{tp, fp})
		}
	}
	return out, tp, fp
}

// ROCAUC is the area under the ROC curve, by the trapezoid rule over the distinct thresholds
// (tied scores form one diagonal segment), as sklearn.metrics.roc_auc_score.
func ROCAUC(y []bool, p []float64) (float64, error) {
	st, pos, neg := steps(y, p)
	if pos == 0 || neg == 0 {
		return 0, errOneClass
	}
	var area, prevTPR, prevFPR float64
	for _, s := range st {
		tpr, fpr := s.tp/pos, s.fp/neg
		area += (fpr - prevFPR) * (tpr + prevTPR) / 2
		prevTPR, prevFPR = tpr, fpr
	}
	return area, nil
}

// AveragePrecision is the area under the precision-recall curve as a step function,
// sum over distinct thresholds of (R_k - R_{k-1}) * P_k, with no interpolation, as
// sklearn.metrics.average_precision_score.
func AveragePrecision(y []bool, p []float64) (float64, error) {
	st, pos, neg := steps(y, p)
	if pos == 0 || neg == 0 {
		return 0, errOneClass
	}
	var ap, prevRecall float64
	for _, s := range st {
		recall := s.tp / pos
		precision := s.tp / (s.tp + s.fp)
		ap += (recall - prevRecall) * precision
		prevRecall = recall
	}
	return ap, nil
}

// LogLossEps clips probabilities to [eps, 1-eps] in LogLoss.
const LogLossEps = 1e-15

// LogLoss is the mean negative log-likelihood of the labels, with p clipped to
// [LogLossEps, 1-LogLossEps].
func LogLoss(y []bool, p []float64) float64 {
	if len(y) == 0 {
		return 0
	}
	var sum float64
	for i, v := range p {
		v = min(max(v, LogLossEps), 1-LogLossEps)
		if y[i] {
			sum -= math.Log(v)
		} else {
			sum -= math.Log1p(-v)
		}
	}
	return sum / float64(len(p))
}

// Brier is the mean squared difference between p and the 0/1 label.
func Brier(y []bool, p []float64) float64 {
	if len(y) == 0 {
		return 0
	}
	var sum float64
	for i, v := range p {
		d := v
		if y[i] {
			d = v - 1
		}
		sum += d * d
	}
	return sum / float64(len(p))
}

// CalibrationTable puts the rows into CalibrationBins equal-width bins of p ([0, 0.1),
// [0.1, 0.2), …, [0.9, 1], p = 1 in the last) and gives each bin's row count, mean predicted
// probability and observed positive rate. An empty bin has count 0 and zero means.
func CalibrationTable(y []bool, p []float64) []bundle.CalibrationBin {
	bins := make([]bundle.CalibrationBin, CalibrationBins)
	var pos [CalibrationBins]int
	for i := range bins {
		bins[i].Lower = float64(i) / CalibrationBins
		bins[i].Upper = float64(i+1) / CalibrationBins
	}
	for i, v := range p {
		b := min(int(v*CalibrationBins), CalibrationBins-1)
		bins[b].Count++
		bins[b].MeanPredicted += v
		if y[i] {
			pos[b]++
		}
	}
	for i := range bins {
		if n := bins[i].Count; n > 0 {
			bins[i].MeanPredicted /= float64(n)
			bins[i].ObservedRate = float64(pos[i]) / float64(n)
		}
	}
	return bins
}
