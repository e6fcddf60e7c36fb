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

	"github.com/google/go-cmp/cmp"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
)

const runSpec = `{
  "name": "toy",
  "label": {"column": "churned", "positive": "1"},
  "drop": ["customer"],
  "columns": {
    "complaints": {"source": "complaints.count_90d", "transform": "indicator"},
    "tenure": {"source": "account.tenure_months"},
    "plan": {"source": "account.contract", "values": {"1": "pay_as_you_go", "2": "contract"}},
    "calls": {"source": "numeric.calls", "transform": "log1p"},
    "status": {"source": "categorical.status"}
  }
}`

// toyCSV writes n rows of a churn-like dataset with some empty cells.
func toyCSV(n int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 2))
	var b strings.Builder
	b.WriteString("customer,complaints,tenure,plan,calls,status,churned\n")
	for i := range n {
		complaints := rng.IntN(4) * rng.IntN(2)
		tenure := 1 + rng.IntN(60)
		plan := 1 + rng.IntN(2)
		calls := rng.IntN(200)
		status := []string{"active", "inactive", "paused"}[rng.IntN(3)]
		m := -1.0 + 1.5*float64(min(complaints, 1)) - 0.04*float64(tenure) + 0.8*float64(2-plan) - 0.3*math.Log1p(float64(calls))
		if status == "inactive" {
			m += 1
		}
		y := 0
		if rng.Float64() < Sigmoid(m+1) {
			y = 1
		}
		cells := []string{fmt.Sprint("c", i), fmt.Sprint(complaints), fmt.Sprint(tenure), fmt.Sprint(plan), fmt.Sprint(calls), status, fmt.Sprint(y)}
		if i%17 == 3 {
			cells[2] = "" // tenure missing
		}
		if i%23 == 5 {
			cells[5] = "" // status missing
		}
		b.WriteString(strings.Join(cells, ",") + "\n")
	}
	return b.String()
}

// toyConfig is a run of the logistic regression on 600 toy rows.
func toyConfig(t *testing.T) Config {
	t.Helper()
	ds, err := ReadCSV(strings.NewReader(toyCSV(600, 9)), mustSpec(t, runSpec))
	if err != nil {
		t.Fatal(err)
	}
	trainRows, testRows := StratifiedSplit(ds.Labels, 0.2, 42)
	return Config{
		Data: ds, TrainRows: trainRows, TestRows: testRows, C: 1, Tiers: DefaultTierQuantiles,
		Name: "toy", Version: "toy-1", CreatedAt: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		Command: "churnctl train ...", DatasetFile: "toy.csv", Seed: 42,
	}
}

func toyRun(t *testing.T) (*Result, *Dataset, Config) {
	t.Helper()
	cfg := toyConfig(t)
	ds := cfg.Data
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res, ds, cfg
}

// reference computes a request's probability from a parsed bundle's parameters alone, written
// out independently of the trainer's code: the columns (referenceColumns), then the margin and
// the sigmoid.
func reference(t *testing.T, b *bundle.Bundle, features json.RawMessage) float64 {
	t.Helper()
	x := referenceColumns(t, b, features)
	lr := b.Model.Logistic
	m := lr.Intercept
	for i := range lr.Weights {
		m += lr.Weights[i] * x[i]
	}
	return referenceCalibration(t, &b.Manifest.Calibration, m)
}

// referenceColumns maps a request onto a bundle's columns, written out independently of the
// trainer's and the server's code: read each input's source from the request (NaN when missing
// under the native policy, the imputation value otherwise), transform, then standardise a numeric
// input that says so, or one-hot a categorical one.
func referenceColumns(t *testing.T, b *bundle.Bundle, features json.RawMessage) []float64 {
	t.Helper()
	f := mustFeatures(t, features)
	var x []float64
	for _, in := range b.Manifest.Inputs {
		num, cat, ok := read(f, in.Source)
		if in.Type == bundle.TypeCategorical {
			if !ok {
				cat = in.Missing.Category
			}
			for _, c := range in.Categories {
				x = append(x, map[bool]float64{true: 1, false: 0}[c == cat])
			}
			continue
		}
		switch {
		case !ok && in.Missing.Policy == bundle.MissingNative:
			x = append(x, math.NaN())
			continue
		case !ok:
			num = in.Missing.Value
		}
		switch in.Transform {
		case bundle.TransformLog1p:
			num = math.Log1p(num)
		case bundle.TransformIndicator:
			num = map[bool]float64{true: 1, false: 0}[num > 0]
		}
		if in.Standardize != nil {
			num = (num - in.Standardize.Mean) / in.Standardize.Scale
		}
		x = append(x, num)
	}
	return x
}

