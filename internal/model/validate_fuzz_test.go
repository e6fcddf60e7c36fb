package model_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/model"
)

// fuzzTrees builds a tree ensemble over width columns from data: every 8 bytes are a node (left,
// right, feature, threshold, default direction, leaf value), every 0xff byte ends a tree. The
// children are small signed numbers, so the fuzzer reaches every shape bundle.Validate must
// judge: leaves, children before or after their parent, one child twice, two parents, cycles.
func fuzzTrees(data []byte, width int) *bundle.TreeEnsemble {
	te := &bundle.TreeEnsemble{Comparison: bundle.CompareLess, BaseScore: 0.1}
	if len(data) > 0 && data[0]&1 == 1 {
		te.Comparison = bundle.CompareLessEqual
	}
	var t bundle.Tree
	flush := func() {
		if len(t.Left) > 0 {
			te.Trees = append(te.Trees, t)
		}
		t = bundle.Tree{}
	}
	for len(data) >= 8 {
		if data[0] == 0xff {
			flush()
			data = data[1:]
			continue
		}
		n := data[:8]
		data = data[8:]
		t.Left = append(t.Left, int32(int8(n[0]))%16)
		t.Right = append(t.Right, int32(int8(n[1]))%16)
		t.Feature = append(t.Feature, int32(int8(n[2]))%int32(width+2))
		t.Threshold = append(t.Threshold, []float64{0, 1, -1, 0.5, math.NaN(), math.Inf(1), math.Inf(-1), 1e300}[n[3]%8])
		t.DefaultLeft = append(t.DefaultLeft, n[4]&1 == 1)
		t.Value = append(t.Value, []float64{0, 1, -1, 0.25, math.NaN(), math.Inf(1), 6e299, -3}[n[5]%8])
	}
	flush()
	return te
}

// FuzzValidateThenCompile: whatever tree ensemble bundle.Validate accepts, the scoring engine
// compiles and evaluates, finitely, without a panic; and model.Compile refuses nothing that
// Validate accepted but for an input source (the one check Validate leaves to the feature
// mapper). This is what keeps the one validation and the constructors from drifting apart: a
// tree whose node has the same child twice once passed Validate and was refused by the scoring
// engine, so a trainer could write a bundle the server refused.
func FuzzValidateThenCompile(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0, 3, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 1, 2, 1, 0, 1, 0, 0, 0xff, 0xff, 0, 0, 2, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 3, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 3, 3, 0, 0, 1, 0, 0, 0})                      // one child twice
	f.Add([]byte{0, 1, 2, 0, 0, 1, 0, 0, 0, 3, 3, 1, 0, 0, 0, 0}) // nodes that point at one child
	f.Fuzz(validateThenCompile)
}

func validateThenCompile(t *testing.T, data []byte) {
	b := &bundle.Bundle{
		Manifest: bundle.Manifest{
			FormatVersion: bundle.FormatVersion, Name: "fuzz", Version: "v1", CreatedAt: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC),
			Inputs: []bundle.Input{
				{Name: "a", Source: "numeric.a", Type: bundle.TypeNumeric, Missing: bundle.Missing{Policy: bundle.MissingNative}},
				{Name: "b", Source: "complaints.count_30d", Type: bundle.TypeNumeric, Missing: bundle.Missing{Policy: bundle.MissingImpute, Value: 1}},
				{Name: "c", Source: "categorical.c", Type: bundle.TypeCategorical, Categories: []string{"x", "y"}, Unseen: bundle.UnseenIgnore, Missing: bundle.Missing{Policy: bundle.MissingImpute, Category: "x"}},
			},
			Calibration:  bundle.Calibration{Method: bundle.CalibrationNone},
			Tiers:        bundle.Tiers{Medium: 0.3, High: 0.5, Critical: 0.8},
			CheckVectors: []bundle.CheckVector{{Features: json.RawMessage(`{}`), Probability: 0.5}},
		},
		Model: bundle.Model{Type: bundle.ModelTrees, Trees: fuzzTrees(data, 4)},
	}
	if b.Validate() != nil {
		return
	}
	m, err := model.Compile(b)
	if err != nil {
		t.Fatalf("bundle.Validate accepted the bundle, model.Compile refused it: %v", err)
	}
	for _, f := range []*churnv1.CustomerFeatures{
		{},
		{Numeric: map[string]float64{"a": 0.5}, Categorical: map[string]string{"c": "y"}},
		{Numeric: map[string]float64{"a": -1e308}, Categorical: map[string]string{"c": "z"}},
	} {
		r, err := m.Explain(f)
		if err != nil {
			t.Fatalf("Explain(%v): %v", f, err)
		}
		if !(r.Probability >= 0 && r.Probability <= 1) || math.IsNaN(r.Margin) || math.IsInf(r.Margin, 0) {
			t.Fatalf("Explain(%v) = probability %v, margin %v", f, r.Probability, r.Margin)
		}
		sum := r.Base
		for _, d := range r.Drivers() {
			sum += d.Contribution
		}
		if d := math.Abs(sum - r.Margin); d > 1e-9*math.Max(1, math.Abs(r.Margin)) {
			t.Fatalf("Explain(%v): base and drivers add up to %v, the margin is %v", f, sum, r.Margin)
		}
	}
}

// TestCompileRefusesOnlySources: the one check model.Compile adds to bundle.Validate is the
// sources, which the feature mapper's table of typed fields knows.
func TestCompileRefusesOnlySources(t *testing.T) {
	t.Parallel()
	b, err := bundle.Parse(defaultBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Inputs[0].Source = "account.age_days"
	if err := b.Validate(); err != nil {
		t.Fatalf("Validate: %v (it leaves sources to the feature mapper)", err)
	}
	if _, err := model.Compile(b); !errors.Is(err, model.ErrInvalid) || !strings.Contains(err.Error(), "account.age_days") {
		t.Fatalf("Compile = %v, want ErrInvalid naming the source", err)
	}
}
