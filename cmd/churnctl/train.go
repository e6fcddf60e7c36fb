package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/golearntree"
	"github.com/churnhq/churn/internal/train"
)

// trainFlags are the flags of churnctl train.
type trainFlags struct {
	data, spec, testIdx         string
	name, version, created, out string
	goldenOut, tierQuantiles    string
	description                 string
	trainer                     string
	c                           float64
	seed                        int64
	folds                       int
	gbdt                        train.GBDTOptions
	leafwiseDepth               int
	golearn                     golearntree.Options
	timeBudget                  time.Duration
	quiet                       bool
}

// defaultTimeBudget is the default of --time-budget: auto on 100k rows × 50 columns took 6.5
// minutes on 2 busy cores, its slowest trainer under 4 of the 10 minutes that is its share
// (docs/MODELS.md, "Every fit ends").
const defaultTimeBudget = 30 * time.Minute

// usageError is a bad flag value: exit code 2.
type usageError struct{ error }

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return trainMain(ctx, args, stdout, stderr, time.Now)
}

// trainMain is runTrain with an injected clock (the default of --created).
func trainMain(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fs := flag.NewFlagSet("churnctl train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f trainFlags
	fs.StringVar(&f.data, "data", "", "training data: a CSV file with a header row (required)")
	fs.StringVar(&f.spec, "spec", "", "dataset spec (JSON) mapping the CSV's columns to model inputs; docs/MODELS.md, \"Dataset specs\", documents it (required)")
	fs.StringVar(&f.testIdx, "test-idx", "", "held-out rows: a file of 0-based data-row indices, one a line (default: a stratified 80/20 split by --seed)")
	fs.StringVar(&f.name, "name", "", "model name in the manifest (default: the spec's name)")
	fs.StringVar(&f.version, "version", "", "model version, e.g. iranian-gbdt-2026.11.24 (required)")
	fs.StringVar(&f.created, "created", "", "creation time in RFC 3339 (default: now); fix it to reproduce a bundle byte for byte")
	fs.StringVar(&f.out, "out", "", "where to write the bundle (required)")
	fs.StringVar(&f.goldenOut, "golden-out", "", "also write every held-out row as {features, probability} to this JSON file")
	fs.StringVar(&f.tierQuantiles, "tier-quantiles", "0.35,0.15,0.05", "shares of the training rows at or above MEDIUM,HIGH,CRITICAL")
	fs.StringVar(&f.description, "description", "", "manifest description (default: says what was trained on what)")
	fs.StringVar(&f.trainer, "trainer", "auto", "model family: "+strings.Join(trainerNames, ", ")+" (auto fits logistic, gbdt and gbdt-leafwise and keeps the best by cross-fitted Brier score; golearn-* fit golearn's trees)")
	fs.Float64Var(&f.c, "c", 1, "logistic: inverse L2 regularisation strength, as scikit-learn's LogisticRegression C")
	fs.Int64Var(&f.seed, "seed", 42, "seed of the stratified split (when --test-idx is not given), of the folds and of gbdt's sampling")
	fs.IntVar(&f.folds, "folds", 5, "stratified folds of the training rows for early stopping, calibration, tiers and --trainer auto")
	d := train.DefaultGBDTOptions
	fs.Float64Var(&f.gbdt.LearningRate, "gbdt-learning-rate", d.LearningRate, "gbdt: shrinkage of every tree")
	fs.IntVar(&f.gbdt.MaxDepth, "gbdt-max-depth", d.MaxDepth, "gbdt: depth of a tree (1: stumps)")
	fs.IntVar(&f.gbdt.MaxLeaves, "gbdt-max-leaves", train.LeafwiseGBDTOptions.MaxLeaves, "gbdt-leafwise: most leaves of a tree, grown best first")
	fs.IntVar(&f.leafwiseDepth, "gbdt-leafwise-max-depth", train.LeafwiseGBDTOptions.MaxDepth, "gbdt-leafwise: depth of a tree")
	fs.IntVar(&f.gbdt.MaxRounds, "gbdt-max-rounds", d.MaxRounds, "gbdt: most trees")
	fs.IntVar(&f.gbdt.EarlyStopping, "gbdt-early-stopping", d.EarlyStopping, "gbdt: stop after this many rounds without a better validation log loss")
	fs.Float64Var(&f.gbdt.Lambda, "gbdt-lambda", d.Lambda, "gbdt: L2 regularisation of leaf values")
	fs.Float64Var(&f.gbdt.MinChildWeight, "gbdt-min-child-weight", d.MinChildWeight, "gbdt: least hessian sum of a child")
	fs.IntVar(&f.gbdt.MinLeafRows, "gbdt-min-leaf-rows", d.MinLeafRows, "gbdt: least training rows in a leaf")
	fs.IntVar(&f.gbdt.MaxBins, "gbdt-max-bins", d.MaxBins, "gbdt: quantile bins per column (2..255)")
	fs.Float64Var(&f.gbdt.Subsample, "gbdt-subsample", d.Subsample, "gbdt: share of rows each tree sees (drawn by --seed)")
	fs.Float64Var(&f.gbdt.ColSample, "gbdt-colsample", d.ColSample, "gbdt: share of columns each tree may split on (drawn by --seed)")
	fs.IntVar(&f.golearn.MaxDepth, "golearn-max-depth", 0, "golearn-*: depth of a tree (0: golearntree's default per kind)")
	fs.IntVar(&f.golearn.Trees, "golearn-trees", 0, "golearn-rf: trees of the forest (0: golearntree.DefaultTrees)")
	fs.IntVar(&f.golearn.CARTBins, "golearn-cart-bins", 32, "golearn-cart: fit on at most this many quantile bins per column (golearn's CART costs rows × distinct values otherwise); 0: on the raw values")
	fs.DurationVar(&f.timeBudget, "time-budget", defaultTimeBudget, "time for fitting the trainers: each gets an equal share of what is left when it starts; "+
		"one that runs out of its share, or fails, is skipped and the best of the others kept")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress on stderr (a bar when stderr is a terminal, log lines otherwise)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: churnctl train --data file.csv --spec spec.json --version V --out bundle.json [flags]")
		fmt.Fprintln(stderr, "\nFits a model (logistic regression or gradient-boosted trees), calibrates it, evaluates it on the held-out rows and writes a model bundle.")
		fs.PrintDefaults()
	}
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	err := trainCommand(ctx, &f, args, now, stdout, trainProgress(stderr, f.quiet, now))
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "churnctl train: %v\n", err)
		fs.Usage()
		return 2
	default:
		fmt.Fprintf(stderr, "churnctl train: %v\n", err)
		return 1
	}
}

