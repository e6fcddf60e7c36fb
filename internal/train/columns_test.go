package train

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/model"
)

// The tests of what a dataset spec says about a column (issue 13, item 5): a unit conversion
// (scale), a missing text value as a category of its own, and the typed fields' valid values,
// which training holds exactly as serving does. Each trains on a small dataset.

// columnsRun trains trainers on csv under spec with 3 folds, as churnctl train does without
// --test-idx.
func columnsRun(t *testing.T, spec, csv string, trainers ...Trainer) (*Result, error) {
	t.Helper()
	ds, err := ReadCSV(strings.NewReader(csv), mustSpec(t, spec))
	if err != nil {
		t.Fatalf("ReadCSV: %v", err)
	}
	trainRows, testRows := StratifiedSplit(ds.Labels, 0.25, 42)
	return Run(context.Background(), Config{
		Data: ds, TrainRows: trainRows, TestRows: testRows, Trainers: trainers, Folds: 3,
		Tiers: DefaultTierQuantiles, Seed: 42, Name: "columns", Version: "v1",
		CreatedAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Workers: 1,
	})
}

// fastGBDT is a small tree ensemble, for the tests that need a tree model.
func fastGBDT() Trainer {
	o := DefaultGBDTOptions
	o.MaxRounds, o.EarlyStopping = 15, 5
	return GBDTTrainer(o)
}

// unitsCSV writes n customers with a tenure and an account age: in years and days when
// converted is false, else already in months, each month figure being exactly the product the
// spec's scale computes. Churn falls with tenure.
func unitsCSV(n int, converted bool) string {
	rng := rand.New(rand.NewPCG(5, 6))
	var b strings.Builder
	b.WriteString("id,tenure,account_age,churn\n")
	for i := range n {
		years := float64(rng.IntN(40)) / 4 // 0..9.75 years
		days := float64(30 + rng.IntN(4000))
		y := 0
		if rng.Float64() < Sigmoid(1-0.4*years+0.0001*days) {
			y = 1
		}
		tenure, age := strconv.FormatFloat(years, 'g', -1, 64), strconv.FormatFloat(days, 'g', -1, 64)
		if converted {
			tenure = strconv.FormatFloat(years*12, 'g', -1, 64)
			age = strconv.FormatFloat(days*(12/365.25), 'g', -1, 64)
		}
		if i%19 == 4 {
			tenure = ""
		}
		fmt.Fprintf(&b, "c%d,%s,%s,%d\n", i, tenure, age, y)
	}
	return b.String()
}

const unitsSpec = `{"name": "units", "label": {"column": "churn", "positive": "1"}, "drop": ["id"],
 "columns": {"tenure": {"source": "account.tenure_months"%s},
             "account_age": {"source": "numeric.account_age_months"%s}}}`

// TestScaleConvertsUnits: a column in years (or days) with a scale trains the very bundle that
// the same column already in months gives, byte for byte: the bundle, its training range and its
// check vectors are in the field's unit, which callers send.
func TestScaleConvertsUnits(t *testing.T) {
	t.Parallel()
	for _, tr := range []Trainer{LogisticTrainer(1), fastGBDT()} {
		t.Run(tr.Name, func(t *testing.T) {
			t.Parallel()
			scaled, err := columnsRun(t, fmt.Sprintf(unitsSpec, `, "scale": 12`, `, "scale": 0.03285420944558522`), unitsCSV(400, false), tr)
			if err != nil {
				t.Fatal(err)
			}
			months, err := columnsRun(t, fmt.Sprintf(unitsSpec, ``, ``), unitsCSV(400, true), tr)
			if err != nil {
				t.Fatal(err)
			}
			checkServes(t, scaled)
			a, err := scaled.Bundle.Encode()
			if err != nil {
				t.Fatal(err)
			}
			b, err := months.Bundle.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("the bundle trained on years with scale 12 differs from the one trained on months:\n%s", cmp.Diff(string(b), string(a)))
			}
			if r := scaled.Bundle.Manifest.Inputs[0].Range; r == nil || r.Max != 9.75*12 {
				t.Errorf("tenure's training range %+v, want a maximum of 117 months", r)
			}
		})
	}
}

