package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/evaluate"
)

// xorMatrix makes n rows of d uniform columns in [0, 1) whose label is (x0 > 0.5) XOR (x1 > 0.5)
// with 5% of the labels flipped; column 2 is NaN in every fifth row. A linear model cannot learn
// it; trees of depth 2 can.
func xorMatrix(n, d int, seed uint64) Matrix {
	rng := rand.New(rand.NewPCG(seed, 3))
	m := Matrix{X: make([]float64, n*d), N: n, D: d, Y: make([]bool, n)}
	for i := range n {
		row := m.X[i*d : (i+1)*d]
		for j := range row {
			row[j] = rng.Float64()
		}
		if i%5 == 0 {
			row[2] = math.NaN()
		}
		m.Y[i] = (row[0] > 0.5) != (row[1] > 0.5)
		if rng.Float64() < 0.05 {
			m.Y[i] = !m.Y[i]
		}
	}
	return m
}

func ensembleProbabilities(te *bundle.TreeEnsemble, m Matrix) []float64 {
	p := make([]float64, m.N)
	for i := range p {
		p[i] = Sigmoid(treesMargin(te, m.X[i*m.D:(i+1)*m.D]))
	}
	return p
}

func TestFitGBDTLearnsAnInteraction(t *testing.T) {
	t.Parallel()
	train, valid, test := xorMatrix(2000, 5, 1), xorMatrix(500, 5, 2), xorMatrix(1000, 5, 3)
	opt := DefaultGBDTOptions
	opt.MaxDepth = 3
	fit, err := FitGBDT(context.Background(), train, &valid, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fit.Rounds < 1 || fit.Rounds != len(fit.Trees.Trees) || fit.Rounds >= opt.MaxRounds {
		t.Errorf("rounds %d with %d trees: early stopping should keep the best round, well before %d", fit.Rounds, len(fit.Trees.Trees), opt.MaxRounds)
	}
	auc, err := evaluate.ROCAUC(test.Y, ensembleProbabilities(fit.Trees, test))
	if err != nil {
		t.Fatal(err)
	}
	// The Bayes rate is 95% accuracy; a model that learnt the interaction ranks far above 0.5.
	if auc < 0.9 {
		t.Errorf("test ROC-AUC %.4f: the ensemble did not learn x0 XOR x1", auc)
	}
}

// The binned walk of training and the bundle's walk on raw values must agree on every row,
// missing values included: that is what makes check vectors reproduce.
func TestGBDTThresholdsAgreeWithTheBins(t *testing.T) {
	t.Parallel()
	m := xorMatrix(600, 4, 5)
	// Few distinct values in column 3, so that thresholds fall between neighbours.
	for i := range m.N {
		m.X[i*m.D+3] = float64(i % 7)
	}
	opt := DefaultGBDTOptions
	opt.MaxRounds, opt.MinLeafRows, opt.MaxBins = 20, 5, 16
	cuts := binCuts(m, opt.MaxBins)
	bins := binColumns(m, cuts)
	for j, c := range cuts {
		if len(c) > opt.MaxBins-1 {
			t.Errorf("column %d: %d cuts for %d bins", j, len(c), opt.MaxBins)
		}
		for k := 1; k < len(c); k++ {
			if !(c[k] > c[k-1]) {
				t.Errorf("column %d: cuts not increasing at %d: %v", j, k, c)
			}
		}
	}
	fit, err := FitGBDT(context.Background(), m, nil, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	binned := make([]float64, m.N)
	for i := range binned {
		binned[i] = fit.Trees.BaseScore
	}
	// Rebuild the training-time trees' walk from the exported trees: a split on column f at
	// threshold t_b sends bins <= b left.
	for _, tr := range fit.Trees.Trees {
		for i := range m.N {
			k := int32(0)
			for tr.Left[k] != -1 {
				f := tr.Feature[k]
				bin := bins[int(f)*m.N+i]
				b := int(sortSearch(cuts[f], tr.Threshold[k]))
				switch {
				case bin == missingBin(cuts[f]):
					k = map[bool]int32{true: tr.Left[k], false: tr.Right[k]}[tr.DefaultLeft[k]]
				case int(bin) <= b:
					k = tr.Left[k]
				default:
					k = tr.Right[k]
				}
			}
			binned[i] += tr.Value[k]
		}
	}
	for i := range m.N {
		if raw := treesMargin(fit.Trees, m.X[i*m.D:(i+1)*m.D]); math.Abs(raw-binned[i]) > 1e-12 {
			t.Fatalf("row %d: raw walk %v, binned walk %v", i, raw, binned[i])
		}
	}
}

// sortSearch is the boundary index of threshold th among cuts.
func sortSearch(cuts []float64, th float64) int {
	for k, c := range cuts {
		if c == th {
			return k
		}
	}
	return -1
}

func TestFitGBDTLearnsWhereMissingValuesGo(t *testing.T) {
	t.Parallel()
	// The label is "x0 missing or x0 > 0.8": the splits on x0 must send NaN to the churn side.
	rng := rand.New(rand.NewPCG(7, 7))
	n := 2000
	m := Matrix{X: make([]float64, n), N: n, D: 1, Y: make([]bool, n)}
	for i := range n {
		x := rng.Float64()
		if i%4 == 0 {
			x = math.NaN()
		}
		m.X[i] = x
		m.Y[i] = math.IsNaN(x) || x > 0.8
	}
	opt := DefaultGBDTOptions
	opt.MaxRounds = 30
	fit, err := FitGBDT(context.Background(), m, nil, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		x    float64
		want bool
	}{{math.NaN(), true}, {0.9, true}, {0.3, false}} {
		p := Sigmoid(treesMargin(fit.Trees, []float64{c.x}))
		if (p > 0.5) != c.want {
			t.Errorf("x0 = %v: probability %.3f, want churn = %v", c.x, p, c.want)
		}
	}
}

func TestFitGBDTIsDeterministicWithSampling(t *testing.T) {
	t.Parallel()
	train, valid := xorMatrix(800, 6, 11), xorMatrix(200, 6, 12)
	opt := DefaultGBDTOptions
	opt.Subsample, opt.ColSample, opt.Seed = 0.7, 0.6, 99
	var out [3][]byte
	for k := range out {
		if k == 2 {
			opt.Seed = 100
		}
		fit, err := FitGBDT(context.Background(), train, &valid, opt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if out[k], err = json.Marshal(fit.Trees); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out[0], out[1]) {
		t.Error("the same seed gave two different ensembles")
	}
	if bytes.Equal(out[0], out[2]) {
		t.Error("another seed gave the same ensemble: the sampling does not use the seed")
	}
}

func TestFitGBDTErrors(t *testing.T) {
	t.Parallel()
	good := xorMatrix(100, 3, 1)
	oneClass := xorMatrix(100, 3, 1)
	for i := range oneClass.Y {
		oneClass.Y[i] = false
	}
	inf := xorMatrix(100, 3, 1)
	inf.X[7] = math.Inf(1)
	narrow := xorMatrix(50, 4, 1)
	opt := DefaultGBDTOptions
	with := func(f func(*GBDTOptions)) GBDTOptions { o := opt; f(&o); return o }
	tests := []struct {
		name  string
		train Matrix
		valid *Matrix
		opt   GBDTOptions
		want  string
	}{
		{"one class", oneClass, nil, opt, "both a positive and a negative"},
		{"infinite value", inf, nil, opt, "row 2 column 1 is infinite"},
		{"bad shape", Matrix{X: []float64{1}, N: 2, D: 1, Y: []bool{true, false}}, nil, opt, "1 values and 2 labels for 2×1"},
		{"validation width", good, &narrow, opt, "validation matrix has 4 columns"},
		{"learning rate", good, nil, with(func(o *GBDTOptions) { o.LearningRate = 2 }), "gbdt-learning-rate 2"},
		{"depth", good, nil, with(func(o *GBDTOptions) { o.MaxDepth = 40 }), "gbdt-max-depth 40"},
		{"leaves", good, nil, with(func(o *GBDTOptions) { o.MaxLeaves = 1 }), "gbdt-max-leaves 1"},
		{"lambda", good, nil, with(func(o *GBDTOptions) { o.Lambda = -1 }), "gbdt-lambda -1"},
		{"bins", good, nil, with(func(o *GBDTOptions) { o.MaxBins = 300 }), "gbdt-max-bins 300"},
		{"subsample", good, nil, with(func(o *GBDTOptions) { o.Subsample = 1.5 }), "gbdt-subsample 1.5"},
		{"colsample", good, nil, with(func(o *GBDTOptions) { o.ColSample = -0.5 }), "gbdt-colsample -0.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := FitGBDT(context.Background(), tc.train, tc.valid, tc.opt, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFitGBDTStopsOnCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := FitGBDT(ctx, xorMatrix(200, 3, 1), nil, DefaultGBDTOptions, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func mustFeatures(t *testing.T, raw json.RawMessage) *churnv1.CustomerFeatures {
	t.Helper()
	var f churnv1.CustomerFeatures
	if err := protojson.Unmarshal(raw, &f); err != nil {
		t.Fatalf("features %s: %v", raw, err)
	}
	return &f
}

// referenceTrees walks a bundle's trees for a request, independently of the trainer: the columns
// (referenceColumns; a tree ensemble standardises nothing), then the walk.
func referenceTrees(t *testing.T, b *bundle.Bundle, features json.RawMessage) float64 {
	t.Helper()
	for _, in := range b.Manifest.Inputs {
		if in.Standardize != nil {
			t.Fatalf("input %s of a tree ensemble is standardised", in.Name)
		}
	}
	x := referenceColumns(t, b, features)
	te := b.Model.Trees
	m := te.BaseScore
	for _, tr := range te.Trees {
		k := int32(0)
		for tr.Left[k] != -1 {
			v := x[tr.Feature[k]]
			left := v < tr.Threshold[k]
			if math.IsNaN(v) {
				left = tr.DefaultLeft[k]
			}
			if left {
				k = tr.Left[k]
			} else {
				k = tr.Right[k]
			}
		}
		m += tr.Value[k]
	}
	return referenceCalibration(t, &b.Manifest.Calibration, m)
}

func TestRunGBDTBundleReproduces(t *testing.T) {
	t.Parallel()
	ds, err := ReadCSV(strings.NewReader(toyCSV(800, 21)), mustSpec(t, runSpec))
	if err != nil {
		t.Fatal(err)
	}
	trainRows, testRows := StratifiedSplit(ds.Labels, 0.2, 42)
	opt := DefaultGBDTOptions
	opt.Subsample, opt.Seed = 0.8, 3
	cfg := Config{
		Data: ds, TrainRows: trainRows, TestRows: testRows, Tiers: DefaultTierQuantiles,
		Trainers: []Trainer{LogisticTrainer(1), GBDTTrainer(opt)}, Seed: 3,
		Name: "toy", Version: "toy-gbdt", CreatedAt: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), DatasetFile: "toy.csv", SpecName: "toy",
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Candidates) != 2 {
		t.Fatalf("%d candidates, want 2", len(res.Candidates))
	}
	// Force the tree model, whichever won, by running gbdt alone; count the progress reports.
	cfg.Trainers = []Trainer{GBDTTrainer(opt)}
	var fits, rounds, finished int
	var last Progress
	lastRound := map[int]int{} // fold → round
	cfg.Progress = func(p Progress) {
		switch p.Event {
		case EventRound:
			rounds++
			if p.Round != lastRound[p.Fold]+1 {
				t.Errorf("fold %d: round %d after round %d", p.Fold, p.Round, lastRound[p.Fold])
			}
			lastRound[p.Fold] = p.Round
		case EventFitDone:
			fits++
		case EventTrainerDone:
			finished++
		}
		last = p
	}
	res, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fits != 6 || last.Event != EventTrainerDone || last.Done != 6 || last.Total != 6 || finished != 1 || last.Candidate == nil {
		t.Errorf("progress: %d fits, last %+v; want 6 of 6 (5 folds and the final fit), then the trainer done", fits, last)
	}
	if rounds == 0 || lastRound[0] != res.Candidates[0].Rounds {
		t.Errorf("progress: %d rounds reported, the final fit's last %d; it grew %d trees", rounds, lastRound[0], res.Candidates[0].Rounds)
	}
	data, err := res.Bundle.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if b.Model.Type != bundle.ModelTrees || b.Manifest.Training.Trainer != "gbdt" || b.Manifest.Training.Params["rounds"] < 1 {
		t.Errorf("model %s, training record %+v", b.Model.Type, b.Manifest.Training)
	}
	// tenure has empty cells in the toy data: native missing, no standardisation.
	for _, in := range b.Manifest.Inputs {
		if in.Name == "account.tenure_months" && in.Missing.Policy != bundle.MissingNative {
			t.Errorf("tenure's missing policy %q, want native", in.Missing.Policy)
		}
	}
	for i, cv := range b.Manifest.CheckVectors {
		if got := referenceTrees(t, b, cv.Features); math.Abs(got-cv.Probability) > 1e-12 {
			t.Errorf("check vector %d: bundle gives %v, trainer wrote %v (%s)", i, got, cv.Probability, cv.Features)
		}
	}
	for i, g := range res.Golden {
		if got := referenceTrees(t, b, g.Features); math.Abs(got-g.Probability) > 1e-12 {
			t.Fatalf("golden row %d: bundle gives %v, trainer wrote %v", i, got, g.Probability)
		}
	}
	if !strings.Contains(b.Manifest.Description, "Gradient-boosted trees") {
		t.Errorf("description %q", b.Manifest.Description)
	}
}

func TestStratifiedFolds(t *testing.T) {
	t.Parallel()
	y := make([]bool, 103)
	for i := range y {
		y[i] = i%4 == 0
	}
	fold, err := StratifiedFolds(y, 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	var rows, pos [5]int
	for i, f := range fold {
		rows[f]++
		if y[i] {
			pos[f]++
		}
	}
	for f := range 5 {
		if rows[f] < 20 || rows[f] > 21 || pos[f] < 5 || pos[f] > 6 {
			t.Errorf("fold %d: %d rows, %d positive; want 20-21 and 5-6", f, rows[f], pos[f])
		}
	}
	if _, err := StratifiedFolds(y[:8], 5, 1); err == nil {
		t.Error("8 rows with 2 positives in 5 folds: no error")
	}
	again, _ := StratifiedFolds(y, 5, 1)
	if fmt.Sprint(again) != fmt.Sprint(fold) {
		t.Error("the same seed gave other folds")
	}
}

// BenchmarkTrainGBDT measures fitting gradient-boosted trees (100 rounds, the default depth and
// leaves, no early stopping) on synthetic data.
func BenchmarkTrainGBDT(b *testing.B) {
	for _, size := range []struct{ rows, cols int }{{1000, 20}, {10000, 20}} {
		b.Run(fmt.Sprintf("rows=%d/cols=%d", size.rows, size.cols), func(b *testing.B) {
			m := xorMatrix(size.rows, size.cols, 1)
			opt := DefaultGBDTOptions
			opt.MaxRounds = 100
			b.ReportAllocs()
			for b.Loop() {
				if _, err := FitGBDT(context.Background(), m, nil, opt, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A tree learner plugs in through TreeTrainer: here a stump on the first column at the
// training mean, which must see no NaN when it asks for EncodeRawImputed.
func TestTreeTrainerPlugsIn(t *testing.T) {
	t.Parallel()
	ds, err := ReadCSV(strings.NewReader(toyCSV(400, 5)), mustSpec(t, runSpec))
	if err != nil {
		t.Fatal(err)
	}
	trainRows, testRows := StratifiedSplit(ds.Labels, 0.2, 1)
	var sawNaN atomic.Bool // the folds are fitted concurrently
	stump := func(ctx context.Context, X []float64, n, d int, y []bool) (*bundle.TreeEnsemble, error) {
		var mean, pos float64
		for i := range n {
			for _, v := range X[i*d : (i+1)*d] {
				if math.IsNaN(v) {
					sawNaN.Store(true)
				}
			}
			mean += X[i*d] / float64(n)
			if y[i] {
				pos++
			}
		}
		return &bundle.TreeEnsemble{
			BaseScore: math.Log(pos / (float64(n) - pos)), Comparison: bundle.CompareLessEqual,
			Trees: []bundle.Tree{{
				Feature: []int32{0, 0, 0}, Threshold: []float64{mean, 0, 0}, Left: []int32{1, -1, -1},
				Right: []int32{2, -1, -1}, DefaultLeft: []bool{true, false, false}, Value: []float64{0, -0.5, 0.5},
			}},
		}, nil
	}
	tr := TreeTrainer("stump", "A stump", EncodeRawImputed, map[string]float64{"depth": 1}, stump)
	res, err := Run(context.Background(), Config{
		Data: ds, TrainRows: trainRows, TestRows: testRows, Tiers: DefaultTierQuantiles, Trainers: []Trainer{tr},
		Name: "toy", Version: "stump-1", CreatedAt: time.Unix(0, 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if sawNaN.Load() {
		t.Error("the learner asked for imputed inputs but got NaN")
	}
	b := res.Bundle
	if b.Manifest.Training.Trainer != "stump" || b.Manifest.Training.Params["depth"] != 1 || b.Model.Trees.Comparison != bundle.CompareLessEqual {
		t.Errorf("training record %+v, model %+v", b.Manifest.Training, b.Model.Trees)
	}
	for _, in := range b.Manifest.Inputs {
		if in.Missing.Policy == bundle.MissingNative {
			t.Errorf("input %s is native under EncodeRawImputed", in.Name)
		}
	}
	failing := TreeTrainer("broken", "", EncodeRaw, nil, func(context.Context, []float64, int, int, []bool) (*bundle.TreeEnsemble, error) {
		return nil, nil
	})
	_, err = Run(context.Background(), Config{
		Data: ds, TrainRows: trainRows, TestRows: testRows, Tiers: DefaultTierQuantiles, Trainers: []Trainer{failing},
		Name: "toy", Version: "broken-1", CreatedAt: time.Unix(0, 0),
	})
	if err == nil || !strings.Contains(err.Error(), "broken returned no trees") {
		t.Errorf("error %v, want the trainer named", err)
	}
	wide := TreeTrainer("wide", "", EncodeRaw, nil, func(context.Context, []float64, int, int, []bool) (*bundle.TreeEnsemble, error) {
		return &bundle.TreeEnsemble{Comparison: bundle.CompareLess, Trees: []bundle.Tree{{
			Feature: []int32{999, 0, 0}, Threshold: []float64{1, 0, 0}, Left: []int32{1, -1, -1},
			Right: []int32{2, -1, -1}, DefaultLeft: []bool{true, false, false}, Value: []float64{0, -1, 1},
		}}}, nil
	})
	_, err = Run(context.Background(), Config{
		Data: ds, TrainRows: trainRows, TestRows: testRows, Tiers: DefaultTierQuantiles, Trainers: []Trainer{wide},
		Name: "toy", Version: "wide-1", CreatedAt: time.Unix(0, 0),
	})
	if err == nil || !strings.Contains(err.Error(), "trainer wide: tree 0: node 0: column 999 outside") {
		t.Errorf("error %v, want the bad column named", err)
	}
}

// A tree learner that does not watch its context (golearn's, inside one library call) still
// cannot hold a trainer past its budget: TreeTrainer returns when the context ends.
func TestTreeTrainerReturnsWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release) // lets the abandoned fit end
	deaf := TreeTrainer("deaf", "", EncodeRaw, nil, func(context.Context, []float64, int, int, []bool) (*bundle.TreeEnsemble, error) {
		<-release
		return nil, errors.New("too late")
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := deaf.Fit(ctx, FitInput{Train: xorMatrix(50, 3, 1)})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "deaf") {
		t.Errorf("error %v, want context.Canceled naming the trainer", err)
	}
}
