package train

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const validSpec = `{
  "name": "toy",
  "label": {"column": "churn", "positive": "yes"},
  "drop": ["id"],
  "columns": {
    "tenure": {"source": "account.tenure_months"},
    "plan": {"source": "account.contract", "values": {"1": "monthly", "2": "yearly"}},
    "complaints": {"source": "complaints.count_90d", "transform": "indicator", "missing": "error"},
    "calls": {"source": "numeric.calls", "transform": "log1p"},
    "region": {"source": "categorical.region", "name": "home_region"}
  },
  "derived": [
    {"name": "usage", "op": "sum", "args": ["account.tenure_months", "calls", "complaints.count_90d"]},
    {"name": "per_month", "op": "ratio", "args": ["usage", "account.tenure_months"]}
  ]
}`

func TestParseSpecKeepsColumnOrderAndFillsDefaults(t *testing.T) {
	t.Parallel()
	s, err := ParseSpec([]byte(validSpec))
	if err != nil {
		t.Fatal(err)
	}
	want := Columns{
		{CSV: "tenure", Source: "account.tenure_months", Name: "account.tenure_months", Missing: "impute"},
		{CSV: "plan", Source: "account.contract", Name: "account.contract", Missing: "impute", Unseen: "missing", Values: map[string]string{"1": "monthly", "2": "yearly"}},
		{CSV: "complaints", Source: "complaints.count_90d", Name: "complaints.count_90d", Missing: "error", Transform: "indicator"},
		{CSV: "calls", Source: "numeric.calls", Name: "calls", Missing: "impute", Transform: "log1p"},
		{CSV: "region", Source: "categorical.region", Name: "home_region", Missing: "impute", Unseen: "missing"},
	}
	if diff := cmp.Diff(want, s.Columns); diff != "" {
		t.Errorf("columns (-want +got):\n%s", diff)
	}
	wantDerived := []Derived{
		{Name: "usage", Op: "sum", Args: []string{"account.tenure_months", "calls", "complaints.count_90d"}},
		{Name: "per_month", Op: "ratio", Args: []string{"usage", "account.tenure_months"}},
	}
	if diff := cmp.Diff(wantDerived, s.Derived); diff != "" {
		t.Errorf("derived (-want +got):\n%s", diff)
	}
	if got := s.Columns[1].Type(); got != "categorical" {
		t.Errorf("plan type = %q, want categorical", got)
	}
}