// trainCommand checks the flags, trains, writes the outputs and prints the summary.
func trainCommand(ctx context.Context, f *trainFlags, args []string, now func() time.Time, stdout io.Writer, progress func(train.Progress)) error {
	created, tiers, err := f.check(now)
	if err != nil {
		return err
	}
	trainers, err := f.trainers()
	if err != nil {
		return err
	}
	spec, ds, err := loadData(f.data, f.spec)
	if err != nil {
		return err
	}
	trainRows, testRows, err := split(f, ds)
	if err != nil {
		return err
	}
	cfg := train.Config{
		Data: ds, TrainRows: trainRows, TestRows: testRows, Trainers: trainers, Tiers: tiers, Folds: f.folds,
		Name: f.name, Version: f.version, CreatedAt: created, Description: f.description, SpecName: spec.Name,
		Command: commandLine(args), DatasetFile: filepath.Base(f.data), Seed: f.seed, Progress: progress,
		Budget: f.timeBudget,
	}
	if cfg.Name == "" {
		cfg.Name = spec.Name
	}
	res, err := train.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if err := writeOutputs(f, res); err != nil {
		return err
	}
	printSummary(stdout, f, res)
	return nil
}

// check validates the flag values and parses --created and --tier-quantiles.
func (f *trainFlags) check(now func() time.Time) (time.Time, train.TierQuantiles, error) {
	var q train.TierQuantiles
	for _, req := range []struct{ name, val string }{{"data", f.data}, {"spec", f.spec}, {"version", f.version}, {"out", f.out}} {
		if req.val == "" {
			return time.Time{}, q, usageError{fmt.Errorf("--%s is required", req.name)}
		}
	}
	if !bundle.ValidVersion(f.version) {
		return time.Time{}, q, usageError{fmt.Errorf("--version %q: want 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit", f.version)}
	}
	if f.name != "" && !bundle.ValidVersion(f.name) {
		return time.Time{}, q, usageError{fmt.Errorf("--name %q: want 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit", f.name)}
	}
	if !(f.c > 0) || math.IsInf(f.c, 1) {
		return time.Time{}, q, usageError{fmt.Errorf("--c %g: want a positive number", f.c)}
	}
	if f.folds < 2 || f.folds > 20 {
		return time.Time{}, q, usageError{fmt.Errorf("--folds %d: want 2..20", f.folds)}
	}
	if err := f.gbdt.Validate(); err != nil {
		return time.Time{}, q, usageError{fmt.Errorf("--%v", err)}
	}
	if f.leafwiseDepth < 1 || f.leafwiseDepth > 16 {
		return time.Time{}, q, usageError{fmt.Errorf("--gbdt-leafwise-max-depth %d: want 1..16", f.leafwiseDepth)}
	}
	if f.timeBudget <= 0 {
		return time.Time{}, q, usageError{fmt.Errorf("--time-budget %v: want a positive duration, e.g. 30m", f.timeBudget)}
	}
	created := now().UTC().Truncate(time.Second)
	if f.created != "" {
		t, err := time.Parse(time.RFC3339, f.created)
		if err != nil {
			return time.Time{}, q, usageError{fmt.Errorf("--created %q: want RFC 3339, e.g. 2026-11-23T00:00:00Z", f.created)}
		}
		created = t
	}
	q, err := parseTierQuantiles(f.tierQuantiles)
	if err != nil {
		return time.Time{}, q, usageError{err}
	}
	return created, q, nil
}

