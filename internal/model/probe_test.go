package model_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/model"
)

// overflowBundle is a valid logistic regression with weights of ±1e11 on numeric.a and
// numeric.b, whose training data went up to 1e300: it reproduces its check vector (a = b = 1: the
// terms cancel) and overflows to NaN when both inputs are near the top of their range.
func overflowBundle(t testing.TB) []byte {
	t.Helper()
	b := bundle.Bundle{
		Manifest: bundle.Manifest{
			FormatVersion: 1, Name: "overflow", Version: "overflow-1", CreatedAt: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
			Inputs: []bundle.Input{
				{Name: "a", Source: "numeric.a", Type: "numeric", Missing: bundle.Missing{Policy: "error"}, Range: &bundle.Range{Min: 0, Max: 1e300}},
				{Name: "b", Source: "numeric.b", Type: "numeric", Missing: bundle.Missing{Policy: "error"}, Range: &bundle.Range{Min: 0, Max: 1e300}},
			},
			Calibration: bundle.Calibration{Method: "none"},
			Tiers:       bundle.Tiers{Medium: 0.3, High: 0.5, Critical: 0.8},
			CheckVectors: []bundle.CheckVector{
				{Features: json.RawMessage(`{"numeric":{"a":1,"b":1}}`), Probability: 0.5},
			},
		},
		Model: bundle.Model{Type: bundle.ModelLogistic, Logistic: &bundle.Logistic{Weights: []float64{1e11, -1e11}}},
	}
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The overflowing model reproduces its check vector; Load's probes at the ends of the recorded
// ranges must refuse it.
func TestLoadProbesRefuseAModelThatOverflowsInItsTrainingRange(t *testing.T) {
	_, err := model.Load(overflowBundle(t))
	if !errors.Is(err, bundle.ErrInvalid) || !strings.Contains(err.Error(), "check_vectors[0] with every input at its range's max") {
		t.Fatalf("Load = %v, want ErrInvalid naming the probe at the ranges' maxima", err)
	}
}

// TestLoadProbesEveryCategory: a tree ensemble cannot overflow, but every probe of the default
// model must map and score: its categories, its missing inputs, its ranges.
func TestLoadProbesTheDefaultModel(t *testing.T) {
	if _, err := model.Load(defaultBundle(t)); err != nil {
		t.Fatalf("Load of the default model: %v", err)
	}
}
