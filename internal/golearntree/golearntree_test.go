package golearntree

import (
	"context"
	"encoding/csv"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/scoring"
	"github.com/churnhq/churn/internal/sharedtest"
	"github.com/google/go-cmp/cmp"
	"github.com/sjwhitworth/golearn/base"
)

// dataset is a CSV read into a row-major matrix, split into the standard train and test rows.
type dataset struct {
	columns       []string
	d             int
	trainX, testX []float64
	trainY, testY []bool
	nTrain, nTest int
	positiveTrain int
}

// loadShared reads a dataset of ../shared: every column but label is numeric. A missing file
// skips the test, or fails it when CI=true.
func loadShared(tb testing.TB, name, label string) *dataset {
	tb.Helper()
	dataPath := sharedtest.Path(tb, "data/"+name+".csv")
	idxPath := sharedtest.Path(tb, "bench/splits/"+name+"_test_idx.csv")
	f, err := os.Open(dataPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		tb.Fatalf("%s: %v", dataPath, err)
	}
	header, rows := records[0], records[1:]
	labelCol := -1
	var cols []int
	ds := &dataset{}
	for j, h := range header {
		if h == label {
			labelCol = j
			continue
		}
		cols = append(cols, j)
		ds.columns = append(ds.columns, h)
	}
	if labelCol < 0 {
		tb.Fatalf("%s: no column %q", dataPath, label)
	}
	ds.d = len(cols)
	raw, err := os.ReadFile(idxPath)
	if err != nil {
		tb.Fatal(err)
	}
	test := map[int]bool{}
	for i, line := range strings.Fields(string(raw)) {
		k, err := strconv.Atoi(line)
		if err != nil || k < 0 || k >= len(rows) {
			tb.Fatalf("%s line %d: bad row index %q", idxPath, i+1, line)
		}
		test[k] = true
	}
	for r, rec := range rows {
		x := make([]float64, ds.d)
		for k, j := range cols {
			v, err := strconv.ParseFloat(rec[j], 64)
			if err != nil {
				tb.Fatalf("%s line %d column %q: %v", dataPath, r+2, header[j], err)
			}
			x[k] = v
		}
		yv := rec[labelCol] == "1"
		if test[r] {
			ds.testX, ds.testY = append(ds.testX, x...), append(ds.testY, yv)
			continue
		}
		ds.trainX, ds.trainY = append(ds.trainX, x...), append(ds.trainY, yv)
		if yv {
			ds.positiveTrain++
		}
	}
	ds.nTrain, ds.nTest = len(ds.trainY), len(ds.testY)
	return ds
}

func iranian(tb testing.TB) *dataset { return loadShared(tb, "iranian_churn", "Churn") }

// evaluator compiles an exported ensemble with internal/scoring, as churnd would serve it.
func evaluator(tb testing.TB, ens *bundle.TreeEnsemble, d int) *scoring.Evaluator {
	tb.Helper()
	inputs := make([]bundle.Input, d)
	for j := range inputs {
		inputs[j] = bundle.Input{Name: "c" + strconv.Itoa(j), Source: "numeric.c" + strconv.Itoa(j), Type: bundle.TypeNumeric,
			Missing: bundle.Missing{Policy: bundle.MissingImpute}}
	}
	b := &bundle.Bundle{
		Manifest: bundle.Manifest{
			FormatVersion: bundle.FormatVersion, Name: "golearn", Version: "test", CreatedAt: time.Unix(0, 0).UTC(),
			Inputs: inputs, Calibration: bundle.Calibration{Method: bundle.CalibrationNone},
			Tiers:        bundle.Tiers{Medium: 0.3, High: 0.5, Critical: 0.8},
			CheckVectors: []bundle.CheckVector{{Features: []byte(`{}`), Probability: 0.5}},
		},
		Model: bundle.Model{Type: bundle.ModelTrees, Trees: ens},
	}
	if err := b.Validate(); err != nil {
		tb.Fatalf("the exported ensemble is not a valid bundle: %v", err)
	}
	return scoring.New(b)
}

