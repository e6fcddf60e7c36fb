package importer

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestRefused: each unsupported objective or feature is refused with a message naming it.
func TestRefused(t *testing.T) {
	t.Parallel()
	lgb := string(readFile(t, "lgb_breast_cancer_dart.txt"))
	xgbGood := string(readFile(t, "xgb_wa.json"))
	sk := string(readFile(t, "sk_wa.json"))
	for _, tc := range []struct {
		name, format, model, want string
	}{
		{"xgboost multi-class", FormatXGBoostJSON, string(readFile(t, "xgb_multiclass.json")), `objective "multi:softprob" is not supported`},
		{"xgboost gblinear", FormatXGBoostJSON, string(readFile(t, "xgb_gblinear.json")), "gblinear"},
		{"xgboost logitraw", FormatXGBoostJSON, string(readFile(t, "xgb_logitraw.json")), `objective "binary:logitraw" is not supported`},
		{"xgboost categorical", FormatXGBoostJSON, string(readFile(t, "xgb_categorical.json")), "categorical"},
		{"xgboost categorical split", FormatXGBoostJSON, strings.Replace(xgbGood, `"split_type":[0,`, `"split_type":[1,`, 1), "categorical split"},
		{"xgboost num_class", FormatXGBoostJSON, strings.Replace(xgbGood, `"num_class":"0"`, `"num_class":"3"`, 1), "multi-class"},
		{"xgboost not json", FormatXGBoostJSON, "tree\n", "not an XGBoost JSON model"},
		{"xgboost old format", FormatXGBoostJSON, `{"version":[0,90]}`, "no learner object"},
		{"lightgbm regression", FormatLightGBM, strings.Replace(lgb, "objective=binary sigmoid:1", "objective=regression", 1), `objective "regression" is not supported`},
		{"lightgbm multiclass", FormatLightGBM, strings.Replace(lgb, "num_class=1", "num_class=3", 1), "multi-class"},
		{"lightgbm rf", FormatLightGBM, strings.Replace(lgb, "num_class=1\n", "num_class=1\naverage_output\n", 1), "average_output"},
		{"lightgbm linear", FormatLightGBM, strings.Replace(lgb, "num_cat=0\n", "num_cat=0\nis_linear=1\n", 1), "linear trees"},
		{"lightgbm num_cat", FormatLightGBM, strings.Replace(lgb, "num_cat=0\n", "num_cat=1\n", 1), "categorical splits are not supported"},
		{"lightgbm categorical decision", FormatLightGBM, strings.Replace(lgb, "decision_type=2 ", "decision_type=3 ", 1), "categorical split"},
		{"lightgbm truncated", FormatLightGBM, lgb[:len(lgb)/2], "end of trees"},
		{"lightgbm not a model", FormatLightGBM, "{}", "not a LightGBM text model"},
		{"sklearn three classes", FormatSklearnLogistic, strings.Replace(sk, `"classes": [`, `"classes": [2, `, 1), "only binary"},
		{"sklearn zero scale", FormatSklearnLogistic, strings.Replace(sk, `"scale": [`, `"scale": [0, `, 1), "scaler.scale"},
		{"sklearn unknown field", FormatSklearnLogistic, strings.Replace(sk, `"format"`, `"imputer": {}, "format"`, 1), `unknown field "imputer"`},
		{"sklearn wrong format", FormatSklearnLogistic, strings.Replace(sk, `churn.sklearn-logistic.v1`, `v0`, 1), `format "v0"`},
		{"sklearn multi_class", FormatSklearnLogistic, strings.Replace(sk, `"multi_class": "ovr"`, `"multi_class": "auto"`, 1), "multi_class"},
		{"unknown format", "onnx", "{}", `unknown format "onnx"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tc.format, []byte(tc.model))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestSchemaErrors: each bad schema is refused naming the feature and field.
func TestSchemaErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, schema, want string }{
		{"empty", `{"features": {}}`, "features is empty"},
		{"unknown field", `{"features": {"a": {"source": "numeric.a", "scale": 2}}}`, `unknown field "scale"`},
		{"bad source", `{"features": {"a": {"source": "account.nope"}}}`, `features["a"].source`},
		{"categorical source", `{"features": {"a": {"source": "account.contract"}}}`, "categorical"},
		{"impute without value", `{"features": {"a": {"source": "numeric.a", "missing": "impute"}}}`, `features["a"].value`},
		{"value without impute", `{"features": {"a": {"source": "numeric.a", "value": 1}}}`, `features["a"].value`},
		{"bad missing", `{"features": {"a": {"source": "numeric.a", "missing": "zero"}}}`, `features["a"].missing`},
		{"bad transform", `{"features": {"a": {"source": "numeric.a", "transform": "sqrt"}}}`, `features["a"].transform`},
		{"duplicate name", `{"features": {"a": {"source": "numeric.a"}, "b": {"source": "numeric.b", "name": "a"}}}`, `input name "a"`},
		{"duplicate feature", `{"features": {"a": {"source": "numeric.a"}, "a": {"source": "numeric.b"}}}`, `duplicate object member name "a" within "/features"`},
		{"not an object", `{"features": []}`, "want an object"},
		{"trailing", `{"features": {"a": {"source": "numeric.a"}}} {}`, "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseSchema([]byte(tc.schema))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestBuildErrors: a schema or rows that do not fit the model are refused naming what is wrong.
func TestBuildErrors(t *testing.T) {
	t.Parallel()
	xgb, err := Parse(FormatXGBoostJSON, readFile(t, "xgb_wa.json"))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := Parse(FormatSklearnLogistic, readFile(t, "sk_wa.json"))
	if err != nil {
		t.Fatal(err)
	}
	trees, err := ParseSchema(readFile(t, "wa_trees.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	header := "tenure,monthly_charges,total_charges,senior_citizen,contract,paperless_billing,fiber,tech_support,probability\n"
	opts := Options{Name: "x", Version: "v1", CreatedAt: time.Unix(1, 0)}
	for _, tc := range []struct {
		name   string
		model  *Model
		schema string // empty: wa_trees.schema.json
		rows   string
		want   string
	}{
		{"feature without entry", xgb, `{"features": {"tenure": {"source": "account.tenure_months"}}}`, header + "1,2,3,0,0,0,0,0,0.5\n", `model feature 1 "monthly_charges" has no entry`},
		{"entry not a feature", xgb, strings.Replace(string(readFile(t, "wa_trees.schema.json")), `"fiber"`, `"fibre"`, 1), header + "1,2,3,0,0,0,0,0,0.5\n", `"fibre"`},
		{"native on logistic", sk, `{"features": {"tenure": {"source": "account.tenure_months", "missing": "native"}}}`, header + "1,2,3,0,0,0,0,0,0.5\n", "needs a tree model"},
		{"row column missing", xgb, "", "tenure,probability\n1,0.5\n", `no column for model feature 1 "monthly_charges"`},
		{"row breaks validation", xgb, "", header + "-3,2,3,0,0,0,0,0,0.5\n", "line 2"},
		{"row mismatch", xgb, "", header + "1,20,20,0,0,0,0,0,0.999\n", "line 2: serving computes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := trees
			if tc.schema != "" {
				var err error
				if s, err = ParseSchema([]byte(tc.schema)); err != nil {
					t.Fatal(err)
				}
			}
			rows, err := ParseRows(strings.NewReader(tc.rows))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = Build(tc.model, s, rows, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestRowsErrors: a bad rows file is refused naming the line and column.
func TestRowsErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, rows, want string }{
		{"empty", "", "empty file"},
		{"no probability", "a,b\n1,2\n", `no "probability" column`},
		{"no rows", "a,probability\n", "no data rows"},
		{"bad number", "a,probability\n1,0.5\nx,0.5\n", `line 3: column "a"`},
		{"infinite", "a,probability\ninf,0.5\n", `line 2: column "a"`},
		{"bad probability", "a,probability\n1,1.5\n", `line 2: column "probability"`},
		{"missing probability", "a,probability\n1,\n", `line 2: column "probability"`},
		{"duplicate column", "a,a,probability\n1,1,0.5\n", `"a" appears twice`},
		{"short row", "a,probability\n1\n", "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseRows(strings.NewReader(tc.rows))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	r, err := ParseRows(strings.NewReader("a,probability,b\n,0.25,NA\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Rows[0]; got.Line != 2 || got.Probability != 0.25 || got.Values[0] == got.Values[0] || got.Values[1] == got.Values[1] {
		t.Errorf("got %+v, want line 2, probability 0.25 and two missing values", got)
	}
}

// TestNonFiniteTokens: XGBoost's bare NaN/Infinity tokens are read (and a NaN split refused),
// while the same letters inside strings are left alone.
func TestNonFiniteTokens(t *testing.T) {
	t.Parallel()
	model := `{"learner":{"feature_names":["a\"NaN"],"learner_model_param":{"base_score":"5E-1","num_class":"0","num_feature":"1"},` +
		`"objective":{"name":"binary:logistic"},"gradient_booster":{"name":"gbtree","model":{"tree_info":[0],"trees":[{` +
		`"split_indices":[0,0,0],"split_conditions":[%s,-Infinity,1.5],"left_children":[1,-1,-1],"right_children":[2,-1,-1],"default_left":[1,0,0]}]}}}}`
	_, err := ParseXGBoost([]byte(strings.Replace(model, "%s", "NaN", 1)))
	if err == nil || !strings.Contains(err.Error(), "split condition is NaN") {
		t.Fatalf("got %v, want a NaN split condition refused", err)
	}
	_, err = ParseXGBoost([]byte(strings.Replace(model, "%s", "Infinity", 1)))
	if err == nil || !strings.Contains(err.Error(), "leaf value") {
		t.Fatalf("got %v, want an infinite leaf refused", err)
	}
	m, err := ParseXGBoost([]byte(strings.Replace(strings.Replace(model, "%s", "Infinity", 1), "-Infinity", "-2", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Features[0] != `a"NaN` {
		t.Errorf("feature name %q, want %q", m.Features[0], `a"NaN`)
	}
	// float32(x) < +Inf holds for every x that does not round to +Inf.
	if th := m.Trees.Trees[0].Threshold[0]; !(math.MaxFloat32 < th && th < math.Inf(1)) {
		t.Errorf("threshold for +Inf is %v", th)
	}
}
