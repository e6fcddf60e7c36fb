package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/evaluate"
	"github.com/churnhq/churn/internal/sharedtest"
)

const evalRoot = "../.."

// runEval runs churnctl evaluate through the command table, as main does.
func runEval(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"evaluate"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// The default model on its own held-out rows: the figures must be the ones its training record
// holds, now measured through the serving path (modelstore) instead of the trainer's.
func TestEvaluateDefaultModelMatchesItsTrainingRecord(t *testing.T) {
	t.Parallel()
	data := sharedtest.Path(t, "data/iranian_churn.csv")
	rows := sharedtest.Path(t, "bench/splits/iranian_churn_test_idx.csv")
	modelPath := filepath.Join(evalRoot, "models/default.json")
	dir := t.TempDir()
	common := []string{"--model", modelPath, "--data", data, "--spec", filepath.Join(evalRoot, "models/specs/iranian_churn.json"), "--rows", rows}

	out := filepath.Join(dir, "report.json")
	if code, _, stderr := runEval(t, append(common, "--format", "json", "--out", out, "--segment", "Tariff Plan")...); code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep evaluate.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}

	rawModel, err := os.ReadFile(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(rawModel)
	if err != nil {
		t.Fatal(err)
	}
	rec := b.Manifest.Training.Metrics
	// Every held-out row of the default model's own data maps (its categories are all seen in
	// training): a refused row would be a mapping regression, and the comparison would not apply.
	if rep.Refused.Rows != 0 {
		t.Fatalf("%d of the default model's own held-out rows refused (%d scored; the training record has %d)", rep.Refused.Rows, rep.Rows, rec.Rows)
	}
	if rep.Rows != rec.Rows || rep.Positives != rec.Positives {
		t.Fatalf("rows, positives = %d, %d; the training record has %d, %d", rep.Rows, rep.Positives, rec.Rows, rec.Positives)
	}
	// Serving reproduces the trainer's probabilities to bundle.CheckTolerance; the ranking
	// metrics then agree unless two rows swap, and the means to about that tolerance.
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"ROC-AUC", rep.ROCAUC, rec.ROCAUC},
		{"PR-AUC", rep.PRAUC, rec.PRAUC},
		{"log loss", rep.LogLoss, rec.LogLoss},
		{"Brier", rep.Brier, rec.Brier},
	} {
		if math.Abs(c.got-c.want) > bundle.CheckTolerance {
			t.Errorf("%s = %.12f, the training record says %.12f", c.name, c.got, c.want)
		}
	}
	for i, bin := range rep.Calibration {
		if bin.Count != rec.Calibration[i].Count {
			t.Errorf("calibration bin %d has %d rows, the training record %d", i, bin.Count, rec.Calibration[i].Count)
		}
	}
	if len(rep.Lift) != 3 || len(rep.Tiers) != 3 || len(rep.Segments) != 2 || rep.SegmentColumn != "Tariff Plan" {
		t.Errorf("report has %d lift points, %d tiers, %d segments of %q; want 3, 3, 2 of Tariff Plan",
			len(rep.Lift), len(rep.Tiers), len(rep.Segments), rep.SegmentColumn)
	}
	if got := rep.Tiers[2]; got.Threshold != b.Manifest.Tiers.Critical || got.TP+got.FP == 0 {
		t.Errorf("CRITICAL confusion %+v, want the bundle's threshold %g and some flagged rows", got, b.Manifest.Tiers.Critical)
	}
	if seg := rep.Segments[0].Rows + rep.Segments[1].Rows; seg != rep.Rows {
		t.Errorf("segments hold %d rows, want %d", seg, rep.Rows)
	}

	html := filepath.Join(dir, "report.html")
	if code, _, stderr := runEval(t, append(common, "--format", "html", "--out", html)...); code != 0 {
		t.Fatalf("html: exit code %d, stderr:\n%s", code, stderr)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"roc-chart", "calibration-chart", "lift-chart"} {
		if !bytes.Contains(page, []byte(`<figure id="`+id+`"><svg`)) {
			t.Errorf("HTML report has no inline SVG %s", id)
		}
	}
	if n := bytes.Count(page, []byte("</svg>")); n != 3 {
		t.Errorf("HTML report has %d SVG charts, want 3", n)
	}

	code, stdout, stderr := runEval(t, common...)
	if code != 0 {
		t.Fatalf("text: exit code %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("Evaluation of %s %s on iranian_churn.csv", b.Manifest.Name, b.Manifest.Version), "rows scored 630",
		fmt.Sprintf("ROC-AUC                     %.4f", rec.ROCAUC), "rows refused by the model: 0",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("text report lacks %q:\n%s", want, stdout)
		}
	}
}

