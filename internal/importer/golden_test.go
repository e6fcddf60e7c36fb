package importer

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/model"
)

// dir is the committed foreign models, schemas and rows (testdata/import/make_models.py and
// testdata/README.md say where each comes from).
var dir = filepath.Join("..", "..", "testdata", "import")

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// importFiles runs the whole import of committed files.
func importFiles(t testing.TB, format, model, schema, rows string) (*bundle.Bundle, *Report, error) {
	t.Helper()
	m, err := Parse(format, readFile(t, model))
	if err != nil {
		return nil, nil, err
	}
	s, err := ParseSchema(readFile(t, schema))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, rows))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ParseRows(f)
	if err != nil {
		t.Fatal(err)
	}
	return Build(m, s, r, Options{Name: "imported", Version: "v1", CreatedAt: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)})
}

// TestGolden imports each committed model and checks that serving computes the library's own
// probability on every committed row to 1e-6, and that the bundle loads.
func TestGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, format, model, schema, rows string
		minMissing                        int // cells missing in the rows, so default directions are exercised
	}{
		{"xgboost gbtree", FormatXGBoostJSON, "xgb_wa.json", "wa_trees.schema.json", "xgb_wa_rows.csv", 150},
		{"xgboost dart", FormatXGBoostJSON, "xgb_wa_dart.json", "wa_trees.schema.json", "xgb_wa_dart_rows.csv", 20},
		{"lightgbm dart", FormatLightGBM, "lgb_breast_cancer_dart.txt", "lgb_breast_cancer.schema.json", "lgb_breast_cancer_dart_rows.csv", 0},
		{"sklearn ovr scaled", FormatSklearnLogistic, "sk_wa.json", "wa_logistic.schema.json", "sk_wa_rows.csv", 1},
		{"sklearn multinomial", FormatSklearnLogistic, "sk_wa_multinomial.json", "wa_logistic.schema.json", "sk_wa_multinomial_rows.csv", 0},
		{"xgboost one-hot groups", FormatXGBoostJSON, "xgb_onehot.json", "onehot_trees.schema.json", "xgb_onehot_rows.csv", 150},
		{"sklearn one-hot groups, scaled", FormatSklearnLogistic, "sk_onehot.json", "onehot_logistic.schema.json", "sk_onehot_rows.csv", 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, rep, err := importFiles(t, tc.format, tc.model, tc.schema, tc.rows)
			if err != nil {
				t.Fatal(err)
			}
			if !(rep.MaxAbsDiff <= 1e-6) {
				t.Errorf("largest difference from the library %g (line %d), want <= 1e-6", rep.MaxAbsDiff, rep.MaxDiffLine)
			}
			if rep.MissingValues < tc.minMissing {
				t.Errorf("%d missing cells in the rows, want >= %d", rep.MissingValues, tc.minMissing)
			}
			if rep.CheckVectors == 0 || len(b.Manifest.CheckVectors) != rep.CheckVectors {
				t.Errorf("%d check vectors, report says %d", len(b.Manifest.CheckVectors), rep.CheckVectors)
			}
			data, err := b.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := model.Load(data); err != nil {
				t.Fatalf("the bundle does not load: %v", err)
			}
			t.Logf("%d rows, %d missing cells, max |diff| %.3g at line %d, mean %.3g", rep.Rows, rep.MissingValues, rep.MaxAbsDiff, rep.MaxDiffLine, rep.MeanAbsDiff)
		})
	}
}

// TestGoldenDetectsMismatch: a row whose probability is off by more than the tolerance fails the
// import, naming the line.
func TestGoldenDetectsMismatch(t *testing.T) {
	t.Parallel()
	m, err := Parse(FormatSklearnLogistic, readFile(t, "sk_wa.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSchema(readFile(t, "wa_logistic.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	rows := &Rows{Features: m.Features, Rows: []Row{{Line: 2, Values: []float64{10, 50, 500, 0, 1, 1, 0, 1}, Probability: 0.5}}}
	_, _, err = Build(m, s, rows, Options{Name: "x", Version: "v1", CreatedAt: time.Unix(1, 0)})
	if err == nil || !contains(err.Error(), "line 2") {
		t.Fatalf("got %v, want an error naming line 2", err)
	}
}
