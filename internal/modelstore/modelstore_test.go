package modelstore_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
	"github.com/churnhq/churn/internal/modelstore"
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
	m, err := modelstore.Load(defaultBundle(t))
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
	x := make([]float64, m.Mapper.Width())
	worst := 0.0
	for i, r := range rows {
		var f churnv1.CustomerFeatures
		if err := protojson.Unmarshal(r.Features, &f); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		p, _, _, err := m.Score(&f, x, nil)
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		d := math.Abs(p - r.Probability)
		worst = math.Max(worst, d)
		if d > 1e-9 {
			t.Errorf("row %d: serving %.17g, trainer %.17g", i, p, r.Probability)
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
			_, err := modelstore.Load(tc.data(t))
			if err == nil || !errors.Is(err, bundle.ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Load error = %v, want ErrInvalid mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	older := mutate(t, func(b *bundle.Bundle) {
		b.Manifest.Version = "v-old"
		b.Manifest.CreatedAt = b.Manifest.CreatedAt.Add(-24 * time.Hour)
	})
	for name, data := range map[string][]byte{"a.json": defaultBundle(t), "b.json": older, "notes.txt": []byte("ignored")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := modelstore.LoadDir(dir)
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	s, err := modelstore.New(ms, "")
	if err != nil {
		t.Fatal(err)
	}
	active, err := s.Active()
	if err != nil || active.Version() == "v-old" {
		t.Fatalf("Active = %v, %v; want the newest model", active, err)
	}
	if err := s.Activate("v-old"); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Active(); a.Version() != "v-old" {
		t.Errorf("after Activate(v-old) active is %s", a.Version())
	}
	if _, err := s.Get("missing"); !errors.Is(err, modelstore.ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	if err := s.Activate("missing"); !errors.Is(err, modelstore.ErrNotFound) {
		t.Errorf("Activate(missing) = %v, want ErrNotFound", err)
	}
	if _, err := modelstore.New(ms, "missing"); !errors.Is(err, modelstore.ErrNotFound) {
		t.Errorf("New with a missing active version = %v, want ErrNotFound", err)
	}
	if _, err := modelstore.New(append(ms, ms[0]), ""); err == nil {
		t.Error("New with a duplicate version succeeded")
	}

	if err := os.WriteFile(filepath.Join(dir, "c.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := modelstore.LoadDir(dir); err == nil || !strings.Contains(err.Error(), "c.json") {
		t.Errorf("LoadDir with a bad bundle = %v, want an error naming c.json", err)
	}
	if _, err := modelstore.LoadDir(t.TempDir()); err == nil {
		t.Error("LoadDir of an empty directory succeeded")
	}
}

// TestScoreRefusesOverflow: inputs whose weighted sum overflows to NaN are refused as
// INVALID_ARGUMENT material, never returned as a NaN probability.
func TestScoreRefusesOverflow(t *testing.T) {
	t.Parallel()
	m, err := modelstore.Load(overflowBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	f := &churnv1.CustomerFeatures{Numeric: map[string]float64{"a": 10, "b": 10}}
	_, _, _, err = m.Score(f, make([]float64, m.Mapper.Width()), nil)
	var ve *features.ValidationError
	if !errors.As(err, &ve) || ve.Violations[0].Field != "features" {
		t.Fatalf("Score = %v, want a ValidationError on features", err)
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
		m, err := modelstore.Load(data)
		if err != nil {
			if !errors.Is(err, bundle.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		x := make([]float64, m.Mapper.Width())
		p, _, _, err := m.Score(&churnv1.CustomerFeatures{}, x, nil)
		if err == nil && !(p >= 0 && p <= 1) {
			t.Fatalf("probability %v outside [0,1]", p)
		}
	})
}