func TestParseSpecErrorsNameTheField(t *testing.T) {
	t.Parallel()
	// Each case breaks one thing in a valid spec and names the text the error must contain.
	tests := []struct {
		name string
		edit func(string) string
		want string
	}{
		{"unknown top-level field", func(s string) string { return strings.Replace(s, `"drop"`, `"dropped"`, 1) }, `unknown field "dropped"`},
		{"unknown column field", func(s string) string { return strings.Replace(s, `"transform": "log1p"`, `"transfrom": "log1p"`, 1) }, `columns["calls"]: json: unknown field "transfrom"`},
		{"bad name", func(s string) string { return strings.Replace(s, `"name": "toy"`, `"name": "a toy"`, 1) }, `spec: name "a toy"`},
		{"no label column", func(s string) string { return strings.Replace(s, `"column": "churn", `, ``, 1) }, `label.column is missing`},
		{"no positive", func(s string) string { return strings.Replace(s, `, "positive": "yes"`, ``, 1) }, `label.positive is missing`},
		{"bad source", func(s string) string { return strings.Replace(s, `"numeric.calls"`, `"usage.calls"`, 1) }, `columns["calls"].source: source "usage.calls"`},
		{"bad transform", func(s string) string { return strings.Replace(s, `"log1p"`, `"sqrt"`, 1) }, `columns["calls"].transform: "sqrt"`},
		{"transform on categorical", func(s string) string {
			return strings.Replace(s, `"name": "home_region"`, `"name": "home_region", "transform": "log1p"`, 1)
		}, `columns["region"].transform`},
		{"values on numeric", func(s string) string {
			return strings.Replace(s, `"transform": "log1p"`, `"transform": "log1p", "values": {"a": "b"}`, 1)
		}, `columns["calls"].values`},
		{"empty category", func(s string) string { return strings.Replace(s, `"2": "yearly"`, `"2": " "`, 1) }, `columns["plan"].values["2"]`},
		{"bad missing", func(s string) string { return strings.Replace(s, `"missing": "error"`, `"missing": "zero"`, 1) }, `columns["complaints"].missing: "zero"`},
		{"duplicate column key", func(s string) string {
			return strings.Replace(s, `"region": {`, `"tenure": {"source": "numeric.x"}, "region": {`, 1)
		}, `duplicate object member name "tenure" within "/columns"`},
		{"label also mapped", func(s string) string { return strings.Replace(s, `"tenure": {`, `"churn": {`, 1) }, `columns["churn"]: column is already label.column`},
		{"dropped and mapped", func(s string) string { return strings.Replace(s, `"drop": ["id"]`, `"drop": ["id", "calls"]`, 1) }, `columns["calls"]: column is already drop[1]`},
		{"dropped twice", func(s string) string { return strings.Replace(s, `"drop": ["id"]`, `"drop": ["id", "id"]`, 1) }, `drop[1]: column "id" is already drop[0]`},
		{"duplicate input name", func(s string) string { return strings.Replace(s, `"home_region"`, `"calls"`, 1) }, `columns["region"].name: input name "calls"`},
		{"name with =", func(s string) string { return strings.Replace(s, `"home_region"`, `"a=b"`, 1) }, `columns["region"].name`},
		{"no columns", func(s string) string { return s[:strings.Index(s, `"columns"`)] + `"columns": {}}` }, `columns is empty`},
		{"columns not an object", func(s string) string { return s[:strings.Index(s, `"columns"`)] + `"columns": [1]}` }, `columns: want an object`},
		{"trailing data", func(s string) string { return s + `{}` }, `trailing data`},
		{"unknown derived field", func(s string) string { return strings.Replace(s, `"op": "sum"`, `"op": "sum", "scale": 2`, 1) }, `unknown field "scale"`},
		{"derived op unknown", func(s string) string { return strings.Replace(s, `"op": "sum"`, `"op": "max"`, 1) }, `derived[0].op: unknown derive op "max"`},
		{"sum of one", func(s string) string {
			return strings.Replace(s, `["account.tenure_months", "calls", "complaints.count_90d"]`, `["calls"]`, 1)
		}, `derived[0].op: derive op sum takes 2 to 16 arguments, got 1`},
		{"ratio of three", func(s string) string {
			return strings.Replace(s, `["usage", "account.tenure_months"]`, `["usage", "calls", "calls"]`, 1)
		}, `derived[1].op: derive op ratio takes 2 arguments, got 3`},
		{"derived argument unknown", func(s string) string {
			return strings.Replace(s, `"args": ["account.tenure_months", "calls"`, `"args": ["tenure", "calls"`, 1)
		}, `derived[0].args[0]: "tenure" is not the name of a column's input`},
		{"derived argument later", func(s string) string {
			return strings.Replace(s, `["usage", "account.tenure_months"]`, `["usage", "per_month"]`, 1)
		}, `derived[1].args[1]: "per_month" is not the name`},
		{"derived argument categorical", func(s string) string {
			return strings.Replace(s, `"calls", "complaints.count_90d"]`, `"home_region"]`, 1)
		}, `derived[0].args[1]: input "home_region" is categorical`},
		{"derived name taken", func(s string) string { return strings.Replace(s, `"name": "usage"`, `"name": "calls"`, 1) }, `derived[0].name: input name "calls" is also the name of columns["calls"]`},
		{"derived name twice", func(s string) string { return strings.Replace(s, `"name": "per_month"`, `"name": "usage"`, 1) }, `derived[1].name: input name "usage" is also the name of derived[0]`},
		{"derived name empty", func(s string) string { return strings.Replace(s, `"name": "usage"`, `"name": ""`, 1) }, `derived[0].name: ""`},
		{"derived not a list", func(s string) string { return s[:strings.Index(s, `"derived"`)] + `"derived": {}}` }, `derived`},
		{"wrong type", func(s string) string { return strings.Replace(s, `"positive": "yes"`, `"positive": 1`, 1) }, `label.positive`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := tc.edit(validSpec)
			if in == validSpec {
				t.Fatal("the edit changed nothing")
			}
			_, err := ParseSpec([]byte(in))
			if err == nil {
				t.Fatalf("ParseSpec accepted:\n%s", in)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestSpecRoundTrip(t *testing.T) {
	t.Parallel()
	s, err := ParseSpec([]byte(validSpec))
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := ParseSpec(out)
	if err != nil {
		t.Fatalf("re-parse of %s: %v", out, err)
	}
	if diff := cmp.Diff(s, s2); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// FuzzSpec: any input is either refused with an error or is a valid spec that survives a round
// trip through its own encoding; never a panic.
func FuzzSpec(f *testing.F) {
	f.Add([]byte(validSpec))
	f.Add([]byte(`{"name":"x","label":{"column":"y","positive":"1"},"columns":{"a":{"source":"numeric.a"}}}`))
	f.Add([]byte(`{"name":"x","label":{"column":"y","positive":"1"},"columns":{"a":{"source":"account.contract","values":{"1":"p"}}}}`))
	f.Add([]byte(`{"columns":null}`))
	f.Add([]byte(`{"name":"x","label":{"column":"y","positive":"1"},"columns":{"a":{"source":"numeric.a"},"b":{"source":"numeric.b"}},"derived":[{"name":"s","op":"sum","args":["a","b","a"]},{"name":"l","op":"log1p","args":["s"]}]}`))
	f.Add([]byte(`{"name":"x","label":{"column":"y","positive":"1"},"columns":{"a":{"source":"numeric.a"}},"derived":[]}`))
	f.Add([]byte(`{"name":"x","label":{"column":"y","positive":"1"},"columns":{"a":{"source":"numeric.a"},"a":{}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec(data)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("parsed spec fails Validate: %v", err)
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		s2, err := ParseSpec(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if diff := cmp.Diff(s, s2); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	})
}
