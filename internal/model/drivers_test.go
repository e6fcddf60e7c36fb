package model_test

import (
	"encoding/json"
	"math"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/model"
)

func TestDrivers(t *testing.T) {
	t.Parallel()
	m, err := model.Load(defaultBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../testdata/requests/basic.json")
	if err != nil {
		t.Fatal(err)
	}
	var req churnv1.ScoreRequest
	if err := protojson.Unmarshal(data, &req); err != nil {
		t.Fatal(err)
	}
	sc, err := m.Score(req.GetFeatures())
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Explain(req.GetFeatures())
	if err != nil {
		t.Fatal(err)
	}
	if s.Probability != sc.Probability || s.Tier != sc.Tier || s.Margin != sc.Margin {
		t.Errorf("Explain: probability %v, tier %v, margin %v; Score: %v, %v, margin %v", s.Probability, s.Tier, s.Margin, sc.Probability, sc.Tier, sc.Margin)
	}
	drivers := s.Drivers()
	sum := s.Base
	byName := map[string]model.Driver{}
	var named []model.Driver
	for _, d := range drivers {
		sum += d.Contribution
		byName[d.Feature] = d
		if d.Feature != model.OtherDrivers {
			named = append(named, d)
		}
	}
	for i := 1; i < len(named); i++ {
		if named[i].Contribution > named[i-1].Contribution {
			t.Errorf("drivers not ordered by contribution: %v before %v", named[i-1], named[i])
		}
	}
	if len(named) > 2*model.MaxDriversPerSide {
		t.Errorf("%d named drivers, want at most %d", len(named), 2*model.MaxDriversPerSide)
	}
	// More inputs contribute than are named (all 13 for the logistic model, fewer for trees, which
	// leave some inputs unused): the rest are counted and added up in one entry.
	if other, ok := byName[model.OtherDrivers]; !ok || other.Value < 1 || other.Value > float64(m.NumInputs()-len(named)) || other.Value != math.Trunc(other.Value) {
		t.Errorf("other drivers = %v, want a count of 1 to %d inputs not named", other, m.NumInputs()-len(named))
	}
	if math.Abs(sum-s.Margin) > 1e-12 {
		t.Errorf("base + contributions = %v, margin %v", sum, s.Margin)
	}
	// Values are what the model saw before standardisation: the request's own numbers, the
	// complaint count after its indicator transform, 1 for a category (which Category names).
	// Which inputs are named depends on the model; those named must carry these values.
	for name, want := range map[string]float64{
		"account.tenure_months": 14, "calls": 28, "complaints.count_90d": 1, "account.contract": 1, "customer_value": 120.5, "status": 1,
	} {
		d, ok := byName[name]
		if !ok {
			continue
		}
		if d.Value != want {
			t.Errorf("driver %s value %v, want %v", name, d.Value, want)
		}
	}
	for name, want := range map[string]string{"account.contract": "pay_as_you_go", "status": "active", "calls": ""} {
		if d, ok := byName[name]; ok && d.Category != want {
			t.Errorf("driver %s category %q, want %q", name, d.Category, want)
		}
	}
	// Having complained and making few calls raise this customer's risk most.
	for _, name := range []string{"complaints.count_90d", "calls"} {
		if d, ok := byName[name]; !ok || d.Contribution <= 0 {
			t.Errorf("driver %s = %v, want a positive contribution", name, d)
		}
	}
}

// TestExplainAllocations gates Explain at two allocations for a customer with no imputed input:
// the drivers, and the sync.Pool's boxing of the scratch buffers when a collection emptied it
// (amortised to 0 here). The server's Score budget depends on it.
func TestExplainAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops the scratch buffers at random; counted in the plain run")
	}
	m, err := model.Load(defaultBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../testdata/requests/complaints.json")
	if err != nil {
		t.Fatal(err)
	}
	var req churnv1.ScoreRequest
	if err := protojson.Unmarshal(data, &req); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { m.Explain(req.GetFeatures()) }); n > 0 {
		t.Errorf("Explain allocates %v times per call, want 0 (the drivers are held in the Result)", n)
	}
}

// TestDriverCategory: a categorical input's driver says which category the model saw: the
// request's, or the one a missing or unknown value was imputed with; none (value 0) when an
// unknown value set no column (the ignore policy). A numeric input's has none.
func TestDriverCategory(t *testing.T) {
	t.Parallel()
	plan := func(unseen string) []byte {
		b := bundle.Bundle{
			Manifest: bundle.Manifest{
				FormatVersion: 1, Name: "plans", Version: "plans-1", CreatedAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
				Inputs: []bundle.Input{
					{Name: "plan", Source: "categorical.plan", Type: "categorical", Categories: []string{"basic", "card", "premium"},
						Missing: bundle.Missing{Policy: "impute", Category: "basic"}, Unseen: unseen},
					{Name: "calls", Source: "numeric.calls", Type: "numeric", Missing: bundle.Missing{Policy: "impute", Value: 3}},
				},
				Calibration:  bundle.Calibration{Method: "none"},
				Tiers:        bundle.Tiers{Medium: 0.3, High: 0.5, Critical: 0.8},
				CheckVectors: []bundle.CheckVector{{Features: json.RawMessage(`{"numeric":{"calls":0}}`), Probability: 0.5}},
			},
			Model: bundle.Model{Type: "logistic_regression", Logistic: &bundle.Logistic{Weights: []float64{0.5, 1, 2, 0.25}, Intercept: -0.5}},
		}
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tests := []struct {
		name, unseen, plan string
		value              float64
		category           string
	}{
		{"known", "missing", "card", 1, "card"},
		{"missing: imputed", "missing", "", 1, "basic"},
		{"unknown: imputed", "missing", "gold", 1, "basic"},
		{"unknown: ignored", "ignore", "gold", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := model.Load(plan(tc.unseen))
			if err != nil {
				t.Fatal(err)
			}
			f := &churnv1.CustomerFeatures{Numeric: map[string]float64{"calls": 2}}
			if tc.plan != "" {
				f.Categorical = map[string]string{"plan": tc.plan}
			}
			r, err := m.Explain(f)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]model.Driver{}
			for _, d := range r.Drivers() {
				got[d.Feature] = d
			}
			if d := got["plan"]; d.Value != tc.value || d.Category != tc.category {
				t.Errorf("plan's driver %+v, want value %v and category %q", d, tc.value, tc.category)
			}
			if d := got["calls"]; d.Value != 2 || d.Category != "" {
				t.Errorf("calls' driver %+v, want value 2 and no category", d)
			}
		})
	}
}
