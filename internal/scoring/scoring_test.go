package scoring_test

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/scoring"
)

// refSigmoid is the documented two-branch form the trainer uses.
func refSigmoid(m float64) float64 {
	if m >= 0 {
		return 1 / (1 + math.Exp(-m))
	}
	z := math.Exp(m)
	return z / (1 + z)
}

// calibrated returns an evaluator of a one-column logistic model with calibration c.
func calibrated(t *testing.T, c bundle.Calibration) *scoring.Evaluator {
	t.Helper()
	return mustNew(t, newBundle(t, 1, logisticModel(0, 1), func(b *bundle.Bundle) { b.Manifest.Calibration = c }))
}

// same reports whether a and b are the same float64, NaN included.
func same(a, b float64) bool { return a == b || (a != a && b != b) }

func TestProbabilityNone(t *testing.T) {
	t.Parallel()
	e := calibrated(t, bundle.Calibration{Method: bundle.CalibrationNone})
	tests := []struct {
		name   string
		margin float64
		want   float64
	}{
		{"zero", 0, 0.5},
		{"negative zero", math.Copysign(0, -1), 0.5},
		{"one", 1, 1 / (1 + math.Exp(-1))},
		{"minus one", -1, math.Exp(-1) / (1 + math.Exp(-1))},
		{"large", 40, 1 / (1 + math.Exp(-40))},
		{"saturates at 1", 1000, 1},
		{"small stays positive", -40, math.Exp(-40) / (1 + math.Exp(-40))},
		{"underflows to the least subnormal", -745, 5e-324},
		{"underflows to 0", -1000, 0},
		{"largest float", math.MaxFloat64, 1},
		{"most negative float", -math.MaxFloat64, 0},
		{"+Inf", math.Inf(1), 1},
		{"-Inf", math.Inf(-1), 0},
		{"NaN", math.NaN(), math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.Probability(tc.margin); !same(got, tc.want) {
				t.Errorf("Probability(%g) = %.17g, want %.17g", tc.margin, got, tc.want)
			}
		})
	}
}

// TestSigmoidMatchesTrainerForm pins the branch-free sigmoid to the two-branch form bit for bit,
// over margins of every magnitude and both signs.
func TestSigmoidMatchesTrainerForm(t *testing.T) {
	t.Parallel()
	e := calibrated(t, bundle.Calibration{Method: bundle.CalibrationNone})
	rng := rand.New(rand.NewPCG(7, 7))
	for range 100000 {
		m := rng.NormFloat64() * math.Pow(10, float64(rng.IntN(8)-3))
		got, want := e.Probability(m), refSigmoid(m)
		if got != want {
			t.Fatalf("Probability(%.17g) = %.17g, the trainer's form gives %.17g", m, got, want)
		}
		if !(got >= 0 && got <= 1) {
			t.Fatalf("Probability(%.17g) = %g, outside [0,1]", m, got)
		}
	}
}

func TestProbabilityPlatt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		a, b   float64
		margin float64
		want   float64
	}{
		{"identity", 1, 0, 0.3, refSigmoid(0.3)},
		{"centred at the margin", 2, -1, 0.5, 0.5},
		{"scaled and shifted", 0.5, 0.25, -3, refSigmoid(0.5*-3 + 0.25)},
		{"decreasing", -1, 0, 2, refSigmoid(-2)},
		{"overflowing product saturates", 10, 0, math.MaxFloat64, 1},
		{"overflowing product saturates below", 10, 0, -math.MaxFloat64, 0},
		{"infinite margin", 0.5, 3, math.Inf(1), 1},
		{"zero slope ignores the margin", 0, 1, 123, refSigmoid(1)},
		{"zero slope ignores an infinite margin", 0, 1, math.Inf(-1), refSigmoid(1)},
		{"NaN margin", 0, 1, math.NaN(), math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := calibrated(t, bundle.Calibration{Method: bundle.CalibrationPlatt, A: tc.a, B: tc.b})
			if got := e.Probability(tc.margin); !same(got, tc.want) {
				t.Errorf("Probability(%g) with a=%g b=%g = %.17g, want %.17g", tc.margin, tc.a, tc.b, got, tc.want)
			}
		})
	}
}