// referenceCalibration applies a bundle's calibration to a margin, written out independently:
// the logistic function, Platt's sigmoid(A*m+B), or numpy.interp of the isotonic points at the
// logistic function of the margin.
func referenceCalibration(t *testing.T, c *bundle.Calibration, m float64) float64 {
	t.Helper()
	sig := func(z float64) float64 {
		if z >= 0 {
			return 1 / (1 + math.Exp(-z))
		}
		return math.Exp(z) / (1 + math.Exp(z))
	}
	switch c.Method {
	case bundle.CalibrationNone:
		return sig(m)
	case bundle.CalibrationPlatt:
		return sig(c.A*m + c.B)
	case bundle.CalibrationIsotonic:
		s := sig(m)
		n := len(c.X)
		if s < c.X[0] {
			return c.Y[0]
		}
		if s >= c.X[n-1] {
			return c.Y[n-1]
		}
		for i := n - 2; i >= 0; i-- {
			if c.X[i] <= s {
				return c.Y[i] + (c.Y[i+1]-c.Y[i])*(s-c.X[i])/(c.X[i+1]-c.X[i])
			}
		}
	}
	t.Fatalf("calibration %q", c.Method)
	return 0
}

// read gets a source's value from a request (the sources runSpec uses).
func read(f *churnv1.CustomerFeatures, source string) (num float64, cat string, ok bool) {
	switch source {
	case "complaints.count_90d":
		c := f.GetComplaints()
		return c.GetCount_90D(), "", c != nil && c.Count_90D != nil
	case "account.tenure_months":
		a := f.GetAccount()
		return a.GetTenureMonths(), "", a != nil && a.TenureMonths != nil
	case "account.contract":
		a := f.GetAccount()
		return 0, a.GetContract(), a != nil && a.Contract != nil
	}
	if k, found := strings.CutPrefix(source, "numeric."); found {
		num, ok = f.GetNumeric()[k]
		return num, "", ok
	}
	k, _ := strings.CutPrefix(source, "categorical.")
	cat, ok = f.GetCategorical()[k]
	return 0, cat, ok
}

func TestRunProbabilitiesReproduceFromTheBundle(t *testing.T) {
	t.Parallel()
	res, ds, cfg := toyRun(t)
	data, err := res.Bundle.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(b.Model.Logistic.Weights), len(b.Manifest.Columns()); got != want {
		t.Fatalf("%d weights for %d columns", got, want)
	}
	if len(b.Manifest.CheckVectors) != 10 {
		t.Errorf("%d check vectors, want 8 spread + 2 with inputs removed", len(b.Manifest.CheckVectors))
	}
	for i, cv := range b.Manifest.CheckVectors {
		if got := reference(t, b, cv.Features); math.Abs(got-cv.Probability) > 1e-12 {
			t.Errorf("check vector %d: bundle gives %v, trainer wrote %v (%s)", i, got, cv.Probability, cv.Features)
		}
	}
	// The last two check vectors leave inputs out, so that serving must impute them.
	last := b.Manifest.CheckVectors[len(b.Manifest.CheckVectors)-1]
	if string(last.Features) != "{}" {
		t.Errorf("the last check vector has every input removed, got %s", last.Features)
	}
	if len(res.Golden) != len(cfg.TestRows) {
		t.Fatalf("%d golden rows for %d test rows", len(res.Golden), len(cfg.TestRows))
	}
	p := make([]float64, len(res.Golden))
	for i, g := range res.Golden {
		p[i] = reference(t, b, g.Features)
		if math.Abs(p[i]-g.Probability) > 1e-12 {
			t.Errorf("golden row %d: bundle gives %v, trainer wrote %v", i, p[i], g.Probability)
		}
	}
	// The recorded metrics are those of the probabilities the bundle reproduces.
	m, err := Evaluate("test", labels(ds, cfg.TestRows), p, &b.Manifest.Tiers)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Manifest.Training.Metrics; math.Abs(got.ROCAUC-m.ROCAUC) > 1e-12 || math.Abs(got.LogLoss-m.LogLoss) > 1e-12 {
		t.Errorf("recorded metrics %+v, recomputed %+v", got, m)
	}
	tr := b.Manifest.Training
	if tr.Trainer != "logistic" || tr.Params["c"] != 1 || tr.Rows["train"] != len(cfg.TrainRows) || tr.Rows["test"] != len(cfg.TestRows) || tr.Dataset != "toy.csv" {
		t.Errorf("training record = %+v", tr)
	}
	if m.ROCAUC < 0.7 {
		t.Errorf("test ROC-AUC %v: the toy model learnt nothing", m.ROCAUC)
	}
	// The drift reference is the winner's out-of-fold probabilities of every training row, at
	// the buckets churnd's histogram uses.
	want := bundle.NewScoreDistribution("out_of_fold", bundle.ScoreEdges, res.Candidates[0].oofP)
	if diff := cmp.Diff(want, tr.Scores); diff != "" {
		t.Errorf("training.scores (-want +got):\n%s", diff)
	}
	total := 0
	for _, c := range tr.Scores.Counts {
		total += c
	}
	if total != len(cfg.TrainRows) {
		t.Errorf("training.scores counts %d rows, trained on %d", total, len(cfg.TrainRows))
	}
}

