package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/churnhq/churn/internal/bundle"
)

// TierQuantiles are the shares of the training rows, by decreasing predicted probability, that
// reach each risk tier: with the defaults, the top 35% of training customers are at least
// MEDIUM, the top 15% at least HIGH and the top 5% CRITICAL.
type TierQuantiles struct {
	Medium, High, Critical float64
}

// DefaultTierQuantiles are the tier shares used unless told otherwise.
var DefaultTierQuantiles = TierQuantiles{Medium: 0.35, High: 0.15, Critical: 0.05}

// Validate checks 1 >= Medium >= High >= Critical > 0.
func (q TierQuantiles) Validate() error {
	if !(q.Critical > 0 && q.Critical <= q.High && q.High <= q.Medium && q.Medium <= 1) {
		return fmt.Errorf("tier quantiles: want 1 >= medium >= high >= critical > 0, got %g, %g, %g", q.Medium, q.High, q.Critical)
	}
	return nil
}

// Config is one training run: the data, the split, the hyperparameters and what to write into
// the manifest.
type Config struct {
	Data      *Dataset
	TrainRows []int
	TestRows  []int
	C         float64
	Tiers     TierQuantiles
	// Name, Version, CreatedAt and Description go into the manifest.
	Name, Version string
	CreatedAt     time.Time
	Description   string
	// Command, DatasetFile and Seed go into the training record.
	Command     string
	DatasetFile string
	Seed        int64
	// CheckRows is the number of test rows kept as check vectors (spread over the probability
	// range), besides the two rows with inputs removed. Default 8.
	CheckRows int
}

// Result is a trained model with its evaluation.
type Result struct {
	Bundle *bundle.Bundle
	Fit    *LogisticFit
	// Train and Test evaluate the training and the held-out rows.
	Train, Test *bundle.Metrics
	// Golden holds every held-out row the bundle can score, as a request and the probability the
	// trainer computed for it.
	Golden []GoldenRow
	// Unseen counts held-out rows with a category the training rows did not have: the bundle
	// refuses them, so they are measured (as all-zero one-hot columns) but left out of Golden.
	Unseen int
}

// GoldenRow is a request's features (CustomerFeatures in protobuf JSON) and its probability.
type GoldenRow struct {
	Features    json.RawMessage `json:"features"`
	Probability float64         `json:"probability"`
}

// Run fits a logistic regression on cfg.TrainRows, evaluates it on both parts, chooses the tier
// thresholds, picks check vectors from the held-out rows and assembles a validated bundle.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	pp, err := LearnPrep(cfg.Data, cfg.TrainRows)
	if err != nil {
		return nil, err
	}
	fit, err := FitLogistic(ctx, pp, cfg.Data, cfg.TrainRows, cfg.C)
	if err != nil {
		return nil, err
	}
	sc := &scorer{prep: pp, fit: fit, x: make([]float64, pp.Width())}
	trainP, _ := sc.rows(cfg.Data, cfg.TrainRows)
	testP, known := sc.rows(cfg.Data, cfg.TestRows)
	res := &Result{Fit: fit}
	if res.Train, err = Evaluate("train", labels(cfg.Data, cfg.TrainRows), trainP); err != nil {
		return nil, fmt.Errorf("training rows: %v", err)
	}
	if res.Test, err = Evaluate("test", labels(cfg.Data, cfg.TestRows), testP); err != nil {
		return nil, fmt.Errorf("held-out rows: %v", err)
	}
	tiers := chooseTiers(trainP, cfg.Tiers)
	scorable := make([]int, 0, len(cfg.TestRows)) // positions in TestRows
	for k, ok := range known {
		if ok {
			scorable = append(scorable, k)
		} else {
			res.Unseen++
		}
	}
	if res.Golden, err = golden(cfg, scorable, testP); err != nil {
		return nil, err
	}
	checks, err := checkVectors(cfg, sc, scorable, testP)
	if err != nil {
		return nil, err
	}
	res.Bundle = assemble(cfg, pp, fit, tiers, checks, res.Test)
	if err := res.Bundle.Validate(); err != nil {
		return nil, err
	}
	return res, nil
}

// check validates the configuration.
func (cfg *Config) check() error {
	if cfg.Data == nil || len(cfg.TrainRows) == 0 || len(cfg.TestRows) == 0 {
		return errors.New("a training run needs data, training rows and held-out rows")
	}
	if cfg.CheckRows == 0 {
		cfg.CheckRows = 8
	}
	if cfg.CreatedAt.IsZero() {
		return errors.New("created-at time is missing")
	}
	return cfg.Tiers.Validate()
}

func labels(ds *Dataset, rows []int) []bool {
	y := make([]bool, len(rows))
	for k, i := range rows {
		y[k] = ds.Labels[i]
	}
	return y
}

// scorer computes probabilities the way the serving code does.
type scorer struct {
	prep *Prep
	fit  *LogisticFit
	x    []float64
}

// probability encodes row and returns its probability, and false when the row has an unseen
// category.
func (s *scorer) probability(row []Value) (float64, bool) {
	ok := s.prep.Encode(row, s.x)
	return Sigmoid(margin(s.fit.Intercept, s.fit.Weights, s.x)), ok
}

// rows scores ds's rows.
func (s *scorer) rows(ds *Dataset, rows []int) ([]float64, []bool) {
	p := make([]float64, len(rows))
	known := make([]bool, len(rows))
	for k, i := range rows {
		p[k], known[k] = s.probability(ds.Rows[i])
	}
	return p, known
}

