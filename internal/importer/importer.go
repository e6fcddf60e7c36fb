package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
	"github.com/churnhq/churn/internal/model"
)

// Formats accepted by Parse.
const (
	FormatXGBoostJSON     = "xgboost-json"
	FormatLightGBM        = "lightgbm"
	FormatSklearnLogistic = "sklearn-logistic"
)

// Formats lists the formats in the order the CLI shows them.
var Formats = []string{FormatXGBoostJSON, FormatLightGBM, FormatSklearnLogistic}

// MaxModelBytes bounds the size of a foreign model file.
const MaxModelBytes = 64 << 20

// Model is a foreign model, parsed: its feature columns and its parameters in the bundle's terms.
// Exactly one of Trees and Logistic is set.
type Model struct {
	// Format is one of the Format constants.
	Format string
	// Features are the model's feature names, in column order.
	Features []string
	// Trees is a tree ensemble whose Feature indices index Features; its margin is the library's
	// raw score (log-odds).
	Trees *bundle.TreeEnsemble
	// Logistic is a logistic regression on Features: margin = Intercept + Σ Weights[i]·z[i],
	// where z[i] = (x[i] - Mean[i]) / Scale[i] when Scale is set, else x[i].
	Logistic *Logistic
	// Summary describes the model in one line, for the bundle's description.
	Summary string
}

// Logistic is an imported logistic regression with an optional standard scaler.
type Logistic struct {
	Intercept   float64
	Weights     []float64
	Mean, Scale []float64
}

// Parse reads a model file of the given format.
func Parse(format string, data []byte) (*Model, error) {
	if len(data) > MaxModelBytes {
		return nil, fmt.Errorf("model file: %d bytes, at most %d", len(data), MaxModelBytes)
	}
	switch format {
	case FormatXGBoostJSON:
		return ParseXGBoost(data)
	case FormatLightGBM:
		return ParseLightGBM(data)
	case FormatSklearnLogistic:
		return ParseSklearn(data)
	}
	return nil, fmt.Errorf("unknown format %q (want %s, %s or %s)", format, FormatXGBoostJSON, FormatLightGBM, FormatSklearnLogistic)
}

// Options are the manifest settings of an import.
type Options struct {
	Name, Version, Description string
	CreatedAt                  time.Time
	// Tiers, when set, are the tier thresholds; otherwise TierQuantiles picks them on the rows.
	Tiers *bundle.Tiers
	// TierQuantiles are the shares of the rows at or above MEDIUM, HIGH and CRITICAL.
	TierQuantiles [3]float64
	// Tolerance is the largest accepted difference between serving's probability and the
	// library's on any row (default DefaultTolerance).
	Tolerance float64
	// CheckVectors is how many rows become check vectors (default DefaultCheckVectors).
	CheckVectors int
	// Command and Source are recorded in the bundle's training record.
	Command, Source string
}

// Defaults of Options.
const (
	DefaultTolerance    = 1e-6
	DefaultCheckVectors = 16
)

// DefaultTierQuantiles are the default shares of rows at or above MEDIUM, HIGH and CRITICAL, as
// churnctl train's.
var DefaultTierQuantiles = [3]float64{0.35, 0.15, 0.05}

// Report says how well serving reproduced the library on the rows.
type Report struct {
	Rows          int
	MissingValues int     // cells that were missing
	MaxAbsDiff    float64 // largest |serving - library| probability
	MaxDiffLine   int     // the rows-file line of that difference
	MeanAbsDiff   float64
	CheckVectors  int
}

