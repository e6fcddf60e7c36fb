package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/importer"
)

// importFlags are the flags of churnctl import.
type importFlags struct {
	format, model, schema, rows       string
	name, version, created, out       string
	description, tiers, tierQuantiles string
	tolerance                         float64
	checkVectors                      int
}

const importUsage = `usage: churnctl import --format F --model FILE --schema FILE --rows FILE --version V --out bundle.json [flags]

Turns a model trained by another library into a churn bundle:

  --format xgboost-json      Booster.save_model("m.json") of XGBoost >= 1.0; objective binary:logistic;
                             gbtree or dart. Refused: other objectives, multi-class, gblinear, categorical splits.
  --format lightgbm          LightGBM text model (save_model), objective binary. Refused: other objectives,
                             multi-class, boosting rf (average_output), linear trees, categorical splits.
  --format sklearn-logistic  a scikit-learn LogisticRegression (with an optional StandardScaler) exported to
                             JSON: {"format": "churn.sklearn-logistic.v1", "feature_names": [...], "classes": [0, 1],
                             "coef": [[...]], "intercept": [b], "multi_class": "ovr"|"multinomial",
                             "scaler": {"mean": [...], "scale": [...]}}  (testdata/import/make_models.py writes it)

--schema maps every model feature onto CustomerFeatures (JSON):
  {"features": {"<model feature name>": {"source": "account.tenure_months", "name": "tenure",
                                         "missing": "native"|"impute"|"error", "value": 0, "transform": "log1p"}},
   "categorical": [{"source": "categorical.payment_mode", "name": "payment_mode",
                    "columns": [{"feature": "payment_mode_card", "category": "card"},
                                {"feature": "payment_mode_cash", "category": "cash"}, {"category": "transfer"}],
                    "missing": "zeros"|"impute"|"error", "value": "card", "unseen": "missing"|"error"}]}
  features: source is required: a numeric field (complaints.count_90d, account.monthly_revenue, ...) or
  numeric.<key> (docs/MODELS.md, "Typed fields", lists the fields). missing defaults to native for trees
  (a missing value goes where the library sends it) and error for logistic regression.
  categorical: a group of one-hot columns becomes one categorical input (categorical.<key> or a text field
  such as account.contract): callers send the category, not the columns. An entry without a feature is the
  level a drop-first encoding left without a column. missing "zeros" (the default) sets every column to 0,
  as the library saw a row without a category; an unseen category is scored so too, and listed.
  Features are named as the model names them (XGBoost without feature_names: f0, f1, ...).

--rows is a CSV the library scored: a header of the model's feature names plus "probability" (the library's
predicted probability), one row per input; an empty cell, nan or NA is a missing value (a one-hot column
of a group must be 0 or 1, and 1 in at most one of the group). Every row is scored
through the serving path and the import fails unless each agrees with the library within --tolerance; some
rows become the bundle's check vectors, and tiers are chosen on them unless --tiers is given.

flags:`

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return importMain(ctx, args, stdout, stderr, time.Now)
}