// tinyIranian writes a small CSV in the Iranian data's layout and a spec whose "Tariff Plan"
// value 2 becomes the category "family", which the default model has never seen (it scores it as
// missing; strictDefaultModel refuses it).
func tinyIranian(t *testing.T) (data, spec string) {
	t.Helper()
	dir := t.TempDir()
	csv := "Call Failure,Complains,Subscription Length,Charge Amount,Seconds of Use,Frequency of use,Frequency of SMS,Distinct Called Numbers,Age Group,Tariff Plan,Status,Age,Customer Value,Churn\n" +
		"8,0,38,0,4370,71,5,17,3,1,1,30,197.64,0\n" +
		"0,0,39,0,318,5,7,4,2,1,2,25,46.035,0\n" +
		"10,0,37,0,2453,60,359,24,3,2,1,30,1536.52,0\n" + // refused: family
		"10,1,38,0,4198,66,1,35,1,1,1,15,240.02,1\n" +
		"3,1,32,1,2393,58,2,33,1,2,2,15,145.8,1\n" + // refused: family
		"11,1,28,1,0,0,0,0,2,1,2,25,0,1\n" +
		"2,0,35,2,5060,95,63,26,3,1,1,30,500.9,0\n"
	raw, err := os.ReadFile(filepath.Join(evalRoot, "models/specs/iranian_churn.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(raw), `"2": "contract"`, `"2": "family"`, 1)
	if s == string(raw) {
		t.Fatal("the Iranian spec no longer maps Tariff Plan 2 to contract; update this test")
	}
	data, spec = filepath.Join(dir, "tiny.csv"), filepath.Join(dir, "spec.json")
	if err := os.WriteFile(data, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return data, spec
}

// strictDefaultModel writes the default model with its account.contract input refusing a category
// it has not seen (the default scores it as missing).
func strictDefaultModel(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(evalRoot, "models/default.json"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Manifest.Inputs {
		if b.Manifest.Inputs[i].Source == "account.contract" {
			b.Manifest.Inputs[i].Unseen = bundle.UnseenError
		}
	}
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "strict.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEvaluateScoresUnknownCategories: the default model scores a category it has not seen as
// missing, so every row is measured.
func TestEvaluateScoresUnknownCategories(t *testing.T) {
	t.Parallel()
	data, spec := tinyIranian(t)
	code, stdout, stderr := runEval(t, "--model", filepath.Join(evalRoot, "models/default.json"), "--data", data, "--spec", spec, "--format", "json")
	if code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr)
	}
	var rep evaluate.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 7 || rep.Refused.Rows != 0 {
		t.Fatalf("rows %d, refused %d; want all 7 rows scored", rep.Rows, rep.Refused.Rows)
	}
}

func TestEvaluateCountsRefusedRows(t *testing.T) {
	t.Parallel()
	data, spec := tinyIranian(t)
	code, stdout, stderr := runEval(t, "--model", strictDefaultModel(t), "--data", data, "--spec", spec, "--format", "json", "--segment", "Status")
	if code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr)
	}
	var rep evaluate.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 5 || rep.Positives != 2 || rep.Refused.Rows != 2 {
		t.Fatalf("rows %d, positives %d, refused %d; want 5, 2, 2", rep.Rows, rep.Positives, rep.Refused.Rows)
	}
	if len(rep.Refused.ByField) != 1 || rep.Refused.ByField[0] != (evaluate.FieldCount{Field: "features.account.contract", Rows: 2}) {
		t.Errorf("refused by field %+v, want 2 rows for features.account.contract", rep.Refused.ByField)
	}
	if len(rep.Refused.Examples) != 2 || rep.Refused.Examples[0].Row != 2 || rep.Refused.Examples[1].Row != 4 ||
		!strings.Contains(rep.Refused.Examples[0].Reason, `"family"`) {
		t.Errorf("refused examples %+v, want rows 2 and 4 naming the category", rep.Refused.Examples)
	}
	if len(rep.Segments) != 2 || rep.Segments[0].Segment != "1" || rep.Segments[0].Rows != 3 {
		t.Errorf("segments by Status %+v, want 3 scored rows of status 1 and 2 of status 2", rep.Segments)
	}
}

func TestEvaluateErrors(t *testing.T) {
	t.Parallel()
	data, spec := tinyIranian(t)
	model := filepath.Join(evalRoot, "models/default.json")
	dir := t.TempDir()
	oneClass := filepath.Join(dir, "rows.csv")
	if err := os.WriteFile(oneClass, []byte("0\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badRows := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(badRows, []byte("0\n99\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notBundle := filepath.Join(dir, "model.json")
	if err := os.WriteFile(notBundle, []byte(`{"manifest": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no model", []string{"--data", data, "--spec", spec}, 2, "--model is required"},
		{"no data", []string{"--model", model, "--spec", spec}, 2, "--data is required"},
		{"bad format", []string{"--model", model, "--data", data, "--spec", spec, "--format", "pdf"}, 2, `--format "pdf": want text, json or html`},
		{"stray argument", []string{"--model", model, "--data", data, "--spec", spec, "extra"}, 2, "unexpected arguments"},
		{"missing model file", []string{"--model", filepath.Join(dir, "nope.json"), "--data", data, "--spec", spec}, 1, "--model: open"},
		{"not a bundle", []string{"--model", notBundle, "--data", data, "--spec", spec}, 1, "invalid model bundle"},
		{"unknown segment", []string{"--model", model, "--data", data, "--spec", spec, "--segment", "Region"}, 1, `--segment "Region": the CSV has no such column`},
		{"row out of range", []string{"--model", model, "--data", data, "--spec", spec, "--rows", badRows}, 1, "line 2: row 99 is outside the dataset's rows 0..6"},
		{"one label", []string{"--model", model, "--data", data, "--spec", spec, "--rows", oneClass}, 1, "the rows need both a positive and a negative label"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runEval(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit code %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}
