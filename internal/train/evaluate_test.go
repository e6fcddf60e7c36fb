package train

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/evaluate"
)

func bools(xs ...int) []bool {
	out := make([]bool, len(xs))
	for i, x := range xs {
		out[i] = x == 1
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }

// TestEvaluate checks what training stores in a bundle's metrics: internal/evaluate's figures
// (its own tests check them against scikit-learn), with lift at the top 5, 10 and 20% and the
// confusion at each tier threshold, counted here by hand.
func TestEvaluate(t *testing.T) {
	t.Parallel()
	y := bools(0, 0, 1, 0, 1, 0, 1, 1, 1, 1)
	p := []float64{0.05, 0.1, 0.2, 0.35, 0.4, 0.5, 0.65, 0.7, 0.95, 0.99}
	tiers := bundle.Tiers{Medium: 0.3, High: 0.6, Critical: 0.9}
	m, err := Evaluate("test", y, p, &tiers)
	if err != nil {
		t.Fatal(err)
	}
	auc, _ := evaluate.ROCAUC(y, p)
	if m.Split != "test" || m.Rows != 10 || m.Positives != 6 || m.ROCAUC != auc || m.Brier != evaluate.Brier(y, p) || len(m.Calibration) != 10 {
		t.Errorf("Evaluate = %+v", m)
	}
	wantTiers := []bundle.TierConfusion{
		{Tier: "MEDIUM", Threshold: 0.3, TP: 5, FP: 2, TN: 2, FN: 1, Precision: 5.0 / 7, Recall: 5.0 / 6},
		{Tier: "HIGH", Threshold: 0.6, TP: 4, FP: 0, TN: 4, FN: 2, Precision: 1, Recall: 4.0 / 6},
		{Tier: "CRITICAL", Threshold: 0.9, TP: 2, FP: 0, TN: 4, FN: 4, Precision: 1, Recall: 2.0 / 6},
	}
	if diff := cmp.Diff(wantTiers, m.Tiers, cmp.Comparer(near)); diff != "" {
		t.Errorf("tiers (-want +got):\n%s", diff)
	}
	if len(m.Lift) != 3 || m.Lift[0].Share != 0.05 || m.Lift[1].Share != 0.1 || m.Lift[2].Share != 0.2 {
		t.Fatalf("lift = %+v, want the top 5, 10 and 20%%", m.Lift)
	}
	// The top 20% are the two most likely rows, both churners: a churn rate of 1 against 0.6.
	if l := m.Lift[2]; l.Rows != 2 || l.Positives != 2 || !near(l.Lift, 1/0.6) || !near(l.Capture, 2.0/6) {
		t.Errorf("lift at 20%% = %+v", l)
	}
	if m2, err := Evaluate("test", y, p, nil); err != nil || m2.Tiers != nil || len(m2.Lift) != 3 {
		t.Errorf("without tiers: %+v, %v; want lift and no tier confusion", m2, err)
	}
	if _, err := Evaluate("test", bools(0, 1), []float64{0.1, 1.5}, nil); err == nil {
		t.Error("a probability of 1.5: no error")
	}
	if _, err := Evaluate("test", bools(0, 1), []float64{0.1}, nil); err == nil {
		t.Error("lengths differ: no error")
	}
	if _, err := Evaluate("test", bools(1, 1), []float64{0.1, 0.2}, nil); err == nil {
		t.Error("one label only: no error")
	}
}