// trainerNames are the values of --trainer.
var trainerNames = []string{"auto", "logistic", "gbdt", "gbdt-leafwise", "golearn-cart", "golearn-id3", "golearn-rf"}

// golearnKinds maps the golearn trainers to golearntree's kinds.
var golearnKinds = map[string]string{
	"golearn-cart": golearntree.KindCART,
	"golearn-id3":  golearntree.KindID3,
	"golearn-rf":   golearntree.KindRandomForest,
}

// trainers returns the candidate trainers of --trainer. A new model family is one more case
// here (and a name in trainerNames): a train.Trainer, for tree learners train.TreeTrainer.
func (f *trainFlags) trainers() ([]train.Trainer, error) {
	gbdt := f.gbdt
	gbdt.Seed = uint64(f.seed)
	leafwise := gbdt
	gbdt.MaxLeaves = 0
	leafwise.MaxDepth = f.leafwiseDepth
	switch f.trainer {
	case "auto":
		return train.AutoTrainers(f.c, gbdt, leafwise), nil
	case "logistic":
		return []train.Trainer{train.LogisticTrainer(f.c)}, nil
	case "gbdt":
		return []train.Trainer{train.GBDTTrainer(gbdt)}, nil
	case "gbdt-leafwise":
		return []train.Trainer{train.GBDTTrainer(leafwise)}, nil
	case "golearn-cart", "golearn-id3", "golearn-rf":
		kind, opt := golearnKinds[f.trainer], f.golearn
		opt.Seed = f.seed
		params := map[string]float64{"max_depth": float64(opt.MaxDepth), "trees": float64(opt.Trees), "cart_bins": float64(opt.CARTBins)}
		// golearn's trees take no missing values: inputs are imputed as for logistic regression.
		return []train.Trainer{train.TreeTrainer(f.trainer, "golearn "+kind+" ("+golearntree.Module+")", train.EncodeRawImputed, params,
			func(ctx context.Context, X []float64, n, d int, y []bool) (*bundle.TreeEnsemble, error) {
				return golearntree.Fit(ctx, kind, X, n, d, y, opt)
			})}, nil
	}
	return nil, usageError{fmt.Errorf("--trainer %q: want one of %s", f.trainer, strings.Join(trainerNames, ", "))}
}

// trainProgress returns the progress callback of churnctl train: none with quiet; a bar on
// stderr when it is a terminal; otherwise log lines on stderr (log/slog, text), for a run whose
// stderr goes to a file or a CI log: one when a fit finishes, when a trainer is done and when
// one is skipped, and while fits run at most one every progressEvery with the latest round.
func trainProgress(stderr io.Writer, quiet bool, now func() time.Time) func(train.Progress) {
	if quiet {
		return nil
	}
	if isTerminal(stderr) {
		return progressBar(stderr)
	}
	return progressLog(stderr, now)
}