// Build makes a bundle of m: inputs by the schema, parameters from m, tiers from the options or
// the rows, and check vectors from the rows. It verifies every row through the serving path and
// refuses the import when one differs from the library by more than the tolerance; the bundle it
// returns has passed model.Load.
func Build(m *Model, s *Schema, rows *Rows, o Options) (*bundle.Bundle, *Report, error) {
	if m == nil || s == nil || rows == nil {
		return nil, nil, errors.New("import: model, schema and rows are required")
	}
	if o.Tolerance == 0 {
		o.Tolerance = DefaultTolerance
	}
	if !(o.Tolerance > 0) || o.Tolerance >= 1 {
		return nil, nil, fmt.Errorf("import: tolerance %g: want a number in (0, 1)", o.Tolerance)
	}
	if o.CheckVectors == 0 {
		o.CheckVectors = DefaultCheckVectors
	}
	if o.CheckVectors < 0 {
		return nil, nil, fmt.Errorf("import: check vectors %d: want at least 1", o.CheckVectors)
	}
	if o.TierQuantiles == [3]float64{} {
		o.TierQuantiles = DefaultTierQuantiles
	}
	b := &bundle.Bundle{Manifest: bundle.Manifest{
		FormatVersion: bundle.FormatVersion,
		Name:          o.Name,
		Version:       o.Version,
		CreatedAt:     o.CreatedAt.UTC(),
		Description:   o.Description,
		Calibration:   bundle.Calibration{Method: bundle.CalibrationNone},
		Training:      &bundle.Training{Trainer: "import " + m.Format, Command: o.Command, Dataset: o.Source},
	}}
	if b.Manifest.Description == "" {
		b.Manifest.Description = "Imported " + m.Summary + "."
	}
	switch {
	case m.Trees != nil && m.Logistic == nil:
		b.Model = bundle.Model{Type: bundle.ModelTrees, Trees: m.Trees}
	case m.Logistic != nil && m.Trees == nil:
		b.Model = bundle.Model{Type: bundle.ModelLogistic, Logistic: &bundle.Logistic{Intercept: m.Logistic.Intercept, Weights: m.Logistic.Weights}}
	default:
		return nil, nil, errors.New("import: the model needs trees or logistic parameters, not both")
	}
	inputs, err := s.inputs(m.Features, b.Model.Type)
	if err != nil {
		return nil, nil, err
	}
	if l := m.Logistic; l != nil && l.Scale != nil {
		for i := range inputs {
			inputs[i].Standardize = &bundle.Standardize{Mean: l.Mean[i], Scale: l.Scale[i]}
		}
	}
	b.Manifest.Inputs = inputs

	// Compile with placeholder tiers and check vectors: the serving path needs the schema and
	// the parameters only.
	b.Manifest.Tiers = bundle.Tiers{Medium: 1, High: 1, Critical: 1}
	b.Manifest.CheckVectors = []bundle.CheckVector{{Features: json.RawMessage("{}"), Probability: 0}}
	serving, err := model.Compile(b)
	if err != nil {
		return nil, nil, fmt.Errorf("import: %w", err)
	}

	col, err := rowColumns(rows, m.Features)
	if err != nil {
		return nil, nil, err
	}
	rep := &Report{Rows: len(rows.Rows)}
	probs := make([]float64, len(rows.Rows))
	feats := make([]*churnv1.CustomerFeatures, len(rows.Rows))
	missing := make([]int, len(rows.Rows))
	var sum float64
	for r := range rows.Rows {
		row := &rows.Rows[r]
		f := &churnv1.CustomerFeatures{}
		for i, in := range inputs {
			v := row.Values[col[i]]
			if math.IsNaN(v) {
				missing[r]++
				continue
			}
			if err := features.Set(f, in.Source, strconv.FormatFloat(v, 'g', -1, 64)); err != nil {
				return nil, nil, fmt.Errorf("rows: line %d: column %q: %v", row.Line, m.Features[i], err)
			}
		}
		res, err := serving.Score(f)
		if err != nil {
			return nil, nil, fmt.Errorf("rows: line %d: the row is not a valid request under the schema: %v", row.Line, err)
		}
		p := res.Probability
		d := math.Abs(p - row.Probability)
		if !(d <= o.Tolerance) {
			return nil, nil, fmt.Errorf("rows: line %d: serving computes %.17g, the library computed %.17g (difference %.3g > tolerance %g): the import does not reproduce the model",
				row.Line, p, row.Probability, d, o.Tolerance)
		}
		if d > rep.MaxAbsDiff || rep.MaxDiffLine == 0 {
			rep.MaxAbsDiff, rep.MaxDiffLine = d, row.Line
		}
		sum += d
		probs[r], feats[r] = p, f
		rep.MissingValues += missing[r]
	}
	rep.MeanAbsDiff = sum / float64(len(rows.Rows))
	recordRanges(b.Manifest.Inputs, rows, col)

	if o.Tiers != nil {
		b.Manifest.Tiers = *o.Tiers
	} else {
		t, err := quantileTiers(probs, o.TierQuantiles)
		if err != nil {
			return nil, nil, err
		}
		b.Manifest.Tiers = t
	}
	cvs, err := checkVectors(feats, probs, missing, o.CheckVectors)
	if err != nil {
		return nil, nil, err
	}
	b.Manifest.CheckVectors = cvs
	rep.CheckVectors = len(cvs)
	b.Manifest.Training.Rows = map[string]int{"verified": len(rows.Rows)}

	data, err := b.Encode()
	if err != nil {
		return nil, nil, fmt.Errorf("import: %w", err)
	}
	loaded, err := model.Load(data)
	if err != nil {
		return nil, nil, fmt.Errorf("import: the bundle does not load: %w", err)
	}
	return loaded.Bundle, rep, nil
}

