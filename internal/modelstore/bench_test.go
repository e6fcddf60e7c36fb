package modelstore_test

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/modelstore"
)

// BenchmarkExplain is the default model's customers (its ten check vectors, real customers of
// the training data, in turn) scored (path=score: Score, mapping and evaluation) and scored with
// their drivers (path=explain: Explain), in the same run, so that the difference is what the
// drivers add.
func BenchmarkExplain(b *testing.B) {
	m, err := modelstore.Load(defaultBundle(b))
	if err != nil {
		b.Fatal(err)
	}
	var rows []*churnv1.CustomerFeatures
	for _, cv := range m.Bundle.Manifest.CheckVectors {
		f := &churnv1.CustomerFeatures{}
		if err := protojson.Unmarshal(cv.Features, f); err != nil {
			b.Fatal(err)
		}
		rows = append(rows, f)
	}
	x, contrib := make([]float64, m.Mapper.Width()), make([]float64, m.Mapper.Width())
	imputed := make([]int, 0, m.Mapper.NumInputs())
	b.Run("path=score", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, _, _, err := m.Score(rows[i%len(rows)], x, imputed); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("path=explain", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, _, err := m.Explain(rows[i%len(rows)], x, contrib, imputed); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
