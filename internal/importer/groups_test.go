package importer

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/model"
)

// The tests of one-hot groups (issue 13, item 7): a schema maps a group of a model's one-hot
// columns onto one categorical input, so that callers send the category. The committed models
// (testdata/import/make_onehot_models.py) were trained on get_dummies-style columns interleaved
// with numeric ones; TestGolden verifies every row against the library's own probability.

// loadImport imports committed files and loads the bundle as churnd does.
func loadImport(t *testing.T, format, modelFile, schema, rows string) *model.Model {
	t.Helper()
	b, _, err := importFiles(t, format, modelFile, schema, rows)
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestOneHotGroupsLayout: each group is one categorical input where its first column was, its
// categories in the order listed (a drop-first level among them), the MissingZeros category last;
// the numeric features keep their order around them.
func TestOneHotGroupsLayout(t *testing.T) {
	t.Parallel()
	m := loadImport(t, FormatXGBoostJSON, "xgb_onehot.json", "onehot_trees.schema.json", "xgb_onehot_rows.csv")
	type in struct {
		Name, Source, Type string
		Categories         []string
		Missing            bundle.Missing
		Unseen             string
	}
	var got []in
	for _, i := range m.Bundle.Manifest.Inputs {
		got = append(got, in{i.Name, i.Source, i.Type, i.Categories, i.Missing, i.Unseen})
	}
	zeros := bundle.Missing{Policy: bundle.MissingImpute, Category: bundle.MissingCategory}
	native := bundle.Missing{Policy: bundle.MissingNative}
	want := []in{
		{"contract", "account.contract", "categorical", []string{"month-to-month", "one_year", "two_year", "(missing)"}, zeros, "missing"},
		{"account.tenure_months", "account.tenure_months", "numeric", nil, native, ""},
		{"payment_method", "categorical.payment_method", "categorical", []string{"electronic_check", "mailed_check", "bank_transfer", "credit_card", "(missing)"}, zeros, "missing"},
		{"account.monthly_revenue", "account.monthly_revenue", "numeric", nil, native, ""},
		{"internet_service", "categorical.internet_service", "categorical", []string{"dsl", "fiber_optic", "none", "(missing)"}, zeros, "missing"},
		{"senior_citizen", "numeric.senior_citizen", "numeric", nil, native, ""},
		{"tech_support", "categorical.tech_support", "categorical", []string{"yes", "no", "(missing)"}, zeros, "missing"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inputs (-want +got):\n%s", diff)
	}
}

// TestOneHotGroupsScoreAsTheColumns: a customer sent as categories scores exactly as the same
// customer sent as the model's one-hot columns (the model imported with every feature numeric),
// row by row: the rewiring of the trees and of the weights (with the scaler folded into them) is
// exact. Every row's categories come from its columns: a row whose group columns are all 0 sends
// the drop-first level, or no value at all.
func TestOneHotGroupsScoreAsTheColumns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, format, model, schema, rows, numericMissing string
		tolerance                                         float64
	}{
		// Trees compare the same 0/1 values: the same leaves, the same sum.
		{"xgboost", FormatXGBoostJSON, "xgb_onehot.json", "onehot_trees.schema.json", "xgb_onehot_rows.csv", "native", 0},
		// The folded scaler moves a few rounding errors: 1e-15 of the margin.
		{"sklearn scaled", FormatSklearnLogistic, "sk_onehot.json", "onehot_logistic.schema.json", "sk_onehot_rows.csv", "error", 1e-13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			grouped := loadImport(t, tc.format, tc.model, tc.schema, tc.rows)
			parsed, err := Parse(tc.format, readFile(t, tc.model))
			if err != nil {
				t.Fatal(err)
			}
			// The columns schema: every feature numeric.<feature>, as callers sent them before.
			var entries []string
			for _, f := range parsed.Features {
				entries = append(entries, fmt.Sprintf("%q: {\"source\": \"numeric.%s\", \"missing\": %q}", f, f, tc.numericMissing))
			}
			s, err := ParseSchema([]byte(`{"features": {` + strings.Join(entries, ", ") + `}}`))
			if err != nil {
				t.Fatal(err)
			}
			rf, err := os.Open(filepath.Join("..", "..", "testdata", "import", tc.rows))
			if err != nil {
				t.Fatal(err)
			}
			defer rf.Close()
			rows, err := ParseRows(rf)
			if err != nil {
				t.Fatal(err)
			}
			b, _, err := Build(parsed, s, rows, Options{Name: "columns", Version: "v1", CreatedAt: time.Unix(1, 0)})
			if err != nil {
				t.Fatal(err)
			}
			columns, err := model.Compile(b)
			if err != nil {
				t.Fatal(err)
			}
			// Each row as a request both ways.
			groups := map[string][]string{ // input → its features, in category order ("" for the drop-first level)
				"contract":         {"contract_month_to_month", "contract_one_year", "contract_two_year"},
				"payment_method":   {"payment_electronic_check", "payment_mailed_check", "payment_bank_transfer", "payment_credit_card"},
				"internet_service": {"", "internet_fiber", "internet_none"},
				"tech_support":     {"tech_support_yes", ""},
			}
			compared := 0
			for _, row := range rows.Rows {
				byName := map[string]float64{}
				for k, f := range rows.Features {
					byName[f] = row.Values[k]
				}
				asColumns := &churnv1.CustomerFeatures{Numeric: map[string]float64{}}
				for f, v := range byName {
					if v == v { // not NaN
						asColumns.Numeric[f] = v
					}
				}
				asCategories := &churnv1.CustomerFeatures{Categorical: map[string]string{}, Numeric: map[string]float64{}, Account: &churnv1.Account{}}
				for _, in := range grouped.Bundle.Manifest.Inputs {
					if in.Type == bundle.TypeNumeric {
						continue
					}
					cat := ""
					for k, f := range groups[in.Name] {
						if (f == "" && cat == "") || (f != "" && byName[f] == 1) {
							cat = in.Categories[k]
						}
					}
					switch {
					case cat == "":
					case in.Source == "account.contract":
						asCategories.Account.Contract = &cat
					default:
						asCategories.Categorical[in.Name] = cat
					}
				}
				for f, set := range map[string]func(float64){
					"tenure":          func(v float64) { asCategories.Account.TenureMonths = &v },
					"monthly_charges": func(v float64) { asCategories.Account.MonthlyRevenue = &v },
					"senior_citizen":  func(v float64) { asCategories.Numeric["senior_citizen"] = v },
				} {
					if v := byName[f]; v == v {
						set(v)
					}
				}
				want, err := columns.Score(asColumns)
				if err != nil {
					t.Fatalf("line %d as columns: %v", row.Line, err)
				}
				got, err := grouped.Score(asCategories)
				if err != nil {
					t.Fatalf("line %d as categories: %v", row.Line, err)
				}
				if d := got.Probability - want.Probability; d > tc.tolerance || -d > tc.tolerance {
					t.Fatalf("line %d: as categories %.17g, as columns %.17g", row.Line, got.Probability, want.Probability)
				}
				compared++
			}
			t.Logf("%d rows score alike", compared)
		})
	}
}

