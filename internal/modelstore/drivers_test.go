package modelstore_test

import (
	"math"
	"os"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/modelstore"
)

func TestDrivers(t *testing.T) {
	t.Parallel()
	m, err := modelstore.Load(defaultBundle(t))
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
	x := make([]float64, m.Mapper.Width())
	if _, _, _, err := m.Score(req.GetFeatures(), x, nil); err != nil {
		t.Fatal(err)
	}
	base, drivers := m.Drivers(x, make([]float64, m.Mapper.Width()))
	sum := base
	byName := map[string]*churnv1.Driver{}
	for i, d := range drivers {
		sum += d.GetContribution()
		byName[d.GetFeature()] = d
		if i > 0 && d.GetContribution() > drivers[i-1].GetContribution() {
			t.Errorf("drivers not ordered by contribution: %v before %v", drivers[i-1], d)
		}
	}
	if margin := m.Eval.Margin(x); math.Abs(sum-margin) > 1e-12 {
		t.Errorf("base + contributions = %v, margin %v", sum, margin)
	}
	// Values are what the model saw before standardisation: the request's own numbers, the
	// complaint count after its indicator transform, 1 for a category.
	for name, want := range map[string]float64{
		"account.tenure_months": 14, "calls": 28, "complaints.count_90d": 1, "status": 1, "account.contract": 1, "customer_value": 120.5,
	} {
		d, ok := byName[name]
		if !ok {
			t.Errorf("no driver %s in %v", name, drivers)
			continue
		}
		if d.GetValue() != want {
			t.Errorf("driver %s value %v, want %v", name, d.GetValue(), want)
		}
	}
	// With 2 complaints and 12 failed calls, complaints and call failures raise the risk.
	for _, name := range []string{"complaints.count_90d", "call_failures"} {
		if d := byName[name]; d == nil || d.GetContribution() <= 0 {
			t.Errorf("driver %s = %v, want a positive contribution", name, d)
		}
	}
}