func TestProbabilityIsotonic(t *testing.T) {
	t.Parallel()
	// sigmoid(0) is exactly 0.5, sigmoid(±Inf) exactly 1 and 0, so these margins hit known
	// points of the curve.
	inf := math.Inf(1)
	tests := []struct {
		name   string
		x, y   []float64
		margin float64
		want   float64
	}{
		{"at a point", []float64{0.1, 0.5, 0.9}, []float64{0.2, 0.4, 1}, 0, 0.4},
		{"between points", []float64{0.25, 0.75}, []float64{0.1, 0.3}, 0, 0.2},
		{"below the first point clips", []float64{0.1, 0.5, 0.9}, []float64{0.2, 0.4, 1}, -inf, 0.2},
		{"above the last point clips", []float64{0.1, 0.5, 0.9}, []float64{0.2, 0.4, 0.8}, inf, 0.8},
		{"at the last point", []float64{0, 0.5}, []float64{0.1, 0.3}, 0, 0.3},
		{"at the first point", []float64{0.5, 0.7}, []float64{0.1, 0.3}, 0, 0.1},
		{"covering [0,1], at 0", []float64{0, 1}, []float64{0.05, 0.95}, -inf, 0.05},
		{"covering [0,1], at 1", []float64{0, 1}, []float64{0.05, 0.95}, inf, 0.95},
		{"repeated x: the last point's y", []float64{0.2, 0.5, 0.5, 0.8}, []float64{0.1, 0.3, 0.6, 0.9}, 0, 0.6},
		{"flat segment", []float64{0.2, 0.4, 0.6, 0.8}, []float64{0.1, 0.5, 0.5, 0.9}, 0, 0.5},
		{"NaN margin", []float64{0.2, 0.8}, []float64{0.1, 0.9}, math.NaN(), math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := calibrated(t, bundle.Calibration{Method: bundle.CalibrationIsotonic, X: tc.x, Y: tc.y})
			if got := e.Probability(tc.margin); !same(got, tc.want) {
				t.Errorf("Probability(%g) = %.17g, want %.17g", tc.margin, got, tc.want)
			}
		})
	}
}

// refInterp is numpy.interp with clipping, by a linear scan: the last point with x <= s, then
// slope*(s - x[j]) + y[j].
func refInterp(xs, ys []float64, s float64) float64 {
	last := len(xs) - 1
	if s < xs[0] {
		return ys[0]
	}
	if s >= xs[last] {
		return ys[last]
	}
	j := 0
	for j+1 < len(xs) && xs[j+1] <= s {
		j++
	}
	slope := (ys[j+1] - ys[j]) / (xs[j+1] - xs[j])
	return slope*(s-xs[j]) + ys[j]
}

// TestIsotonicRandom compares the binary search with a linear scan on random monotone curves,
// with repeated x values, at random margins and at the curve's own points.
func TestIsotonicRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 12))
	for range 200 {
		n := 2 + rng.IntN(40)
		xs, ys := make([]float64, n), make([]float64, n)
		for i := range xs {
			xs[i], ys[i] = rng.Float64(), rng.Float64()
			if i > 0 && rng.IntN(5) == 0 {
				xs[i] = xs[i-1]
			}
		}
		sortFloats(xs)
		sortFloats(ys)
		if xs[0] == xs[n-1] {
			continue
		}
		e := calibrated(t, bundle.Calibration{Method: bundle.CalibrationIsotonic, X: xs, Y: ys})
		for range 200 {
			m := rng.NormFloat64() * 3
			if got, want := e.Probability(m), refInterp(xs, ys, refSigmoid(m)); got != want {
				t.Fatalf("x=%v y=%v: Probability(%.17g) = %.17g, want %.17g", xs, ys, m, got, want)
			}
		}
		for i := range xs {
			// A margin whose sigmoid lands exactly on a point, where one exists.
			m := math.Log(xs[i] / (1 - xs[i]))
			if refSigmoid(m) != xs[i] {
				continue
			}
			if got, want := e.Probability(m), refInterp(xs, ys, xs[i]); got != want {
				t.Fatalf("x=%v y=%v: at point %d, Probability = %.17g, want %.17g", xs, ys, i, got, want)
			}
		}
	}
}

func sortFloats(xs []float64) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

