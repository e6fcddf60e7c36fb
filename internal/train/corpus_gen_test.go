package train

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// This file generates the hostile datasets of issue 13: data a trainer meets in the field and
// must either learn from, giving a bundle that serves, or refuse with an error that names the
// column and the reason, in bounded time. TestHostileCorpus trains on every case at a small
// size; `make quality` (CHURN_CORPUS=full) at full size.

// CorpusCase is one hostile dataset: a CSV file, its dataset spec and what training must do.
type CorpusCase struct {
	Name string
	// About says what is hostile about it.
	About string
	CSV   []byte
	Spec  []byte
	// WantErr, when not empty, holds the words the training error must contain (the column and
	// the reason); empty, training must give a bundle.
	WantErr []string
	// Folds is the number of folds the case is about (0: the default).
	Folds int
}

// corpusRow is one customer of the base dataset, before a case changes it.
type corpusRow struct {
	tenure, monthly, tickets, usage float64
	missTenure, missUsage           bool
	plan, region                    string
	missRegion                      bool
	margin                          float64 // the log-odds of churn
	u                               float64 // uniform draw for the label
}

// HostileCorpus returns the hostile datasets, each with rows data rows (at least 200), drawn
// from seed. The base dataset has a dropped id, four numeric columns (two with empty cells),
// two categorical ones (one with empty cells) and a label that depends on them with about 20%
// churners; every case changes one thing about it.
func HostileCorpus(rows int, seed uint64) []CorpusCase {
	rows = max(rows, 200)
	rng := rand.New(rand.NewPCG(seed, 0x636f72707573)) // second word: "corpus"
	base := make([]corpusRow, rows)
	plans := []string{"monthly", "yearly", "two_year"}
	regions := []string{"north", "south", "east", "west"}
	for i := range base {
		r := &base[i]
		r.tenure = float64(1 + rng.IntN(72))
		r.monthly = math.Round((20+100*rng.Float64())*100) / 100
		r.tickets = float64(rng.IntN(4) * rng.IntN(3))
		r.usage = math.Round(math.Exp(3+rng.NormFloat64())*10) / 10
		r.plan = plans[rng.IntN(len(plans))]
		r.region = regions[rng.IntN(len(regions))]
		r.missTenure = rng.Float64() < 0.03
		r.missUsage = rng.Float64() < 0.05
		r.missRegion = rng.Float64() < 0.02
		r.margin = -1.2 - 0.04*(r.tenure-36) + 0.015*(r.monthly-70) + 0.5*r.tickets - 0.3*(math.Log1p(r.usage)-3)
		if r.plan == "monthly" {
			r.margin += 1
		}
		r.u = rng.Float64()
	}
	churn := func(r *corpusRow) bool { return r.u < Sigmoid(r.margin) }
	num := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

	// build writes the base columns, then the extra columns of a case, and the label.
	type extra struct {
		header, spec string // spec: the column's JSON in the spec's columns object
		cell         func(i int, r *corpusRow) string
	}
	build := func(name, about string, extras []extra, label func(i int, r *corpusRow) bool, crlf bool, prefix string) CorpusCase {
		var buf bytes.Buffer
		buf.WriteString(prefix)
		w := csv.NewWriter(&buf)
		w.UseCRLF = crlf
		header := []string{"id", "tenure", "monthly", "tickets", "usage", "plan", "region"}
		specCols := []string{
			`"tenure": {"source": "account.tenure_months"}`,
			`"monthly": {"source": "account.monthly_revenue"}`,
			`"tickets": {"source": "service.tickets_90d"}`,
			`"usage": {"source": "numeric.usage", "transform": "log1p"}`,
			`"plan": {"source": "account.contract"}`,
			`"region": {"source": "categorical.region"}`,
		}
		for _, e := range extras {
			header = append(header, e.header)
			specCols = append(specCols, e.spec)
		}
		header = append(header, "churn")
		_ = w.Write(header)
		for i := range base {
			r := &base[i]
			cells := []string{fmt.Sprintf("c%06d", i), num(r.tenure), num(r.monthly), num(r.tickets), num(r.usage), r.plan, r.region}
			if r.missTenure {
				cells[1] = ""
			}
			if r.missUsage {
				cells[4] = ""
			}
			if r.missRegion {
				cells[6] = ""
			}
			for _, e := range extras {
				cells = append(cells, e.cell(i, r))
			}
			y := "no"
			if label(i, r) {
				y = "yes"
			}
			_ = w.Write(append(cells, y))
		}
		w.Flush() // a bytes.Buffer never fails a write, so neither can the csv.Writer
		spec := fmt.Sprintf(`{"name": %q, "label": {"column": "churn", "positive": "yes"}, "drop": ["id"], "columns": {%s}}`,
			"corpus-"+name, strings.Join(specCols, ", "))
		return CorpusCase{Name: name, About: about, CSV: buf.Bytes(), Spec: []byte(spec)}
	}
	plain := func(i int, r *corpusRow) bool { return churn(r) }

	// Labels with a given number of churners: the rows with the largest margins.
	topK := func(k int) func(i int, r *corpusRow) bool {
		order := make([]float64, len(base))
		for i := range base {
			order[i] = base[i].margin
		}
		threshold := kthLargest(order, k)
		return func(i int, r *corpusRow) bool { return r.margin >= threshold }
	}

	levels := make([]string, rows)
	for i := range levels {
		levels[i] = fmt.Sprintf("P%03d", rng.IntN(1000))
	}
	huge := make([]float64, rows)
	for i := range huge {
		sign := 1.0
		if base[i].margin < -1.2 {
			sign = -1
		}
		huge[i] = sign * 1e12 * (1 + 0.01*rng.NormFloat64())
	}

	var out []CorpusCase
	out = append(out,
		build("base", "the base dataset, with empty cells in three columns", nil, plain, false, ""),
		build("separable", "perfectly separable: every customer with tenure below 12 months churns, no other does", nil,
			func(i int, r *corpusRow) bool { return !r.missTenure && r.tenure < 12 }, false, ""),
		build("constant", "a column with one value in every row", []extra{{
			"fee", `"fee": {"source": "numeric.fee"}`, func(int, *corpusRow) string { return "4.99" },
		}}, plain, false, ""),
		build("duplicated", "a column that repeats another cell for cell", []extra{{
			"monthly_copy", `"monthly_copy": {"source": "numeric.monthly_copy"}`, func(_ int, r *corpusRow) string { return num(r.monthly) },
		}}, plain, false, ""),
		build("collinear", "columns that are linear combinations of others", []extra{
			{"yearly", `"yearly": {"source": "numeric.yearly"}`, func(_ int, r *corpusRow) string { return num(12 * r.monthly) }},
			{"net", `"net": {"source": "numeric.net"}`, func(_ int, r *corpusRow) string { return num(r.monthly - 5*r.tickets) }},
		}, plain, false, ""),
		withErr(build("empty_column", "a column whose every cell is empty", []extra{{
			"score", `"score": {"source": "numeric.score"}`, func(int, *corpusRow) string { return "" },
		}}, plain, false, ""), `column "score"`, "every training value is missing"),
		build("many_levels", "a text column drawn from 1000 levels (most of them in a few rows; all 1000 from 10000 rows on)", []extra{{
			"postcode", `"postcode": {"source": "categorical.postcode"}`, func(i int, _ *corpusRow) string { return levels[i] },
		}}, plain, false, ""),
		build("huge_values", "a column of values around ±1e12", []extra{{
			"balance", `"balance": {"source": "numeric.balance"}`, func(i int, _ *corpusRow) string { return num(huge[i]) },
		}}, plain, false, ""),
		build("rare_positives", "1% churners", nil, topK(max(rows/100, 10)), false, ""),
		withFolds(build("one_per_fold", "6 churners: after the held-out one, a single churner in each of 5 folds", nil, topK(6), false, ""), 5),
		build("crlf", "CRLF line ends", nil, plain, true, ""),
		build("bom", "a UTF-8 byte order mark before the header", nil, plain, false, "\ufeff"),
		build("quoted_commas", "quoted header and fields that contain commas", []extra{{
			"offer, as sold", `"offer, as sold": {"source": "categorical.offer"}`, func(_ int, r *corpusRow) string {
				if r.tickets > 2 {
					return "discount, 12 months"
				}
				return "list price, no discount"
			},
		}}, plain, false, ""),
	)
	return out
}

func withErr(c CorpusCase, words ...string) CorpusCase {
	c.WantErr = words
	return c
}

func withFolds(c CorpusCase, folds int) CorpusCase {
	c.Folds = folds
	return c
}

// kthLargest is the k-th largest of xs (1-based), for k in 1..len(xs).
func kthLargest(xs []float64, k int) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)-min(max(k, 1), len(s))]
}
