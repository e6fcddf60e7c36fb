package evaluate

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/churnhq/churn/internal/bundle"
)

// Input is what Evaluate measures: one label and one probability per scored row, and optionally
// the tier thresholds and a segment label per row.
type Input struct {
	// Split names the rows in the result (e.g. "test").
	Split string
	// Labels are the outcomes (true = churned), Probabilities the predictions, one per row.
	Labels        []bool
	Probabilities []float64
	// Tiers, when set, adds the confusion at each tier threshold.
	Tiers *bundle.Tiers
	// SegmentColumn names what Segments are (e.g. a CSV column); Segments, when set, holds one
	// segment label per row.
	SegmentColumn string
	Segments      []string
	// Shares are the top shares for lift and capture; nil means DefaultShares.
	Shares []float64
}

// Report is an evaluation: the metrics a bundle stores, plus what a reader needs besides them
// (where the figures come from, the refused rows, and the curves the charts draw).
type Report struct {
	// Model, Version, Data and RowsFile say what was evaluated on what; set by the caller.
	Model    string `json:"model,omitempty"`
	Version  string `json:"version,omitempty"`
	Data     string `json:"data,omitempty"`
	RowsFile string `json:"rows_file,omitempty"`

	bundle.Metrics

	PositiveRate  float64 `json:"positive_rate"`
	MeanPredicted float64 `json:"mean_predicted"`
	// Refused counts the rows that could not be scored; they are not in the metrics.
	Refused Refusals `json:"refused"`
	// ROC is the ROC curve, thinned for drawing (see MaxCurvePoints).
	ROC []CurvePoint `json:"roc_curve"`
	// Gains is the lift and capture at every whole percent of rows, for the gains chart.
	Gains []bundle.LiftPoint `json:"gains"`
}

// Tier names, in increasing order of risk.
var tierNames = [...]string{"MEDIUM", "HIGH", "CRITICAL"}

