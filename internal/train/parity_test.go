package train

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/sharedtest"
)

// Logistic parity (issue 13 item 3): the logistic family alone (churnctl train --trainer
// logistic), on the same rows and with the same preprocessing as scikit-learn's
// LogisticRegression(C=1) with StandardScaler and one-hot (shared/bench/baselines.py), reaches a
// test ROC-AUC at most parityAUC below scikit-learn's and a test Brier score at most parityBrier
// above it, calibration included.
//
// scikit-learn's figures are recorded, not computed here:
//   - the shared datasets: the logreg rows of shared/bench/BASELINES.md (read at test time);
//   - the hostile corpus (corpus_gen_test.go) and the heavy-tailed dataset below: sklearnLR,
//     printed by testdata/parity/sklearn_lr.py (scikit-learn 1.2.1, the system python3) on the
//     CSV files and held-out rows that CHURN_PARITY_WRITE=dir makes this test write; the script
//     is baselines.py's logreg pipeline on given held-out rows, with the spec's log1p transform
//     and the most frequent category for an empty text cell, as our preprocessing does.
//
// The normal run checks iranian_churn and the corpus at 400 rows; CHURN_QUALITY=all (make
// quality) all four datasets, the corpus at 10000 rows and the heavy-tailed dataset.

const (
	parityAUC   = 0.005
	parityBrier = 0.001
)

// sklearnLR holds scikit-learn's test ROC-AUC and Brier score (rounded to 4 decimals) by case
// name and rows, from testdata/parity/sklearn_lr.py; see the comment above for the commands.
var sklearnLR = map[string][2]float64{
	"base/10000":           {0.8268, 0.1692},
	"base/400":             {0.8542, 0.1526},
	"bom/10000":            {0.8268, 0.1692},
	"bom/400":              {0.8542, 0.1526},
	"collinear/10000":      {0.8268, 0.1692},
	"collinear/400":        {0.8542, 0.1525},
	"constant/10000":       {0.8268, 0.1692},
	"constant/400":         {0.8542, 0.1526},
	"crlf/10000":           {0.8268, 0.1692},
	"crlf/400":             {0.8542, 0.1526},
	"duplicated/10000":     {0.8268, 0.1692},
	"duplicated/400":       {0.8542, 0.1524},
	"heavy_tails/23000":    {0.6849, 0.1807},
	"huge_values/10000":    {0.8268, 0.1692},
	"huge_values/400":      {0.8555, 0.1517},
	"many_levels/10000":    {0.8161, 0.1742},
	"many_levels/400":      {0.8491, 0.1637},
	"one_per_fold/10000":   {0.9995, 0.0004},
	"one_per_fold/400":     {1.0000, 0.0066},
	"quoted_commas/10000":  {0.8268, 0.1691},
	"quoted_commas/400":    {0.8574, 0.1519},
	"rare_positives/10000": {0.9982, 0.0023},
	"rare_positives/400":   {1.0000, 0.0171},
	"separable/10000":      {1.0000, 0.0071},
	"separable/400":        {1.0000, 0.0156},
}

// parityCase is one dataset to compare on.
type parityCase struct {
	name            string
	ds              *Dataset
	train, test     []int
	folds           int
	wantAUC, wantBr float64
}

