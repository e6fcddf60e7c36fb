package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/model"
	"github.com/churnhq/churn/internal/sharedtest"
	"github.com/churnhq/churn/internal/train"
)

const trainTestSpec = `{
  "name": "small",
  "label": {"column": "churn", "positive": "yes"},
  "drop": ["id"],
  "columns": {
    "complaints": {"source": "complaints.count_90d"},
    "tenure": {"source": "account.tenure_months"},
    "plan": {"source": "account.contract"}
  }
}`

// writeTrainFiles writes a small CSV (200 rows, the label depends on complaints and tenure), its
// spec and a held-out index file into a temporary directory.
func writeTrainFiles(t *testing.T) (dir, data, spec, idx string) {
	t.Helper()
	dir = t.TempDir()
	var csv strings.Builder
	csv.WriteString("id,complaints,tenure,plan,churn\n")
	var test strings.Builder
	for i := range 200 {
		complaints, tenure := i%4, 1+(i*7)%48
		plan := []string{"monthly", "yearly"}[i%3%2]
		churn := "no"
		if complaints*12 > tenure || i%11 == 0 {
			churn = "yes"
		}
		fmt.Fprintf(&csv, "c%d,%d,%d,%s,%s\n", i, complaints, tenure, plan, churn)
		if i%5 == 0 {
			fmt.Fprintf(&test, "%d\n", i)
		}
	}
	data, spec, idx = filepath.Join(dir, "small.csv"), filepath.Join(dir, "spec.json"), filepath.Join(dir, "test_idx.csv")
	for path, content := range map[string]string{data: csv.String(), spec: trainTestSpec, idx: test.String()} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, data, spec, idx
}

func fixedNow() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }

func TestTrainWritesAValidBundle(t *testing.T) {
	t.Parallel()
	dir, data, spec, idx := writeTrainFiles(t)
	out, golden := filepath.Join(dir, "model.json"), filepath.Join(dir, "golden.json")
	var stdout, stderr bytes.Buffer
	args := []string{"--data", data, "--spec", spec, "--test-idx", idx, "--version", "small-1", "--out", out, "--golden-out", golden, "--c", "0.5", "--trainer", "logistic"}
	if code := trainMain(context.Background(), args, &stdout, &stderr, fixedNow); code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(raw)
	if err != nil {
		t.Fatalf("bundle.Parse: %v", err)
	}
	m := b.Manifest
	if m.Name != "small" || m.Version != "small-1" || !m.CreatedAt.Equal(fixedNow()) {
		t.Errorf("manifest name %q version %q created %v", m.Name, m.Version, m.CreatedAt)
	}
	tr := m.Training
	if tr.Params["c"] != 0.5 || tr.Rows["test"] != 40 || tr.Rows["train"] != 160 || tr.Dataset != "small.csv" {
		t.Errorf("training record %+v", tr)
	}
	if !strings.HasPrefix(tr.Command, "churnctl train --data ") || !strings.Contains(tr.Command, "--c 0.5") {
		t.Errorf("command %q", tr.Command)
	}
	var rows []struct {
		Features    json.RawMessage `json:"features"`
		Probability float64         `json:"probability"`
	}
	g, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(g, &rows); err != nil || len(rows) != 40 {
		t.Errorf("golden file: %d rows, %v", len(rows), err)
	}
	for _, want := range []string{"ROC-AUC", "calibration on the test rows", "tiers", "bundle written to " + out} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestTrainIsReproducibleAndSplitsWithoutIndices(t *testing.T) {
	t.Parallel()
	dir, data, spec, _ := writeTrainFiles(t)
	var outs [2][]byte
	for i := range outs {
		out := filepath.Join(dir, fmt.Sprintf("m%d.json", i))
		var stdout, stderr bytes.Buffer
		// The same --out name would be in the recorded command; use relative names in one dir.
		args := []string{"--data", data, "--spec", spec, "--version", "v1", "--created", "2026-01-02T03:04:05Z", "--seed", "7", "--out", out}
		if code := trainMain(context.Background(), args, &stdout, &stderr, fixedNow); code != 0 {
			t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = bytes.ReplaceAll(raw, []byte(out), nil)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("two runs with the same flags wrote different bundles")
	}
	b, err := bundle.Parse(outs[0])
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest.Training.Rows["test"] != 40 || b.Manifest.Training.Seed != 7 {
		t.Errorf("stratified split: %+v", b.Manifest.Training)
	}
}

func TestTrainExitCodes(t *testing.T) {
	t.Parallel()
	dir, data, spec, idx := writeTrainFiles(t)
	out := filepath.Join(dir, "out.json")
	base := []string{"--data", data, "--spec", spec, "--version", "v1", "--out", out}
	with := func(extra ...string) []string { return append(append([]string(nil), base...), extra...) }
	badSpec := filepath.Join(dir, "bad_spec.json")
	if err := os.WriteFile(badSpec, []byte(`{"name": "x", "lable": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown flag", with("--bogus"), 2, "flag provided but not defined"},
		{"help", []string{"-h"}, 0, "usage: churnctl train"},
		{"stray argument", with("extra"), 2, `unexpected arguments ["extra"]`},
		{"no data", []string{"--spec", spec, "--version", "v1", "--out", out}, 2, "--data is required"},
		{"no version", []string{"--data", data, "--spec", spec, "--out", out}, 2, "--version is required"},
		{"bad version", with("--version", "v 1"), 2, `--version "v 1"`},
		{"bad c", with("--c", "0"), 2, "--c 0"},
		{"c not a number", with("--c", "x"), 2, "invalid value"},
		{"bad created", with("--created", "yesterday"), 2, "--created"},
		{"bad tiers", with("--tier-quantiles", "0.1,0.2,0.3"), 2, "--tier-quantiles"},
		{"tiers not numbers", with("--tier-quantiles", "a,b,c"), 2, "--tier-quantiles"},
		{"unknown trainer", with("--trainer", "forest"), 2, `--trainer "forest": want one of auto, logistic, gbdt, gbdt-leafwise`},
		{"bad folds", with("--folds", "1"), 2, "--folds 1"},
		{"bad gbdt depth", with("--gbdt-max-depth", "99"), 2, "--gbdt-max-depth 99"},
		{"zero gbdt subsample", with("--gbdt-subsample", "0"), 2, "--gbdt-subsample 0"},
		{"bad gbdt colsample", with("--gbdt-colsample", "2"), 2, "--gbdt-colsample 2"},
		{"bad leafwise depth", with("--gbdt-leafwise-max-depth", "0"), 2, "--gbdt-leafwise-max-depth 0"},
		{"zero time budget", with("--time-budget", "0s"), 2, "--time-budget 0s: want a positive duration"},
		{"time budget not a duration", with("--time-budget", "soon"), 2, "invalid value"},
		{"no time for any trainer", with("--time-budget", "1ns"), 1, "every trainer failed:\ntrainer logistic: ran out of its time budget"},
		{"missing data file", with("--data", filepath.Join(dir, "nope.csv")), 1, "nope.csv"},
		{"bad spec", with("--spec", badSpec), 1, `unknown field "lable"`},
		{"bad index file", with("--test-idx", data), 1, "is not a row index"},
		{"unwritable out", with("--out", filepath.Join(dir, "no", "such", "dir.json")), 1, "no such file"},
		{"ok", with("--test-idx", idx), 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := tc.args
			if tc.code == 0 && tc.name != "help" { // a distinct output per successful run
				args = append(args, "--out", filepath.Join(t.TempDir(), "m.json"))
			}
			var stdout, stderr bytes.Buffer
			if code := trainMain(context.Background(), args, &stdout, &stderr, fixedNow); code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr.String())
			}
		})
	}
}

// The auto trainer cross-fits every family, reports each and keeps the best by out-of-fold Brier
// score; the training record names the winner.
func TestTrainAutoComparesTrainers(t *testing.T) {
	t.Parallel()
	dir, data, spec, idx := writeTrainFiles(t)
	out := filepath.Join(dir, "auto.json")
	var stdout, stderr bytes.Buffer
	args := []string{"--data", data, "--spec", spec, "--test-idx", idx, "--version", "auto-1", "--out", out, "--folds", "3", "--quiet"}
	if code := trainMain(context.Background(), args, &stdout, &stderr, fixedNow); code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("--quiet wrote to stderr:\n%s", stderr.String())
	}
	for _, want := range []string{"logistic", "gbdt", "gbdt-leafwise", "ROC-AUC before", "Brier after",
		"validation (out-of-fold), after calibration", "test, before calibration", "test, after calibration (as served)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
	b := readBundle(t, out)
	tr := b.Manifest.Training
	if tr.Params["folds"] != 3 || !strings.Contains(stdout.String(), "trained small auto-1: "+tr.Trainer+",") {
		t.Errorf("training record %+v does not name the reported winner:\n%s", tr, stdout.String())
	}
}

// Without a terminal, progress goes to stderr as log lines: a line per finished fit and per
// finished trainer, and while fits run at most one every progressEvery (the injected clock stands
// still here, so one only).
func TestTrainLogsProgressWhenStderrIsNotATerminal(t *testing.T) {
	t.Parallel()
	dir, data, spec, idx := writeTrainFiles(t)
	args := []string{"--data", data, "--spec", spec, "--test-idx", idx, "--version", "log-1", "--out", filepath.Join(dir, "m.json"), "--trainer", "logistic"}
	var stdout, stderr bytes.Buffer
	if code := trainMain(context.Background(), args, &stdout, &stderr, fixedNow); code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
	}
	log := stderr.String()
	for _, want := range []string{
		`level=INFO msg=fitting component=train trainer=logistic fit="fold `,
		`msg="fit done" component=train trainer=logistic fit="fold 1/5" rounds=`,
		`msg="fit done" component=train trainer=logistic fit=final rounds=`,
		`msg="trainer done" component=train trainer=logistic brier=`,
		"fits_done=6/6",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr lacks %q:\n%s", want, log)
		}
	}
	if n := strings.Count(log, "msg=fitting"); n != 1 {
		t.Errorf("%d lines about rounds with a clock that stands still, want 1:\n%s", n, log)
	}
	if n := strings.Count(log, `msg="fit done"`); n != 6 {
		t.Errorf("%d lines about finished fits, want 6 (5 folds and the final fit):\n%s", n, log)
	}
}

// A trainer that fails is skipped, reported in the log and in the summary, and the best of the
// others is kept.
func TestTrainSummaryReportsSkippedTrainers(t *testing.T) {
	t.Parallel()
	_, data, specPath, _ := writeTrainFiles(t)
	spec, ds, err := loadData(data, specPath)
	if err != nil {
		t.Fatal(err)
	}
	trainRows, testRows := train.StratifiedSplit(ds.Labels, 0.2, 1)
	broken := train.Trainer{Name: "broken", Describe: "fails", Encoding: train.EncodeRaw,
		Fit: func(context.Context, train.FitInput) (*train.Fitted, error) { return nil, errors.New("no model today") }}
	var log bytes.Buffer
	res, err := train.Run(context.Background(), train.Config{
		Data: ds, TrainRows: trainRows, TestRows: testRows, Trainers: []train.Trainer{broken, train.LogisticTrainer(1)},
		Tiers: train.DefaultTierQuantiles, Name: spec.Name, Version: "v1", CreatedAt: fixedNow(),
		Progress: progressLog(&log, fixedNow),
	})
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	printSummary(&stdout, &trainFlags{out: "m.json", tierQuantiles: "0.35,0.15,0.05"}, res)
	// The folds run concurrently: any of them may be the one that reports the failure.
	for _, want := range []string{"skipped after ", "s: trainer broken: fold ", " of 5: no model today\n", "trained small v1: logistic"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, want := range []string{`level=WARN msg="trainer skipped" component=train trainer=broken err="trainer broken: fold `, ` of 5: no model today" fits_done=6/12`} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}

func TestTrainIsACommand(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"train", "--bogus"}, &stdout, &stderr); code != 2 {
		t.Errorf("churnctl train --bogus: exit code %d, want 2", code)
	}
}

func TestCommandLineQuotes(t *testing.T) {
	t.Parallel()
	got := commandLine([]string{"--data", "my data.csv", "--name", "it's", "--c", "1"})
	want := `churnctl train --data 'my data.csv' --name 'it'\''s' --c 1`
	if got != want {
		t.Errorf("commandLine = %s, want %s", got, want)
	}
}

// The committed default model must be what `make model` (models/README.md) writes: retrain it
// from the shared data and compare, the recorded command aside (it names the output path).
func TestDefaultModelReproduces(t *testing.T) {
	t.Parallel()
	const root = "../.."
	data := sharedtest.Path(t, "data/iranian_churn.csv")
	dir := t.TempDir()
	out, golden := filepath.Join(dir, "default.json"), filepath.Join(dir, "golden.json")
	args := []string{
		"--data", data, "--spec", filepath.Join(root, "models/specs/iranian_churn.json"),
		"--test-idx", sharedtest.Path(t, "bench/splits/iranian_churn_test_idx.csv"), "--trainer", "gbdt-leafwise",
		"--name", "churn-default", "--version", "iranian-gbdt-2026.11.23", "--created", "2026-11-23T00:00:00Z",
		"--out", out, "--golden-out", golden,
	}
	var stdout, stderr bytes.Buffer
	if code := trainMain(context.Background(), args, &stdout, &stderr, fixedNow); code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
	}
	committed := readBundle(t, filepath.Join(root, "models/default.json"))
	fresh := readBundle(t, out)
	// The quality bar of docs/MODELS.md: the best baseline (hgb) 0.9929 - 0.005, Brier <= 0.0230.
	if m := fresh.Manifest.Training.Metrics; m.ROCAUC < 0.9929-0.005 || m.Brier > 0.0230 {
		t.Errorf("test ROC-AUC %.4f, Brier %.4f: below the quality bar (ROC-AUC >= 0.9879, Brier <= 0.0230)", m.ROCAUC, m.Brier)
	}
	fresh.Manifest.Training.Command = committed.Manifest.Training.Command
	a, err := committed.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := fresh.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("models/default.json differs from a fresh training run: retrain it with `make model` (see models/README.md)")
	}
	if !bytes.Equal(readFile(t, filepath.Join(root, "testdata/golden/default_model.json")), readFile(t, golden)) {
		t.Error("testdata/golden/default_model.json differs from a fresh training run: retrain with `make model`")
	}
}