func probabilities(e *scoring.Evaluator, X []float64, n, d int) []float64 {
	p := make([]float64, n)
	for i := range n {
		p[i] = e.Probability(e.Margin(X[i*d : i*d+d]))
	}
	return p
}

// rocAUC is the Mann-Whitney statistic, ties counted half.
func rocAUC(p []float64, y []bool) float64 {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return p[idx[a]] < p[idx[b]] })
	var rankSum, pos float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && p[idx[j]] == p[idx[i]] {
			j++
		}
		rank := float64(i+j+1) / 2 // mean of ranks i+1..j
		for k := i; k < j; k++ {
			if y[idx[k]] {
				rankSum += rank
				pos++
			}
		}
		i = j
	}
	neg := float64(len(p)) - pos
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// golearnCARTReference sends the training rows down golearn's CART tree (its own nodes, walked
// here independently of the export) and returns, for each test row, the positive share of the
// training rows at its leaf, and golearn's own predicted label.
func golearnCARTReference(t *testing.T, m *cartModel, ds *dataset) (share []float64, label []int64) {
	t.Helper()
	root, err := readCART(m.tree)
	if err != nil {
		t.Fatal(err)
	}
	type leafKey struct {
		node *cartNode
		left bool
	}
	leafOf := func(x []float64) leafKey {
		nd := root
		for {
			// golearn's features are the columns in order (checked by TestCARTFeatureOrder).
			if x[nd.Feature] < nd.Threshold {
				if nd.Left == nil {
					return leafKey{nd, true}
				}
				nd = nd.Left
			} else {
				if nd.Right == nil {
					return leafKey{nd, false}
				}
				nd = nd.Right
			}
		}
	}
	rows, pos := map[leafKey]int{}, map[leafKey]int{}
	for i := range ds.nTrain {
		k := leafOf(ds.trainX[i*ds.d : i*ds.d+ds.d])
		rows[k]++
		if ds.trainY[i] {
			pos[k]++
		}
	}
	testInst, err := floatInstances(ds.testX, ds.nTest, ds.d, nil, ds.columns)
	if err != nil {
		t.Fatal(err)
	}
	label = m.tree.Predict(testInst)
	share = make([]float64, ds.nTest)
	for i := range ds.nTest {
		k := leafOf(ds.testX[i*ds.d : i*ds.d+ds.d])
		if rows[k] == 0 {
			t.Fatalf("test row %d reaches a leaf without training rows", i)
		}
		share[i] = float64(pos[k]) / float64(rows[k])
	}
	return share, label
}

// golearnID3Reference is golearn's own PredictProba (positive class) and Predict of each test
// row, per tree.
func golearnID3Reference(t *testing.T, m *id3Model, ds *dataset) (proba [][]float64, class [][]string) {
	t.Helper()
	testInst, err := m.bn.instances(ds.testX, ds.nTest, ds.d)
	if err != nil {
		t.Fatal(err)
	}
	all := base.NonClassAttributes(testInst)
	all = append(all, testInst.AllClassAttributes()...)
	for _, tree := range m.trees {
		pred, err := tree.Predict(testInst)
		if err != nil {
			t.Fatal(err)
		}
		ps := make([]float64, ds.nTest)
		cs := make([]string, ds.nTest)
		for i := range ds.nTest {
			cs[i] = base.GetClass(pred, i)
			// PredictProba takes one row at a time.
			got, err := tree.PredictProba(base.NewInstancesViewFromVisible(testInst, []int{i}, all))
			if err != nil {
				t.Fatal(err)
			}
			for _, cp := range got {
				if cp.ClassValue == positiveClass {
					ps[i] = cp.Probability
				}
			}
		}
		proba, class = append(proba, ps), append(class, cs)
	}
	return proba, class
}

