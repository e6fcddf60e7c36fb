package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
)

// Spec is a dataset spec: which CSV column is the label, which columns are ignored, and how each
// remaining column becomes a model input. Every CSV column must be the label, dropped or mapped.
//
//	{"name": "iranian_churn",
//	 "label": {"column": "Churn", "positive": "1"},
//	 "drop": ["id"],
//	 "columns": {"Tariff Plan": {"source": "account.contract", "values": {"1": "pay_as_you_go", "2": "contract"}},
//	             "Complains": {"source": "complaints.count_90d", "transform": "indicator"}},
//	 "derived": [{"name": "usage_total", "op": "sum", "args": ["seconds_of_use", "sms"]}]}
type Spec struct {
	// Name names the dataset (1-64 characters of [A-Za-z0-9._-]).
	Name string `json:"name"`
	// Label is the column to predict.
	Label Label `json:"label"`
	// Drop lists CSV columns the model does not use (ids, leaks).
	Drop []string `json:"drop,omitempty"`
	// Columns maps CSV columns to model inputs, in model input order (the order of the JSON
	// object's keys).
	Columns Columns `json:"columns"`
	// Derived lists inputs the model computes from other inputs rather than reads from a
	// request (bundle.Input.Derive), after every column's input, in this order.
	Derived []Derived `json:"derived,omitempty"`
}

// Derived is a derived input: Op (a bundle derive op: sum, ratio, diff, log1p or indicator)
// applied to Args, which name numeric inputs of the spec's columns or earlier derived inputs. The
// trainer computes it exactly as serving does (internal/features): from the arguments' values
// after imputation and transform, before standardisation. The input is imputed with the training
// median of its defined values (the native missing policy instead, for trees, when a training
// value is undefined) and standardised like a numeric column for a linear model.
type Derived struct {
	Name string   `json:"name"`
	Op   string   `json:"op"`
	Args []string `json:"args"`
}

// Label names the label column and the cell text that means "churned".
type Label struct {
	Column   string `json:"column"`
	Positive string `json:"positive"`
}

// Column maps one CSV column to a model input.
type Column struct {
	// CSV is the CSV header of the column (the key in the spec's columns object).
	CSV string `json:"-"`
	// Source is where serving reads the value in CustomerFeatures (see features.SourceType).
	Source string `json:"source"`
	// Name is the model input's name; default: the key of a numeric.<key> or categorical.<key>
	// source, or the source itself for a typed field (account.tenure_months).
	Name string `json:"name,omitempty"`
	// Values recodes the CSV text of a categorical column (CSV text → category). When set, a
	// cell whose text is not a key is an error.
	Values map[string]string `json:"values,omitempty"`
	// Transform is bundle.TransformIndicator or bundle.TransformLog1p (numeric sources only).
	Transform string `json:"transform,omitempty"`
	// Missing is bundle.MissingImpute (the default) or bundle.MissingError.
	Missing string `json:"missing,omitempty"`
	// Unseen is what serving does with a category the training data did not have (categorical
	// sources only): bundle.UnseenMissing (the default) scores it as missing, by the missing
	// policy, and lists it in the response; bundle.UnseenError refuses the request.
	Unseen string `json:"unseen,omitempty"`
}

// Columns is the ordered columns object of a spec. JSON objects have no order in Go maps, so it
// decodes and encodes the object itself, keeping the keys in document order.
type Columns []Column

// UnmarshalJSON decodes a JSON object of Column values in key order, refusing unknown fields
// (bundle.DecodeStrict, which reads specs, refuses a key given twice).
func (cs *Columns) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil { // null
		*cs = nil
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("columns: want an object of CSV column → input")
	}
	var out Columns
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("columns[%q]: %v", key, err)
		}
		col, err := decodeColumn(raw)
		if err != nil {
			return fmt.Errorf("columns[%q]: %v", key, err)
		}
		col.CSV = key
		out = append(out, col)
	}
	*cs = out
	return nil
}

func decodeColumn(raw []byte) (Column, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c Column
	err := dec.Decode(&c)
	return c, err
}

