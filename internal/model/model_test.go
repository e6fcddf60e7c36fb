package model_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/model"
	"github.com/churnhq/churn/models"
)

func defaultBundle(t testing.TB) []byte {
	t.Helper()
	data, err := models.FS.ReadFile(models.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestGoldenDefaultModel checks that serving reproduces the trainer's probability for every test
// row of the default model's dataset, as written by `churnctl train --golden-out` (make model).
func TestGoldenDefaultModel(t *testing.T) {
	t.Parallel()
	m, err := model.Load(defaultBundle(t))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	data, err := os.ReadFile("../../testdata/golden/default_model.json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Features    json.RawMessage `json:"features"`
		Probability float64         `json:"probability"`
	}
	if err := json.Unmarshal(data, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 100 {
		t.Fatalf("golden file has %d rows, want the whole test split", len(rows))
	}
	worst := 0.0
	for i, r := range rows {
		var f churnv1.CustomerFeatures
		if err := protojson.Unmarshal(r.Features, &f); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		res, err := m.Score(&f)
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		d := math.Abs(res.Probability - r.Probability)
		worst = math.Max(worst, d)
		if d > 1e-9 {
			t.Errorf("row %d: serving %.17g, trainer %.17g", i, res.Probability, r.Probability)
		}
	}
	t.Logf("%d rows, largest difference %.3g", len(rows), worst)
}

// mutate decodes the default bundle, changes it and encodes it again.
func mutate(t testing.TB, change func(b *bundle.Bundle)) []byte {
	t.Helper()
	b, err := bundle.Parse(defaultBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	change(b)
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLoadRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		data    func(t testing.TB) []byte
		wantErr string
	}{
		{"check vector probability off", func(t testing.TB) []byte {
			return mutate(t, func(b *bundle.Bundle) { b.Manifest.CheckVectors[0].Probability += 1e-6 })
		}, "check_vectors[0]: serving computes"},
		{"parameters changed after training", func(t testing.TB) []byte {
			return mutate(t, func(b *bundle.Bundle) {
				if b.Model.Logistic != nil {
					b.Model.Logistic.Intercept += 0.01
				} else {
					b.Model.Trees.BaseScore += 0.01
				}
			})
		}, "check_vectors"},
		{"check vector that does not map", func(t testing.TB) []byte {
			return mutate(t, func(b *bundle.Bundle) {
				b.Manifest.CheckVectors[0].Features = json.RawMessage(`{"complaints": {"count30d": -1}}`)
			})
		}, "does not map"},
		{"check vector that is not CustomerFeatures", func(t testing.TB) []byte {
			return mutate(t, func(b *bundle.Bundle) { b.Manifest.CheckVectors[0].Features = json.RawMessage(`{"nope": 1}`) })
		}, "check_vectors[0].features"},
		{"unknown field", func(t testing.TB) []byte {
			return []byte(strings.Replace(string(defaultBundle(t)), `"manifest": {`, `"manifest": {"surprise": 1,`, 1))
		}, "unknown field"},
		{"future format", func(t testing.TB) []byte {
			return mutate(t, func(b *bundle.Bundle) { b.Manifest.FormatVersion = 2 })
		}, "format_version"},
		{"truncated", func(t testing.TB) []byte { d := defaultBundle(t); return d[:len(d)/2] }, "invalid model bundle"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := model.Load(tc.data(t))
			if err == nil || !errors.Is(err, bundle.ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Load error = %v, want ErrInvalid mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// TestScoreRefusesOverflow: inputs whose weighted sum overflows to NaN are the model's fault
// (ErrUnscorable), never a validation error of the caller's and never a NaN probability. The
// bundle is compiled without Load, whose probes would refuse it.
func TestScoreRefusesOverflow(t *testing.T) {
	t.Parallel()
	b, err := bundle.Parse(overflowBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Compile(b)
	if err != nil {
		t.Fatal(err)
	}
	f := &churnv1.CustomerFeatures{Numeric: map[string]float64{"a": 1e300, "b": 1e300}}
	_, err = m.Score(f)
	var ve *model.ValidationError
	if !errors.Is(err, model.ErrUnscorable) || errors.As(err, &ve) {
		t.Fatalf("Score = %v, want ErrUnscorable", err)
	}
}

// FuzzLoad: any bytes either load into a model that scores within [0,1] or fail with ErrInvalid.
func FuzzLoad(f *testing.F) {
	def, err := models.FS.ReadFile(models.DefaultName)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(def)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"manifest": {"format_version": 1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := model.Load(data)
		if err != nil {
			if !errors.Is(err, bundle.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		r, err := m.Score(&churnv1.CustomerFeatures{})
		if err == nil && !(r.Probability >= 0 && r.Probability <= 1) {
			t.Fatalf("probability %v outside [0,1]", r.Probability)
		}
	})
}

func TestLoadDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, data := range map[string][]byte{"a.json": defaultBundle(t), "notes.txt": []byte("ignored")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := model.LoadDir(dir)
	if err != nil || len(ms) != 1 || ms[0].Origin != model.OriginDirectory {
		t.Fatalf("LoadDir = %v, %v; want the one bundle, from the directory", ms, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := model.LoadDir(dir); !errors.Is(err, model.ErrInvalid) || !strings.Contains(err.Error(), "c.json") {
		t.Errorf("LoadDir with a bad bundle = %v, want ErrInvalid naming c.json", err)
	}
	if _, err := model.LoadDir(t.TempDir()); err == nil {
		t.Error("LoadDir of an empty directory succeeded")
	}
}