// trainSubset keeps every training row, or under the race detector every third (see
// raceEnabled); the test rows are all kept.
func trainSubset(ds *dataset) *dataset {
	if !raceEnabled {
		return ds
	}
	sub := *ds
	sub.trainX, sub.trainY = nil, nil
	for i := 0; i < ds.nTrain; i += 3 {
		sub.trainX = append(sub.trainX, ds.trainX[i*ds.d:(i+1)*ds.d]...)
		sub.trainY = append(sub.trainY, ds.trainY[i])
	}
	sub.nTrain = len(sub.trainY)
	return &sub
}

func sigmoid(m float64) float64 { return 1 / (1 + math.Exp(-m)) }

func TestCARTFeatureOrder(t *testing.T) {
	t.Parallel()
	cols := []string{"b", "a", "c"}
	inst, err := floatInstances(make([]float64, 6), 2, 3, []bool{true, false}, cols)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range base.NonClassFloatAttributes(inst) {
		got = append(got, a.GetName())
	}
	if diff := cmp.Diff(cols, got); diff != "" {
		t.Errorf("golearn's feature order (-want +got):\n%s", diff)
	}
}

// TestFaithful checks, on the standard test rows of the Iranian churn data, that the exported
// ensemble served by internal/scoring gives golearn's own probability to 1e-9 and its class.
func TestFaithful(t *testing.T) {
	ds := iranian(t)
	ctx := context.Background()

	t.Run(KindCART, func(t *testing.T) {
		// Depth 5 rather than the default 8 keeps the test short under -race (golearn's CART
		// costs O(rows x distinct values) per column and level); BenchmarkFit fits the default.
		opt, err := Options{Columns: ds.columns, MaxDepth: 5}.withDefaults(KindCART, ds.d)
		if err != nil {
			t.Fatal(err)
		}
		ds := trainSubset(ds)
		ens, m, err := fitCARTModel(ctx, ds.trainX, ds.nTrain, ds.d, ds.trainY, opt)
		if err != nil {
			t.Fatal(err)
		}
		got := probabilities(evaluator(t, ens, ds.d), ds.testX, ds.nTest, ds.d)
		share, label := golearnCARTReference(t, m, ds)
		for i := range ds.nTest {
			if math.Abs(got[i]-share[i]) > 1e-9 {
				t.Errorf("test row %d: probability %v, golearn's leaf share %v", i, got[i], share[i])
			}
			if cls := int64(b2i(got[i] > 0.5)); cls != label[i] {
				t.Errorf("test row %d: class %d, golearn predicts %d", i, cls, label[i])
			}
		}
		t.Logf("cart (depth 5, %d training rows): test ROC-AUC %.4f, %d nodes", ds.nTrain, rocAUC(got, ds.testY), len(ens.Trees[0].Left))
	})

	t.Run("cart_binned", func(t *testing.T) {
		opt, err := Options{Columns: ds.columns, CARTBins: 32}.withDefaults(KindCART, ds.d)
		if err != nil {
			t.Fatal(err)
		}
		ens, m, err := fitCARTModel(ctx, ds.trainX, ds.nTrain, ds.d, ds.trainY, opt)
		if err != nil {
			t.Fatal(err)
		}
		got := probabilities(evaluator(t, ens, ds.d), ds.testX, ds.nTest, ds.d)
		// golearn saw bin numbers: its reference is computed on the binned rows.
		binnedDS := *ds
		binnedDS.trainX = binColumns(ds.trainX, ds.nTrain, ds.d, m.edges)
		binnedDS.testX = binColumns(ds.testX, ds.nTest, ds.d, m.edges)
		share, label := golearnCARTReference(t, m, &binnedDS)
		for i := range ds.nTest {
			if math.Abs(got[i]-share[i]) > 1e-9 {
				t.Errorf("test row %d: probability %v, golearn's leaf share %v", i, got[i], share[i])
			}
			if cls := int64(b2i(got[i] > 0.5)); cls != label[i] {
				t.Errorf("test row %d: class %d, golearn predicts %d", i, cls, label[i])
			}
		}
		t.Logf("cart (32 bins): test ROC-AUC %.4f, %d nodes", rocAUC(got, ds.testY), len(ens.Trees[0].Left))
	})

	t.Run(KindID3, func(t *testing.T) {
		opt, err := Options{Columns: ds.columns}.withDefaults(KindID3, ds.d)
		if err != nil {
			t.Fatal(err)
		}
		ens, m, err := fitID3Model(ctx, ds.trainX, ds.nTrain, ds.d, ds.trainY, opt)
		if err != nil {
			t.Fatal(err)
		}
		got := probabilities(evaluator(t, ens, ds.d), ds.testX, ds.nTest, ds.d)
		proba, class := golearnID3Reference(t, m, ds)
		for i := range ds.nTest {
			if math.Abs(got[i]-proba[0][i]) > 1e-9 {
				t.Errorf("test row %d: probability %v, golearn's PredictProba %v", i, got[i], proba[0][i])
			}
			// golearn's leaf class is a map-order pick on a tie (p = 0.5).
			if proba[0][i] != 0.5 && strconv.Itoa(b2i(got[i] > 0.5)) != class[0][i] {
				t.Errorf("test row %d: class %v, golearn predicts %s", i, got[i] > 0.5, class[0][i])
			}
		}
		t.Logf("id3: test ROC-AUC %.4f, %d nodes", rocAUC(got, ds.testY), len(ens.Trees[0].Left))
	})

	t.Run(KindRandomForest, func(t *testing.T) {
		ds := trainSubset(ds)
		opt, err := Options{Columns: ds.columns, Trees: 10, Seed: 7}.withDefaults(KindRandomForest, ds.d)
		if err != nil {
			t.Fatal(err)
		}
		ens, m, err := fitForestModel(ctx, ds.trainX, ds.nTrain, ds.d, ds.trainY, opt)
		if err != nil {
			t.Fatal(err)
		}
		got := probabilities(evaluator(t, ens, ds.d), ds.testX, ds.nTest, ds.d)
		proba, _ := golearnID3Reference(t, m, ds)
		for i := range ds.nTest {
			mean := 0.0
			for k := range proba {
				mean += proba[k][i]
			}
			mean /= float64(len(proba))
			if want := sigmoid(4 * (mean - 0.5)); math.Abs(got[i]-want) > 1e-9 {
				t.Errorf("test row %d: probability %v, want sigmoid(4*(%v-0.5)) = %v from golearn's trees", i, got[i], mean, want)
			}
			if (got[i] > 0.5) != (mean > 0.5) && mean != 0.5 {
				t.Errorf("test row %d: class %v, golearn's trees' mean probability %v", i, got[i] > 0.5, mean)
			}
		}
		t.Logf("random_forest (10 trees, %d training rows): test ROC-AUC %.4f", ds.nTrain, rocAUC(got, ds.testY))
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// BenchmarkFit fits each kind with default options on the Iranian training rows (2,520 rows, 13
// columns) and reports the test ROC-AUC on the standard split and the exported nodes.
func BenchmarkFit(b *testing.B) {
	ds := iranian(b)
	cases := []struct {
		name, kind string
		opt        Options
	}{
		{KindCART, KindCART, Options{}},
		{"cart_bins32", KindCART, Options{CARTBins: 32}},
		{KindID3, KindID3, Options{}},
		{KindRandomForest, KindRandomForest, Options{}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			opt := tc.opt
			opt.Columns = ds.columns
			var ens *bundle.TreeEnsemble
			for b.Loop() {
				var err error
				ens, err = Fit(context.Background(), tc.kind, ds.trainX, ds.nTrain, ds.d, ds.trainY, opt)
				if err != nil {
					b.Fatal(err)
				}
			}
			p := probabilities(evaluator(b, ens, ds.d), ds.testX, ds.nTest, ds.d)
			nodes := 0
			for _, t := range ens.Trees {
				nodes += len(t.Left)
			}
			b.ReportMetric(rocAUC(p, ds.testY), "roc-auc")
			b.ReportMetric(float64(nodes), "nodes")
		})
	}
}

func TestModuleIsThePinnedOne(t *testing.T) {
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(gomod), Module) {
		t.Fatalf("go.mod does not pin %q", Module)
	}
}
