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
	p, tier, _, err := m.Score(req.GetFeatures(), x, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := m.Explain(req.GetFeatures(), x, make([]float64, m.Mapper.Width()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Probability != p || s.Tier != tier || s.Margin != m.Eval.Margin(x) {
		t.Errorf("Explain: probability %v, tier %v, margin %v; Score: %v, %v, margin %v", s.Probability, s.Tier, s.Margin, p, tier, m.Eval.Margin(x))
	}
	drivers := s.Drivers
	sum := s.Base
	byName := map[string]*churnv1.Driver{}
	var named []*churnv1.Driver
	for _, d := range drivers {
		sum += d.GetContribution()
		byName[d.GetFeature()] = d
		if d.GetFeature() != modelstore.OtherDrivers {
			named = append(named, d)
		}
	}
	for i := 1; i < len(named); i++ {
		if named[i].GetContribution() > named[i-1].GetContribution() {
			t.Errorf("drivers not ordered by contribution: %v before %v", named[i-1], named[i])
		}
	}
	if len(named) > 2*modelstore.MaxDriversPerSide {
		t.Errorf("%d named drivers, want at most %d", len(named), 2*modelstore.MaxDriversPerSide)
	}
	// More inputs contribute than are named (all 13 for the logistic model, fewer for trees, which
	// leave some inputs unused): the rest are counted and added up in one entry.
	if other := byName[modelstore.OtherDrivers]; other == nil || other.GetValue() < 1 || other.GetValue() > float64(m.Mapper.NumInputs()-len(named)) || other.GetValue() != math.Trunc(other.GetValue()) {
		t.Errorf("other drivers = %v, want a count of 1 to %d inputs not named", other, m.Mapper.NumInputs()-len(named))
	}
	if margin := m.Eval.Margin(x); math.Abs(sum-margin) > 1e-12 {
		t.Errorf("base + contributions = %v, margin %v", sum, margin)
	}
	// Values are what the model saw before standardisation: the request's own numbers, the
	// complaint count after its indicator transform, 1 for a category. Which inputs are named
	// depends on the model; those named must carry these values.
	for name, want := range map[string]float64{
		"account.tenure_months": 14, "calls": 28, "complaints.count_90d": 1, "account.contract": 1, "customer_value": 120.5, "status": 1,
	} {
		d, ok := byName[name]
		if !ok {
			continue
		}
		if d.GetValue() != want {
			t.Errorf("driver %s value %v, want %v", name, d.GetValue(), want)
		}
	}
	// Having complained and making few calls raise this customer's risk most.
	for _, name := range []string{"complaints.count_90d", "calls"} {
		if d := byName[name]; d == nil || d.GetContribution() <= 0 {
			t.Errorf("driver %s = %v, want a positive contribution", name, d)
		}
	}
}

// TestDriversAllocations gates Explain at one allocation (the drivers and their slice together)
// and checks that the returned slice has no spare capacity, so appending to one response's drivers
// cannot write into memory that a later call hands out.
func TestDriversAllocations(t *testing.T) {
	m, err := modelstore.Load(defaultBundle(t))
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
	x, contrib := make([]float64, m.Mapper.Width()), make([]float64, m.Mapper.Width())
	imputed := make([]int, 0, m.Mapper.NumInputs())
	if n := testing.AllocsPerRun(100, func() { m.Explain(req.GetFeatures(), x, contrib, imputed) }); n != 1 {
		t.Errorf("Explain allocates %v times per call, want 1", n)
	}
	s, _, err := m.Explain(req.GetFeatures(), x, contrib, imputed)
	if err != nil {
		t.Fatal(err)
	}
	if drivers := s.Drivers; len(drivers) == 0 || cap(drivers) != len(drivers) {
		t.Errorf("Explain returned drivers of len %d cap %d, want a full slice of at least one driver", len(drivers), cap(drivers))
	}
}