// MarshalJSON encodes the columns as a JSON object in their order.
func (cs Columns) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, c := range cs {
		if i > 0 {
			buf.WriteByte(',')
		}
		key, err := json.Marshal(c.CSV)
		if err != nil {
			return nil, err
		}
		val, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(val)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// MaxSpecBytes bounds the size of a dataset spec.
const MaxSpecBytes = 1 << 20

// ParseSpec decodes and validates a dataset spec. Unknown fields are refused; errors name the
// field.
func ParseSpec(data []byte) (*Spec, error) {
	if len(data) > MaxSpecBytes {
		return nil, fmt.Errorf("spec: %d bytes, at most %d", len(data), MaxSpecBytes)
	}
	var s Spec
	if err := bundle.DecodeStrict(data, &s); err != nil {
		return nil, fmt.Errorf("spec: %v", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks the spec and fills in the default input names. Errors name the field.
func (s *Spec) Validate() error {
	if !bundle.ValidVersion(s.Name) {
		return fmt.Errorf("spec: name %q: want 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit", s.Name)
	}
	if s.Label.Column == "" {
		return errors.New("spec: label.column is missing")
	}
	if s.Label.Positive == "" {
		return errors.New("spec: label.positive is missing")
	}
	if len(s.Columns) == 0 {
		return errors.New("spec: columns is empty: map at least one CSV column to an input")
	}
	if len(s.Drop) == 0 {
		s.Drop = nil
	}
	used := map[string]string{s.Label.Column: "label.column"}
	for i, d := range s.Drop {
		field := fmt.Sprintf("drop[%d]", i)
		if prev, dup := used[d]; dup {
			return fmt.Errorf("spec: %s: column %q is already %s", field, d, prev)
		}
		used[d] = field
	}
	names := map[string]string{}
	for i := range s.Columns {
		c := &s.Columns[i]
		field := fmt.Sprintf("columns[%q]", c.CSV)
		if prev, dup := used[c.CSV]; dup {
			return fmt.Errorf("spec: %s: column is already %s", field, prev)
		}
		used[c.CSV] = field
		if err := c.validate(); err != nil {
			return fmt.Errorf("spec: %s.%v", field, err)
		}
		if prev, dup := names[c.Name]; dup {
			return fmt.Errorf("spec: %s.name: input name %q is also the name of %s; set a distinct name", field, c.Name, prev)
		}
		names[c.Name] = field
	}
	if len(s.Derived) == 0 {
		s.Derived = nil
	}
	numeric := map[string]bool{}
	for _, c := range s.Columns {
		numeric[c.Name] = c.Type() == bundle.TypeNumeric
	}
	for i := range s.Derived {
		d := &s.Derived[i]
		field := fmt.Sprintf("derived[%d]", i)
		if !validInputName(d.Name) {
			return fmt.Errorf("spec: %s.name: %q is not a valid input name (no whitespace or '=', at most %d characters)", field, d.Name, bundle.MaxKeyLen)
		}
		if prev, dup := names[d.Name]; dup {
			return fmt.Errorf("spec: %s.name: input name %q is also the name of %s", field, d.Name, prev)
		}
		if err := bundle.CheckDerive(&bundle.Derive{Op: d.Op, Args: d.Args}); err != nil {
			return fmt.Errorf("spec: %s.op: %v", field, err)
		}
		for k, a := range d.Args {
			num, ok := numeric[a]
			if !ok {
				return fmt.Errorf("spec: %s.args[%d]: %q is not the name of a column's input or of an earlier derived input", field, k, a)
			}
			if !num {
				return fmt.Errorf("spec: %s.args[%d]: input %q is categorical; derived inputs take numeric inputs", field, k, a)
			}
		}
		names[d.Name] = field
		numeric[d.Name] = true
	}
	return nil
}

// Type returns the input type of the column's source (bundle.TypeNumeric or TypeCategorical).
// It is valid after Validate.
func (c *Column) Type() string {
	t, _ := features.SourceType(c.Source)
	return t
}

// validate checks one column; its errors start with the offending field name.
func (c *Column) validate() error {
	if c.CSV == "" {
		return errors.New("key: the CSV column name is empty")
	}
	typ, err := features.SourceType(c.Source)
	if err != nil {
		return fmt.Errorf("source: %v", err)
	}
	if len(c.Values) == 0 {
		c.Values = nil
	}
	if c.Name == "" {
		c.Name = defaultName(c.Source)
	}
	if !validInputName(c.Name) {
		return fmt.Errorf("name: %q is not a valid input name (no whitespace or '=', at most %d characters)", c.Name, bundle.MaxKeyLen)
	}
	switch c.Missing {
	case "":
		c.Missing = bundle.MissingImpute
	case bundle.MissingImpute, bundle.MissingError:
	default:
		return fmt.Errorf("missing: %q (want impute or error)", c.Missing)
	}
	switch typ {
	case bundle.TypeNumeric:
		if len(c.Values) > 0 {
			return fmt.Errorf("values: source %s is numeric; values recode categorical sources only", c.Source)
		}
		if c.Unseen != "" {
			return fmt.Errorf("unseen: source %s is numeric; unseen applies to categorical sources only", c.Source)
		}
		switch c.Transform {
		case "", bundle.TransformIndicator, bundle.TransformLog1p:
		default:
			return fmt.Errorf("transform: %q (want indicator or log1p)", c.Transform)
		}
	case bundle.TypeCategorical:
		if c.Transform != "" {
			return fmt.Errorf("transform: source %s is categorical; transforms apply to numeric sources only", c.Source)
		}
		for k, v := range c.Values {
			if strings.TrimSpace(v) == "" {
				return fmt.Errorf("values[%q]: the category is empty", k)
			}
		}
		switch c.Unseen {
		case "":
			c.Unseen = bundle.UnseenMissing
		case bundle.UnseenMissing, bundle.UnseenError:
		default:
			return fmt.Errorf("unseen: %q (want missing or error)", c.Unseen)
		}
	}
	return nil
}

// defaultName is the input name of a source when the spec gives none: the map key of a
// numeric.<key> or categorical.<key> source, else the typed source itself.
func defaultName(source string) string {
	if k, ok := strings.CutPrefix(source, bundle.NumericPrefix); ok {
		return k
	}
	if k, ok := strings.CutPrefix(source, bundle.CategoricalPrefix); ok {
		return k
	}
	return source
}

// validInputName mirrors the bundle's rule for input names.
func validInputName(n string) bool {
	if n == "" || len(n) > bundle.MaxKeyLen || strings.Contains(n, "=") {
		return false
	}
	return bundle.ValidVersion(n) || !strings.ContainsAny(n, " \t\r\n")
}
