package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/model"
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

// Config is one training run: the data, the split, the trainers and what to write into the
// manifest.
type Config struct {
	Data      *Dataset
	TrainRows []int
	TestRows  []int
	// Trainers are the candidate model families; Run keeps the one with the best cross-fitted
	// Brier score. Empty: LogisticTrainer(C).
	Trainers []Trainer
	// C is the logistic regression's inverse regularisation when Trainers is empty.
	C     float64
	Tiers TierQuantiles
	// Folds is the number of stratified folds of the training rows for early stopping,
	// calibration, tiers and the choice of trainer. Default 5.
	Folds int
	// Name, Version, CreatedAt and Description go into the manifest. An empty Description
	// says what was trained on what (DatasetFile, SpecName).
	Name, Version string
	CreatedAt     time.Time
	Description   string
	SpecName      string
	// Command, DatasetFile and Seed go into the training record. Seed also seeds the folds and
	// any sampling of the trainers.
	Command     string
	DatasetFile string
	Seed        int64
	// CheckRows is the number of test rows kept as check vectors (spread over the probability
	// range), besides the two rows with inputs removed. Default 8.
	CheckRows int
	// Progress, when set, is called as the fits advance (see Progress): from several
	// goroutines, never concurrently. It should return quickly: fits wait for it.
	Progress func(Progress)
	// Workers bounds the fits run at once. Default GOMAXPROCS.
	Workers int
	// Budget bounds the time of fitting the trainers, the cross-fitting and the final fit of
	// each: a trainer gets an equal share of what is left of it when it starts (with three
	// trainers and 30 minutes the first gets 10, and a trainer that finishes early leaves its
	// rest to the later ones), as its context's deadline. A trainer that runs out of its share
	// or fails is skipped (Result.Skipped) and Run keeps the best of the others; it fails only
	// when every trainer does. 0: no budget.
	Budget time.Duration
	// Now is the clock of the budget and of the times reported. Default time.Now.
	Now func() time.Time
}

// Progress is one step of a training run, for Config.Progress.
type Progress struct {
	Event ProgressEvent
	// Trainer is the trainer's name. Fold is the fit's fold, 1..Folds, or 0 for the final fit
	// on all training rows (EventRound, EventFitDone).
	Trainer     string
	Fold, Folds int
	// Round is the fit's boosting round or solver iteration so far (EventRound), or its last
	// (EventFitDone; 0 for a trainer that reports none).
	Round int
	// Done of Total fits are finished; the fits a skipped trainer did not make count as done.
	Done, Total int
	// Elapsed is the time since Run started.
	Elapsed time.Duration
	// Candidate is the trainer's cross-fitted result (EventTrainerDone); Err is why the trainer
	// was skipped (EventTrainerSkipped).
	Candidate *Candidate
	Err       error
}

// ProgressEvent says what a Progress reports.
type ProgressEvent int

const (
	// EventRound: a fit finished a boosting round or a solver iteration.
	EventRound ProgressEvent = iota
	// EventFitDone: a fit finished.
	EventFitDone
	// EventTrainerDone: a trainer's fits and calibration are done.
	EventTrainerDone
	// EventTrainerSkipped: a trainer failed or ran out of its budget; Run goes on without it.
	EventTrainerSkipped
)

// Result is a trained model with its evaluation.
type Result struct {
	Bundle *bundle.Bundle
	// Trainer is the chosen trainer's name, Candidates every trainer's cross-fitted figures.
	Trainer    string
	Candidates []Candidate
	// Train and Test evaluate the training and the held-out rows; Validation the training rows'
	// out-of-fold probabilities (each fold predicted by a model that did not see it, calibrated
	// by a map fitted on the other folds), on which the tiers are chosen.
	Train, Test, Validation *bundle.Metrics
	// TestUncalibrated evaluates the held-out rows before calibration: sigmoid(margin) of the
	// chosen model (the same as Test when the calibration is none).
	TestUncalibrated *bundle.Metrics
	// Golden holds every held-out row the bundle can score, as a request and the probability the
	// trainer computed for it.
	Golden []GoldenRow
	// Unseen counts held-out rows with a category the training rows did not have: the bundle
	// refuses them, so they are measured (as all-zero one-hot columns) but left out of Golden.
	Unseen int
	// Skipped are the trainers that failed or ran out of their budget, in the order tried.
	Skipped []Skipped
}

