package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/churnhq/churn/internal/model"
)

var importData = filepath.Join("..", "..", "testdata", "import")

// importArgs are the arguments of a working import of the committed XGBoost model into out.
func importArgs(out string, extra ...string) []string {
	return append([]string{"import", "--format", "xgboost-json",
		"--model", filepath.Join(importData, "xgb_wa.json"),
		"--schema", filepath.Join(importData, "wa_trees.schema.json"),
		"--rows", filepath.Join(importData, "xgb_wa_rows.csv"),
		"--version", "xgb-1", "--created", "2026-11-23T00:00:00Z", "--out", out}, extra...)
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

// TestImportCLI imports each committed model through the real command and loads the bundle.
func TestImportCLI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ format, model, schema, rows string }{
		{"xgboost-json", "xgb_wa.json", "wa_trees.schema.json", "xgb_wa_rows.csv"},
		{"lightgbm", "lgb_breast_cancer_dart.txt", "lgb_breast_cancer.schema.json", "lgb_breast_cancer_dart_rows.csv"},
		{"sklearn-logistic", "sk_wa.json", "wa_logistic.schema.json", "sk_wa_rows.csv"},
		{"xgboost-json", "xgb_onehot.json", "onehot_trees.schema.json", "xgb_onehot_rows.csv"}, // one-hot groups
	} {
		t.Run(tc.model, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "b.json")
			code, stdout, stderr := runCLI(t, "import", "--format", tc.format, "--model", filepath.Join(importData, tc.model),
				"--schema", filepath.Join(importData, tc.schema), "--rows", filepath.Join(importData, tc.rows),
				"--version", "v1", "--created", "2026-11-23T00:00:00Z", "--out", out)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(stdout, "verified") || !strings.Contains(stdout, "wrote "+out) {
				t.Errorf("summary lacks the verification or the output: %s", stdout)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.Load(data)
			if err != nil {
				t.Fatalf("the written bundle does not load: %v", err)
			}
			if want := strings.TrimSuffix(tc.model, filepath.Ext(tc.model)); m.Name() != want {
				t.Errorf("name %q, want the model file's %q", m.Name(), want)
			}
			if tr := m.Bundle.Manifest.Training; tr == nil || !strings.HasPrefix(tr.Command, "churnctl import ") || tr.Dataset != tc.model {
				t.Errorf("training record %+v does not name the command and the model file", tr)
			}
		})
	}
}

// TestImportCLIReproducible: the same import with --created writes the same bytes.
func TestImportCLIReproducible(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var got [2][]byte
	for i := range got {
		out := filepath.Join(dir, []string{"first.bundle", "second.bundle"}[i])
		if code, _, stderr := runCLI(t, importArgs(out, "--name", "xgb")...); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var err error
		if got[i], err = os.ReadFile(out); err != nil {
			t.Fatal(err)
		}
	}
	// The training record holds the command line, which differs in --out only.
	a := strings.ReplaceAll(string(got[0]), "first.bundle", "second.bundle")
	if a != string(got[1]) {
		i := 0
		for i < len(a) && i < len(got[1]) && a[i] == got[1][i] {
			i++
		}
		t.Errorf("two identical imports wrote different bundles, from byte %d: %q vs %q", i, a[i:min(len(a), i+80)], got[1][i:min(len(got[1]), i+80)])
	}
}

// TestImportCLIErrors: bad usage exits 2, a refused model or failing rows 1, each with a message
// naming the problem; nothing is written.
func TestImportCLIErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "b.json")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no format", []string{"import", "--model", "m", "--schema", "s", "--rows", "r", "--version", "v", "--out", out}, 2, "--format is required"},
		{"unknown format", importArgs(out, "--format", "onnx"), 2, `--format "onnx"`},
		{"bad version", importArgs(out, "--version", "a b"), 2, "--version"},
		{"bad tiers", importArgs(out, "--tiers", "0.5,0.4,0.9"), 2, "--tiers"},
		{"bad tolerance", importArgs(out, "--tolerance", "0"), 2, "--tolerance"},
		{"stray argument", append(importArgs(out), "extra"), 2, "unexpected arguments"},
		{"refused objective", importArgs(out, "--model", filepath.Join(importData, "xgb_multiclass.json")), 1, "multi:softprob"},
		{"wrong model for the rows", importArgs(out, "--model", filepath.Join(importData, "xgb_wa_dart.json")), 1, "does not reproduce"},
		{"missing file", importArgs(out, "--schema", filepath.Join(dir, "nope.json")), 1, "nope.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed import wrote %s", out)
	}
}

// TestImportCLIHelp: -h documents the formats, the schema and the rows file.
func TestImportCLIHelp(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCLI(t, "import", "-h")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"xgboost-json", "lightgbm", "sklearn-logistic", `"features"`, "probability", "-tolerance"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
