package evaluate

import (
	"errors"

	"github.com/churnhq/churn/internal/bundle"
)

// The metrics the report computes from one ranking, one at a time, for the tests that pin each
// against scikit-learn.

// AveragePrecision is ranking.averagePrecision of y and p.
func AveragePrecision(y []bool, p []float64) (float64, error) {
	if err := check(y, p); err != nil {
		return 0, err
	}
	r := rank(y, p)
	return r.averagePrecision()
}

// Lift is ranking.lift of y and p.
func Lift(y []bool, p []float64, share float64) (bundle.LiftPoint, error) {
	if err := check(y, p); err != nil {
		return bundle.LiftPoint{}, err
	}
	if len(y) == 0 {
		return bundle.LiftPoint{}, errors.New("no rows")
	}
	r := rank(y, p)
	return r.lift(share)
}
