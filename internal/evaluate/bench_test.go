package evaluate

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/churnhq/churn/internal/bundle"
)

// BenchmarkEvaluate measures a whole report (metrics, 103 lift points, tiers, 4 segments) on
// random rows, probabilities rounded to 4 decimals so that ties occur as in real scores.
func BenchmarkEvaluate(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			in := Input{
				Labels: make([]bool, n), Probabilities: make([]float64, n), Segments: make([]string, n),
				Tiers: &bundle.Tiers{Medium: 0.3, High: 0.6, Critical: 0.9},
			}
			for i := range n {
				p := float64(int(rng.Float64()*1e4)) / 1e4
				in.Probabilities[i] = p
				in.Labels[i] = rng.Float64() < p
				in.Segments[i] = string(rune('a' + i%4))
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Evaluate(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