// chooseTiers sets each threshold to the probability of the k-th most likely training row,
// k = ceil(share × rows), so that (ties aside) that share of the training rows is at or above it.
func chooseTiers(trainP []float64, q TierQuantiles) bundle.Tiers {
	s := slices.Clone(trainP)
	sort.Sort(sort.Reverse(sort.Float64Slice(s)))
	at := func(share float64) float64 {
		k := int(math.Ceil(share*float64(len(s)) - 1e-9))
		k = min(max(k, 1), len(s))
		return s[k-1]
	}
	return bundle.Tiers{Medium: at(q.Medium), High: at(q.High), Critical: at(q.Critical)}
}

// golden is every scorable held-out row as a request and its probability.
func golden(cfg Config, scorable []int, testP []float64) ([]GoldenRow, error) {
	out := make([]GoldenRow, 0, len(scorable))
	for _, k := range scorable {
		f, err := rowFeatures(cfg.Data.Columns, cfg.Data.Rows[cfg.TestRows[k]])
		if err != nil {
			return nil, err
		}
		raw, err := featuresJSON(f)
		if err != nil {
			return nil, err
		}
		out = append(out, GoldenRow{Features: raw, Probability: testP[k]})
	}
	return out, nil
}

// checkVectors picks cfg.CheckRows held-out rows spread evenly over the ranking of their
// probabilities (lowest to highest), plus two rows with inputs removed so that imputation is
// exercised: the most likely row without every second imputable input, and the median row
// without any imputable input.
func checkVectors(cfg Config, sc *scorer, scorable []int, testP []float64) ([]bundle.CheckVector, error) {
	if len(scorable) == 0 {
		return nil, errors.New("no held-out row can be scored by the bundle (every one has an unseen category)")
	}
	ranked := slices.Clone(scorable)
	slices.SortStableFunc(ranked, func(a, b int) int { return cmpFloat(testP[a], testP[b]) })
	var picks []int
	n := len(ranked)
	for k := range cfg.CheckRows {
		pos := 0
		if cfg.CheckRows > 1 {
			pos = int(math.Round(float64(k) * float64(n-1) / float64(cfg.CheckRows-1)))
		}
		if len(picks) == 0 || picks[len(picks)-1] != ranked[pos] {
			picks = append(picks, ranked[pos])
		}
	}
	var out []bundle.CheckVector
	cols := cfg.Data.Columns
	for _, k := range picks {
		cv, err := checkVector(sc, cols, cfg.Data.Rows[cfg.TestRows[k]], nil)
		if err != nil {
			return nil, err
		}
		out = append(out, cv)
	}
	every2, all := make([]bool, len(cols)), make([]bool, len(cols))
	nImputable := 0
	for j, c := range cols {
		if c.Missing == "" || c.Missing == bundle.MissingImpute {
			every2[j] = nImputable%2 == 0
			all[j] = true
			nImputable++
		}
	}
	if nImputable == 0 {
		return out, nil
	}
	for _, r := range []struct {
		row  int
		drop []bool
	}{{ranked[n-1], every2}, {ranked[n/2], all}} {
		cv, err := checkVector(sc, cols, cfg.Data.Rows[cfg.TestRows[r.row]], r.drop)
		if err != nil {
			return nil, err
		}
		out = append(out, cv)
	}
	return out, nil
}

// checkVector builds the request of row without the dropped columns and scores the same row
// with those columns missing.
func checkVector(sc *scorer, cols []Column, row []Value, drop []bool) (bundle.CheckVector, error) {
	row = slices.Clone(row)
	for j := range row {
		if drop != nil && drop[j] {
			row[j] = Value{Missing: true}
		}
	}
	f, err := rowFeatures(cols, row)
	if err != nil {
		return bundle.CheckVector{}, err
	}
	raw, err := featuresJSON(f)
	if err != nil {
		return bundle.CheckVector{}, err
	}
	p, _ := sc.probability(row)
	return bundle.CheckVector{Features: raw, Probability: p}, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// assemble builds the bundle.
func assemble(cfg Config, pp *Prep, fit *LogisticFit, tiers bundle.Tiers, checks []bundle.CheckVector, test *bundle.Metrics) *bundle.Bundle {
	return &bundle.Bundle{
		Manifest: bundle.Manifest{
			FormatVersion: bundle.FormatVersion,
			Name:          cfg.Name,
			Version:       cfg.Version,
			CreatedAt:     cfg.CreatedAt.UTC(),
			Description:   cfg.Description,
			Inputs:        slices.Clone(pp.Inputs),
			Calibration:   bundle.Calibration{Method: bundle.CalibrationNone},
			Tiers:         tiers,
			CheckVectors:  checks,
			Training: &bundle.Training{
				Trainer: bundle.ModelLogistic,
				Command: cfg.Command,
				Dataset: cfg.DatasetFile,
				Seed:    cfg.Seed,
				Params:  map[string]float64{"c": cfg.C},
				Rows:    map[string]int{"train": len(cfg.TrainRows), "test": len(cfg.TestRows)},
				Metrics: test,
			},
		},
		Model: bundle.Model{
			Type:     bundle.ModelLogistic,
			Logistic: &bundle.Logistic{Intercept: fit.Intercept, Weights: slices.Clone(fit.Weights)},
		},
	}
}