// Skipped is a trainer Run went on without, and why.
type Skipped struct {
	Name string
	Err  error
	// Seconds is the time the trainer had used.
	Seconds float64
}

// Candidate is one trainer's cross-fitted result.
type Candidate struct {
	Name string
	// Calibration is the chosen method. ROCAUC and Brier are the out-of-fold figures after it
	// (each fold calibrated by a map fitted on the other folds: the figures Run chooses the
	// trainer by and the Validation metrics of the chosen one); RawROCAUC and RawBrier are
	// before calibration (the margins, and sigmoid(margin)). BrierByMethod and ROCAUCByMethod
	// have every method's; RankingCostByMethod each method's loss of ROC-AUC within a fold
	// (chooseCalibration).
	Calibration         string
	Brier               float64
	ROCAUC              float64
	RawBrier            float64
	RawROCAUC           float64
	BrierByMethod       map[string]float64
	ROCAUCByMethod      map[string]float64
	RankingCostByMethod map[string]float64
	// Rounds is the number of boosting rounds of the final fit (0 for families without).
	Rounds int
	// Seconds is the wall time of the trainer's fits (cross-fitting and final).
	Seconds float64

	trainer Trainer
	pp      *Prep
	model   bundle.Model
	cal     bundle.Calibration
	oofP    []float64
}

// GoldenRow is a request's features (CustomerFeatures in protobuf JSON) and its probability.
type GoldenRow struct {
	Features    json.RawMessage `json:"features"`
	Probability float64         `json:"probability"`
}