// TestScaleOverflowNamesTheCell: a cell whose product with the scale is not finite is an error
// naming the row and the column.
func TestScaleOverflowNamesTheCell(t *testing.T) {
	t.Parallel()
	spec := mustSpec(t, fmt.Sprintf(unitsSpec, `, "scale": 1e300`, ``))
	_, err := ReadCSV(strings.NewReader("id,tenure,account_age,churn\na,1,2,0\nb,1e10,2,1\n"), spec)
	if err == nil || !strings.Contains(err.Error(), `csv row 1 (line 3), column "tenure": 1e10 times the column's scale 1e+300 is not a finite number`) {
		t.Fatalf("got %v, want the row, the column and the overflow", err)
	}
}

// cardCSV writes n customers whose card is missing in about 30% of rows; a missing card churns
// most, more than any card, and "gold" is the most common card.
func cardCSV(n int, gaps bool) string {
	rng := rand.New(rand.NewPCG(7, 8))
	var b strings.Builder
	b.WriteString("id,card,tenure,churn\n")
	for i := range n {
		card := []string{"gold", "gold", "gold", "silver", "blue"}[rng.IntN(5)]
		m := -1.5
		if gaps && rng.Float64() < 0.3 {
			card, m = "", 1
		}
		if card == "blue" {
			m += 0.5
		}
		tenure := 1 + rng.IntN(60)
		m -= 0.02 * float64(tenure)
		y := 0
		if rng.Float64() < Sigmoid(m) {
			y = 1
		}
		fmt.Fprintf(&b, "c%d,%s,%d,%d\n", i, card, tenure, y)
	}
	return b.String()
}

const cardSpec = `{"name": "cards", "label": {"column": "churn", "positive": "1"}, "drop": ["id"],
 "columns": {"card": {"source": "categorical.card", "missing": "category"},
             "tenure": {"source": "account.tenure_months"}}}`

// TestMissingAsCategory: under "missing": "category" a missing text value is a category of its
// own, "(missing)", in training and at serving alike: the bundle holds it among the input's
// categories and imputes it, a check vector without the value proves that serving maps an absent
// value onto it, and an absent value scores as "(missing)" does, not as the most common card.
func TestMissingAsCategory(t *testing.T) {
	t.Parallel()
	for _, tr := range []Trainer{LogisticTrainer(1), fastGBDT()} {
		t.Run(tr.Name, func(t *testing.T) {
			t.Parallel()
			res, err := columnsRun(t, cardSpec, cardCSV(600, true), tr)
			if err != nil {
				t.Fatal(err)
			}
			checkServes(t, res)
			in := res.Bundle.Manifest.Inputs[0]
			if diff := cmp.Diff([]string{"(missing)", "blue", "gold", "silver"}, in.Categories); diff != "" {
				t.Errorf("categories (-want +got):\n%s", diff)
			}
			if want := (bundle.Missing{Policy: bundle.MissingImpute, Category: MissingCategory}); in.Missing != want {
				t.Errorf("missing policy %+v, want %+v", in.Missing, want)
			}
			absent := 0
			for _, cv := range res.Bundle.Manifest.CheckVectors {
				if _, ok := mustFeatures(t, cv.Features).GetCategorical()["card"]; !ok {
					absent++
				}
			}
			if absent == 0 {
				t.Error("no check vector leaves the card out: nothing proves serving maps it as training did")
			}

			m := loadBundle(t, res.Bundle)
			score := func(card string) model.Result {
				f := &churnv1.CustomerFeatures{Account: &churnv1.Account{TenureMonths: ptr(12.0)}}
				if card != "" {
					f.Categorical = map[string]string{"card": card}
				}
				r, err := m.Score(f)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			none, named, gold := score(""), score(MissingCategory), score("gold")
			if none.Probability != named.Probability {
				t.Errorf("an absent card scores %v, the card %q %v: want the same", none.Probability, MissingCategory, named.Probability)
			}
			if !(none.Probability > gold.Probability+0.05) {
				t.Errorf("an absent card scores %v, gold (the most common) %v: the gaps churn most, so want it clearly higher", none.Probability, gold.Probability)
			}
			if !slices.Contains(none.Imputed, "card") || len(none.Unknown) != 0 {
				t.Errorf("an absent card: imputed %q, unknown %v; want card imputed, nothing unknown", none.Imputed, none.Unknown)
			}
		})
	}
}

// TestMissingCategoryWithoutGaps: the category "(missing)" is in the bundle even when no training
// row misses the value, so that a customer without one still maps (onto a column training never
// set, as scikit-learn's one-hot encoder ignores a category it did not see).
func TestMissingCategoryWithoutGaps(t *testing.T) {
	t.Parallel()
	ds, err := ReadCSV(strings.NewReader(cardCSV(200, false)), mustSpec(t, cardSpec))
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]int, len(ds.Rows))
	for i := range rows {
		rows[i] = i
	}
	for _, enc := range []Encoding{EncodeStandardized, EncodeRaw} {
		pp, err := LearnPrepFor(ds, rows, enc)
		if err != nil {
			t.Fatal(err)
		}
		if got := pp.Inputs[0].Categories; !slices.Equal(got, []string{"(missing)", "blue", "gold", "silver"}) {
			t.Errorf("encoding %d: categories %q, want (missing) among them", enc, got)
		}
		x := make([]float64, pp.Width())
		if !pp.Encode([]Value{{Missing: true}, {Num: 3}}, x) || x[0] != 1 || x[1]+x[2]+x[3] != 0 {
			t.Errorf("encoding %d: a missing card encodes as %v, want the (missing) column set", enc, x[:4])
		}
	}
}