// Evaluate measures the input. It needs at least one row of each label (ROC-AUC is undefined
// otherwise), probabilities in [0, 1], and when given, valid tiers and one segment per row.
func Evaluate(in Input) (*Report, error) {
	y, p := in.Labels, in.Probabilities
	if err := check(y, p); err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	if in.Segments != nil && len(in.Segments) != len(y) {
		return nil, fmt.Errorf("evaluate: %d segment labels for %d rows", len(in.Segments), len(y))
	}
	r := rank(y, p)
	roc, err := r.rocAUC()
	if err != nil {
		return nil, fmt.Errorf("evaluate: %d rows, %d positive: %w", r.rows, r.positive, err)
	}
	ap, err := r.averagePrecision()
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	rep := &Report{
		Metrics: bundle.Metrics{
			Split:       in.Split,
			Rows:        r.rows,
			Positives:   r.positive,
			ROCAUC:      roc,
			PRAUC:       ap,
			LogLoss:     LogLoss(y, p),
			Brier:       Brier(y, p),
			Calibration: CalibrationTable(y, p),
		},
		PositiveRate:  float64(r.positive) / float64(r.rows),
		MeanPredicted: mean(p),
		ROC:           r.rocCurve(),
	}
	shares := in.Shares
	if shares == nil {
		shares = DefaultShares
	}
	for _, s := range shares {
		lp, err := r.lift(s)
		if err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		rep.Lift = append(rep.Lift, lp)
	}
	for pct := 1; pct <= 100; pct++ {
		lp, err := r.lift(float64(pct) / 100)
		if err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		rep.Gains = append(rep.Gains, lp)
	}
	if in.Tiers != nil {
		if rep.Tiers, err = tierConfusion(*in.Tiers, y, p); err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
	}
	if in.Segments != nil {
		rep.SegmentColumn = in.SegmentColumn
		rep.Segments = segments(y, p, in.Segments)
	}
	return rep, nil
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// tierConfusion is the confusion of flagging p >= threshold, at each tier's threshold.
func tierConfusion(t bundle.Tiers, y []bool, p []float64) ([]bundle.TierConfusion, error) {
	thresholds := [...]float64{t.Medium, t.High, t.Critical}
	for i, th := range thresholds {
		if !(th > 0 && th <= 1) {
			return nil, fmt.Errorf("tier %s threshold %g: want 0 < threshold <= 1", tierNames[i], th)
		}
	}
	out := make([]bundle.TierConfusion, len(thresholds))
	for i, th := range thresholds {
		c := bundle.TierConfusion{Tier: tierNames[i], Threshold: th}
		for k, v := range p {
			switch flagged := v >= th; {
			case flagged && y[k]:
				c.TP++
			case flagged:
				c.FP++
			case y[k]:
				c.FN++
			default:
				c.TN++
			}
		}
		if c.TP+c.FP > 0 {
			c.Precision = float64(c.TP) / float64(c.TP+c.FP)
		}
		if c.TP+c.FN > 0 {
			c.Recall = float64(c.TP) / float64(c.TP+c.FN)
		}
		out[i] = c
	}
	return out, nil
}

// segments evaluates the rows of each segment label, sorted by label.
func segments(y []bool, p []float64, seg []string) []bundle.SegmentMetrics {
	rowsOf := make(map[string][]int)
	for i, s := range seg {
		rowsOf[s] = append(rowsOf[s], i)
	}
	names := make([]string, 0, len(rowsOf))
	for s := range rowsOf {
		names = append(names, s)
	}
	slices.Sort(names)
	out := make([]bundle.SegmentMetrics, 0, len(names))
	for _, s := range names {
		idx := rowsOf[s]
		sy := make([]bool, len(idx))
		sp := make([]float64, len(idx))
		for k, i := range idx {
			sy[k], sp[k] = y[i], p[i]
		}
		r := rank(sy, sp)
		m := bundle.SegmentMetrics{
			Segment:       s,
			Rows:          r.rows,
			Positives:     r.positive,
			Brier:         Brier(sy, sp),
			MeanPredicted: mean(sp),
			ObservedRate:  float64(r.positive) / float64(r.rows),
		}
		if auc, err := r.rocAUC(); err == nil {
			m.ROCAUC = &auc
		}
		out = append(out, m)
	}
	return out
}

// MaxRefusedExamples bounds the refused rows a report lists one by one.
const MaxRefusedExamples = 10

// Refusals counts the rows the model refused to score (an unseen category, a missing required
// input), so that they are reported rather than silently dropped.
type Refusals struct {
	Rows int `json:"rows"`
	// ByField counts the refused rows by the request field each was refused for (a row refused
	// for two fields counts under both), most frequent first.
	ByField []FieldCount `json:"by_field,omitempty"`
	// Examples are the first MaxRefusedExamples refused rows.
	Examples []RefusedRow `json:"examples,omitempty"`
}

// FieldCount is how many rows were refused for one field.
type FieldCount struct {
	Field string `json:"field"`
	Rows  int    `json:"rows"`
}

// RefusedRow is one refused row: its index in the data and why.
type RefusedRow struct {
	Row    int    `json:"row"`
	Reason string `json:"reason"`
}

// Add records that row was refused for the given request fields (empty when unknown) with err.
func (r *Refusals) Add(row int, fields []string, err error) {
	r.Rows++
	if len(fields) == 0 {
		fields = []string{"(unknown)"}
	}
	for _, f := range slices.Compact(slices.Sorted(slices.Values(fields))) {
		i := slices.IndexFunc(r.ByField, func(fc FieldCount) bool { return fc.Field == f })
		if i < 0 {
			r.ByField = append(r.ByField, FieldCount{Field: f})
			i = len(r.ByField) - 1
		}
		r.ByField[i].Rows++
	}
	slices.SortStableFunc(r.ByField, func(a, b FieldCount) int {
		if c := cmp.Compare(b.Rows, a.Rows); c != 0 {
			return c
		}
		return strings.Compare(a.Field, b.Field)
	})
	if len(r.Examples) < MaxRefusedExamples {
		reason := "refused"
		if err != nil {
			reason = err.Error()
		}
		r.Examples = append(r.Examples, RefusedRow{Row: row, Reason: reason})
	}
}

// errNoReport is returned by the renderers of a nil report.
var errNoReport = errors.New("evaluate: no report to render")
