package importer

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
	"github.com/churnhq/churn/internal/scoring"
)

// checkParsed is what every fuzz target asserts: a model that parses makes a valid bundle that
// compiles and evaluates to a finite margin on zeros and on missing values.
func checkParsed(t *testing.T, m *Model) {
	t.Helper()
	if len(m.Features) == 0 || (m.Trees == nil) == (m.Logistic == nil) {
		t.Fatalf("parsed model without features or with not exactly one kind of parameters: %+v", m)
	}
	features := map[string]SchemaFeature{}
	for i, f := range m.Features {
		features[f] = SchemaFeature{Source: fmt.Sprintf("numeric.f%d", i)}
	}
	typ := bundle.ModelTrees
	if m.Logistic != nil {
		typ = bundle.ModelLogistic
	}
	l, err := (&Schema{Features: features}).layout(m.Features, typ)
	if err != nil {
		t.Fatalf("features of a parsed model do not map: %v", err)
	}
	b := &bundle.Bundle{
		Manifest: bundle.Manifest{FormatVersion: 1, Name: "fuzz", Version: "v1", CreatedAt: time.Unix(1, 0), Inputs: l.inputs,
			Calibration: bundle.Calibration{Method: bundle.CalibrationNone}, Tiers: bundle.Tiers{Medium: 0.5, High: 0.5, Critical: 0.5},
			CheckVectors: []bundle.CheckVector{{Features: []byte("{}")}}},
	}
	if m.Trees != nil {
		trees, err := l.trees(m.Trees)
		if err != nil {
			t.Fatalf("the trees of a parsed model do not map: %v", err)
		}
		b.Model = bundle.Model{Type: bundle.ModelTrees, Trees: trees}
	} else {
		b.Model = bundle.Model{Type: bundle.ModelLogistic, Logistic: l.logistic(m.Logistic)}
	}
	if err := b.Validate(); err != nil {
		t.Fatalf("a parsed model makes an invalid bundle: %v", err)
	}
	e := scoring.New(b)
	x := make([]float64, e.Width())
	if mg := e.Margin(x); math.IsNaN(mg) {
		t.Fatalf("margin on zeros is NaN")
	}
	if m.Trees != nil {
		for i := range x {
			x[i] = math.NaN()
		}
		if mg := e.Margin(x); math.IsNaN(mg) {
			t.Fatalf("margin on missing values is NaN")
		}
	}
}

func FuzzXGBoost(f *testing.F) {
	for _, name := range []string{"xgb_wa_dart.json", "xgb_gblinear.json", "xgb_categorical.json", "xgb_logitraw.json"} {
		f.Add(readFile(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseXGBoost(data)
		if err != nil {
			return
		}
		checkParsed(t, m)
	})
}

func FuzzLightGBM(f *testing.F) {
	f.Add(readFile(f, "lgb_breast_cancer_dart.txt"))
	f.Add([]byte(lgbModelText("num_leaves=3\nnum_cat=0\nsplit_feature=0 0\nthreshold=-1 0.5\ndecision_type=6 4\nleft_child=1 -1\nright_child=-3 -2\nleaf_value=10 20 30")))
	f.Add([]byte(lgbModelText("num_leaves=1\nnum_cat=0\nleaf_value=0.5")))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseLightGBM(data)
		if err != nil {
			return
		}
		checkParsed(t, m)
	})
}

func FuzzSklearn(f *testing.F) {
	f.Add(readFile(f, "sk_wa.json"))
	f.Add(readFile(f, "sk_wa_multinomial.json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseSklearn(data)
		if err != nil {
			return
		}
		checkParsed(t, m)
	})
}

func FuzzSchema(f *testing.F) {
	f.Add(readFile(f, "wa_trees.schema.json"))
	f.Add(readFile(f, "wa_logistic.schema.json"))
	f.Add([]byte(`{"features": {"a": {"source": "numeric.a", "missing": "impute", "value": 1e308, "transform": "log1p"}}}`))
	f.Add(readFile(f, "onehot_trees.schema.json"))
	f.Add([]byte(`{"features": {"a": {"source": "numeric.a"}}, "categorical": [{"source": "account.contract", "missing": "impute", "value": "y",
		"columns": [{"feature": "x", "category": "y"}, {"feature": "z", "category": "(missing)"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSchema(data)
		if err != nil {
			return
		}
		names := make([]string, 0, len(s.Features))
		for k := range s.Features {
			names = append(names, k)
		}
		for _, g := range s.Categorical {
			for _, c := range g.Columns {
				if c.Feature != "" {
					names = append(names, c.Feature)
				}
			}
		}
		for _, typ := range []string{bundle.ModelTrees, bundle.ModelLogistic} {
			l, err := s.layout(names, typ)
			if err != nil {
				continue
			}
			width := 0
			for i, in := range l.inputs {
				if typ, err := features.SourceType(in.Source); err != nil || typ != in.Type || in.Name == "" {
					t.Fatalf("input %d of a parsed schema: %+v", i, in)
				}
				width += max(1, len(in.Categories))
			}
			// Every model feature has its own bundle column.
			seen := map[int]bool{}
			for f, c := range l.column {
				if c < 0 || c >= width || seen[c] {
					t.Fatalf("model feature %d has column %d (width %d), or shares it", f, c, width)
				}
				seen[c] = true
			}
			if width != l.width {
				t.Fatalf("inputs make %d columns, the layout says %d", width, l.width)
			}
		}
	})
}

func FuzzRows(f *testing.F) {
	f.Add([]byte("a,probability,b\n,0.25,NA\n1e3,1,-2\n"))
	f.Add(readFile(f, "sk_wa_multinomial_rows.csv"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRows(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, row := range r.Rows {
			if len(row.Values) != len(r.Features) || !(row.Probability >= 0 && row.Probability <= 1) {
				t.Fatalf("line %d: %d values for %d features, probability %v", row.Line, len(row.Values), len(r.Features), row.Probability)
			}
			for _, v := range row.Values {
				if math.IsInf(v, 0) {
					t.Fatalf("line %d: infinite value", row.Line)
				}
			}
		}
	})
}
