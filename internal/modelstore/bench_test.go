package modelstore_test

import (
	"os"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/modelstore"
)

// BenchmarkExplain is one customer of the default model scored (path=score: Score, mapping and
// evaluation) and scored with its drivers (path=explain: Explain), in the same run, so that the
// difference is what the drivers add.
func BenchmarkExplain(b *testing.B) {
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
	imputed := make([]int, 0, m.Mapper.NumInputs())
	b.Run("path=score", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, _, err := m.Score(req.GetFeatures(), x, imputed); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("path=explain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := m.Explain(req.GetFeatures(), x, contrib, imputed); err != nil {
				b.Fatal(err)
			}
		}
	})
}
