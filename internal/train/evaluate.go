package train

import (
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/evaluate"
)

// Evaluate measures probabilities p against labels y (true = churned) with internal/evaluate, the
// project's one implementation of the metrics (scikit-learn's definitions, so that figures
// compare with shared/bench/BASELINES.md): ROC-AUC, PR-AUC, log loss, Brier score, the
// calibration table, lift and capture at the top 5, 10 and 20% of rows and, when tiers is set,
// the confusion at each tier threshold. It needs at least one row of each label and
// probabilities in [0, 1].
func Evaluate(split string, y []bool, p []float64, tiers *bundle.Tiers) (*bundle.Metrics, error) {
	rep, err := evaluate.Evaluate(evaluate.Input{Split: split, Labels: y, Probabilities: p, Tiers: tiers})
	if err != nil {
		return nil, err
	}
	return &rep.Metrics, nil
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