func TestRunIsReproducible(t *testing.T) {
	t.Parallel()
	a, _, _ := toyRun(t)
	b, _, _ := toyRun(t)
	ea, err := a.Bundle.Encode()
	if err != nil {
		t.Fatal(err)
	}
	eb, err := b.Bundle.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ea, eb) {
		t.Error("two runs on the same data wrote different bundles")
	}
}

func TestRunTiersFollowTheQuantiles(t *testing.T) {
	t.Parallel()
	res, ds, cfg := toyRun(t)
	tiers := res.Bundle.Manifest.Tiers
	// The thresholds are quantiles of the training rows' out-of-fold probabilities.
	p := res.Candidates[0].oofP
	if len(p) != len(cfg.TrainRows) {
		t.Fatalf("%d out-of-fold probabilities for %d training rows", len(p), len(cfg.TrainRows))
	}
	_ = ds
	share := func(th float64) float64 {
		n := 0
		for _, v := range p {
			if v >= th {
				n++
			}
		}
		return float64(n) / float64(len(p))
	}
	for _, c := range []struct {
		name      string
		th, share float64
	}{{"medium", tiers.Medium, 0.35}, {"high", tiers.High, 0.15}, {"critical", tiers.Critical, 0.05}} {
		if got := share(c.th); got < c.share || got > c.share+0.02 {
			t.Errorf("%s threshold %v: %.3f of the out-of-fold rows at or above it, want about %v", c.name, c.th, got, c.share)
		}
	}
}

// TestRunUnseenCategories: by default a test row with a category the training rows did not have
// is scored (as missing), so it is measured and among the golden rows; under the spec's
// "unseen": "error" the bundle refuses such a row, so it is measured (as scikit-learn's one-hot
// encoder with handle_unknown="ignore" would) but kept out of the golden rows.
func TestRunUnseenCategories(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy       string
		unseen, lost int
	}{{"", 0, 0}, {`, "unseen": "error"`, 1, 1}} {
		spec := strings.Replace(runSpec, `"status": {"source": "categorical.status"}`, `"status": {"source": "categorical.status"`+tc.policy+`}`, 1)
		ds, err := ReadCSV(strings.NewReader(toyCSV(300, 4)), mustSpec(t, spec))
		if err != nil {
			t.Fatal(err)
		}
		trainRows, testRows := StratifiedSplit(ds.Labels, 0.2, 1)
		ds.Rows[testRows[0]][4] = Value{Cat: "closed"} // status never seen in training
		res, err := Run(context.Background(), Config{
			Data: ds, TrainRows: trainRows, TestRows: testRows, C: 1, Tiers: DefaultTierQuantiles,
			Name: "toy", Version: "toy-2", CreatedAt: time.Unix(0, 0),
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Unseen != tc.unseen || len(res.Golden) != len(testRows)-tc.lost || res.Test.Rows != len(testRows) {
			t.Errorf("policy %q: unseen %d, golden %d, measured %d of %d test rows", tc.policy, res.Unseen, len(res.Golden), res.Test.Rows, len(testRows))
		}
	}
}

func TestTierQuantilesValidate(t *testing.T) {
	t.Parallel()
	for _, q := range []TierQuantiles{{0.1, 0.2, 0.05}, {0.3, 0.1, 0}, {1.5, 0.1, 0.05}, {0.3, 0.2, 0.25}} {
		if err := q.Validate(); err == nil {
			t.Errorf("%+v: no error", q)
		}
	}
	if err := DefaultTierQuantiles.Validate(); err != nil {
		t.Error(err)
	}
}

// blockingTrainer is a family whose fits never finish: each waits until its context ends.
func blockingTrainer(name string) Trainer {
	return Trainer{
		Name: name, Describe: "blocks", Encoding: EncodeStandardized,
		Fit: func(ctx context.Context, in FitInput) (*Fitted, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		},
	}
}

// spendingClock is a clock for Config.Now that stands still until spend is set, then jumps past
// the budget: the trainers after that get a share of nothing, and their deadlines are already
// past when they start, without the test waiting for anything.
func spendingClock(budget time.Duration) (now func() time.Time, spend *atomic.Bool) {
	spend = &atomic.Bool{}
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		if spend.Load() {
			return t0.Add(budget)
		}
		return t0
	}, spend
}

