package evaluate

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/churnhq/churn/internal/bundle"
)

// ErrOneClass is returned by the ranking metrics when the rows hold a single label value: ROC-AUC
// and average precision are undefined then.
var ErrOneClass = errors.New("the rows need both a positive and a negative label")

// group is a run of rows with the same probability in a ranking.
type group struct {
	p        float64
	rows     int
	positive int
}

// ranking is the rows sorted by decreasing probability, cut into groups of equal probability
// (rows with equal scores enter every curve together, as in scikit-learn's _binary_clf_curve).
type ranking struct {
	groups   []group
	rows     int
	positive int
}

func (r *ranking) negative() int { return r.rows - r.positive }

// rank sorts the rows by decreasing p. It does not check its input.
func rank(y []bool, p []float64) ranking {
	type row struct {
		p float64
		y bool
	}
	rows := make([]row, len(p))
	for i := range p {
		rows[i] = row{p[i], y[i]}
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(b.p, a.p) })
	r := ranking{rows: len(rows)}
	for i, x := range rows {
		if i == 0 || x.p != rows[i-1].p {
			r.groups = append(r.groups, group{p: x.p})
		}
		g := &r.groups[len(r.groups)-1]
		g.rows++
		if x.y {
			g.positive++
			r.positive++
		}
	}
	return r
}

// check refuses inputs the metrics cannot measure: different lengths, or a probability that is
// NaN or outside [0, 1].
func check(y []bool, p []float64) error {
	if len(y) != len(p) {
		return fmt.Errorf("%d labels for %d probabilities", len(y), len(p))
	}
	for i, v := range p {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("probability of row %d is %g, not in [0, 1]", i, v)
		}
	}
	return nil
}

// ROCAUC is the area under the ROC curve by the trapezoid rule over the distinct thresholds (tied
// scores form one diagonal segment), as sklearn.metrics.roc_auc_score.
func ROCAUC(y []bool, p []float64) (float64, error) {
	if err := check(y, p); err != nil {
		return 0, err
	}
	r := rank(y, p)
	return r.rocAUC()
}

func (r *ranking) rocAUC() (float64, error) {
	pos, neg := float64(r.positive), float64(r.negative())
	if pos == 0 || neg == 0 {
		return 0, ErrOneClass
	}
	// Sum in counts and divide once: the area is (sum over groups of fp_g × (tp_before + tp_g/2))
	// over pos × neg, exact in integers up to 2^53.
	var area, tp float64
	for _, g := range r.groups {
		gp := float64(g.positive)
		gn := float64(g.rows - g.positive)
		area += gn * (tp + gp/2)
		tp += gp
	}
	return area / (pos * neg), nil
}

// averagePrecision is the area under the precision-recall curve as a step function, the sum over
// distinct thresholds of (R_k - R_{k-1}) × P_k, without interpolation, as
// sklearn.metrics.average_precision_score.
func (r *ranking) averagePrecision() (float64, error) {
	if r.positive == 0 || r.negative() == 0 {
		return 0, ErrOneClass
	}
	var ap, tp, seen float64
	pos := float64(r.positive)
	for _, g := range r.groups {
		seen += float64(g.rows)
		if g.positive == 0 {
			continue // recall does not move
		}
		tp += float64(g.positive)
		ap += float64(g.positive) / pos * (tp / seen)
	}
	return ap, nil
}

// LogLossEps clips probabilities to [LogLossEps, 1-LogLossEps] in LogLoss, as internal/train
// does and scikit-learn's log_loss did by default before version 1.2 (which clips at machine
// epsilon instead: the results differ only for a row predicted 0 or 1 with certainty).
const LogLossEps = 1e-15

