package evaluate

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	if r == nil {
		return errNoReport
	}
	out, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(out, '\n'))
	return err
}

// Title is one line saying what was evaluated on what.
func (r *Report) Title() string {
	var b strings.Builder
	b.WriteString("Evaluation")
	if r.Model != "" {
		fmt.Fprintf(&b, " of %s", r.Model)
		if r.Version != "" {
			fmt.Fprintf(&b, " %s", r.Version)
		}
	}
	if r.Data != "" {
		fmt.Fprintf(&b, " on %s", r.Data)
	}
	if r.RowsFile != "" {
		fmt.Fprintf(&b, " (rows in %s)", r.RowsFile)
	}
	return b.String()
}

// f4 formats a metric with 4 decimals.
func f4(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }

// pct formats a share as a percentage with 1 decimal.
func pct(x float64) string { return strconv.FormatFloat(100*x, 'f', 1, 64) + "%" }

// share formats a top share as a whole or 1-decimal percentage.
func share(x float64) string { return strconv.FormatFloat(100*x, 'f', -1, 64) + "%" }

// WriteText writes the report as aligned plain-text tables.
func (r *Report) WriteText(w io.Writer) error {
	if r == nil {
		return errNoReport
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }

	p("%s\n", r.Title())
	p("rows scored %d, positives %d (%s), mean predicted %s", r.Rows, r.Positives, pct(r.PositiveRate), pct(r.MeanPredicted))
	if r.Split != "" {
		p(", split %s", r.Split)
	}
	p("\nrows refused by the model: %d\n", r.Refused.Rows)

	p("\nMetric\tValue\n")
	p("ROC-AUC\t%s\n", f4(r.ROCAUC))
	p("PR-AUC (average precision)\t%s\n", f4(r.PRAUC))
	p("log loss\t%s\n", f4(r.LogLoss))
	p("Brier score\t%s\n", f4(r.Brier))

	if len(r.Lift) > 0 {
		p("\nTop share\tRows\tChurners\tRate\tLift\tCapture\n")
		for _, l := range r.Lift {
			p("%s\t%d\t%s\t%s\t%s\t%s\n", share(l.Share), l.Rows, strconv.FormatFloat(l.Positives, 'f', -1, 64),
				pct(l.Positives/float64(l.Rows)), strconv.FormatFloat(l.Lift, 'f', 2, 64)+"x", pct(l.Capture))
		}
	}

	if len(r.Tiers) > 0 {
		p("\nFlag at or above\tThreshold\tFlagged\tTP\tFP\tTN\tFN\tPrecision\tRecall\n")
		for _, c := range r.Tiers {
			p("%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", c.Tier, f4(c.Threshold), c.TP+c.FP, c.TP, c.FP, c.TN, c.FN, f4(c.Precision), f4(c.Recall))
		}
	}

	if len(r.Calibration) > 0 {
		p("\nPredicted\tRows\tMean predicted\tObserved rate\n")
		for _, b := range r.Calibration {
			if b.Count == 0 {
				p("%s-%s\t0\t-\t-\n", f2(b.Lower), f2(b.Upper))
				continue
			}
			p("%s-%s\t%d\t%s\t%s\n", f2(b.Lower), f2(b.Upper), b.Count, f4(b.MeanPredicted), f4(b.ObservedRate))
		}
	}

	if len(r.Segments) > 0 {
		p("\nSegment (%s)\tRows\tChurners\tROC-AUC\tBrier\tMean predicted\tObserved rate\n", r.SegmentColumn)
		for _, s := range r.Segments {
			auc := "-"
			if s.ROCAUC != nil {
				auc = f4(*s.ROCAUC)
			}
			p("%s\t%d\t%d\t%s\t%s\t%s\t%s\n", cell(s.Segment), s.Rows, s.Positives, auc, f4(s.Brier), f4(s.MeanPredicted), f4(s.ObservedRate))
		}
	}

	if r.Refused.Rows > 0 {
		p("\nRefused for field\tRows\n")
		for _, f := range r.Refused.ByField {
			p("%s\t%d\n", f.Field, f.Rows)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "\nfirst refused rows:\n")
		for _, e := range r.Refused.Examples {
			fmt.Fprintf(w, "  row %d: %s\n", e.Row, e.Reason)
		}
	}
	return tw.Flush()
}

func f2(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }

// cell makes a data value safe for one tabwriter cell: no tabs or line breaks, and visible when
// empty.
func cell(s string) string {
	if s == "" {
		return `""`
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
