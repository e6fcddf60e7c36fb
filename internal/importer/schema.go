package importer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
)

// Schema maps a foreign model's feature columns onto CustomerFeatures. It is a JSON document:
//
//	{"features": {
//	   "Complains":       {"source": "complaints.count_90d"},
//	   "Seconds of Use":  {"source": "numeric.seconds_of_use", "missing": "impute", "value": 0},
//	   "Subscription Length": {"source": "account.tenure_months", "name": "tenure"}},
//	 "categorical": [
//	   {"source": "categorical.payment_mode",
//	    "columns": [{"feature": "payment_mode_card", "category": "card"},
//	                {"feature": "payment_mode_cash", "category": "cash"}]}]}
//
// Every feature of the model must have exactly one entry, keyed by the model's feature name
// (XGBoost feature_names or f0, f1, ... when the model has none; LightGBM feature_names; the
// exported feature_names of a scikit-learn model): in features, or as a column of a group in
// categorical. An entry of features says:
//
//   - source (required): a numeric CustomerFeatures field, e.g. complaints.count_90d or
//     numeric.<key>. A category the model saw as a code is read as numeric.<key>; one it saw as
//     one-hot columns is a group of categorical (below).
//   - name: the bundle input's name (drivers and imputed inputs use it); default: the key of a
//     numeric.<key> source, or the source itself.
//   - missing: what an absent value becomes. "native" (the default for tree models) hands NaN
//     to the trees, which send it where the library sends a missing value; "error" (the default
//     for logistic regression, which has no missing value) refuses the request; "impute" uses
//     value.
//   - value: the value of "impute".
//   - transform: "log1p" or "indicator", when the model was trained on log1p(x) or x > 0 of the
//     source rather than on the source itself.
//
// A group of categorical (SchemaGroup) maps one-hot columns of the model (pandas.get_dummies,
// scikit-learn's OneHotEncoder) onto one categorical input, so that callers send the category
// ("card") rather than the columns (numeric.payment_mode_card = 1). The group's columns become
// the input's one-hot columns, in the order listed, and the model's splits or weights on them
// are rewired to the bundle's columns.
type Schema struct {
	Features    schemaFeatures `json:"features"`
	Categorical []SchemaGroup  `json:"categorical,omitempty"`
}

// SchemaGroup maps a group of one-hot columns of the model onto one categorical input:
//
//   - source (required): a categorical CustomerFeatures field, categorical.<key> or a typed text
//     field such as account.contract.
//   - name: the bundle input's name; default: the key of a categorical.<key> source, or the
//     source itself.
//   - columns (required): the model features of the group, each with the category it stands for
//     (its column is 1 for that category, 0 otherwise). One entry may leave feature out: the
//     level a drop-first encoding (get_dummies(drop_first=True), OneHotEncoder(drop="first"))
//     left without a column, which the model sees as every column 0.
//   - missing: what an absent value becomes. "zeros" (the default) sets every column of the
//     group to 0, as the library saw a row with none of the categories (get_dummies of a missing
//     value, OneHotEncoder(handle_unknown="ignore")): the bundle holds it as one more category,
//     bundle.MissingCategory, whose column the model does not read, and imputes it. "error"
//     refuses the request; "impute" takes the category value (a pipeline that imputed before
//     encoding).
//   - value: the category of "impute", one of the columns'.
//   - unseen: what a category the group does not list becomes: "missing" (the default) scores it
//     as missing, by the missing policy, and lists it in the response; "error" refuses it.
//
// A row of the rows file must have 0 or 1 in each column of a group, and 1 in at most one; a row
// with every column 0 is the level without a column when the group has one, else a customer
// without a value, which only "zeros" can express.
type SchemaGroup struct {
	Source  string         `json:"source"`
	Name    string         `json:"name,omitempty"`
	Columns []OneHotColumn `json:"columns"`
	Missing string         `json:"missing,omitempty"`
	Value   string         `json:"value,omitempty"`
	Unseen  string         `json:"unseen,omitempty"`
}

// OneHotColumn is one model feature of a group and the category it stands for; without a
// feature, the category of a drop-first encoding's level without a column.
type OneHotColumn struct {
	Feature  string `json:"feature"`
	Category string `json:"category"`
}

// MissingZeros is a group's missing policy that sets every column of the group to 0.
const MissingZeros = "zeros"

// schemaFeatures is the features object; decoding refuses unknown fields in an entry, naming the
// feature (bundle.DecodeStrict, which reads schemas, refuses a feature named twice).
type schemaFeatures map[string]SchemaFeature