// progressBar draws the finished fits as a bar on stderr.
func progressBar(stderr io.Writer) func(train.Progress) {
	var bar *progressbar.ProgressBar
	return func(p train.Progress) {
		if p.Event == train.EventRound {
			return
		}
		if bar == nil {
			bar = progressbar.NewOptions(p.Total, progressbar.OptionSetWriter(stderr),
				progressbar.OptionSetDescription("fitting"), progressbar.OptionShowCount(),
				progressbar.OptionClearOnFinish())
		}
		_ = bar.Set(p.Done) // drawing errors are not worth stopping a training run for
	}
}

// progressEvery is the least time between two log lines about rounds.
const progressEvery = 10 * time.Second

// progressLog writes the progress as log lines on stderr; now is the clock of progressEvery.
func progressLog(stderr io.Writer, now func() time.Time) func(train.Progress) {
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "train")
	var last time.Time // of the last line about rounds
	return func(p train.Progress) {
		elapsed := slog.Duration("elapsed", p.Elapsed.Round(100*time.Millisecond))
		fits := slog.String("fits_done", fmt.Sprintf("%d/%d", p.Done, p.Total))
		switch p.Event {
		case train.EventRound:
			if t := now(); t.Sub(last) >= progressEvery {
				last = t
				log.Info("fitting", "trainer", p.Trainer, "fit", fitName(p), "round", p.Round, fits, elapsed)
			}
		case train.EventFitDone:
			log.Info("fit done", "trainer", p.Trainer, "fit", fitName(p), "rounds", p.Round, fits, elapsed)
		case train.EventTrainerDone:
			c := p.Candidate
			log.Info("trainer done", "trainer", p.Trainer, "brier", fmt.Sprintf("%.4f", c.Brier), "roc_auc", fmt.Sprintf("%.4f", c.ROCAUC),
				"calibration", c.Calibration, "brier_before_calibration", fmt.Sprintf("%.4f", c.RawBrier),
				"roc_auc_before_calibration", fmt.Sprintf("%.4f", c.RawROCAUC), "seconds", fmt.Sprintf("%.1f", c.Seconds), elapsed)
		case train.EventTrainerSkipped:
			log.Warn("trainer skipped", "trainer", p.Trainer, "err", p.Err, fits, elapsed)
		}
	}
}

// fitName names a fit in the log: "fold 2/5", or "final" for the fit on all training rows.
func fitName(p train.Progress) string {
	if p.Fold == 0 {
		return "final"
	}
	return fmt.Sprintf("fold %d/%d", p.Fold, p.Folds)
}

// parseTierQuantiles parses "medium,high,critical".
func parseTierQuantiles(s string) (train.TierQuantiles, error) {
	v, err := parseTriple("--tier-quantiles", s, "shares", "0.35,0.15,0.05")
	if err != nil {
		return train.TierQuantiles{}, err
	}
	q := train.TierQuantiles{Medium: v[0], High: v[1], Critical: v[2]}
	if err := q.Validate(); err != nil {
		return q, fmt.Errorf("--tier-quantiles %q: %v", s, err)
	}
	return q, nil
}

// loadData reads the spec and the CSV.
func loadData(dataPath, specPath string) (*train.Spec, *train.Dataset, error) {
	raw, err := os.ReadFile(specPath)
	if err != nil {
		return nil, nil, err
	}
	spec, err := train.ParseSpec(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %v", specPath, err)
	}
	fh, err := os.Open(dataPath)
	if err != nil {
		return nil, nil, err
	}
	defer fh.Close()
	ds, err := train.ReadCSV(fh, spec)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %v", dataPath, err)
	}
	return spec, ds, nil
}

// split returns the training and held-out rows: from --test-idx, or stratified by --seed.
func split(f *trainFlags, ds *train.Dataset) (trainRows, testRows []int, err error) {
	if f.testIdx == "" {
		trainRows, testRows = train.StratifiedSplit(ds.Labels, 0.2, uint64(f.seed))
		return trainRows, testRows, nil
	}
	fh, err := os.Open(f.testIdx)
	if err != nil {
		return nil, nil, err
	}
	defer fh.Close()
	testRows, err = train.ReadIndices(fh, len(ds.Rows))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %v", f.testIdx, err)
	}
	return train.Complement(len(ds.Rows), testRows), testRows, nil
}

