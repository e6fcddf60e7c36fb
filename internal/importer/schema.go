package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
)

// Schema maps a foreign model's feature columns onto CustomerFeatures. It is a JSON document:
//
//	{"features": {
//	   "Complains":       {"source": "complaints.count_90d"},
//	   "Seconds of Use":  {"source": "numeric.seconds_of_use", "missing": "impute", "value": 0},
//	   "Subscription Length": {"source": "account.tenure_months", "name": "tenure"}}}
//
// Every feature of the model must have an entry, keyed by the model's feature name (XGBoost
// feature_names or f0, f1, ... when the model has none; LightGBM feature_names; the exported
// feature_names of a scikit-learn model). Each entry says:
//
//   - source (required): a numeric CustomerFeatures field, e.g. complaints.count_90d or
//     numeric.<key>. Categorical sources are refused: the imported models take numbers, so a
//     category the model saw as a code is read as numeric.<key>.
//   - name: the bundle input's name (drivers and imputed inputs use it); default: the key of a
//     numeric.<key> source, or the source itself.
//   - missing: what an absent value becomes. "native" (the default for tree models) hands NaN
//     to the trees, which send it where the library sends a missing value; "error" (the default
//     for logistic regression, which has no missing value) refuses the request; "impute" uses
//     value.
//   - value: the value of "impute".
//   - transform: "log1p" or "indicator", when the model was trained on log1p(x) or x > 0 of the
//     source rather than on the source itself.
type Schema struct {
	Features schemaFeatures `json:"features"`
}

// schemaFeatures is the features object; decoding refuses unknown fields in an entry, naming the
// feature (bundle.DecodeStrict, which reads schemas, refuses a feature named twice).
type schemaFeatures map[string]SchemaFeature

func (sf *schemaFeatures) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("features: want an object of model feature → mapping")
	}
	out := schemaFeatures{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string) // object keys are strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("features[%q]: %v", key, err)
		}
		fd := json.NewDecoder(bytes.NewReader(raw))
		fd.DisallowUnknownFields()
		var f SchemaFeature
		if err := fd.Decode(&f); err != nil {
			return fmt.Errorf("features[%q]: %v", key, err)
		}
		out[key] = f
	}
	*sf = out
	return nil
}

// SchemaFeature is the mapping of one model feature.
type SchemaFeature struct {
	Source    string   `json:"source"`
	Name      string   `json:"name,omitempty"`
	Missing   string   `json:"missing,omitempty"`
	Value     *float64 `json:"value,omitempty"`
	Transform string   `json:"transform,omitempty"`
}

// MaxSchemaBytes bounds the size of a schema file.
const MaxSchemaBytes = 1 << 20

// ParseSchema decodes and checks a schema. Unknown fields are refused; errors name the feature and
// the field.
func ParseSchema(data []byte) (*Schema, error) {
	if len(data) > MaxSchemaBytes {
		return nil, fmt.Errorf("schema: %d bytes, at most %d", len(data), MaxSchemaBytes)
	}
	var s Schema
	if err := bundle.DecodeStrict(data, &s); err != nil {
		return nil, fmt.Errorf("schema: %v", err)
	}
	if len(s.Features) == 0 {
		return nil, errors.New("schema: features is empty: map every model feature to a CustomerFeatures source")
	}
	keys := make([]string, 0, len(s.Features))
	for k := range s.Features {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	names := map[string]string{}
	for _, k := range keys {
		f := s.Features[k]
		if err := f.check(); err != nil {
			return nil, fmt.Errorf("schema: features[%q].%v", k, err)
		}
		n := f.inputName()
		if prev, dup := names[n]; dup {
			return nil, fmt.Errorf("schema: features[%q].name: input name %q is also the name of features[%q]; set a distinct name", k, n, prev)
		}
		names[n] = k
	}
	return &s, nil
}

func (f *SchemaFeature) check() error {
	typ, err := features.SourceType(f.Source)
	if err != nil {
		return fmt.Errorf("source: %v", err)
	}
	if typ != bundle.TypeNumeric {
		return fmt.Errorf("source: %s is categorical; imported models take numbers, so read a category code as numeric.<key>", f.Source)
	}
	if n := f.inputName(); n == "" || len(n) > bundle.MaxKeyLen || strings.ContainsAny(n, " \t\r\n=") {
		return fmt.Errorf("name: %q is not a valid input name (1-%d characters, no whitespace or '=')", n, bundle.MaxKeyLen)
	}
	switch f.Missing {
	case "", bundle.MissingNative, bundle.MissingError:
		if f.Value != nil {
			return fmt.Errorf("value: only missing %q takes a value", bundle.MissingImpute)
		}
	case bundle.MissingImpute:
		if f.Value == nil {
			return errors.New("value: missing \"impute\" needs a value")
		}
		if math.IsNaN(*f.Value) || math.IsInf(*f.Value, 0) {
			return errors.New("value: must be finite")
		}
	default:
		return fmt.Errorf("missing: %q (want native, impute or error)", f.Missing)
	}
	switch f.Transform {
	case "", bundle.TransformLog1p, bundle.TransformIndicator:
	default:
		return fmt.Errorf("transform: %q (want log1p or indicator)", f.Transform)
	}
	return nil
}

// inputName is the bundle input's name: Name, or the default for the source.
func (f *SchemaFeature) inputName() string {
	if f.Name != "" {
		return f.Name
	}
	if k, ok := strings.CutPrefix(f.Source, bundle.NumericPrefix); ok {
		return k
	}
	return f.Source
}

// inputs makes the bundle inputs of a model's features, in the model's column order. Missing
// policies default by model type; a schema entry for a feature the model does not have is an
// error, as is a model feature without one.
func (s *Schema) inputs(features []string, modelType string) ([]bundle.Input, error) {
	have := make(map[string]bool, len(features))
	for _, f := range features {
		have[f] = true
	}
	var extra []string
	for k := range s.Features {
		if !have[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, fmt.Errorf("schema: features %q are not features of the model (its features: %s)", extra, list(features))
	}
	inputs := make([]bundle.Input, 0, len(features))
	for i, name := range features {
		f, ok := s.Features[name]
		if !ok {
			return nil, fmt.Errorf("schema: model feature %d %q has no entry in features", i, name)
		}
		in := bundle.Input{Name: f.inputName(), Source: f.Source, Type: bundle.TypeNumeric, Transform: f.Transform}
		switch f.Missing {
		case "":
			in.Missing.Policy = bundle.MissingError
			if modelType == bundle.ModelTrees {
				in.Missing.Policy = bundle.MissingNative
			}
		case bundle.MissingNative:
			if modelType != bundle.ModelTrees {
				return nil, fmt.Errorf("schema: features[%q].missing: %q needs a tree model; a logistic regression takes impute or error", name, f.Missing)
			}
			in.Missing.Policy = f.Missing
		case bundle.MissingImpute:
			in.Missing = bundle.Missing{Policy: f.Missing, Value: *f.Value}
		default:
			in.Missing.Policy = f.Missing
		}
		inputs = append(inputs, in)
	}
	return inputs, nil
}

// list prints names for an error message, shortened when long.
func list(names []string) string {
	const most = 12
	if len(names) <= most {
		return fmt.Sprintf("%q", names)
	}
	return fmt.Sprintf("%q and %d more", names[:most], len(names)-most)
}