// LogLoss is the mean negative log-likelihood of the labels, with p clipped to
// [LogLossEps, 1-LogLossEps]; 0 for no rows.
func LogLoss(y []bool, p []float64) float64 {
	if len(y) == 0 || len(y) != len(p) {
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

// Brier is the mean squared difference between p and the 0/1 label; 0 for no rows.
func Brier(y []bool, p []float64) float64 {
	if len(y) == 0 || len(y) != len(p) {
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

// CalibrationBins is the number of equal-width bins of a calibration table.
const CalibrationBins = 10

// CalibrationTable puts the rows into CalibrationBins equal-width bins of p ([0, 0.1), [0.1, 0.2),
// …, [0.9, 1], p = 1 in the last) and gives each bin's row count, mean predicted probability and
// observed positive rate. An empty bin has count 0 and zero means. The bins are those of
// internal/train's table, so stored and recomputed tables compare.
func CalibrationTable(y []bool, p []float64) []bundle.CalibrationBin {
	bins := make([]bundle.CalibrationBin, CalibrationBins)
	var pos [CalibrationBins]int
	for i := range bins {
		bins[i].Lower = float64(i) / CalibrationBins
		bins[i].Upper = float64(i+1) / CalibrationBins
	}
	for i, v := range p {
		if !(v >= 0 && v <= 1) {
			continue
		}
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

// DefaultShares are the top shares of rows that lift and capture are measured at: the retention
// team's budgets.
var DefaultShares = []float64{0.05, 0.10, 0.20}

// topRows is the number of rows in the top share of n: ceil(share × n), at least 1 (as
// internal/train chooses tier thresholds; the 1e-9 keeps 0.1 × 630 at 63, not 64).
func topRows(share float64, n int) int {
	k := int(math.Ceil(share*float64(n) - 1e-9))
	return min(max(k, 1), n)
}

// lift measures the top share of rows by decreasing p (0 < share <= 1). Rows tied with the last
// row taken count pro rata, the expected result of breaking the tie at random, so the figures do
// not depend on the order of the rows. It needs at least one positive row.
func (r *ranking) lift(share float64) (bundle.LiftPoint, error) {
	if !(share > 0 && share <= 1) {
		return bundle.LiftPoint{}, fmt.Errorf("top share %g: want 0 < share <= 1", share)
	}
	if r.positive == 0 {
		return bundle.LiftPoint{}, errors.New("lift needs at least one positive row")
	}
	k := topRows(share, r.rows)
	var taken int
	var positives float64
	for _, g := range r.groups {
		if taken+g.rows <= k {
			taken += g.rows
			positives += float64(g.positive)
			if taken == k {
				break
			}
			continue
		}
		positives += float64(g.positive) * float64(k-taken) / float64(g.rows)
		break
	}
	rate := float64(r.positive) / float64(r.rows)
	return bundle.LiftPoint{
		Share:     share,
		Rows:      k,
		Positives: positives,
		Lift:      positives / float64(k) / rate,
		Capture:   positives / float64(r.positive),
	}, nil
}

// CurvePoint is one point of the ROC curve: the false and true positive rates of flagging the
// rows at or above some threshold.
type CurvePoint struct {
	FPR float64 `json:"fpr"`
	TPR float64 `json:"tpr"`
}

// MaxCurvePoints bounds the points kept of a ROC curve (for drawing it): a point is dropped when
// it is within 1/MaxCurvePoints, in FPR + TPR, of the last point kept, so a curve has at most
// about 2 × MaxCurvePoints points. The area is always computed from the full curve.
const MaxCurvePoints = 500

// rocCurve is the ROC curve from (0, 0) through every distinct threshold, in decreasing order, to
// (1, 1), thinned as MaxCurvePoints says. It is nil when a label value is absent.
func (r *ranking) rocCurve() []CurvePoint {
	pos, neg := float64(r.positive), float64(r.negative())
	if pos == 0 || neg == 0 {
		return nil
	}
	out := []CurvePoint{{FPR: 0, TPR: 0}}
	var tp, fp float64
	const step = 1.0 / MaxCurvePoints
	for i, g := range r.groups {
		tp += float64(g.positive)
		fp += float64(g.rows - g.positive)
		pt := CurvePoint{FPR: fp / neg, TPR: tp / pos}
		last := out[len(out)-1]
		if i == len(r.groups)-1 || (pt.FPR-last.FPR)+(pt.TPR-last.TPR) >= step {
			out = append(out, pt)
		}
	}
	return out
}