func TestTier(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		tiers bundle.Tiers
		p     float64
		want  scoring.Tier
	}{
		{"zero", bundle.Tiers{Medium: 0.25, High: 0.5, Critical: 0.75}, 0, scoring.TierLow},
		{"just below medium", bundle.Tiers{Medium: 0.25, High: 0.5, Critical: 0.75}, math.Nextafter(0.25, 0), scoring.TierLow},
		{"at medium", bundle.Tiers{Medium: 0.25, High: 0.5, Critical: 0.75}, 0.25, scoring.TierMedium},
		{"just below high", bundle.Tiers{Medium: 0.25, High: 0.5, Critical: 0.75}, math.Nextafter(0.5, 0), scoring.TierMedium},
		{"at high", bundle.Tiers{Medium: 0.25, High: 0.5, Critical: 0.75}, 0.5, scoring.TierHigh},
		{"just below critical", bundle.Tiers{Medium: 0.25, High: 0.5, Critical: 0.75}, math.Nextafter(0.75, 0), scoring.TierHigh},
		{"at critical", bundle.Tiers{Medium: 0.25, High: 0.5, Critical: 0.75}, 0.75, scoring.TierCritical},
		{"one", bundle.Tiers{Medium: 0.25, High: 0.5, Critical: 0.75}, 1, scoring.TierCritical},
		{"NaN has no tier", bundle.Tiers{Medium: 0.25, High: 0.5, Critical: 0.75}, math.NaN(), scoring.TierUnspecified},
		{"equal thresholds: the highest", bundle.Tiers{Medium: 0.5, High: 0.5, Critical: 0.5}, 0.5, scoring.TierCritical},
		{"equal thresholds, below", bundle.Tiers{Medium: 0.5, High: 0.5, Critical: 0.5}, 0.4, scoring.TierLow},
		{"critical at 1, below", bundle.Tiers{Medium: 0.1, High: 0.2, Critical: 1}, 0.999, scoring.TierHigh},
		{"critical at 1, at 1", bundle.Tiers{Medium: 0.1, High: 0.2, Critical: 1}, 1, scoring.TierCritical},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := mustNew(t, newBundle(t, 1, logisticModel(0, 1), func(b *bundle.Bundle) { b.Manifest.Tiers = tc.tiers }))
			if got := e.Tier(tc.p); got != tc.want {
				t.Errorf("Tier(%g) with %+v = %v, want %v", tc.p, tc.tiers, got, tc.want)
			}
		})
	}
}

func TestTierString(t *testing.T) {
	t.Parallel()
	got := map[scoring.Tier]string{}
	for _, tier := range []scoring.Tier{scoring.TierUnspecified, scoring.TierLow, scoring.TierMedium, scoring.TierHigh, scoring.TierCritical, 9} {
		got[tier] = tier.String()
	}
	want := map[scoring.Tier]string{
		scoring.TierUnspecified: "UNSPECIFIED",
		scoring.TierLow:         "LOW",
		scoring.TierMedium:      "MEDIUM",
		scoring.TierHigh:        "HIGH",
		scoring.TierCritical:    "CRITICAL",
		9:                       "Tier(9)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Tier.String (-want +got):\n%s", diff)
	}
}

func TestLogistic(t *testing.T) {
	t.Parallel()
	e := mustNew(t, newBundle(t, 3, logisticModel(0.5, 2, -1, 0.25), nil))
	if got := e.Width(); got != 3 {
		t.Errorf("Width() = %d, want 3", got)
	}
	tests := []struct {
		name string
		x    []float64
		want float64
	}{
		{"zeros give the intercept", []float64{0, 0, 0}, 0.5},
		{"known answer", []float64{1, 3, 8}, 1.5},
		{"columns past the width are ignored", []float64{1, 3, 8, 1e9}, 1.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.Margin(tc.x); got != tc.want {
				t.Errorf("Margin(%v) = %g, want %g", tc.x, got, tc.want)
			}
		})
	}
}

// TestLogisticOrder pins the documented order of the sum: intercept first, then column 0
// upward, each product rounded. Random weights over many magnitudes make any other order differ.
func TestLogisticOrder(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100 {
		n := 1 + rng.IntN(64)
		w, x := make([]float64, n), make([]float64, n)
		for i := range w {
			w[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-6))
			x[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-6))
		}
		intercept := rng.NormFloat64()
		e := mustNew(t, newBundle(t, n, logisticModel(intercept, w...), nil))
		want := intercept
		for i := range w {
			want += float64(w[i] * x[i])
		}
		if got := e.Margin(x); got != want {
			t.Fatalf("Margin = %.17g, the documented order gives %.17g", got, want)
		}
	}
}

