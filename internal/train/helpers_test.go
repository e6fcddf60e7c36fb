package train

import "github.com/churnhq/churn/internal/bundle"

// Helpers that only the tests need.

// Positives counts the positive labels among rows (all rows when rows is nil).
func (d *Dataset) Positives(rows []int) int {
	n := 0
	if rows == nil {
		for _, y := range d.Labels {
			if y {
				n++
			}
		}
		return n
	}
	for _, i := range rows {
		if d.Labels[i] {
			n++
		}
	}
	return n
}

// Columns names the model columns, as bundle.Manifest.Columns does.
func (pp *Prep) Columns() []string {
	m := bundle.Manifest{Inputs: pp.Inputs}
	return m.Columns()
}

// LearnPrep learns the preprocessing of ds's columns from rows for a linear model
// (EncodeStandardized).
func LearnPrep(ds *Dataset, rows []int) (*Prep, error) {
	return LearnPrepFor(ds, rows, EncodeStandardized)
}