// Run fits every trainer of cfg on the training rows and keeps the best, then evaluates it,
// chooses the tier thresholds, picks check vectors from the held-out rows and assembles a
// validated bundle. For each trainer:
//
//  1. the training rows are split into cfg.Folds stratified folds; for each fold a model is fitted
//     on the other folds, stopping early (when the family boosts) on the fold itself, and
//     predicts the fold: out-of-fold margins for every training row;
//  2. the final model is fitted on all training rows, with the mean of the folds' rounds;
//  3. the calibration (none, Platt or isotonic) is chosen by the Brier score of nested
//     cross-fitting on the out-of-fold margins and fitted on all of them.
//
// The trainer with the lowest out-of-fold Brier score wins; its calibrated out-of-fold
// probabilities set the tier thresholds. The held-out rows are used only to measure.
//
// A trainer that fails, or runs out of its share of cfg.Budget, is skipped and reported in
// Result.Skipped; when every trainer is, the error says why for each. Errors in the data (a
// column without a training value) and a cancelled ctx end the run at once.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if err := cfg.Data.CheckRequests(); err != nil {
		return nil, err
	}
	trainY := labels(cfg.Data, cfg.TrainRows)
	fold, err := StratifiedFolds(trainY, cfg.Folds, uint64(cfg.Seed))
	if err != nil {
		return nil, fmt.Errorf("training rows: %v", err)
	}
	// The preprocessing depends on the data and the encoding only: learnt once per encoding,
	// before any fit, so that a data error stops the run before it has spent time.
	preps := map[Encoding]*Prep{}
	for _, tr := range cfg.Trainers {
		if preps[tr.Encoding] != nil {
			continue
		}
		if preps[tr.Encoding], err = LearnPrepFor(cfg.Data, cfg.TrainRows, tr.Encoding); err != nil {
			return nil, err
		}
	}
	start := cfg.Now()
	prog := &progress{fn: cfg.Progress, now: cfg.Now, start: start, folds: cfg.Folds, total: len(cfg.Trainers) * (cfg.Folds + 1)}
	res := &Result{}
	var best *Candidate
	var failures []error
	for k, tr := range cfg.Trainers {
		prog.startTrainer()
		tctx, cancel, share := cfg.trainerContext(ctx, cfg.Now().Sub(start), len(cfg.Trainers)-k)
		tstart := cfg.Now()
		c, err := crossFit(tctx, cfg, tr, preps[tr.Encoding], fold, prog)
		cancel()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && errors.Is(tctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("ran out of its time budget (%s, its share of %s) after %d of %d fits: %w",
					share.Round(time.Millisecond), cfg.Budget, prog.trainerDone(), cfg.Folds+1, err)
			}
			err = fmt.Errorf("trainer %s: %w", tr.Name, err)
			failures = append(failures, err)
			res.Skipped = append(res.Skipped, Skipped{Name: tr.Name, Err: err, Seconds: cfg.Now().Sub(tstart).Seconds()})
			prog.skipped(tr.Name, err)
			continue
		}
		prog.trainerFinished(c)
		res.Candidates = append(res.Candidates, *c)
		if best == nil || c.Brier < best.Brier {
			best = c
		}
	}
	if best == nil {
		if len(failures) == 1 {
			return nil, failures[0]
		}
		return nil, fmt.Errorf("every trainer failed:\n%w", errors.Join(failures...))
	}
	res.Trainer = best.Name
	sc := &scorer{prep: best.pp, model: &best.model, cal: &best.cal, x: make([]float64, best.pp.Width())}
	trainP, _ := sc.rows(cfg.Data, cfg.TrainRows)
	testP, known := sc.rows(cfg.Data, cfg.TestRows)
	tiers := chooseTiers(best.oofP, cfg.Tiers)
	if res.Train, err = Evaluate("train", trainY, trainP, &tiers); err != nil {
		return nil, fmt.Errorf("training rows: %v", err)
	}
	if res.Validation, err = Evaluate("validation", trainY, best.oofP, &tiers); err != nil {
		return nil, fmt.Errorf("out-of-fold rows: %v", err)
	}
	testY := labels(cfg.Data, cfg.TestRows)
	if res.Test, err = Evaluate("test", testY, testP, &tiers); err != nil {
		return nil, fmt.Errorf("held-out rows: %v", err)
	}
	raw := *sc
	raw.cal = &bundle.Calibration{Method: bundle.CalibrationNone}
	rawP, _ := raw.rows(cfg.Data, cfg.TestRows)
	if res.TestUncalibrated, err = Evaluate("test, uncalibrated", testY, rawP, nil); err != nil {
		return nil, fmt.Errorf("held-out rows: %v", err)
	}
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
	res.Bundle = assemble(cfg, best, tiers, checks, res.Test)
	// The gate churnd passes every bundle through, on the bytes churnctl writes: a bundle the
	// trainer returns is one the server serves.
	data, err := res.Bundle.Encode()
	if err != nil {
		return nil, err
	}
	if _, err := model.Load(data); err != nil {
		return nil, fmt.Errorf("the trained bundle does not load as churnd would load it: %w", err)
	}
	return res, nil
}

// trainerContext is the context of the next of left trainers, elapsed into the run: with a
// budget, its deadline is an equal share of what is left of the budget.
func (cfg *Config) trainerContext(ctx context.Context, elapsed time.Duration, left int) (context.Context, context.CancelFunc, time.Duration) {
	if cfg.Budget <= 0 {
		ctx, cancel := context.WithCancel(ctx)
		return ctx, cancel, 0
	}
	share := max(cfg.Budget-elapsed, 0) / time.Duration(left)
	ctx, cancel := context.WithTimeout(ctx, share)
	return ctx, cancel, share
}

// progress counts the fits and reports them to Config.Progress. Trainers run one after the
// other; the folds of one run concurrently.
type progress struct {
	mu           sync.Mutex
	fn           func(Progress)
	now          func() time.Time
	start        time.Time
	folds        int
	done, total  int
	trainerStart int // done when the current trainer started
}

func (p *progress) report(e Progress) {
	e.Folds, e.Done, e.Total, e.Elapsed = p.folds, p.done, p.total, p.now().Sub(p.start)
	p.fn(e)
}

func (p *progress) startTrainer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trainerStart = p.done
}

// trainerDone is the number of fits the current trainer has finished.
func (p *progress) trainerDone() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done - p.trainerStart
}

// round reports a round of trainer's fit of fold (0: the final fit).
func (p *progress) round(trainer string, fold, round int) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.report(Progress{Event: EventRound, Trainer: trainer, Fold: fold, Round: round})
}

