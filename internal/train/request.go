package train

import (
	"fmt"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// Request builds the CustomerFeatures a caller would send for data row row: each mapped column's
// value under its source, with missing cells left unset (the bundle's missing policy decides
// what happens to them). It is how check vectors and golden rows are made, so a model evaluated
// on Request's output sees exactly what it would see in production.
func (d *Dataset) Request(row int) (*churnv1.CustomerFeatures, error) {
	if row < 0 || row >= len(d.Rows) {
		return nil, fmt.Errorf("row %d is outside the dataset's rows 0..%d", row, len(d.Rows)-1)
	}
	f, err := rowFeatures(d.Columns, d.Rows[row])
	if err != nil {
		return nil, fmt.Errorf("row %d: %w", row, err)
	}
	return f, nil
}