// TestRunSkipsATrainerOverItsBudget: with a budget, a family that never finishes is stopped at
// the end of its share, reported and skipped, and the run keeps the best of the others.
func TestRunSkipsATrainerOverItsBudget(t *testing.T) {
	t.Parallel()
	cfg := toyConfig(t)
	cfg.Trainers = []Trainer{LogisticTrainer(1), blockingTrainer("stuck")}
	cfg.Budget = time.Hour
	var spend *atomic.Bool
	cfg.Now, spend = spendingClock(cfg.Budget) // the logistic regression spends the budget
	var events []Progress
	cfg.Progress = func(p Progress) {
		if p.Event == EventTrainerDone {
			spend.Store(true)
		}
		if p.Event != EventRound {
			events = append(events, p)
		}
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Trainer != "logistic" || len(res.Candidates) != 1 || res.Bundle.Manifest.Training.Trainer != "logistic" {
		t.Errorf("trainer %s, %d candidates; want logistic alone", res.Trainer, len(res.Candidates))
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Name != "stuck" {
		t.Fatalf("skipped %+v, want stuck", res.Skipped)
	}
	err = res.Skipped[0].Err
	want := "trainer stuck: ran out of its time budget (0s, its share of 1h0m0s) after 0 of 6 fits: "
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("skipped because %q, want DeadlineExceeded and %q", err, want)
	}
	last := events[len(events)-1]
	if last.Event != EventTrainerSkipped || last.Trainer != "stuck" || last.Err != err || last.Done != 12 || last.Total != 12 {
		t.Errorf("last report %+v, want stuck skipped with its 6 fits counted done, 12 of 12", last)
	}
}

// TestRunFailsWhenEveryTrainerFails: the error says why for each trainer.
func TestRunFailsWhenEveryTrainerFails(t *testing.T) {
	t.Parallel()
	cfg := toyConfig(t)
	broken := Trainer{
		Name: "broken", Describe: "fails", Encoding: EncodeRaw,
		Fit: func(context.Context, FitInput) (*Fitted, error) { return nil, errors.New("no model today") },
	}
	cfg.Trainers = []Trainer{broken, blockingTrainer("stuck")}
	cfg.Budget = time.Hour
	var spend *atomic.Bool
	cfg.Now, spend = spendingClock(cfg.Budget) // broken fails within its share and spends the rest
	cfg.Progress = func(p Progress) {
		if p.Event == EventTrainerSkipped {
			spend.Store(true)
		}
	}
	_, err := Run(context.Background(), cfg)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"every trainer failed:\ntrainer broken: fold ", " of 5: no model today\n", "trainer stuck: ran out of its time budget"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

// TestRunStopsAtADataError: a column without a training value stops the run before any fit,
// naming the column, rather than failing every trainer in turn.
func TestRunStopsAtADataError(t *testing.T) {
	t.Parallel()
	cfg := toyConfig(t)
	for _, i := range cfg.TrainRows {
		cfg.Data.Rows[i][1] = Value{Missing: true} // tenure
	}
	fits := 0
	cfg.Trainers = AutoTrainers(1, DefaultGBDTOptions, LeafwiseGBDTOptions)
	cfg.Progress = func(Progress) { fits++ }
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), `column "tenure": every training value is missing`) || strings.Contains(err.Error(), "trainer") {
		t.Errorf("error %v, want the column and the reason, once", err)
	}
	if fits != 0 {
		t.Errorf("%d progress reports before the data error", fits)
	}
}