// fitDone counts a finished fit and reports it.
func (p *progress) fitDone(trainer string, fold, rounds int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if p.fn != nil {
		p.report(Progress{Event: EventFitDone, Trainer: trainer, Fold: fold, Round: rounds})
	}
}

func (p *progress) trainerFinished(c *Candidate) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.report(Progress{Event: EventTrainerDone, Trainer: c.Name, Candidate: c})
}

// skipped counts the fits the current trainer did not make as done and reports why.
func (p *progress) skipped(trainer string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = p.trainerStart + p.folds + 1
	if p.fn != nil {
		p.report(Progress{Event: EventTrainerSkipped, Trainer: trainer, Err: err})
	}
}

// crossFit runs steps 1-3 of Run for one trainer, on the rows encoded by pp.
func crossFit(ctx context.Context, cfg Config, tr Trainer, pp *Prep, fold []int, prog *progress) (*Candidate, error) {
	start := cfg.Now()
	enc := encode(pp, cfg.Data, cfg.TrainRows)
	oof := make([]float64, len(cfg.TrainRows))
	rounds := make([]int, cfg.Folds)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Workers)
	for f := range cfg.Folds {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err // another fold failed, or the budget is spent
			}
			in, out := positions(fold, f, false), positions(fold, f, true)
			valid := enc.subset(out)
			last := 0 // the fit's last round, for a family whose Fitted has no Rounds
			report := func(round int) { last = round; prog.round(tr.Name, f+1, round) }
			fit, err := tr.Fit(gctx, FitInput{Train: enc.subset(in), Valid: &valid, Progress: report})
			if err != nil {
				return fmt.Errorf("fold %d of %d: %w", f+1, cfg.Folds, err)
			}
			if err := checkModel(tr.Name, &fit.Model, pp.Width()); err != nil {
				return err
			}
			rounds[f] = fit.Rounds
			d := pp.Width()
			for _, k := range out {
				oof[k] = modelMargin(&fit.Model, enc.x[k*d:(k+1)*d])
			}
			prog.fitDone(tr.Name, f+1, last)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sum := 0
	for _, r := range rounds {
		sum += r
	}
	meanRounds := int(math.Round(float64(sum) / float64(cfg.Folds)))
	if sum > 0 {
		meanRounds = max(meanRounds, 1)
	}
	last := 0
	report := func(round int) { last = round; prog.round(tr.Name, 0, round) }
	fit, err := tr.Fit(ctx, FitInput{Train: enc.all(), Rounds: meanRounds, Progress: report})
	if err != nil {
		return nil, fmt.Errorf("final fit on all training rows: %w", err)
	}
	if err := checkModel(tr.Name, &fit.Model, pp.Width()); err != nil {
		return nil, err
	}
	prog.fitDone(tr.Name, 0, last)
	ch, err := chooseCalibration(oof, enc.y, fold, cfg.Folds)
	if err != nil {
		return nil, err
	}
	method, none := ch.Calibration.Method, bundle.CalibrationNone
	return &Candidate{
		Name: tr.Name, Calibration: method, Brier: ch.Brier[method], ROCAUC: ch.ROCAUC[method],
		RawBrier: ch.Brier[none], RawROCAUC: ch.ROCAUC[none], BrierByMethod: ch.Brier, ROCAUCByMethod: ch.ROCAUC,
		RankingCostByMethod: ch.RankingCost,
		Rounds:              fit.Rounds, Seconds: cfg.Now().Sub(start).Seconds(),
		trainer: tr, pp: pp, model: fit.Model, cal: ch.Calibration, oofP: ch.Probabilities,
	}, nil
}

// rankScores maps margins to [0, 1] by their rank among the distinct values (ties stay tied), for
// metrics that depend only on the ranking but take probabilities (ROC-AUC): a sigmoid could tie
// margins it rounds to 1.
func rankScores(m []float64) []float64 {
	u := slices.Clone(m)
	slices.Sort(u)
	u = slices.Compact(u)
	out := make([]float64, len(m))
	if len(u) < 2 {
		return out
	}
	for i, v := range m {
		k, _ := slices.BinarySearch(u, v)
		out[i] = float64(k) / float64(len(u)-1)
	}
	return out
}

