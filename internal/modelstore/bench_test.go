package modelstore_test

import (
	"os"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/modelstore"
)

// BenchmarkDrivers is the drivers of one customer of the default model, after mapping.
func BenchmarkDrivers(b *testing.B) {
	m, err := modelstore.Load(defaultBundle(b))
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile("../../testdata/requests/complaints.json")
	if err != nil {
		b.Fatal(err)
	}
	var req churnv1.ScoreRequest
	if err := protojson.Unmarshal(data, &req); err != nil {
		b.Fatal(err)
	}
	x, contrib := make([]float64, m.Mapper.Width()), make([]float64, m.Mapper.Width())
	if _, _, _, err := m.Score(req.GetFeatures(), x, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		m.Drivers(x, contrib)
	}
}
