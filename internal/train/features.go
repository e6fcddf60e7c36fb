package train

import (
	"bytes"
	"encoding/json"

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
