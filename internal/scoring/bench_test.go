package scoring_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/churnhq/churn/internal/bundle"
)

// benchRows is the number of distinct input rows a benchmark cycles through, so that the branch
// predictor cannot learn one row's paths.
const benchRows = 1024

func benchInputs(rng *rand.Rand, cols int) [][]float64 {
	xs := make([][]float64, benchRows)
	for i := range xs {
		xs[i] = make([]float64, cols)
		for j := range xs[i] {
			xs[i][j] = rng.NormFloat64()
		}
	}
	return xs
}

// BenchmarkLogistic is one row through a 20-weight logistic regression: margin, probability,
// tier.
func BenchmarkLogistic(b *testing.B) {
	const cols = 20
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]float64, cols)
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	e := mustNew(b, newBundle(b, cols, logisticModel(-1, w...), nil))
	xs := benchInputs(rng, cols)
	var sink float64
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := e.Probability(e.Margin(xs[i%benchRows]))
		sink += p + float64(e.Tier(p))
		i++
	}
	_ = sink
}

// BenchmarkTrees is one row through random trees over 20 columns, with "lt" splits and standard
// normal thresholds and inputs: margin, probability, tier. TxD is T full trees of depth D;
// missing=F replaces a fraction F of the inputs with NaN; ragged trees split each node with
// probability 0.75 down to depth D, as leaf-wise learners (LightGBM) grow them.
func BenchmarkTrees(b *testing.B) {
	const cols = 20
	for _, c := range []struct {
		name         string
		trees, depth int
		split        float64
		missing      float64
	}{
		{"300x6", 300, 6, 0, 0},
		{"100x4", 100, 4, 0, 0},
		{"300x6/missing=0.2", 300, 6, 0, 0.2},
		{"300x10/ragged", 300, 10, 0.75, 0},
	} {
		b.Run(c.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(3, 4))
			g := &treeGen{rng: rng, cols: cols, depth: c.depth, split: c.split}
			e := mustNew(b, newBundle(b, cols, treesModel(bundle.CompareLess, 0, g.trees(c.trees)...), nil))
			xs := benchInputs(rng, cols)
			for _, x := range xs {
				for j := range x {
					if rng.Float64() < c.missing {
						x[j] = math.NaN()
					}
				}
			}
			var sink float64
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p := e.Probability(e.Margin(xs[i%benchRows]))
				sink += p + float64(e.Tier(p))
				i++
			}
			_ = sink
		})
	}
}

// BenchmarkProbability is the calibration alone, at standard normal margins.
func BenchmarkProbability(b *testing.B) {
	xs, ys := make([]float64, 100), make([]float64, 100)
	for i := range xs {
		xs[i], ys[i] = float64(i)/99, math.Sqrt(float64(i)/99)
	}
	for _, c := range []struct {
		name string
		cal  bundle.Calibration
	}{
		{"none", bundle.Calibration{Method: bundle.CalibrationNone}},
		{"platt", bundle.Calibration{Method: bundle.CalibrationPlatt, A: 1.2, B: -0.3}},
		{"isotonic100", bundle.Calibration{Method: bundle.CalibrationIsotonic, X: xs, Y: ys}},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := mustNew(b, newBundle(b, 1, logisticModel(0, 1), func(bd *bundle.Bundle) { bd.Manifest.Calibration = c.cal }))
			rng := rand.New(rand.NewPCG(5, 6))
			margins := make([]float64, benchRows)
			for i := range margins {
				margins[i] = rng.NormFloat64()
			}
			var sink float64
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sink += e.Probability(margins[i%benchRows])
				i++
			}
			_ = sink
		})
	}
}

// BenchmarkExplain is the margin alone (path=margin) against the margin with the attribution
// (path=explain), in the same run, for random forests over 20 columns as in BenchmarkTrees, so
// that the difference is what the drivers' contributions cost.
func BenchmarkExplain(b *testing.B) {
	const cols = 20
	for _, c := range []struct {
		name         string
		trees, depth int
		split        float64
	}{
		{"300x6", 300, 6, 0},
		{"120x8/ragged", 120, 8, 0.75},
	} {
		rng := rand.New(rand.NewPCG(3, 4))
		g := &treeGen{rng: rng, cols: cols, depth: c.depth, split: c.split}
		e := mustNew(b, newBundle(b, cols, treesModel(bundle.CompareLess, 0, g.trees(c.trees)...), nil))
		xs := benchInputs(rng, cols)
		dst := make([]float64, cols)
		for _, path := range []string{"margin", "explain"} {
			b.Run(c.name+"/path="+path, func(b *testing.B) {
				var sink float64
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if path == "margin" {
						sink += e.Margin(xs[i%benchRows])
					} else {
						m, base := e.Explain(xs[i%benchRows], dst)
						sink += m + base
					}
					i++
				}
				_ = sink
			})
		}
	}
}
