package golearntree

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// tiny is a small synthetic training set: churn when column 0 is high or column 1 is low, with
// a few rows against the rule so that the trees have impure leaves.
func tiny() (X []float64, n, d int, y []bool) {
	n, d = 60, 3
	for i := range n {
		a, b, c := float64(i%10), float64((i*7)%11), float64(i%3)
		X = append(X, a, b, c)
		y = append(y, (a >= 7 || b <= 1) != (i%13 == 0))
	}
	return X, n, d, y
}

func TestFitErrors(t *testing.T) {
	t.Parallel()
	X, n, d, y := tiny()
	withNaN := append([]float64(nil), X...)
	withNaN[2*d+1] = math.NaN()
	withInf := append([]float64(nil), X...)
	withInf[5*d] = math.Inf(-1)
	allTrue := make([]bool, n)
	for i := range allTrue {
		allTrue[i] = true
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		kind string
		X    []float64
		n, d int
		y    []bool
		opt  Options
		want string // a part of the error
	}{
		{name: "unknown kind", kind: "xgboost", want: `unknown kind "xgboost"`},
		{name: "empty kind", kind: "", want: "unknown kind"},
		{name: "n*d != len(X)", kind: KindCART, n: n + 1, want: "len(X)=180 is not n*d=61*3"},
		{name: "d does not divide", kind: KindCART, d: 4, want: "is not n*d"},
		{name: "zero rows", kind: KindCART, n: 0, X: []float64{}, y: []bool{}, want: "want n > 0 rows"},
		{name: "negative columns", kind: KindCART, d: -3, want: "d > 0 columns"},
		{name: "len(y)", kind: KindID3, y: y[:n-1], want: "len(y)=59, want n=60"},
		{name: "NaN", kind: KindCART, X: withNaN, want: "row 2, column 1 of X is NaN"},
		{name: "Inf", kind: KindRandomForest, X: withInf, want: "row 5, column 0 of X is -Inf"},
		{name: "one class", kind: KindID3, y: allTrue, want: "one class only (60 positive of 60 rows)"},
		{name: "cancelled", ctx: cancelled, kind: KindCART, want: "context canceled"},
		{name: "nil context", ctx: context.Context(nil), kind: KindCART, want: "nil context"},
		{name: "max depth", kind: KindCART, opt: Options{MaxDepth: 65}, want: "options.max_depth 65"},
		{name: "negative trees", kind: KindRandomForest, opt: Options{Trees: -1}, want: "options.trees -1"},
		{name: "bins", kind: KindID3, opt: Options{Bins: 1}, want: "options.bins 1"},
		{name: "features per tree", kind: KindRandomForest, opt: Options{FeaturesPerTree: 4}, want: "options.features_per_tree 4: want 0 (default) to d=3"},
		{name: "cart bins", kind: KindCART, opt: Options{CARTBins: 1}, want: "options.cart_bins 1"},
		{name: "criterion", kind: KindCART, opt: Options{Criterion: "mse"}, want: `options.criterion "mse"`},
		{name: "column count", kind: KindCART, opt: Options{Columns: []string{"a", "b"}}, want: "options.columns has 2 names for d=3"},
		{name: "empty column", kind: KindCART, opt: Options{Columns: []string{"a", "", "c"}}, want: "options.columns[1] is empty"},
		{name: "duplicate column", kind: KindID3, opt: Options{Columns: []string{"a", "b", "a"}}, want: `options.columns[2] "a" repeats options.columns[0]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, x, rows, cols, labels := tc.ctx, tc.X, tc.n, tc.d, tc.y
			if tc.name != "nil context" && ctx == nil {
				ctx = context.Background()
			}
			if x == nil {
				x = X
			}
			if rows == 0 && tc.name != "zero rows" {
				rows = n
			}
			if cols == 0 {
				cols = d
			}
			if labels == nil {
				labels = y
			}
			ens, err := Fit(ctx, tc.kind, x, rows, cols, labels, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Fit error %v, want one containing %q", err, tc.want)
			}
			if ens != nil {
				t.Errorf("Fit returned an ensemble with error %v", err)
			}
		})
	}
}

func TestFitCancelledIsContextError(t *testing.T) {
	t.Parallel()
	X, n, d, y := tiny()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, kind := range Kinds() {
		if _, err := Fit(ctx, kind, X, n, d, y, Options{}); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: error %v, want context.Canceled", kind, err)
		}
	}
}

func TestGuardRecoversPanics(t *testing.T) {
	t.Parallel()
	err := guard("ID3 Fit", func() error { panic("More Attributes should be considered") })
	if err == nil || !strings.Contains(err.Error(), "golearn panicked in ID3 Fit: More Attributes should be considered") {
		t.Errorf("guard: %v", err)
	}
}

// TestSmall fits every kind on a small set and checks what holds for any data: a valid bundle
// whose probabilities are golearn's (CART, ID3) in [0,1], and repeatable results.
func TestSmall(t *testing.T) {
	t.Parallel()
	X, n, d, y := tiny()
	for _, kind := range Kinds() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			opt := Options{Trees: 7, Seed: 3}
			a, err := Fit(context.Background(), kind, X, n, d, y, opt)
			if err != nil {
				t.Fatal(err)
			}
			e := evaluator(t, a, d)
			correct := 0
			for i, p := range probabilities(e, X, n, d) {
				if !(p >= 0 && p <= 1) {
					t.Fatalf("row %d: probability %v", i, p)
				}
				if (p > 0.5) == y[i] {
					correct++
				}
			}
			if correct < n*3/4 {
				t.Errorf("%d of %d training rows classified right, want at least 3/4", correct, n)
			}
			b, err := Fit(context.Background(), kind, X, n, d, y, opt)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(a, b); diff != "" {
				t.Errorf("a second fit with the same options differs (-first +second):\n%s", diff)
			}
		})
	}
}

func TestForestSeed(t *testing.T) {
	t.Parallel()
	X, n, d, y := tiny()
	a, err := Fit(context.Background(), KindRandomForest, X, n, d, y, Options{Trees: 5, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Fit(context.Background(), KindRandomForest, X, n, d, y, Options{Trees: 5, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if cmp.Equal(a, b) {
		t.Error("seeds 1 and 2 gave the same forest")
	}
}

// TestCARTNoSplit: when no split lowers the impurity golearn keeps a placeholder root; the export
// is one leaf with the training share, and golearn's label there (0) agrees with it.
func TestCARTNoSplit(t *testing.T) {
	t.Parallel()
	X := []float64{5, 5, 5, 5, 5}
	y := []bool{true, false, false, true, false}
	ens, err := Fit(context.Background(), KindCART, X, 5, 1, y, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(ens.Trees[0].Left); got != 1 {
		t.Fatalf("%d nodes, want one leaf", got)
	}
	e := evaluator(t, ens, 1)
	if p := e.Probability(e.Margin([]float64{5})); math.Abs(p-0.4) > 1e-9 {
		t.Errorf("probability %v, want 0.4", p)
	}
}

func TestQuantileEdges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []float64
		bins   int
		want   []float64
	}{
		{"constant", []float64{3, 3, 3}, 4, nil},
		{"few distinct", []float64{0, 1, 1, 0, 2}, 8, []float64{0.5, 1.5}},
		{"quartiles", []float64{1, 2, 3, 4, 5, 6, 7, 8}, 4, []float64{2.5, 4.5, 6.5}},
		{"ties move the cut to the end of the run", []float64{0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, 2, []float64{0.5}},
		{"adjacent floats", []float64{1, math.Nextafter(1, 2)}, 2, []float64{math.Nextafter(1, 2)}},
		{"huge", []float64{-math.MaxFloat64, math.MaxFloat64}, 2, []float64{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := quantileEdges(tc.values, tc.bins)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("edges (-want +got):\n%s", diff)
			}
			for _, v := range tc.values {
				b := binOf(got, v)
				if b < 0 || b > len(got) || (b > 0 && !(v >= got[b-1])) || (b < len(got) && !(v < got[b])) {
					t.Errorf("value %v in bin %d of edges %v", v, b, got)
				}
			}
		})
	}
}

// FuzzFit: any small finite data set gives an error or an ensemble that internal/scoring serves
// with probabilities in [0,1]; never a panic.
func FuzzFit(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, uint8(2), uint8(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1}, uint8(1), uint8(1))
	f.Add([]byte{9, 1, 9, 1, 9, 1, 200, 3, 4, 4, 4, 4, 4, 4}, uint8(3), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, width, kind uint8) {
		d := int(width%4) + 1
		rows := len(data) / (d + 1)
		if rows == 0 || rows > 64 {
			return
		}
		X := make([]float64, 0, rows*d)
		y := make([]bool, rows)
		for i := range rows {
			rec := data[i*(d+1) : (i+1)*(d+1)]
			for _, v := range rec[:d] {
				X = append(X, float64(int8(v))/4)
			}
			y[i] = rec[d]&1 == 1
		}
		k := Kinds()[int(kind)%3]
		ens, err := Fit(context.Background(), k, X, rows, d, y, Options{Trees: 3, CARTBins: []int{0, 2, 4, 0}[int(width>>2)%4], Seed: int64(binary.LittleEndian.Uint16(append(data, 0, 0)))})
		if err != nil {
			// The data are valid but for their classes, so anything else is a failure.
			if !strings.Contains(err.Error(), "one class only") {
				t.Fatalf("%s: %v", k, err)
			}
			return
		}
		e := evaluator(t, ens, d)
		for i, p := range probabilities(e, X, rows, d) {
			if !(p >= 0 && p <= 1) {
				t.Fatalf("%s row %d: probability %v", k, i, p)
			}
		}
	})
}
