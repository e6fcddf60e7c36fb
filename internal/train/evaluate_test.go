package train

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

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

// The expected values are scikit-learn 1.2.1's: the examples of its documentation
// (roc_auc_score, average_precision_score, log_loss, brier_score_loss) and a case with ties.
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
		{name: "roc_auc_score doc", y: bools(0, 0, 1, 1), p: []float64{0.1, 0.4, 0.35, 0.8}, roc: 0.75, ap: 0.8333333333333333, skipLogLoss: true, skipBrier: true},
		{name: "ties", y: bools(0, 1, 0, 1, 1, 0, 1, 0), p: []float64{0.2, 0.2, 0.5, 0.5, 0.5, 0.9, 0.9, 0.1},
			roc: 0.625, ap: 0.5678571428571428, logLoss: 0.8031661412172306, brier: 0.28250000000000003},
		{name: "log_loss doc", y: bools(1, 0, 0, 1), p: []float64{0.9, 0.1, 0.2, 0.65}, logLoss: 0.21616187468057912, skipBrier: true, skipRanking: true},
		{name: "brier_score_loss doc", y: bools(0, 1, 1, 0), p: []float64{0.1, 0.9, 0.8, 0.3}, brier: 0.0375, skipLogLoss: true, skipRanking: true},
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

func TestMetricsByHand(t *testing.T) {
	t.Parallel()
	// Perfect ranking; all scores tied (the ROC curve is the diagonal, AP the positive rate).
	if got, _ := ROCAUC(bools(0, 1), []float64{0.3, 0.7}); got != 1 {
		t.Errorf("perfect ROCAUC = %v", got)
	}
	if got, _ := ROCAUC(bools(1, 0), []float64{0.3, 0.7}); got != 0 {
		t.Errorf("reversed ROCAUC = %v", got)
	}
	if got, _ := ROCAUC(bools(0, 1, 1, 0), []float64{0.5, 0.5, 0.5, 0.5}); got != 0.5 {
		t.Errorf("tied ROCAUC = %v, want 0.5", got)
	}
	if got, _ := AveragePrecision(bools(0, 1, 0, 0), []float64{0.5, 0.5, 0.5, 0.5}); got != 0.25 {
		t.Errorf("tied AP = %v, want 0.25", got)
	}
	// Log loss clips: p = 0 for a positive costs -log(1e-15) = 34.538776394910684.
	if got := LogLoss(bools(1), []float64{0}); !near(got, -math.Log(1e-15)) {
		t.Errorf("clipped LogLoss = %v", got)
	}
	if _, err := ROCAUC(bools(1, 1), []float64{0.1, 0.2}); err == nil {
		t.Error("ROCAUC of one class: no error")
	}
	if _, err := AveragePrecision(bools(0, 0), []float64{0.1, 0.2}); err == nil {
		t.Error("AveragePrecision of one class: no error")
	}
}

func TestCalibrationTable(t *testing.T) {
	t.Parallel()
	y := bools(0, 1, 1, 0, 1)
	p := []float64{0.05, 0.15, 0.19, 0.95, 1}
	bins := CalibrationTable(y, p)
	if len(bins) != 10 {
		t.Fatalf("%d bins, want 10", len(bins))
	}
	want := []bundle.CalibrationBin{
		{Lower: 0, Upper: 0.1, Count: 1, MeanPredicted: 0.05, ObservedRate: 0},
		{Lower: 0.1, Upper: 0.2, Count: 2, MeanPredicted: 0.17, ObservedRate: 1},
		{Lower: 0.9, Upper: 1, Count: 2, MeanPredicted: 0.975, ObservedRate: 0.5},
	}
	got := []bundle.CalibrationBin{bins[0], bins[1], bins[9]}
	if diff := cmp.Diff(want, got, cmp.Comparer(near)); diff != "" {
		t.Errorf("bins (-want +got):\n%s", diff)
	}
	for i := 2; i < 9; i++ {
		if bins[i].Count != 0 || bins[i].Lower != float64(i)/10 {
			t.Errorf("bin %d = %+v, want empty from %v", i, bins[i], float64(i)/10)
		}
	}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	m, err := Evaluate("test", bools(0, 0, 1, 1), []float64{0.1, 0.4, 0.35, 0.8})
	if err != nil {
		t.Fatal(err)
	}
	if m.Split != "test" || m.Rows != 4 || m.Positives != 2 || m.ROCAUC != 0.75 || len(m.Calibration) != 10 {
		t.Errorf("Evaluate = %+v", m)
	}
	if _, err := Evaluate("test", bools(0, 1), []float64{0.1, 1.5}); err == nil {
		t.Error("a probability of 1.5: no error")
	}
	if _, err := Evaluate("test", bools(0, 1), []float64{0.1}); err == nil {
		t.Error("lengths differ: no error")
	}
}