// TestTrainingRefusesWhatServingRefuses: a row that serving would refuse as a request stops
// training, naming the row, its line, the column and the reason; the file itself still reads
// (churnctl evaluate measures such rows as refused). Mapped onto numeric.<key>, the same column
// trains.
func TestTrainingRefusesWhatServingRefuses(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 257)
	tests := []struct {
		name, header, source, cell, want string
	}{
		{"active days above 31", "active_days", "activity.active_days_30d", "46",
			`csv row 7 (line 9), column "active_days" (activity.active_days_30d): must be in 0..31, got 46: serving refuses such a request`},
		{"negative tenure", "tenure", "account.tenure_months", "-1", `column "tenure" (account.tenure_months): must be >= 0, got -1`},
		{"satisfaction 0", "score", "account.satisfaction", "0", `column "score" (account.satisfaction): must be in 1..5, got 0`},
		{"more complaints in 30 days than in 90", "complaints_30d", "complaints.count_30d", "9",
			`column "complaints_30d" (complaints.count_30d): must be <= count_90d (2), got 9`},
		{"text longer than 256 bytes", "plan", "categorical.plan", long, `column "plan" (categorical.plan): must be at most 256 bytes, got 257`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			fmt.Fprintf(&b, "%s,complaints_90d,churn\n", tc.header)
			for i := range 40 {
				cell := "3"
				if tc.source == "categorical.plan" {
					cell = "basic"
				}
				if i == 7 {
					cell = tc.cell
				}
				if tc.source == "complaints.count_30d" && i != 7 {
					cell = "1"
				}
				fmt.Fprintf(&b, "%s,2,%d\n", cell, i%2)
			}
			spec := fmt.Sprintf(`{"name": "refused", "label": {"column": "churn", "positive": "1"},
			  "columns": {%q: {"source": %q}, "complaints_90d": {"source": "complaints.count_90d"}}}`, tc.header, tc.source)
			_, err := columnsRun(t, spec, b.String(), LogisticTrainer(1))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if tc.source == "categorical.plan" || tc.source == "complaints.count_30d" {
				return
			}
			spec = strings.Replace(spec, tc.source, "numeric.x", 1)
			if _, err := columnsRun(t, spec, b.String(), LogisticTrainer(1)); err != nil {
				t.Fatalf("mapped onto numeric.x, the column does not train: %v", err)
			}
		})
	}
}

// loadBundle loads b as churnd does.
func loadBundle(t *testing.T, b *bundle.Bundle) *model.Model {
	t.Helper()
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

func ptr[T any](v T) *T { return &v }
