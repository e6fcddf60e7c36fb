package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
)

// This file turns a dataset row into the CustomerFeatures a caller would send for it, so that
// check vectors and golden rows are real requests. Values are stored under their sources by
// internal/features, the package that reads them back at serving time.

// setFeature stores one value of a row in f under source. A missing value is not set.
func setFeature(f *churnv1.CustomerFeatures, source string, v Value) error {
	if v.Missing {
		return nil
	}
	t, err := features.SourceType(source)
	if err != nil {
		return err
	}
	if t == bundle.TypeCategorical {
		return features.SetText(f, source, v.Cat)
	}
	return features.SetNumber(f, source, v.Num)
}

// rowFeatures builds the CustomerFeatures of row; missing values are left unset.
func rowFeatures(cols []Column, row []Value) (*churnv1.CustomerFeatures, error) {
	f := &churnv1.CustomerFeatures{}
	for j, c := range cols {
		if err := setFeature(f, c.Source, row[j]); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// CheckRequests checks that every row of ds is a request serving accepts: the row's
// CustomerFeatures (rowFeatures) must pass features.Validate, the validation churnd runs on every
// request, so that the typed fields' valid values (activity.active_days_30d in 0..31,
// complaints.count_30d <= count_90d, ...) and the limits of text hold in training exactly as at
// serving. A model trained on values serving refuses would fail every customer like them. The
// error names the first row that is not a valid request (0-based, as the split files count), its
// line, the column and the reason.
func (ds *Dataset) CheckRequests() error {
	column := make(map[string]int, len(ds.Columns)) // a violation's path → the column
	for j, c := range ds.Columns {
		column[features.Path(c.Source)] = j
	}
	f := &churnv1.CustomerFeatures{} // reused: each row sets or unsets every column's source
	for i, row := range ds.Rows {
		for j, c := range ds.Columns {
			var err error
			if row[j].Missing {
				err = features.Unset(f, c.Source)
			} else {
				err = setFeature(f, c.Source, row[j])
			}
			if err != nil {
				return err
			}
		}
		var verr *features.ValidationError
		if err := features.Validate(f); errors.As(err, &verr) {
			return ds.refused(i, column, verr.Violations[0])
		} else if err != nil {
			return err
		}
	}
	return nil
}

// refused is the error of row i, which serving refuses for violation v.
func (ds *Dataset) refused(i int, column map[string]int, v features.Violation) error {
	where := fmt.Sprintf("csv row %d", i)
	if ds.Lines != nil {
		where += fmt.Sprintf(" (line %d)", ds.Lines[i])
	}
	j, ok := column[v.Field]
	if !ok { // a limit of the request as a whole, such as the entries of a map
		return fmt.Errorf("%s: serving refuses the row as a request: %s: %s", where, v.Field, v.Description)
	}
	c := &ds.Columns[j]
	hint := "serving refuses such a request, so a model cannot be trained on it"
	if c.Type() == bundle.TypeNumeric && !strings.HasPrefix(c.Source, bundle.NumericPrefix) {
		hint += fmt.Sprintf(" (the typed fields' valid values: %s); map the column onto numeric.<key> if it does not mean %s, or convert its unit with scale", features.TypedFieldsDoc, c.Source)
	}
	return fmt.Errorf("%s, column %q (%s): %s: %s", where, c.CSV, c.Source, v.Description, hint)
}

// featuresJSON is the protobuf JSON of f, compacted: protojson's own spacing varies between
// builds on purpose, and bundles must be reproducible byte for byte.
func featuresJSON(f *churnv1.CustomerFeatures) (json.RawMessage, error) {
	raw, err := protojson.Marshal(f)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
