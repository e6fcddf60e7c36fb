package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/train"
)

// trainFlags are the flags of churnctl train.
type trainFlags struct {
	data, spec, testIdx         string
	name, version, created, out string
	goldenOut, tierQuantiles    string
	description                 string
	c                           float64
	seed                        int64
}

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
	fs.StringVar(&f.spec, "spec", "", "dataset spec (JSON) mapping the CSV's columns to model inputs (required)")
	fs.StringVar(&f.testIdx, "test-idx", "", "held-out rows: a file of 0-based data-row indices, one a line (default: a stratified 80/20 split by --seed)")
	fs.StringVar(&f.name, "name", "", "model name in the manifest (default: the spec's name)")
	fs.StringVar(&f.version, "version", "", "model version, e.g. iranian-lr-2026.11.23 (required)")
	fs.StringVar(&f.created, "created", "", "creation time in RFC 3339 (default: now); fix it to reproduce a bundle byte for byte")
	fs.StringVar(&f.out, "out", "", "where to write the bundle (required)")
	fs.StringVar(&f.goldenOut, "golden-out", "", "also write every held-out row as {features, probability} to this JSON file")
	fs.StringVar(&f.tierQuantiles, "tier-quantiles", "0.35,0.15,0.05", "shares of the training rows at or above MEDIUM,HIGH,CRITICAL")
	fs.StringVar(&f.description, "description", "", "manifest description (default: says what was trained on what)")
	fs.Float64Var(&f.c, "c", 1, "inverse L2 regularisation strength, as scikit-learn's LogisticRegression C")
	fs.Int64Var(&f.seed, "seed", 42, "seed of the stratified split when --test-idx is not given")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: churnctl train --data file.csv --spec spec.json --version V --out bundle.json [flags]")
		fmt.Fprintln(stderr, "\nFits a logistic regression, evaluates it on the held-out rows and writes a model bundle.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "churnctl train: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return 2
	}
	err := trainCommand(ctx, &f, args, now, stdout)
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
func trainCommand(ctx context.Context, f *trainFlags, args []string, now func() time.Time, stdout io.Writer) error {
	created, tiers, err := f.check(now)
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
		Data: ds, TrainRows: trainRows, TestRows: testRows, C: f.c, Tiers: tiers,
		Name: f.name, Version: f.version, CreatedAt: created, Description: f.description,
		Command: commandLine(args), DatasetFile: filepath.Base(f.data), Seed: f.seed,
	}
	if cfg.Name == "" {
		cfg.Name = spec.Name
	}
	if cfg.Description == "" {
		cfg.Description = fmt.Sprintf("Logistic regression (C=%g) on %s (dataset spec %s).", f.c, cfg.DatasetFile, spec.Name)
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

// parseTierQuantiles parses "medium,high,critical".
func parseTierQuantiles(s string) (train.TierQuantiles, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return train.TierQuantiles{}, fmt.Errorf("--tier-quantiles %q: want three shares medium,high,critical, e.g. 0.35,0.15,0.05", s)
	}
	var v [3]float64
	for i, p := range parts {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return train.TierQuantiles{}, fmt.Errorf("--tier-quantiles %q: %q is not a number", s, p)
		}
		v[i] = x
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
	fmt.Fprintf(w, "trained %s %s: logistic regression, C=%g, %d columns, %d L-BFGS iterations\n",
		m.Name, m.Version, f.c, len(res.Fit.Weights), res.Fit.Iterations)
	fmt.Fprintf(w, "rows: %d train (%d positive, %.4f), %d test (%d positive, %.4f)\n",
		tr.Rows, tr.Positives, rate(tr), te.Rows, te.Positives, rate(te))
	if res.Unseen > 0 {
		fmt.Fprintf(w, "note: %d test rows have a category unseen in training; the bundle refuses them, so they are not in the golden file\n", res.Unseen)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tROC-AUC\tPR-AUC\tlog loss\tBrier\t")
	for _, x := range []*bundle.Metrics{tr, te} {
		fmt.Fprintf(tw, "%s\t%.4f\t%.4f\t%.4f\t%.4f\t\n", x.Split, x.ROCAUC, x.PRAUC, x.LogLoss, x.Brier)
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
	fmt.Fprintf(w, "\ntiers (from the training rows' probabilities, --tier-quantiles %s): MEDIUM >= %.4f, HIGH >= %.4f, CRITICAL >= %.4f\n",
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