func TestLogisticParity(t *testing.T) {
	all := os.Getenv("CHURN_QUALITY") == "all"
	writeDir := os.Getenv("CHURN_PARITY_WRITE")
	type namedCase struct {
		name string
		mk   func(t *testing.T) parityCase
	}
	var cases []namedCase

	datasets := []string{"iranian_churn"} // the others, wa_churn the slowest, only in make quality
	if all {
		datasets = append(datasets, "wa_churn", "mlc_churn", "bankchurners")
	}
	for _, name := range datasets {
		cases = append(cases, namedCase{name, func(t *testing.T) parityCase {
			base, err := readModelBaselines(sharedtest.Path(t, "bench/BASELINES.md"), "logreg")
			if err != nil {
				t.Fatal(err)
			}
			b, ok := base[name]
			if !ok {
				t.Fatalf("BASELINES.md has no logreg row for %s", name)
			}
			ds, trainRows, testRows := loadShared(t, name)
			return parityCase{name: name, ds: ds, train: trainRows, test: testRows, wantAUC: b.rocAUC, wantBr: b.brier}
		}})
	}

	rows, folds := 400, 3
	if all {
		rows, folds = 10000, 5
	}
	generated := []CorpusCase{}
	for _, c := range HostileCorpus(rows, 1) {
		if len(c.WantErr) == 0 {
			generated = append(generated, c)
		}
	}
	if all || writeDir != "" {
		generated = append(generated, HeavyTailedCase(23000, 1))
	}
	for _, c := range generated {
		cases = append(cases, namedCase{c.Name, func(t *testing.T) parityCase {
			spec, err := ParseSpec(c.Spec)
			if err != nil {
				t.Fatal(err)
			}
			ds, err := ReadCSV(bytes.NewReader(c.CSV), spec)
			if err != nil {
				t.Fatal(err)
			}
			trainRows, testRows := StratifiedSplit(ds.Labels, 0.2, 42)
			n := len(ds.Rows)
			key := fmt.Sprintf("%s/%d", c.Name, n)
			if writeDir != "" {
				writeParityFiles(t, writeDir, key, c, testRows)
			}
			want, ok := sklearnLR[key]
			if !ok && writeDir != "" {
				t.Skipf("no recorded scikit-learn figures for %s yet: its files are written to %s for recording them", key, writeDir)
			}
			if !ok {
				// A corpus case without figures would otherwise go unchecked, in CI too.
				t.Fatalf("no recorded scikit-learn figures for %s: record them (see the comment of TestLogisticParity)", key)
			}
			f := folds
			if c.Folds != 0 {
				f = c.Folds
			}
			return parityCase{name: key, ds: ds, train: trainRows, test: testRows, folds: f, wantAUC: want[0], wantBr: want[1]}
		}})
	}

	for _, nc := range cases {
		t.Run(nc.name, func(t *testing.T) {
			t.Parallel()
			pc := nc.mk(t)
			res, err := Run(context.Background(), Config{
				Data: pc.ds, TrainRows: pc.train, TestRows: pc.test, Tiers: DefaultTierQuantiles, Seed: 42,
				Trainers: []Trainer{LogisticTrainer(1)}, Folds: pc.folds,
				Name: "parity", Version: "parity", CreatedAt: time.Unix(1, 0).UTC(), Workers: 1,
			})
			if err != nil {
				t.Fatalf("%s: %v", pc.name, err)
			}
			c, raw, te := res.Candidates[0], res.TestUncalibrated, res.Test
			t.Logf("%s: scikit-learn ROC-AUC %.4f Brier %.4f; ours before calibration %.4f %.4f, after %s %.4f %.4f "+
				"(out-of-fold: before %.4f %.4f, after %.4f %.4f; Brier by method %v, ranking cost by method %v)",
				pc.name, pc.wantAUC, pc.wantBr, raw.ROCAUC, raw.Brier, c.Calibration, te.ROCAUC, te.Brier,
				c.RawROCAUC, c.RawBrier, c.ROCAUC, c.Brier, c.BrierByMethod, c.RankingCostByMethod)
			auc, brier := round4(te.ROCAUC), round4(te.Brier)
			if auc < pc.wantAUC-parityAUC {
				t.Errorf("%s: test ROC-AUC %.4f, more than %g below scikit-learn's %.4f", pc.name, auc, parityAUC, pc.wantAUC)
			}
			if brier > pc.wantBr+parityBrier+1e-9 {
				t.Errorf("%s: test Brier %.4f, more than %g above scikit-learn's %.4f", pc.name, brier, parityBrier, pc.wantBr)
			}
			// Calibration is chosen only when it costs no ranking within the folds.
			if cost := c.RankingCostByMethod[c.Calibration]; cost > rankingTolerance {
				t.Errorf("%s: calibration %s costs %.4f of ROC-AUC within the folds", pc.name, c.Calibration, cost)
			}
		})
	}
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// readModelBaselines is one model's figures in BASELINES.md, by dataset; a row of the model
// whose figures are not numbers is an error.
func readModelBaselines(path, model string) (map[string]baseline, error) {
	rows, err := readBaselineRows(path)
	if err != nil {
		return nil, err
	}
	out := map[string]baseline{}
	for _, r := range rows {
		if r.model != model {
			continue
		}
		if !r.ok {
			return nil, fmt.Errorf("%s: row %q: ROC-AUC or Brier is not a number", path, r.line)
		}
		out[r.dataset] = r.fig
	}
	return out, nil
}

// writeParityFiles writes a case's CSV, spec and held-out rows and the arguments of
// testdata/parity/sklearn_lr.py into dir, for recording scikit-learn's figures (and for running
// churnctl train on the case).
func writeParityFiles(t *testing.T, dir, key string, c CorpusCase, testRows []int) {
	t.Helper()
	base := filepath.Join(dir, strings.ReplaceAll(key, "/", "_"))
	var idx strings.Builder
	for _, i := range testRows {
		fmt.Fprintln(&idx, i)
	}
	args := []string{key, base + ".csv", "churn", "yes", "--test-idx", base + ".idx", "--drop", "id"}
	if strings.Contains(string(c.Spec), `"usage": {"source": "numeric.usage", "transform": "log1p"}`) {
		args = append(args, "--log1p", "usage")
	}
	for path, data := range map[string]string{base + ".csv": string(c.CSV), base + ".idx": idx.String(), base + ".args": strings.Join(args, "\x00"), base + ".spec.json": string(c.Spec)} {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// HeavyTailedCase is a credit-default-like dataset of rows customers (issue 13 item 3: the
// 23,000-row dataset on which the logistic family fell 0.06 of ROC-AUC short of scikit-learn's):
// money columns with heavy tails (a credit limit, three bills, three payments, log-normal and
// mostly small, with a few customers 30 or more standard deviations out), a repayment status,
// an age, two text columns (one with empty cells), and about 27% defaulters whose log-odds
// depend on the logarithm of the money, so that a linear model on the raw amounts is weak
// (test ROC-AUC 0.68) and the few customers with huge payments get margins far below
// everyone else's.
func HeavyTailedCase(rows int, seed uint64) CorpusCase {
	rng := rand.New(rand.NewPCG(seed, 0x7461696c73)) // second word: "tails"
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"id", "limit", "bill_1", "bill_2", "bill_3", "pay_1", "pay_2", "pay_3", "status", "age", "education", "gender", "churn"})
	num := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	educations := []string{"graduate", "university", "high_school", "other"}
	for i := range rows {
		limit := math.Round(math.Exp(11+0.8*rng.NormFloat64())/1000) * 1000
		status := float64(min(max(int(math.Round(rng.NormFloat64()*1.2-0.3)), -2), 8))
		age := float64(21 + rng.IntN(50))
		var bills, pays [3]float64
		logPay := 0.0
		for k := range 3 {
			bills[k] = math.Round(limit * rng.Float64() * math.Exp(0.5*rng.NormFloat64()))
			if rng.Float64() < 0.2 {
				pays[k] = 0
			} else {
				pays[k] = math.Round(math.Exp(7.5 + 2*rng.NormFloat64()))
			}
			logPay += math.Log1p(pays[k]) / 3
		}
		edu := educations[rng.IntN(len(educations))]
		if rng.Float64() < 0.03 {
			edu = ""
		}
		gender := "f"
		if rng.Float64() < 0.4 {
			gender = "m"
		}
		margin := -1.6 + 0.55*status - 0.6*(logPay-6.5) - 0.5*(math.Log(limit)-11) + 0.4*(bills[0]/limit-0.5) + 0.005*(age-35)
		if edu == "high_school" {
			margin += 0.2
		}
		y := "no"
		if rng.Float64() < Sigmoid(margin) {
			y = "yes"
		}
		_ = w.Write([]string{fmt.Sprintf("h%06d", i), num(limit), num(bills[0]), num(bills[1]), num(bills[2]),
			num(pays[0]), num(pays[1]), num(pays[2]), num(status), num(age), edu, gender, y})
	}
	w.Flush()
	spec := `{"name": "heavy-tails", "label": {"column": "churn", "positive": "yes"}, "drop": ["id"], "columns": {` +
		`"limit": {"source": "numeric.limit"}, "bill_1": {"source": "numeric.bill_1"}, "bill_2": {"source": "numeric.bill_2"}, ` +
		`"bill_3": {"source": "numeric.bill_3"}, "pay_1": {"source": "numeric.pay_1"}, "pay_2": {"source": "numeric.pay_2"}, ` +
		`"pay_3": {"source": "numeric.pay_3"}, "status": {"source": "numeric.status"}, "age": {"source": "numeric.age"}, ` +
		`"education": {"source": "categorical.education"}, "gender": {"source": "categorical.gender"}}}`
	return CorpusCase{Name: "heavy_tails", About: "a credit-default-like dataset with heavy-tailed money columns", CSV: buf.Bytes(), Spec: []byte(spec)}
}
