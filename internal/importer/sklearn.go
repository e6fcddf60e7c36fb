package importer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/churnhq/churn/internal/bundle"
)

// SklearnFormat is the value of the "format" field of an exported scikit-learn logistic
// regression.
const SklearnFormat = "churn.sklearn-logistic.v1"

// A scikit-learn LogisticRegression (optionally behind a StandardScaler) is imported from this
// JSON document, written by testdata/import/make_models.py's export_logistic:
//
//	{"format": "churn.sklearn-logistic.v1",
//	 "sklearn_version": "1.2.1",
//	 "feature_names": ["Complains", "Call Failure"],   // the columns the pipeline was fitted on, in order
//	 "classes": [0, 1],                                // classes_; the second is the positive class
//	 "coef": [[1.9, 0.3]],                             // coef_, shape (1, n)
//	 "intercept": [-2.1],                              // intercept_, shape (1,)
//	 "multi_class": "ovr",                             // how predict_proba treats the one decision:
//	                                                   // "ovr": p = sigmoid(d); "multinomial": p = softmax(-d, d)[1] = sigmoid(2d)
//	 "scaler": {"mean": [0.07, 7.6], "scale": [0.26, 7.2]},  // optional: StandardScaler mean_ and scale_
//	                                                   // (null mean: with_mean=False; null scale: with_std=False)
//	 "metadata": {...}}                                // optional, free-form, ignored (e.g. the training data's name)
//
// with d = intercept + Σ coef[i]·z[i] and z[i] = (x[i] - mean[i]) / scale[i] (x[i] without a
// scaler). "multi_class" is the effective mode: scikit-learn 1.2 uses "ovr" for a binary problem
// unless multi_class="multinomial" was set explicitly, in which case predict_proba is sigmoid(2d);
// the importer doubles the coefficients then.
type sklearnFile struct {
	Format         string          `json:"format"`
	SklearnVersion string          `json:"sklearn_version"`
	FeatureNames   []string        `json:"feature_names"`
	Classes        []any           `json:"classes"`
	Coef           [][]float64     `json:"coef"`
	Intercept      []float64       `json:"intercept"`
	MultiClass     string          `json:"multi_class"`
	Scaler         *sklearnScaler  `json:"scaler"`
	Extra          json.RawMessage `json:"metadata,omitempty"`
}

type sklearnScaler struct {
	Mean  []float64 `json:"mean"`
	Scale []float64 `json:"scale"`
}

// ParseSklearn reads an exported scikit-learn logistic regression (see SklearnFormat). Unknown
// fields are refused, so a pipeline step the format cannot express is not dropped silently.
func ParseSklearn(data []byte) (*Model, error) {
	var f sklearnFile
	if err := bundle.DecodeStrict(data, &f); err != nil {
		return nil, fmt.Errorf("sklearn: %v", err)
	}
	if f.Format != SklearnFormat {
		return nil, fmt.Errorf("sklearn: format %q, want %q", f.Format, SklearnFormat)
	}
	n := len(f.FeatureNames)
	if n == 0 || n > bundle.MaxColumns {
		return nil, fmt.Errorf("sklearn: feature_names has %d names, want 1..%d", n, bundle.MaxColumns)
	}
	seen := map[string]bool{}
	for i, name := range f.FeatureNames {
		if strings.TrimSpace(name) == "" || seen[name] {
			return nil, fmt.Errorf("sklearn: feature_names[%d] %q is empty or repeated", i, name)
		}
		seen[name] = true
	}
	if len(f.Classes) != 2 {
		return nil, fmt.Errorf("sklearn: classes has %d classes: only binary models are supported", len(f.Classes))
	}
	if len(f.Coef) != 1 || len(f.Intercept) != 1 {
		return nil, fmt.Errorf("sklearn: coef has %d rows and intercept %d values, want 1 each (a binary model)", len(f.Coef), len(f.Intercept))
	}
	if len(f.Coef[0]) != n {
		return nil, fmt.Errorf("sklearn: coef[0] has %d coefficients for %d features", len(f.Coef[0]), n)
	}
	factor := 1.0
	switch f.MultiClass {
	case "ovr":
	case "multinomial":
		factor = 2
	default:
		return nil, fmt.Errorf("sklearn: multi_class %q, want ovr or multinomial (the mode predict_proba uses)", f.MultiClass)
	}
	l := &Logistic{Intercept: factor * f.Intercept[0], Weights: make([]float64, n)}
	if !finite1(l.Intercept) {
		return nil, errors.New("sklearn: intercept[0] is not finite")
	}
	for i, c := range f.Coef[0] {
		l.Weights[i] = factor * c
		if !finite1(l.Weights[i]) {
			return nil, fmt.Errorf("sklearn: coef[0][%d] is not finite", i)
		}
	}
	scaled := ""
	if s := f.Scaler; s != nil {
		if s.Mean == nil && s.Scale == nil {
			return nil, errors.New("sklearn: scaler has neither mean nor scale; leave it out")
		}
		l.Mean, l.Scale = make([]float64, n), make([]float64, n)
		for i := range n {
			l.Scale[i] = 1
		}
		if s.Mean != nil {
			if len(s.Mean) != n {
				return nil, fmt.Errorf("sklearn: scaler.mean has %d values for %d features", len(s.Mean), n)
			}
			copy(l.Mean, s.Mean)
		}
		if s.Scale != nil {
			if len(s.Scale) != n {
				return nil, fmt.Errorf("sklearn: scaler.scale has %d values for %d features", len(s.Scale), n)
			}
			copy(l.Scale, s.Scale)
		}
		for i := range n {
			if !finite1(l.Mean[i]) {
				return nil, fmt.Errorf("sklearn: scaler.mean[%d] is not finite", i)
			}
			if !finite1(l.Scale[i]) || l.Scale[i] <= 0 {
				return nil, fmt.Errorf("sklearn: scaler.scale[%d] is %g, want a finite number > 0", i, l.Scale[i])
			}
		}
		scaled = " behind a StandardScaler"
	}
	summary := fmt.Sprintf("scikit-learn %s LogisticRegression%s (%s, %d features, positive class %v)",
		f.SklearnVersion, scaled, f.MultiClass, n, f.Classes[1])
	return &Model{Format: FormatSklearnLogistic, Features: f.FeatureNames, Logistic: l, Summary: summary}, nil
}

func finite1(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