// TestOneHotGroupsServeCategories: a caller sends the category. A category the group does not
// list scores as a customer without one (every column 0, what the library's one-hot encoding
// gives it) and is listed as unknown; the drop-first level is a category like the others; a
// group whose missing policy imputes scores an absent value as that category.
func TestOneHotGroupsServeCategories(t *testing.T) {
	t.Parallel()
	trees := loadImport(t, FormatXGBoostJSON, "xgb_onehot.json", "onehot_trees.schema.json", "xgb_onehot_rows.csv")
	logistic := loadImport(t, FormatSklearnLogistic, "sk_onehot.json", "onehot_logistic.schema.json", "sk_onehot_rows.csv")
	customer := func(contract, payment string) *churnv1.CustomerFeatures {
		f := &churnv1.CustomerFeatures{
			Account:     &churnv1.Account{TenureMonths: ptr(3.0), MonthlyRevenue: ptr(80.0)},
			Numeric:     map[string]float64{"senior_citizen": 0},
			Categorical: map[string]string{"internet_service": "dsl", "tech_support": "no"},
		}
		if contract != "" {
			f.Account.Contract = &contract
		}
		if payment != "" {
			f.Categorical["payment_method"] = payment
		}
		return f
	}
	score := func(m *model.Model, f *churnv1.CustomerFeatures) model.Result {
		t.Helper()
		r, err := m.Explain(f)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	none := score(trees, customer("month-to-month", ""))
	weekly := score(trees, customer("month-to-month", "weekly_cash"))
	if weekly.Probability != none.Probability {
		t.Errorf("an unknown payment method scores %v, none %v: want the same (every column 0)", weekly.Probability, none.Probability)
	}
	if want := []model.UnknownCategory{{Input: "payment_method", Value: "weekly_cash"}}; !slices.Equal(weekly.Unknown, want) {
		t.Errorf("unknown categories %v, want %v", weekly.Unknown, want)
	}
	check := score(trees, customer("month-to-month", "electronic_check"))
	if check.Probability == none.Probability {
		t.Errorf("an electronic check scores as no payment method (%v): the model's column is not read", check.Probability)
	}
	twoYear := score(trees, customer("two_year", "electronic_check"))
	if !(twoYear.Probability < check.Probability) {
		t.Errorf("a two-year contract scores %v, month-to-month %v: want lower", twoYear.Probability, check.Probability)
	}
	for _, d := range check.Drivers() {
		if d.Feature == "contract" && d.Category != "month-to-month" {
			t.Errorf("the contract driver names %q, want month-to-month", d.Category)
		}
	}

	// The logistic schema imputes a missing contract as month-to-month.
	absent, monthly := score(logistic, customer("", "mailed_check")), score(logistic, customer("month-to-month", "mailed_check"))
	if absent.Probability != monthly.Probability || !slices.Contains(absent.Imputed, "contract") {
		t.Errorf("an absent contract scores %v (imputed %q), month-to-month %v: want the same, imputed", absent.Probability, absent.Imputed, monthly.Probability)
	}
}

func ptr[T any](v T) *T { return &v }