func TestMarginShortInputPanics(t *testing.T) {
	t.Parallel()
	for _, model := range []bundle.Model{logisticModel(0, 1, 2), treesModel(bundle.CompareLess, 0, split(1, 0.5, true, -1, 1))} {
		e := mustNew(t, newBundle(t, 2, model, nil))
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Margin of 1 column for a width of 2 did not panic", model.Type)
				}
			}()
			e.Margin([]float64{1})
		}()
	}
}

// TestNewCopies checks that the evaluator does not share the bundle's slices.
func TestNewCopies(t *testing.T) {
	t.Parallel()
	b := newBundle(t, 2, logisticModel(0, 1, 2), func(b *bundle.Bundle) {
		b.Manifest.Calibration = bundle.Calibration{Method: bundle.CalibrationIsotonic, X: []float64{0, 1}, Y: []float64{0, 1}}
	})
	tb := newBundle(t, 1, treesModel(bundle.CompareLess, 0, split(0, 0.5, true, -1, 1)), nil)
	e, te := mustNew(t, b), mustNew(t, tb)
	x := []float64{1, 1}
	m, p, tm := e.Margin(x), e.Probability(0.3), te.Margin(x)
	b.Model.Logistic.Weights[0] = 100
	b.Manifest.Calibration.Y[1] = 0.5
	tb.Model.Trees.Trees[0].Value[2] = 100
	tb.Model.Trees.Trees[0].Threshold[0] = 100
	if got := e.Margin(x); got != m {
		t.Errorf("Margin changed with the bundle's weights: %g, was %g", got, m)
	}
	if got := e.Probability(0.3); got != p {
		t.Errorf("Probability changed with the bundle's calibration: %g, was %g", got, p)
	}
	if got := te.Margin(x); got != tm {
		t.Errorf("tree Margin changed with the bundle's trees: %g, was %g", got, tm)
	}
}

// TestConcurrent runs one evaluator from several goroutines (meaningful under -race).
func TestConcurrent(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 9))
	g := &treeGen{rng: rng, cols: 10, depth: 5}
	e := mustNew(t, newBundle(t, 10, treesModel(bundle.CompareLessEqual, 0.1, g.trees(50)...), nil))
	xs := benchInputs(rng, 10)[:64]
	want := make([]float64, len(xs))
	for i, x := range xs {
		want[i] = e.Probability(e.Margin(x))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			for i, x := range xs {
				if got := e.Probability(e.Margin(x)); got != want[i] {
					errs <- "concurrent evaluation differs"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestZeroAllocs gates the scoring path: Margin, Probability and Tier allocate nothing.
func TestZeroAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	g := &treeGen{rng: rng, cols: 20, depth: 6}
	w := make([]float64, 20)
	isotonic := func(b *bundle.Bundle) {
		b.Manifest.Calibration = bundle.Calibration{Method: bundle.CalibrationIsotonic, X: []float64{0, 0.3, 0.6, 1}, Y: []float64{0, 0.2, 0.7, 1}}
	}
	platt := func(b *bundle.Bundle) {
		b.Manifest.Calibration = bundle.Calibration{Method: bundle.CalibrationPlatt, A: 1.1, B: -0.2}
	}
	tests := []struct {
		name string
		b    *bundle.Bundle
	}{
		{"logistic", newBundle(t, 20, logisticModel(0, w...), nil)},
		{"logistic/platt", newBundle(t, 20, logisticModel(0, w...), platt)},
		{"trees/lt", newBundle(t, 20, treesModel(bundle.CompareLess, 0, g.trees(30)...), nil)},
		{"trees/le/isotonic", newBundle(t, 20, treesModel(bundle.CompareLessEqual, 0, g.trees(30)...), isotonic)},
	}
	x := benchInputs(rng, 20)[0]
	x[3] = math.NaN()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustNew(t, tc.b)
			var sink float64
			allocs := testing.AllocsPerRun(100, func() {
				p := e.Probability(e.Margin(x))
				sink += p + float64(e.Tier(p))
			})
			if allocs != 0 {
				t.Errorf("Margin+Probability+Tier allocate %g times per row, want 0", allocs)
			}
		})
	}
}
