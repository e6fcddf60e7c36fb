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

// overflowBundle is a valid logistic regression with weights of ±1e308 on numeric.a and
// numeric.b: it reproduces its check vector (a = b = 1: the terms cancel) and overflows to NaN as
// soon as both inputs are doubled.
func overflowBundle(t testing.TB) []byte {
	t.Helper()
	b := bundle.Bundle{
		Manifest: bundle.Manifest{
			FormatVersion: 1, Name: "overflow", Version: "overflow-1", CreatedAt: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
			Inputs: []bundle.Input{
				{Name: "a", Source: "numeric.a", Type: "numeric", Missing: bundle.Missing{Policy: "error"}},
				{Name: "b", Source: "numeric.b", Type: "numeric", Missing: bundle.Missing{Policy: "error"}},
			},
			Calibration: bundle.Calibration{Method: "none"},
			Tiers:       bundle.Tiers{Medium: 0.3, High: 0.5, Critical: 0.8},
			CheckVectors: []bundle.CheckVector{
				{Features: json.RawMessage(`{"numeric":{"a":1,"b":1}}`), Probability: 0.5},
			},
		},
		Model: bundle.Model{Type: bundle.ModelLogistic, Logistic: &bundle.Logistic{Weights: []float64{1e308, -1e308}}},
	}
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The overflowing model reproduces its check vector; Load's probes must refuse it.
func TestLoadProbesRefuseAModelThatOverflowsNearItsCheckVectors(t *testing.T) {
	_, err := model.Load(overflowBundle(t))
	if !errors.Is(err, bundle.ErrInvalid) || !strings.Contains(err.Error(), "check_vectors[0] × 2") {
		t.Fatalf("Load = %v, want ErrInvalid naming the ×2 probe", err)
	}
}