func TestBasicRequestParses(t *testing.T) {
	t.Parallel()
	var req churnv1.ScoreRequest
	if err := protojson.Unmarshal(readFile(t, "../../testdata/requests/basic.json"), &req); err != nil {
		t.Fatalf("testdata/requests/basic.json: %v", err)
	}
	f := req.GetFeatures()
	if req.GetCustomerId() == "" || f.GetComplaints().GetCount_90D() != 2 || f.GetAccount().GetContract() != "pay_as_you_go" || f.GetCategorical()["status"] != "active" {
		t.Errorf("basic.json = %v", &req)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readBundle(t *testing.T, path string) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Parse(readFile(t, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// Each golearn trainer makes a bundle that the serving path loads (its check vectors reproduce)
// and whose training record names golearn's trainer and release.
func TestTrainGolearnTrainers(t *testing.T) {
	t.Parallel()
	dir, data, spec, idx := writeTrainFiles(t)
	for _, trainer := range []string{"golearn-cart", "golearn-id3", "golearn-rf"} {
		t.Run(trainer, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(dir, trainer+".json")
			var stdout, stderr bytes.Buffer
			args := []string{"--data", data, "--spec", spec, "--test-idx", idx, "--version", trainer + "-1", "--out", out,
				"--trainer", trainer, "--golearn-trees", "10", "--folds", "3", "--quiet"}
			if code := trainMain(context.Background(), args, &stdout, &stderr, fixedNow); code != 0 {
				t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.Load(raw)
			if err != nil {
				t.Fatalf("the bundle does not load: %v", err)
			}
			tr := m.Bundle.Manifest.Training
			if m.Bundle.Model.Type != bundle.ModelTrees || tr.Trainer != trainer || tr.Metrics == nil || !(tr.Metrics.ROCAUC > 0.6) ||
				!strings.Contains(m.Bundle.Manifest.Description, "golearn") {
				t.Fatalf("%s: type %s, trainer %q, metrics %+v, description %q", trainer, m.Bundle.Model.Type, tr.Trainer, tr.Metrics, m.Bundle.Manifest.Description)
			}
		})
	}
}
