package evaluate

import (
	"fmt"
	"html/template"
	"io"
	"strconv"
)

// htmlPage is the HTML report: inline CSS and SVG only, so the file views offline.
var htmlPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"f4":    f4,
	"f2":    f2,
	"pct":   pct,
	"share": share,
	"num":   func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) },
	"ratio": func(a float64, b int) string { return pct(a / float64(b)) },
	"lift":  func(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) + "×" },
	"auc": func(x *float64) string {
		if x == nil {
			return "–"
		}
		return f4(*x)
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.R.Title}}</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 72em; color: #222; padding: 0 1em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.charts figure { margin: 0; }
.charts svg { width: 30em; max-width: 100%; height: auto; }
.note { color: #555; font-size: 0.9em; }
.warn { color: #a00; }
</style>
</head>
<body>
<h1>{{.R.Title}}</h1>
<p>{{.R.Rows}} rows scored{{if .R.Split}} ({{.R.Split}}){{end}}, {{.R.Positives}} churned ({{pct .R.PositiveRate}}); mean predicted probability {{pct .R.MeanPredicted}}.
{{if .R.Refused.Rows}}<span class="warn">{{.R.Refused.Rows}} rows were refused by the model and are not in the figures (see below).</span>{{else}}No row was refused by the model.{{end}}</p>

<table>
<tr><th>Metric</th><th>Value</th></tr>
<tr><td>ROC-AUC</td><td>{{f4 .R.ROCAUC}}</td></tr>
<tr><td>PR-AUC (average precision)</td><td>{{f4 .R.PRAUC}}</td></tr>
<tr><td>Log loss</td><td>{{f4 .R.LogLoss}}</td></tr>
<tr><td>Brier score</td><td>{{f4 .R.Brier}}</td></tr>
</table>

<div class="charts">
<figure id="roc-chart">{{.ROC}}</figure>
<figure id="calibration-chart">{{.Calibration}}</figure>
<figure id="lift-chart">{{.Lift}}</figure>
</div>

{{with .R.Lift}}
<h2>Lift and capture</h2>
<p class="note">The top share of rows by predicted probability. Lift: their churn rate over the overall rate; capture: their share of all churners. Rows tied at the cut count pro rata.</p>
<table>
<tr><th>Top share</th><th>Rows</th><th>Churners</th><th>Churn rate</th><th>Lift</th><th>Capture</th></tr>
{{range .}}<tr><td>{{share .Share}}</td><td>{{.Rows}}</td><td>{{num .Positives}}</td><td>{{ratio .Positives .Rows}}</td><td>{{lift .Lift}}</td><td>{{pct .Capture}}</td></tr>
{{end}}</table>
{{end}}

{{with .Tiers}}
<h2>Confusion at the tier thresholds</h2>
<p class="note">Rows with probability at or above the tier's threshold are flagged as churners.</p>
<table>
<tr><th>Flag at or above</th><th>Threshold</th><th>Flagged</th><th>TP</th><th>FP</th><th>TN</th><th>FN</th><th>Precision</th><th>Recall</th></tr>
{{range .}}<tr><td>{{.Tier}}</td><td>{{f4 .Threshold}}</td><td>{{.Flagged}}</td><td>{{.TP}}</td><td>{{.FP}}</td><td>{{.TN}}</td><td>{{.FN}}</td><td>{{f4 .Precision}}</td><td>{{f4 .Recall}}</td></tr>
{{end}}</table>
{{end}}

{{with .R.Calibration}}
<h2>Calibration</h2>
<table>
<tr><th>Predicted</th><th>Rows</th><th>Mean predicted</th><th>Observed rate</th></tr>
{{range .}}<tr><td>{{f2 .Lower}}–{{f2 .Upper}}</td><td>{{.Count}}</td>{{if .Count}}<td>{{f4 .MeanPredicted}}</td><td>{{f4 .ObservedRate}}</td>{{else}}<td>–</td><td>–</td>{{end}}</tr>
{{end}}</table>
{{end}}

{{with .R.Segments}}
<h2>By {{$.R.SegmentColumn}}</h2>
<table>
<tr><th>Segment</th><th>Rows</th><th>Churners</th><th>ROC-AUC</th><th>Brier</th><th>Mean predicted</th><th>Observed rate</th></tr>
{{range .}}<tr><td>{{.Segment}}</td><td>{{.Rows}}</td><td>{{.Positives}}</td><td>{{auc .ROCAUC}}</td><td>{{f4 .Brier}}</td><td>{{f4 .MeanPredicted}}</td><td>{{f4 .ObservedRate}}</td></tr>
{{end}}</table>
{{end}}

{{if .R.Refused.Rows}}
<h2>Refused rows</h2>
<table>
<tr><th>Field</th><th>Rows</th></tr>
{{range .R.Refused.ByField}}<tr><td>{{.Field}}</td><td>{{.Rows}}</td></tr>
{{end}}</table>
<p>First refused rows:</p>
<ul>
{{range .R.Refused.Examples}}<li>row {{.Row}}: {{.Reason}}</li>
{{end}}</ul>
{{end}}
</body>
</html>
`))

// tierRow adds the flagged count to a tier's confusion for the template.
type tierRow struct {
	Tier              string
	Threshold         float64
	Flagged           int
	TP, FP, TN, FN    int
	Precision, Recall float64
}

// WriteHTML writes the report as one self-contained HTML page with the ROC, calibration and lift
// charts as inline SVG.
func (r *Report) WriteHTML(w io.Writer) error {
	if r == nil {
		return errNoReport
	}
	roc, err := r.ROCChart()
	if err != nil {
		return err
	}
	cal, err := r.CalibrationChart()
	if err != nil {
		return err
	}
	lift, err := r.LiftChart()
	if err != nil {
		return err
	}
	tiers := make([]tierRow, len(r.Tiers))
	for i, c := range r.Tiers {
		tiers[i] = tierRow{c.Tier, c.Threshold, c.TP + c.FP, c.TP, c.FP, c.TN, c.FN, c.Precision, c.Recall}
	}
	data := struct {
		R                      *Report
		Tiers                  []tierRow
		ROC, Calibration, Lift template.HTML
	}{
		R: r, Tiers: tiers,
		// The SVG comes from gonum/plot, which escapes the text it draws; none of it is data.
		ROC: template.HTML(roc), Calibration: template.HTML(cal), Lift: template.HTML(lift),
	}
	if err := htmlPage.Execute(w, data); err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	return nil
}