func (sf *schemaFeatures) UnmarshalJSON(data []byte) error {
	out := schemaFeatures{}
	err := bundle.DecodeObject(data, "features", "an object of model feature → mapping", func(name string, value json.RawMessage) error {
		var f SchemaFeature
		if err := bundle.DecodeMember(value, &f); err != nil {
			return fmt.Errorf("features[%q]: %v", name, err)
		}
		out[name] = f
		return nil
	})
	if err != nil {
		return err
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
	if len(s.Features) == 0 && len(s.Categorical) == 0 {
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
	grouped := map[string]string{} // model feature → the group that has it
	for i := range s.Categorical {
		g := &s.Categorical[i]
		field := fmt.Sprintf("categorical[%d]", i)
		if err := g.check(); err != nil {
			return nil, fmt.Errorf("schema: %s.%v", field, err)
		}
		n := g.inputName()
		if prev, dup := names[n]; dup {
			return nil, fmt.Errorf("schema: %s.name: input name %q is also the name of %s; set a distinct name", field, n, describeOwner(prev))
		}
		names[n] = field
		for k, c := range g.Columns {
			if c.Feature == "" {
				continue // the level without a column
			}
			cf := fmt.Sprintf("%s.columns[%d].feature", field, k)
			if _, dup := s.Features[c.Feature]; dup {
				return nil, fmt.Errorf("schema: %s: model feature %q also has an entry in features", cf, c.Feature)
			}
			if prev, dup := grouped[c.Feature]; dup {
				return nil, fmt.Errorf("schema: %s: model feature %q is also a column of %s", cf, c.Feature, prev)
			}
			grouped[c.Feature] = field
		}
	}
	return &s, nil
}

// describeOwner names what an input name belongs to: a feature key, or a group's field.
func describeOwner(owner string) string {
	if strings.HasPrefix(owner, "categorical[") {
		return owner
	}
	return fmt.Sprintf("features[%q]", owner)
}

// check checks one group; its errors start with the offending field name.
func (g *SchemaGroup) check() error {
	typ, err := features.SourceType(g.Source)
	if err != nil {
		return fmt.Errorf("source: %v", err)
	}
	if typ != bundle.TypeCategorical {
		return fmt.Errorf("source: %s is numeric; a group of one-hot columns becomes a categorical source (categorical.<key> or a text field such as account.contract)", g.Source)
	}
	if n := g.inputName(); n == "" || len(n) > bundle.MaxKeyLen || strings.ContainsAny(n, " \t\r\n=") {
		return fmt.Errorf("name: %q is not a valid input name (1-%d characters, no whitespace or '=')", n, bundle.MaxKeyLen)
	}
	if len(g.Columns) == 0 {
		return errors.New("columns: empty: list the group's model features and their categories")
	}
	cats := map[string]bool{}
	base := -1 // the entry without a feature
	for k, c := range g.Columns {
		switch {
		case c.Feature == "" && base >= 0:
			return fmt.Errorf("columns[%d].feature: missing, as in columns[%d]: only one level of a group can be without a column", k, base)
		case c.Feature == "":
			base = k
		case strings.TrimSpace(c.Feature) == "":
			return fmt.Errorf("columns[%d].feature: %q is blank", k, c.Feature)
		}
		if err := checkCategory(g.Source, c.Category); err != nil {
			return fmt.Errorf("columns[%d].category: %v", k, err)
		}
		if cats[c.Category] {
			return fmt.Errorf("columns[%d].category: %q is listed twice", k, c.Category)
		}
		cats[c.Category] = true
	}
	if base >= 0 && len(g.Columns) == 1 {
		return errors.New("columns: no entry names a model feature")
	}
	switch g.Missing {
	case "", MissingZeros:
		if cats[bundle.MissingCategory] {
			return fmt.Errorf("columns: category %q stands for a missing value under missing %q; name the column's category otherwise", bundle.MissingCategory, MissingZeros)
		}
		fallthrough
	case bundle.MissingError:
		if g.Value != "" {
			return fmt.Errorf("value: only missing %q takes a value", bundle.MissingImpute)
		}
	case bundle.MissingImpute:
		if !cats[g.Value] {
			return fmt.Errorf("value: %q is not one of the group's categories", g.Value)
		}
	default:
		return fmt.Errorf("missing: %q (want zeros, impute or error)", g.Missing)
	}
	switch g.Unseen {
	case "", bundle.UnseenMissing, bundle.UnseenError:
	default:
		return fmt.Errorf("unseen: %q (want missing or error)", g.Unseen)
	}
	return nil
}

// checkCategory checks that a request can carry category under source: serving's own validation
// (features.Validate) of a request holding it.
func checkCategory(source, category string) error {
	if category == "" {
		return errors.New("empty: a request without a value is missing, not a category")
	}
	f := &churnv1.CustomerFeatures{}
	if err := features.SetText(f, source, category); err != nil {
		return err
	}
	var verr *features.ValidationError
	if err := features.Validate(f); errors.As(err, &verr) {
		return fmt.Errorf("%s: a request cannot carry it", verr.Violations[0].Description)
	} else if err != nil {
		return err
	}
	return nil
}

// inputName is the bundle input's name: Name, or the default for the source.
func (g *SchemaGroup) inputName() string {
	if g.Name != "" {
		return g.Name
	}
	if k, ok := strings.CutPrefix(g.Source, bundle.CategoricalPrefix); ok {
		return k
	}
	return g.Source
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

// layout is how a model's feature columns become a bundle's inputs and columns.
type layout struct {
	inputs []bundle.Input
	// column[f] is the bundle column of model feature f.
	column []int
	// feature[i] is the model feature of numeric input i, or -1 for a group's input.
	feature []int
	// group[i] is the group of categorical input i, nil for a numeric input; oneHot[i] the model
	// features of its columns, in the order of its categories, -1 for a category the model has no
	// column of (a drop-first level); a MissingZeros category, last, is not in it.
	group  []*SchemaGroup
	oneHot [][]int
	width  int
}

// layout makes the bundle inputs of a model's features, in the model's column order: a feature
// of features is a numeric input, and a group of categorical is one categorical input where its
// first column is, its one-hot columns in the order listed (and its MissingZeros category last).
// Missing policies default by model type; a schema entry for a feature the model does not have
// is an error, as is a model feature without one.
func (s *Schema) layout(features []string, modelType string) (*layout, error) {
	at := make(map[string]int, len(features))
	for i, f := range features {
		at[f] = i
	}
	var extra []string
	for k := range s.Features {
		if _, ok := at[k]; !ok {
			extra = append(extra, k)
		}
	}
	groupOf := map[string]int{} // model feature → its group
	for g := range s.Categorical {
		for _, c := range s.Categorical[g].Columns {
			if c.Feature == "" {
				continue
			}
			if _, ok := at[c.Feature]; !ok {
				extra = append(extra, c.Feature)
			}
			groupOf[c.Feature] = g
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, fmt.Errorf("schema: features %q are not features of the model (its features: %s)", extra, list(features))
	}
	l := &layout{column: make([]int, len(features))}
	placed := make([]bool, len(s.Categorical))
	for i, name := range features {
		if g, ok := groupOf[name]; ok {
			if !placed[g] {
				placed[g] = true
				l.addGroup(&s.Categorical[g], at)
			}
			continue
		}
		f, ok := s.Features[name]
		if !ok {
			return nil, fmt.Errorf("schema: model feature %d %q has no entry in features or categorical", i, name)
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
		l.column[i] = l.width
		l.inputs = append(l.inputs, in)
		l.feature = append(l.feature, i)
		l.group = append(l.group, nil)
		l.oneHot = append(l.oneHot, nil)
		l.width++
	}
	return l, nil
}

// addGroup appends the categorical input of group g; at finds a model feature's index.
func (l *layout) addGroup(g *SchemaGroup, at map[string]int) {
	in := bundle.Input{Name: g.inputName(), Source: g.Source, Type: bundle.TypeCategorical, Unseen: g.Unseen}
	if in.Unseen == "" {
		in.Unseen = bundle.UnseenMissing
	}
	oneHot := make([]int, len(g.Columns))
	for k, c := range g.Columns {
		in.Categories = append(in.Categories, c.Category)
		oneHot[k] = -1
		if c.Feature != "" {
			oneHot[k] = at[c.Feature]
			l.column[oneHot[k]] = l.width + k
		}
	}
	switch g.Missing {
	case "", MissingZeros:
		in.Categories = append(in.Categories, bundle.MissingCategory)
		in.Missing = bundle.Missing{Policy: bundle.MissingImpute, Category: bundle.MissingCategory}
	case bundle.MissingImpute:
		in.Missing = bundle.Missing{Policy: bundle.MissingImpute, Category: g.Value}
	default:
		in.Missing.Policy = g.Missing
	}
	l.inputs = append(l.inputs, in)
	l.feature = append(l.feature, -1)
	l.group = append(l.group, g)
	l.oneHot = append(l.oneHot, oneHot)
	l.width += len(in.Categories)
}

// list prints names for an error message, shortened when long.
func list(names []string) string {
	const most = 12
	if len(names) <= most {
		return fmt.Sprintf("%q", names)
	}
	return fmt.Sprintf("%q and %d more", names[:most], len(names)-most)
}