// importMain is runImport with an injected clock (the default of --created).
func importMain(_ context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fs := flag.NewFlagSet("churnctl import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f importFlags
	fs.StringVar(&f.format, "format", "", "model format: "+strings.Join(importer.Formats, ", ")+" (required)")
	fs.StringVar(&f.model, "model", "", "the foreign model file (required)")
	fs.StringVar(&f.schema, "schema", "", "import schema (JSON) mapping the model's features onto CustomerFeatures (required)")
	fs.StringVar(&f.rows, "rows", "", "CSV of rows with the library's own probabilities (required)")
	fs.StringVar(&f.name, "name", "", "model name in the manifest (default: the model file's name)")
	fs.StringVar(&f.version, "version", "", "model version (required)")
	fs.StringVar(&f.created, "created", "", "creation time in RFC 3339 (default: now); fix it to reproduce a bundle byte for byte")
	fs.StringVar(&f.out, "out", "", "where to write the bundle (required)")
	fs.StringVar(&f.description, "description", "", "manifest description (default: what was imported)")
	fs.StringVar(&f.tiers, "tiers", "", "tier thresholds medium,high,critical as probabilities, e.g. 0.3,0.5,0.7 (default: by --tier-quantiles on the rows)")
	fs.StringVar(&f.tierQuantiles, "tier-quantiles", "0.35,0.15,0.05", "shares of the rows at or above MEDIUM,HIGH,CRITICAL")
	fs.Float64Var(&f.tolerance, "tolerance", importer.DefaultTolerance, "largest accepted |serving - library| probability on any row")
	fs.IntVar(&f.checkVectors, "check-vectors", importer.DefaultCheckVectors, "how many rows become check vectors")
	fs.Usage = func() {
		fmt.Fprintln(stderr, importUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	err := importCommand(&f, args, now, stdout)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "churnctl import: %v\nRun 'churnctl import -h' for the flags.\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "churnctl import: %v\n", err)
		return 1
	}
}

// importCommand checks the flags, imports, writes the bundle and prints the summary.
func importCommand(f *importFlags, args []string, now func() time.Time, stdout io.Writer) error {
	opts, err := f.options(now)
	if err != nil {
		return err
	}
	opts.Command = strings.Replace(commandLine(args), "churnctl train", "churnctl import", 1)
	opts.Source = filepath.Base(f.model)
	data, err := readLimitedFile(f.model, importer.MaxModelBytes)
	if err != nil {
		return err
	}
	m, err := importer.Parse(f.format, data)
	if err != nil {
		return fmt.Errorf("%s: %v", f.model, err)
	}
	sdata, err := readLimitedFile(f.schema, importer.MaxSchemaBytes)
	if err != nil {
		return err
	}
	schema, err := importer.ParseSchema(sdata)
	if err != nil {
		return fmt.Errorf("%s: %v", f.schema, err)
	}
	rf, err := os.Open(f.rows)
	if err != nil {
		return err
	}
	defer rf.Close()
	rows, err := importer.ParseRows(rf)
	if err != nil {
		return fmt.Errorf("%s: %v", f.rows, err)
	}
	b, rep, err := importer.Build(m, schema, rows, opts)
	if err != nil {
		return err
	}
	out, err := b.Encode()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(f.out, out); err != nil {
		return err
	}
	t := b.Manifest.Tiers
	fmt.Fprintf(stdout, "imported %s\n", m.Summary)
	fmt.Fprintf(stdout, "verified %d rows (%d missing values) against the library: max |difference| %.3g (line %d), mean %.3g, tolerance %g\n",
		rep.Rows, rep.MissingValues, rep.MaxAbsDiff, rep.MaxDiffLine, rep.MeanAbsDiff, opts.Tolerance)
	fmt.Fprintf(stdout, "tiers medium %.4g, high %.4g, critical %.4g; %d check vectors\n", t.Medium, t.High, t.Critical, rep.CheckVectors)
	fmt.Fprintf(stdout, "wrote %s (%s %s)\n", f.out, b.Manifest.Name, b.Manifest.Version)
	return nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// options checks the flag values and makes the import options.
func (f *importFlags) options(now func() time.Time) (importer.Options, error) {
	var o importer.Options
	for _, req := range []struct{ name, val string }{{"format", f.format}, {"model", f.model}, {"schema", f.schema}, {"rows", f.rows}, {"version", f.version}, {"out", f.out}} {
		if req.val == "" {
			return o, usageError{fmt.Errorf("--%s is required", req.name)}
		}
	}
	known := false
	for _, k := range importer.Formats {
		known = known || k == f.format
	}
	if !known {
		return o, usageError{fmt.Errorf("--format %q: want one of %s", f.format, strings.Join(importer.Formats, ", "))}
	}
	if !bundle.ValidVersion(f.version) {
		return o, usageError{fmt.Errorf("--version %q: want 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit", f.version)}
	}
	name := f.name
	if name == "" {
		name = strings.Trim(unsafeName.ReplaceAllString(strings.TrimSuffix(filepath.Base(f.model), filepath.Ext(f.model)), "-"), "-._")
		if len(name) > 64 {
			name = name[:64]
		}
	}
	if !bundle.ValidVersion(name) {
		return o, usageError{fmt.Errorf("--name %q: want 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit", name)}
	}
	if !(f.tolerance > 0 && f.tolerance < 1) {
		return o, usageError{fmt.Errorf("--tolerance %g: want a number in (0, 1)", f.tolerance)}
	}
	if f.checkVectors < 1 {
		return o, usageError{fmt.Errorf("--check-vectors %d: want at least 1", f.checkVectors)}
	}
	created := now().UTC().Truncate(time.Second)
	if f.created != "" {
		t, err := time.Parse(time.RFC3339, f.created)
		if err != nil {
			return o, usageError{fmt.Errorf("--created %q: want RFC 3339, e.g. 2026-11-23T00:00:00Z", f.created)}
		}
		created = t
	}
	o = importer.Options{Name: name, Version: f.version, Description: f.description, CreatedAt: created,
		Tolerance: f.tolerance, CheckVectors: f.checkVectors}
	if f.tiers != "" {
		t, err := parseTiers(f.tiers)
		if err != nil {
			return o, usageError{err}
		}
		o.Tiers = &t
		return o, nil
	}
	q, err := parseTierQuantiles(f.tierQuantiles)
	if err != nil {
		return o, usageError{err}
	}
	o.TierQuantiles = [3]float64{q.Medium, q.High, q.Critical}
	return o, nil
}

// parseTiers parses "medium,high,critical" probabilities.
func parseTiers(s string) (bundle.Tiers, error) {
	v, err := parseTriple("--tiers", s, "probabilities", "0.3,0.5,0.7")
	if err != nil {
		return bundle.Tiers{}, err
	}
	if !(0 < v[0] && v[0] <= v[1] && v[1] <= v[2] && v[2] <= 1) {
		return bundle.Tiers{}, fmt.Errorf("--tiers %q: want 0 < medium <= high <= critical <= 1", s)
	}
	return bundle.Tiers{Medium: v[0], High: v[1], Critical: v[2]}, nil
}

// readLimitedFile reads a file of at most limit bytes.
func readLimitedFile(path string, limit int64) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", path, info.Size(), limit)
	}
	return os.ReadFile(path)
}
