package evaluate

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Chart size in the HTML report, and the room kept free on each side: gonum/plot lays the plot
// out to the canvas's edges, centring the last x tick label ("1.0") on the right edge, where half
// of it was cut off, as was the end of a long x axis label.
const (
	chartWidth  = 5 * vg.Inch
	chartHeight = 4 * vg.Inch
	chartMargin = vg.Inch / 4
)

var (
	modelColor    = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	baselineColor = color.RGBA{R: 0x88, G: 0x88, B: 0x88, A: 0xff}
	perfectColor  = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	markColor     = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

// newPlot is a plot on the unit square with sans-serif text (Liberation Sans, which gonum/plot
// embeds for measuring text) and a light grid.
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	sans := func(f *font.Font) { f.Variant = "Sans" }
	sans(&p.Title.TextStyle.Font)
	sans(&p.X.Label.TextStyle.Font)
	sans(&p.Y.Label.TextStyle.Font)
	sans(&p.X.Tick.Label.Font)
	sans(&p.Y.Tick.Label.Font)
	sans(&p.Legend.TextStyle.Font)
	p.X.Tick.Marker, p.Y.Tick.Marker = unitTicks(), unitTicks()
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{Y: 0xe0}
	g.Horizontal.Color = color.Gray{Y: 0xe0}
	p.Add(g)
	return p
}

// unitTicks marks every 0.1 of [0, 1], labelling every 0.2.
func unitTicks() plot.ConstantTicks {
	var ts plot.ConstantTicks
	for i := 0; i <= 10; i++ {
		t := plot.Tick{Value: float64(i) / 10}
		if i%2 == 0 {
			t.Label = strconv.FormatFloat(t.Value, 'f', 1, 64)
		}
		ts = append(ts, t)
	}
	return ts
}

// line adds a line through xys with the given colour, dashed when dashed, named in the legend.
func line(p *plot.Plot, name string, xys plotter.XYs, c color.Color, dashed bool) error {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	l.Color = c
	l.Width = vg.Points(1.5)
	if dashed {
		l.Width = vg.Points(1)
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// svg renders p as an SVG element (without the XML prolog, for inlining in HTML).
func svg(p *plot.Plot, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	c := vgsvg.New(chartWidth, chartHeight)
	p.Draw(draw.Crop(draw.New(c), chartMargin/2, -chartMargin, chartMargin/2, -chartMargin/2))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	i := bytes.Index(out, []byte("<svg"))
	if i < 0 {
		return nil, errors.New("chart: the SVG backend wrote no <svg> element")
	}
	// vgsvg names only the Liberation family; a viewer without it would fall back to its
	// default (often serif) font, so add the usual sans-serif fallbacks.
	out = bytes.ReplaceAll(out[i:], []byte("font-family:Liberation Sans;"), []byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"))
	return out, nil
}

// ROCChart draws the ROC curve against the diagonal of a random ranking, as SVG.
func (r *Report) ROCChart() ([]byte, error) { return svg(r.rocPlot()) }

func (r *Report) rocPlot() (*plot.Plot, error) {
	if len(r.ROC) == 0 {
		return nil, errors.New("ROC chart: the report has no ROC curve")
	}
	p := newPlot(fmt.Sprintf("ROC curve (AUC %s)", f4(r.ROCAUC)), "false positive rate", "true positive rate")
	xys := make(plotter.XYs, len(r.ROC))
	for i, pt := range r.ROC {
		xys[i] = plotter.XY{X: pt.FPR, Y: pt.TPR}
	}
	if err := line(p, "model", xys, modelColor, false); err != nil {
		return nil, err
	}
	if err := line(p, "random", plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}}, baselineColor, true); err != nil {
		return nil, err
	}
	p.Legend.Top = false
	p.Legend.Left = false
	return p, nil
}

// CalibrationChart is the reliability diagram, as SVG: each non-empty bin's observed churn rate
// against its mean predicted probability, with the diagonal of perfect calibration.
func (r *Report) CalibrationChart() ([]byte, error) { return svg(r.calibrationPlot()) }

func (r *Report) calibrationPlot() (*plot.Plot, error) {
	var xys plotter.XYs
	for _, b := range r.Calibration {
		if b.Count > 0 {
			xys = append(xys, plotter.XY{X: b.MeanPredicted, Y: b.ObservedRate})
		}
	}
	if len(xys) == 0 {
		return nil, errors.New("calibration chart: the report has no calibration table")
	}
	p := newPlot(fmt.Sprintf("Calibration (Brier %s)", f4(r.Brier)), "mean predicted probability", "observed churn rate")
	if err := line(p, "model", xys, modelColor, false); err != nil {
		return nil, err
	}
	pts, err := plotter.NewScatter(xys)
	if err != nil {
		return nil, err
	}
	pts.Color = modelColor
	pts.Shape = draw.CircleGlyph{}
	pts.Radius = vg.Points(3)
	p.Add(pts)
	if err := line(p, "perfectly calibrated", plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}}, baselineColor, true); err != nil {
		return nil, err
	}
	p.Legend.Top = false
	p.Legend.Left = false
	return p, nil
}

// LiftChart is the cumulative gains chart, as SVG: the share of all churners captured (y) when
// the top share of customers by probability (x) is contacted, against a random choice and a
// perfect model, with the lift budgets marked and labelled with their lift.
func (r *Report) LiftChart() ([]byte, error) { return svg(r.liftPlot()) }

func (r *Report) liftPlot() (*plot.Plot, error) {
	if len(r.Gains) == 0 || r.Rows == 0 {
		return nil, errors.New("lift chart: the report has no gains")
	}
	p := newPlot("Cumulative gains and lift", "share of customers contacted (by predicted risk)", "share of churners captured")
	xys := plotter.XYs{{X: 0, Y: 0}}
	for _, g := range r.Gains {
		xys = append(xys, plotter.XY{X: g.Share, Y: g.Capture})
	}
	if err := line(p, "model", xys, modelColor, false); err != nil {
		return nil, err
	}
	if err := line(p, "perfect", plotter.XYs{{X: 0, Y: 0}, {X: r.PositiveRate, Y: 1}, {X: 1, Y: 1}}, perfectColor, true); err != nil {
		return nil, err
	}
	if err := line(p, "random", plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}}, baselineColor, true); err != nil {
		return nil, err
	}
	if len(r.Lift) > 0 {
		marks := plotter.XYLabels{}
		for _, l := range r.Lift {
			marks.XYs = append(marks.XYs, plotter.XY{X: l.Share, Y: l.Capture})
			marks.Labels = append(marks.Labels, fmt.Sprintf(" top %s: lift %.2fx", share(l.Share), l.Lift))
		}
		dots, err := plotter.NewScatter(marks.XYs)
		if err != nil {
			return nil, err
		}
		dots.Color = markColor
		dots.Shape = draw.CircleGlyph{}
		dots.Radius = vg.Points(3.5)
		p.Add(dots)
		labels, err := plotter.NewLabels(marks)
		if err != nil {
			return nil, err
		}
		for i := range labels.TextStyle {
			labels.TextStyle[i].Font.Variant = "Sans"
			labels.TextStyle[i].XAlign = draw.XLeft
			labels.TextStyle[i].YAlign = draw.YTop
		}
		p.Add(labels)
		p.Legend.Add("lift budgets", dots)
	}
	p.Legend.Top = false
	p.Legend.Left = false
	return p, nil
}
