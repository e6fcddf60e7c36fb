// Package evaluate measures a churn model's predicted probabilities against what happened: its one
// job is to turn labels, probabilities, the bundle's tier thresholds and optional segment labels
// into a Report, and to render that report as aligned text, JSON or a self-contained HTML page.
//
// The report holds ROC-AUC, PR-AUC (average precision), log loss, Brier score and a calibration
// table, with the definitions of scikit-learn's metrics (roc_auc_score, average_precision_score,
// log_loss, brier_score_loss) so that figures compare with shared/bench/BASELINES.md; lift and
// capture at the top 5, 10 and 20% of rows by probability (the retention team's budgets); the
// confusion matrix of flagging the rows at or above each tier threshold (MEDIUM, HIGH, CRITICAL);
// and a per-segment breakdown. Its embedded bundle.Metrics is what training stores in a bundle.
//
// The metric arithmetic is written here rather than taken from a library: it is a few sorted
// sweeps, no Go library implements scikit-learn's exact definitions (tied scores entering the ROC
// and precision-recall curves together, average precision without interpolation), and matching
// them is what makes the figures comparable. The tests check them by hand on tiny inputs and
// against values computed once with scikit-learn.
//
// The HTML report's charts (ROC curve, reliability diagram, cumulative gains with lift) are drawn
// server-side with gonum.org/v1/plot into inline SVG: the page has no external assets and needs
// no JavaScript or network to view.
//
// The package is pure: no gRPC, Redis, logging or metrics. It depends on internal/bundle only
// for the stored types, so that internal/train can call it.
package evaluate