// recordRanges records, for each numeric input, the range of its values in the rows, where
// model.Load's gate probes the model.
func recordRanges(inputs []bundle.Input, rows *Rows, col []int) {
	for i := range inputs {
		in := &inputs[i]
		if in.Type != bundle.TypeNumeric || in.Source == "" {
			continue
		}
		var r *bundle.Range
		for _, row := range rows.Rows {
			v := row.Values[col[i]]
			switch {
			case math.IsNaN(v) || math.IsInf(v, 0):
			case r == nil:
				r = &bundle.Range{Min: v, Max: v}
			default:
				r.Min, r.Max = min(r.Min, v), max(r.Max, v)
			}
		}
		in.Range = r
	}
}

// rowColumns finds, for each model feature, its column in rows.
func rowColumns(rows *Rows, features []string) ([]int, error) {
	at := make(map[string]int, len(rows.Features))
	for j, f := range rows.Features {
		at[f] = j
	}
	col := make([]int, len(features))
	for i, f := range features {
		j, ok := at[f]
		if !ok {
			return nil, fmt.Errorf("rows: line 1: no column for model feature %d %q", i, f)
		}
		col[i] = j
		delete(at, f)
	}
	if len(at) > 0 {
		var extra []string
		for f := range at {
			extra = append(extra, f)
		}
		slices.Sort(extra)
		return nil, fmt.Errorf("rows: line 1: columns %q are not features of the model (its features: %s)", extra, list(features))
	}
	return col, nil
}

// quantileTiers picks thresholds so that the shares q of probs are at or above each tier.
func quantileTiers(probs []float64, q [3]float64) (bundle.Tiers, error) {
	if !(0 < q[2] && q[2] <= q[1] && q[1] <= q[0] && q[0] < 1) {
		return bundle.Tiers{}, fmt.Errorf("tier quantiles %g,%g,%g: want 0 < critical <= high <= medium < 1", q[0], q[1], q[2])
	}
	sorted := slices.Clone(probs)
	slices.Sort(sorted)
	slices.Reverse(sorted)
	at := func(share float64) float64 {
		k := int(math.Ceil(share*float64(len(sorted)))) - 1
		k = min(max(k, 0), len(sorted)-1)
		// A probability of 0 is not a threshold (tiers are > 0): use the least positive one.
		return max(sorted[k], math.SmallestNonzeroFloat64)
	}
	return bundle.Tiers{Medium: at(q[0]), High: at(q[1]), Critical: at(q[2])}, nil
}

// checkVectors picks up to n rows as check vectors: rows with missing values first (one per
// count of missing values, so every default direction kind is exercised), then rows spread evenly
// over the file.
func checkVectors(feats []*churnv1.CustomerFeatures, probs []float64, missing []int, n int) ([]bundle.CheckVector, error) {
	picked := make([]bool, len(feats))
	var order []int
	seenCount := map[int]bool{}
	for r, k := range missing {
		if k > 0 && !seenCount[k] && len(order) < n/2 {
			seenCount[k] = true
			picked[r] = true
			order = append(order, r)
		}
	}
	rest := n - len(order)
	for k := 0; k < rest && k < len(feats); k++ {
		r := k * len(feats) / min(rest, len(feats))
		for r < len(feats) && picked[r] {
			r++
		}
		if r == len(feats) {
			break
		}
		picked[r] = true
		order = append(order, r)
	}
	slices.Sort(order)
	cvs := make([]bundle.CheckVector, 0, len(order))
	for _, r := range order {
		raw, err := protojson.Marshal(feats[r])
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, err
		}
		cvs = append(cvs, bundle.CheckVector{Features: buf.Bytes(), Probability: probs[r]})
	}
	return cvs, nil
}
