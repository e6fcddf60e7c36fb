package train

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/bundle"
)

// derivedSpec is runSpec with derived inputs: a sum of an input with missing training values
// (tenure), a ratio that is undefined whenever a customer has no complaint, and a derived input
// of a derived input.
var derivedSpec = strings.Replace(runSpec, "\n  }\n}", `
  },
  "derived": [
    {"name": "usage", "op": "sum", "args": ["account.tenure_months", "calls", "complaints.count_90d"]},
    {"name": "calls_per_complaint", "op": "ratio", "args": ["calls", "complaints.count_90d"]},
    {"name": "usage_log", "op": "log1p", "args": ["usage"]}
  ]
}`, 1)

// TestRunDerivedInputsServeAsTrained trains with derived inputs under both encodings and loads
// the bundle into the serving code, which refuses it unless its own mapping reproduces the check
// vectors; the golden rows (every test row) must score as the trainer scored them, too.
func TestRunDerivedInputsServeAsTrained(t *testing.T) {
	t.Parallel()
	spec := mustSpec(t, derivedSpec)
	if len(spec.Derived) != 3 {
		t.Fatalf("derivedSpec has %d derived inputs, want 3", len(spec.Derived))
	}
	ds, err := ReadCSV(strings.NewReader(toyCSV(600, 9)), spec)
	if err != nil {
		t.Fatal(err)
	}
	trainRows, testRows := StratifiedSplit(ds.Labels, 0.2, 42)
	opt := DefaultGBDTOptions
	opt.MaxRounds = 30
	tests := []struct {
		name    string
		trainer Trainer
		// policies of the derived inputs usage, calls_per_complaint, usage_log
		policies []string
		std      bool
	}{
		{"logistic", LogisticTrainer(1), []string{bundle.MissingImpute, bundle.MissingImpute, bundle.MissingImpute}, true},
		// usage is undefined (NaN) where tenure is missing, the ratio where there is no complaint.
		{"gbdt", GBDTTrainer(opt), []string{bundle.MissingNative, bundle.MissingNative, bundle.MissingNative}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{
				Data: ds, TrainRows: trainRows, TestRows: testRows, Tiers: DefaultTierQuantiles,
				Trainers: []Trainer{tc.trainer}, Seed: 42, Name: "toy", Version: "toy-derived",
				CreatedAt: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
			}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			inputs := res.Bundle.Manifest.Inputs
			derived := inputs[len(inputs)-3:]
			for k, in := range derived {
				d := spec.Derived[k]
				if in.Name != d.Name || in.Derive == nil || in.Derive.Op != d.Op || in.Source != "" {
					t.Errorf("input %d = %+v, want the derived input %+v", len(inputs)-3+k, in, d)
				}
				if in.Missing.Policy != tc.policies[k] {
					t.Errorf("%s: missing policy %q, want %q", in.Name, in.Missing.Policy, tc.policies[k])
				}
				if (in.Standardize != nil) != tc.std {
					t.Errorf("%s: standardize %+v, want standardised %v", in.Name, in.Standardize, tc.std)
				}
			}
			checkServes(t, res)
		})
	}
}

// TestPrepDerivesAsServing checks the derived columns of one row by hand: values after
// imputation and transform, before standardisation.
func TestPrepDerivesAsServing(t *testing.T) {
	t.Parallel()
	spec := mustSpec(t, derivedSpec)
	csv := "customer,complaints,tenure,plan,calls,status,churned\n" +
		"a,2,10,1,99,active,1\n" +
		"b,0,,2,0,active,0\n" +
		"c,1,30,1,9,paused,0\n"
	ds, err := ReadCSV(strings.NewReader(csv), spec)
	if err != nil {
		t.Fatal(err)
	}
	pp, err := LearnPrepFor(ds, []int{0, 1, 2}, EncodeRawImputed)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, pp.Width())
	last := func() []float64 { return x[len(x)-3:] }
	// Row a: complaints 2 → indicator 1; calls 99 → log1p(99).
	pp.Encode(ds.Rows[0], x)
	usage := 10 + math.Log1p(99) + 1
	want := []float64{usage, math.Log1p(99) / 1, math.Log1p(usage)}
	for k := range want {
		if last()[k] != want[k] {
			t.Errorf("row a: derived %d = %v, want %v", k, last()[k], want[k])
		}
	}
	// Row b: tenure imputed with the median 20; the ratio is undefined (indicator 0) and takes
	// its imputation value, the median of the defined training ratios (rows a and c).
	pp.Encode(ds.Rows[1], x)
	usage = 20 + math.Log1p(0) + 0
	ratioMedian := (math.Log1p(99) + math.Log1p(9)) / 2
	want = []float64{usage, ratioMedian, math.Log1p(usage)}
	for k := range want {
		if last()[k] != want[k] {
			t.Errorf("row b: derived %d = %v, want %v", k, last()[k], want[k])
		}
	}
}