// commandLine is the command as typed, for the training record: "churnctl train" and the
// arguments, each quoted when it needs to be.
func commandLine(args []string) string {
	parts := []string{"churnctl", "train"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// writeOutputs writes the bundle and, when asked, the golden rows.
func writeOutputs(f *trainFlags, res *train.Result) error {
	data, err := res.Bundle.Encode()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(f.out, data); err != nil {
		return err
	}
	if f.goldenOut == "" {
		return nil
	}
	g, err := json.MarshalIndent(res.Golden, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(f.goldenOut, append(g, '\n'))
}

// writeFileAtomic writes data to a temporary file beside path and renames it into place, so that
// a reader (a model directory being watched) never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// printSummary prints the rows, the metrics, the calibration table, the tiers and the outputs.
func printSummary(w io.Writer, f *trainFlags, res *train.Result) {
	m := res.Bundle.Manifest
	tr, te := res.Train, res.Test
	fmt.Fprintf(w, "trained %s %s: %s, %d columns, calibration %s\n",
		m.Name, m.Version, res.Trainer, len(m.Columns()), m.Calibration.Method)
	fmt.Fprintln(w, "out-of-fold figures of each trainer, before calibration (sigmoid of the margin) and after the calibration chosen for it")
	fmt.Fprintln(w, "(chosen when it lowers the Brier score without costing ROC-AUC within a fold: ranking cost):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "trainer\tROC-AUC before\tBrier before\tcalibration\tranking cost\tROC-AUC after\tBrier after\trounds\tseconds\t")
	for _, c := range res.Candidates {
		cost := c.RankingCostByMethod[c.Calibration]
		if math.Abs(cost) < 0.00005 {
			cost = 0 // not "-0.0000" for a gain of 1e-5
		}
		fmt.Fprintf(tw, "%s\t%.4f\t%.4f\t%s\t%.4f\t%.4f\t%.4f\t%d\t%.1f\t\n",
			c.Name, c.RawROCAUC, c.RawBrier, c.Calibration, cost, c.ROCAUC, c.Brier, c.Rounds, c.Seconds)
	}
	tw.Flush()
	for _, sk := range res.Skipped {
		fmt.Fprintf(w, "skipped after %.1f s: %v\n", sk.Seconds, sk.Err)
	}
	fmt.Fprintf(w, "rows: %d train (%d positive, %.4f), %d test (%d positive, %.4f)\n",
		tr.Rows, tr.Positives, rate(tr), te.Rows, te.Positives, rate(te))
	if res.Unseen > 0 {
		fmt.Fprintf(w, "note: %d test rows have a category unseen in training; the bundle refuses them, so they are not in the golden file\n", res.Unseen)
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s model\tROC-AUC\tPR-AUC\tlog loss\tBrier\t\n", res.Trainer)
	for _, x := range []struct {
		label string
		m     *bundle.Metrics
	}{
		{"train, after calibration", tr},
		{"validation (out-of-fold), after calibration", res.Validation},
		{"test, before calibration", res.TestUncalibrated},
		{"test, after calibration (as served)", te},
	} {
		fmt.Fprintf(tw, "%s\t%.4f\t%.4f\t%.4f\t%.4f\t\n", x.label, x.m.ROCAUC, x.m.PRAUC, x.m.LogLoss, x.m.Brier)
	}
	tw.Flush()
	fmt.Fprintln(w, "\ncalibration on the test rows:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "bin\trows\tmean predicted\tobserved rate\t")
	for i, b := range te.Calibration {
		closer := ")"
		if i == len(te.Calibration)-1 {
			closer = "]"
		}
		fmt.Fprintf(tw, "[%.1f, %.1f%s\t%d\t%.4f\t%.4f\t\n", b.Lower, b.Upper, closer, b.Count, b.MeanPredicted, b.ObservedRate)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntiers (from the training rows' out-of-fold probabilities, --tier-quantiles %s): MEDIUM >= %.4f, HIGH >= %.4f, CRITICAL >= %.4f\n",
		f.tierQuantiles, m.Tiers.Medium, m.Tiers.High, m.Tiers.Critical)
	fmt.Fprintf(w, "check vectors: %d\n", len(m.CheckVectors))
	fmt.Fprintf(w, "bundle written to %s\n", f.out)
	if f.goldenOut != "" {
		fmt.Fprintf(w, "golden rows (%d) written to %s\n", len(res.Golden), f.goldenOut)
	}
}

func rate(m *bundle.Metrics) float64 {
	if m.Rows == 0 {
		return 0
	}
	return float64(m.Positives) / float64(m.Rows)
}
