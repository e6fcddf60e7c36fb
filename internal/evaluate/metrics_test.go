package evaluate

import (
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/churnhq/churn/internal/bundle"
)

func bools(xs ...int) []bool {
	out := make([]bool, len(xs))
	for i, x := range xs {
		out[i] = x == 1
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }

var approx = cmpopts.EquateApprox(0, 1e-12)

// sklearnY and sklearnP are 40 rows with many ties (probabilities rounded to 0.1, with 0 and 1),
// drawn once with numpy (default_rng(7)); the expected values below are scikit-learn 1.2.1's
// roc_auc_score, average_precision_score, log_loss and brier_score_loss on them, and per segment
// "abcd"[i%4].
var (
	sklearnP = []float64{0.0, 1.0, 0.8, 0.2, 0.3, 0.9, 0.0, 0.8, 0.8, 0.5, 0.3, 0.3, 0.3, 0.4, 0.5, 0.6, 1.0, 0.8, 0.6, 1.0,
		0.2, 0.2, 0.6, 0.0, 0.0, 0.5, 0.5, 0.9, 0.6, 0.5, 0.5, 0.2, 0.0, 0.2, 0.7, 0.2, 0.4, 0.0, 0.8, 0.2}
	sklearnY = bools(0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1,
		0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1)
)

const (
	sklearnROC     = 0.893483709273183
	sklearnAP      = 0.8848547199200045
	sklearnLogLoss = 0.39377769616688
	sklearnBrier   = 0.13025
)

func TestMetricsAgainstScikitLearn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                    string
		y                       []bool
		p                       []float64
		roc, ap, logLoss, brier float64
		skipLogLoss, skipBrier  bool
		skipRanking             bool
	}{
		// The examples of scikit-learn's documentation.
		{name: "roc_auc_score doc", y: bools(0, 0, 1, 1), p: []float64{0.1, 0.4, 0.35, 0.8}, roc: 0.75, ap: 0.8333333333333333, skipLogLoss: true, skipBrier: true},
		{name: "log_loss doc", y: bools(1, 0, 0, 1), p: []float64{0.9, 0.1, 0.2, 0.65}, logLoss: 0.21616187468057912, skipBrier: true, skipRanking: true},
		{name: "brier_score_loss doc", y: bools(0, 1, 1, 0), p: []float64{0.1, 0.9, 0.8, 0.3}, brier: 0.0375, skipLogLoss: true, skipRanking: true},
		{name: "ties", y: bools(0, 1, 0, 1, 1, 0, 1, 0), p: []float64{0.2, 0.2, 0.5, 0.5, 0.5, 0.9, 0.9, 0.1},
			roc: 0.625, ap: 0.5678571428571428, logLoss: 0.8031661412172306, brier: 0.28250000000000003},
		{name: "40 rows with ties and certainties", y: sklearnY, p: sklearnP, roc: sklearnROC, ap: sklearnAP, logLoss: sklearnLogLoss, brier: sklearnBrier},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !tc.skipRanking {
				if got, err := ROCAUC(tc.y, tc.p); err != nil || !near(got, tc.roc) {
					t.Errorf("ROCAUC = %v, %v, want %v", got, err, tc.roc)
				}
				if got, err := AveragePrecision(tc.y, tc.p); err != nil || !near(got, tc.ap) {
					t.Errorf("AveragePrecision = %v, %v, want %v", got, err, tc.ap)
				}
			}
			if got := LogLoss(tc.y, tc.p); !tc.skipLogLoss && !near(got, tc.logLoss) {
				t.Errorf("LogLoss = %v, want %v", got, tc.logLoss)
			}
			if got := Brier(tc.y, tc.p); !tc.skipBrier && !near(got, tc.brier) {
				t.Errorf("Brier = %v, want %v", got, tc.brier)
			}
		})
	}
}

