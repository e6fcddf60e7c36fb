package model_test

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/model"
)

// BenchmarkExplain is the default model's customers (its ten check vectors, real customers of
// the training data, in turn) scored (path=score: Score, mapping and evaluation) and scored with
// their drivers (path=explain: Explain), in the same run, so that the difference is what the
// drivers add.
func BenchmarkExplain(b *testing.B) {
	m, err := model.Load(defaultBundle(b))
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
	b.Run("path=score", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := m.Score(rows[i%len(rows)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("path=explain", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := m.Explain(rows[i%len(rows)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