// check validates the configuration and fills in the defaults.
func (cfg *Config) check() error {
	if cfg.Data == nil || len(cfg.TrainRows) == 0 || len(cfg.TestRows) == 0 {
		return errors.New("a training run needs data, training rows and held-out rows")
	}
	if cfg.CheckRows == 0 {
		cfg.CheckRows = 8
	}
	if cfg.Folds == 0 {
		cfg.Folds = 5
	}
	if cfg.Folds < 2 || cfg.Folds > 20 {
		return fmt.Errorf("folds %d: want 2..20", cfg.Folds)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Budget < 0 {
		return fmt.Errorf("budget %v: want a positive duration, or 0 for none", cfg.Budget)
	}
	if len(cfg.Trainers) == 0 {
		if !(cfg.C > 0) || math.IsInf(cfg.C, 0) {
			return fmt.Errorf("the inverse regularisation strength c must be a positive number, got %g", cfg.C)
		}
		cfg.Trainers = []Trainer{LogisticTrainer(cfg.C)}
	}
	for _, tr := range cfg.Trainers {
		if tr.Name == "" || tr.Fit == nil {
			return errNoTrainer
		}
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
	prep  *Prep
	model *bundle.Model
	cal   *bundle.Calibration
	x     []float64
}

// probability encodes row and returns its probability, and false when the row has an unseen
// category.
func (s *scorer) probability(row []Value) (float64, bool) {
	ok := s.prep.Encode(row, s.x)
	return Calibrate(s.cal, modelMargin(s.model, s.x)), ok
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

// chooseTiers sets each threshold to the probability of the k-th most likely row of p (the
// out-of-fold probabilities of the training rows), k = ceil(share × rows), so that (ties aside)
// that share of the rows is at or above it. A threshold is at least the smallest positive
// float64, as the bundle wants thresholds above 0.
func chooseTiers(p []float64, q TierQuantiles) bundle.Tiers {
	s := slices.Clone(p)
	sort.Sort(sort.Reverse(sort.Float64Slice(s)))
	at := func(share float64) float64 {
		k := int(math.Ceil(share*float64(len(s)) - 1e-9))
		k = min(max(k, 1), len(s))
		return max(s[k-1], math.SmallestNonzeroFloat64)
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
		if c.Missing != bundle.MissingError { // impute, or a category of its own
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
func assemble(cfg Config, c *Candidate, tiers bundle.Tiers, checks []bundle.CheckVector, test *bundle.Metrics) *bundle.Bundle {
	params := maps.Clone(c.trainer.Params)
	if params == nil {
		params = map[string]float64{}
	}
	params["folds"] = float64(cfg.Folds)
	if c.Rounds > 0 {
		params["rounds"] = float64(c.Rounds)
	}
	desc := cfg.Description
	if desc == "" {
		desc = fmt.Sprintf("%s on %s (dataset spec %s), calibration %s.", c.trainer.Describe, cfg.DatasetFile, cfg.SpecName, c.cal.Method)
	}
	model := c.model
	return &bundle.Bundle{
		Manifest: bundle.Manifest{
			FormatVersion: bundle.FormatVersion,
			Name:          cfg.Name,
			Version:       cfg.Version,
			CreatedAt:     cfg.CreatedAt.UTC(),
			Description:   desc,
			Inputs:        slices.Clone(c.pp.Inputs),
			Calibration:   c.cal,
			Tiers:         tiers,
			CheckVectors:  checks,
			Training: &bundle.Training{
				Trainer: c.Name,
				Command: cfg.Command,
				Dataset: cfg.DatasetFile,
				Seed:    cfg.Seed,
				Params:  params,
				Rows:    map[string]int{"train": len(cfg.TrainRows), "test": len(cfg.TestRows)},
				Metrics: test,
				// The reference of churnd's score-drift figure: the calibrated out-of-fold
				// probabilities, which the tiers were chosen on too (the final model's own
				// training rows would look more certain than new customers will).
				Scores: bundle.NewScoreDistribution("out_of_fold", bundle.ScoreEdges, c.oofP),
			},
		},
		Model: model,
	}
}