// Small cases worked out by hand.
func TestRankingByHand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		y       []bool
		p       []float64
		roc, ap float64
	}{
		// Pairs (positive, negative): (.9,.8) (.9,.1) (.7,.1) ranked right, (.7,.8) wrong: 3/4.
		// Ranking .9+ .8- .7+: precision 1 at recall 1/2, 2/3 at recall 1.
		{"distinct", bools(1, 0, 1, 0), []float64{0.9, 0.8, 0.7, 0.1}, 0.75, 0.5 + 0.5*2.0/3},
		// A tied pair counts one half; one threshold flags both: precision 1/2 at recall 1.
		{"one tie", bools(1, 0), []float64{0.5, 0.5}, 0.5, 0.5},
		{"perfect", bools(0, 0, 1), []float64{0, 0.2, 1}, 1, 1},
		{"reversed", bools(1, 1, 0), []float64{0, 0.2, 1}, 0, 0.5*1.0/2 + 0.5*2.0/3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got, err := ROCAUC(tc.y, tc.p); err != nil || !near(got, tc.roc) {
				t.Errorf("ROCAUC = %v, %v, want %v", got, err, tc.roc)
			}
			if got, err := AveragePrecision(tc.y, tc.p); err != nil || !near(got, tc.ap) {
				t.Errorf("AveragePrecision = %v, %v, want %v", got, err, tc.ap)
			}
		})
	}
}

func TestRankingErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		y    []bool
		p    []float64
		want string
	}{
		{"one class", bools(1, 1), []float64{0.2, 0.3}, ErrOneClass.Error()},
		{"no rows", nil, nil, ErrOneClass.Error()},
		{"lengths", bools(1, 0), []float64{0.2}, "2 labels for 1 probabilities"},
		{"NaN", bools(1, 0), []float64{0.2, math.NaN()}, "probability of row 1 is NaN, not in [0, 1]"},
		{"above 1", bools(1, 0), []float64{1.5, 0.1}, "probability of row 0 is 1.5, not in [0, 1]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := ROCAUC(tc.y, tc.p); err == nil || err.Error() != tc.want {
				t.Errorf("ROCAUC error = %v, want %q", err, tc.want)
			}
			if _, err := AveragePrecision(tc.y, tc.p); err == nil || err.Error() != tc.want {
				t.Errorf("AveragePrecision error = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := ROCAUC(bools(0), []float64{0.1}); !errors.Is(err, ErrOneClass) {
		t.Errorf("ROCAUC of negatives only = %v, want ErrOneClass", err)
	}
}

func TestLiftByHand(t *testing.T) {
	t.Parallel()
	// Ten rows, probabilities 1.0 down to 0.1, churners at ranks 1, 2 and 10: rate 0.3.
	p := []float64{1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1}
	y := bools(1, 1, 0, 0, 0, 0, 0, 0, 0, 1)
	// Five rows, a three-way tie holding two churners straddles the cut of the top 40% (2 rows):
	// one of the three tied rows is taken, worth 2/3 of a churner. Rate 2/5.
	tp := []float64{0.9, 0.5, 0.5, 0.5, 0.1}
	ty := bools(0, 1, 1, 0, 0)
	tests := []struct {
		name  string
		y     []bool
		p     []float64
		share float64
		want  bundle.LiftPoint
	}{
		{"top 10%", y, p, 0.1, bundle.LiftPoint{Share: 0.1, Rows: 1, Positives: 1, Lift: 1 / 0.3, Capture: 1.0 / 3}},
		{"top 20%", y, p, 0.2, bundle.LiftPoint{Share: 0.2, Rows: 2, Positives: 2, Lift: 1 / 0.3, Capture: 2.0 / 3}},
		{"top 5% rounds up to one row", y, p, 0.05, bundle.LiftPoint{Share: 0.05, Rows: 1, Positives: 1, Lift: 1 / 0.3, Capture: 1.0 / 3}},
		{"everyone", y, p, 1, bundle.LiftPoint{Share: 1, Rows: 10, Positives: 3, Lift: 1, Capture: 1}},
		{"tie at the cut", ty, tp, 0.4, bundle.LiftPoint{Share: 0.4, Rows: 2, Positives: 2.0 / 3, Lift: (2.0 / 3 / 2) / 0.4, Capture: 1.0 / 3}},
		{"tie taken whole", ty, tp, 0.8, bundle.LiftPoint{Share: 0.8, Rows: 4, Positives: 2, Lift: (2.0 / 4) / 0.4, Capture: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Lift(tc.y, tc.p, tc.share)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, approx); diff != "" {
				t.Errorf("Lift (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLiftDoesNotDependOnRowOrder(t *testing.T) {
	t.Parallel()
	a, err := Lift(bools(1, 0, 0, 1), []float64{0.5, 0.5, 0.5, 0.1}, 0.25)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Lift(bools(0, 0, 1, 1), []float64{0.5, 0.5, 0.5, 0.1}, 0.25)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, b, approx); diff != "" {
		t.Errorf("reordering tied rows changed the lift (-first +second):\n%s", diff)
	}
}

func TestLiftErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		y     []bool
		p     []float64
		share float64
		want  string
	}{
		{"share 0", bools(1, 0), []float64{0.5, 0.1}, 0, "top share 0: want 0 < share <= 1"},
		{"share above 1", bools(1, 0), []float64{0.5, 0.1}, 1.5, "top share 1.5: want 0 < share <= 1"},
		{"no positives", bools(0, 0), []float64{0.5, 0.1}, 0.5, "lift needs at least one positive row"},
		{"no rows", nil, nil, 0.5, "no rows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Lift(tc.y, tc.p, tc.share); err == nil || err.Error() != tc.want {
				t.Errorf("Lift error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCalibrationTable(t *testing.T) {
	t.Parallel()
	got := CalibrationTable(bools(0, 1, 1, 0, 1), []float64{0.05, 0.15, 0.19, 0.11, 1})
	if len(got) != CalibrationBins {
		t.Fatalf("%d bins, want %d", len(got), CalibrationBins)
	}
	want := map[int]bundle.CalibrationBin{
		0: {Lower: 0, Upper: 0.1, Count: 1, MeanPredicted: 0.05, ObservedRate: 0},
		1: {Lower: 0.1, Upper: 0.2, Count: 3, MeanPredicted: 0.15, ObservedRate: 2.0 / 3},
		9: {Lower: 0.9, Upper: 1, Count: 1, MeanPredicted: 1, ObservedRate: 1}, // p = 1 in the last bin
	}
	for i, b := range got {
		w, ok := want[i]
		if !ok {
			w = bundle.CalibrationBin{Lower: float64(i) / 10, Upper: float64(i+1) / 10}
		}
		if diff := cmp.Diff(w, b, approx); diff != "" {
			t.Errorf("bin %d (-want +got):\n%s", i, diff)
		}
	}
}

func TestROCCurve(t *testing.T) {
	t.Parallel()
	r := rank(bools(1, 0, 1, 0), []float64{0.9, 0.8, 0.7, 0.1})
	want := []CurvePoint{{0, 0}, {0, 0.5}, {0.5, 0.5}, {0.5, 1}, {1, 1}}
	if diff := cmp.Diff(want, r.rocCurve(), approx); diff != "" {
		t.Errorf("rocCurve (-want +got):\n%s", diff)
	}

	// A long curve is thinned but still starts at (0, 0) and ends at (1, 1).
	n := 20000
	y := make([]bool, n)
	p := make([]float64, n)
	for i := range n {
		p[i] = float64(i) / float64(n)
		y[i] = i%3 == 0
	}
	r = rank(y, p)
	curve := r.rocCurve()
	if len(curve) > 2*MaxCurvePoints+2 {
		t.Errorf("thinned curve has %d points, want at most %d", len(curve), 2*MaxCurvePoints+2)
	}
	if first, last := curve[0], curve[len(curve)-1]; first != (CurvePoint{0, 0}) || last != (CurvePoint{1, 1}) {
		t.Errorf("curve runs from %v to %v, want (0,0) to (1,1)", first, last)
	}
}
