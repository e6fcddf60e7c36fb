package evaluate

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/churnhq/churn/internal/bundle"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func segmentsABCD(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = string(rune('a' + i%4))
	}
	return s
}

func ptr(x float64) *float64 { return &x }

// sampleReport evaluates the scikit-learn rows with tiers and segments.
func sampleReport(t testing.TB) *Report {
	t.Helper()
	rep, err := Evaluate(Input{
		Split:         "test",
		Labels:        sklearnY,
		Probabilities: sklearnP,
		Tiers:         &bundle.Tiers{Medium: 0.3, High: 0.6, Critical: 0.9},
		SegmentColumn: "region",
		Segments:      segmentsABCD(len(sklearnY)),
	})
	if err != nil {
		t.Fatal(err)
	}
	rep.Model, rep.Version, rep.Data, rep.RowsFile = "churn-test", "v1", "sample.csv", "sample_idx.csv"
	rep.Refused.Add(7, []string{"features.account.contract"}, errors.New(`features.account.contract: unknown category "x"`))
	rep.Refused.Add(9, []string{"features.numeric.calls", "features.account.contract"}, errors.New("two fields"))
	return rep
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	rep := sampleReport(t)
	m := rep.Metrics
	if m.Rows != 40 || m.Positives != 19 || m.Split != "test" {
		t.Errorf("rows, positives, split = %d, %d, %q, want 40, 19, test", m.Rows, m.Positives, m.Split)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"ROC-AUC", m.ROCAUC, sklearnROC},
		{"PR-AUC", m.PRAUC, sklearnAP},
		{"log loss", m.LogLoss, sklearnLogLoss},
		{"Brier", m.Brier, sklearnBrier},
		{"positive rate", rep.PositiveRate, 19.0 / 40},
	} {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// Tiers counted from the data with numpy (p >= threshold).
	wantTiers := []bundle.TierConfusion{
		{Tier: "MEDIUM", Threshold: 0.3, TP: 18, FP: 9, TN: 12, FN: 1},
		{Tier: "HIGH", Threshold: 0.6, TP: 12, FP: 3, TN: 18, FN: 7},
		{Tier: "CRITICAL", Threshold: 0.9, TP: 5, FP: 0, TN: 21, FN: 14},
	}
	for i := range wantTiers {
		c := &wantTiers[i]
		c.Precision = float64(c.TP) / float64(c.TP+c.FP)
		c.Recall = float64(c.TP) / float64(c.TP+c.FN)
	}
	if diff := cmp.Diff(wantTiers, m.Tiers, approx); diff != "" {
		t.Errorf("tiers (-want +got):\n%s", diff)
	}

	// Segment ROC-AUC and Brier: scikit-learn 1.2.1 on the rows of each segment.
	wantSeg := []bundle.SegmentMetrics{
		{Segment: "a", Rows: 10, Positives: 3, ROCAUC: ptr(0.8809523809523809), Brier: 0.11800000000000002, ObservedRate: 0.3},
		{Segment: "b", Rows: 10, Positives: 6, ROCAUC: ptr(0.9166666666666667), Brier: 0.124, ObservedRate: 0.6},
		{Segment: "c", Rows: 10, Positives: 5, ROCAUC: ptr(0.8), Brier: 0.173, ObservedRate: 0.5},
		{Segment: "d", Rows: 10, Positives: 5, ROCAUC: ptr(0.9000000000000001), Brier: 0.10600000000000001, ObservedRate: 0.5},
	}
	for i := range wantSeg {
		var s float64
		for k := i; k < len(sklearnP); k += 4 {
			s += sklearnP[k]
		}
		wantSeg[i].MeanPredicted = s / 10
	}
	if diff := cmp.Diff(wantSeg, m.Segments, approx); diff != "" {
		t.Errorf("segments (-want +got):\n%s", diff)
	}
	if m.SegmentColumn != "region" {
		t.Errorf("segment column %q, want region", m.SegmentColumn)
	}

	if len(m.Lift) != 3 || len(rep.Gains) != 100 {
		t.Fatalf("%d lift points and %d gains, want 3 and 100", len(m.Lift), len(rep.Gains))
	}
	for i, share := range DefaultShares {
		if l := m.Lift[i]; l.Share != share || !near(l.Capture, rep.Gains[int(math.Round(share*100))-1].Capture) {
			t.Errorf("lift %d = %+v, not the gains at %g", i, l, share)
		}
	}
	// The top 5% are 2 rows, from the three rows at p = 1, all churners.
	if l := m.Lift[0]; l.Rows != 2 || !near(l.Positives, 2) || !near(l.Lift, 40.0/19) {
		t.Errorf("top 5%% = %+v, want 2 rows, 2 churners, lift 40/19", l)
	}
	if last := rep.Gains[99]; !near(last.Capture, 1) || !near(last.Lift, 1) {
		t.Errorf("gains at 100%% = %+v, want capture 1, lift 1", last)
	}
}

func TestEvaluateSegmentWithOneClassHasNoAUC(t *testing.T) {
	t.Parallel()
	rep, err := Evaluate(Input{
		Labels: bools(1, 0, 0, 0), Probabilities: []float64{0.9, 0.1, 0.2, 0.3},
		Segments: []string{"x", "x", "y", "y"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Segments[0].ROCAUC == nil || *rep.Segments[0].ROCAUC != 1 {
		t.Errorf("segment x ROC-AUC = %v, want 1", rep.Segments[0].ROCAUC)
	}
	if rep.Segments[1].ROCAUC != nil {
		t.Errorf("segment y has only negatives, ROC-AUC = %v, want none", *rep.Segments[1].ROCAUC)
	}
	if rep.Tiers != nil {
		t.Errorf("no tiers given, got %v", rep.Tiers)
	}
}

func TestEvaluateErrors(t *testing.T) {
	t.Parallel()
	y, p := bools(1, 0), []float64{0.7, 0.2}
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{"one class", Input{Labels: bools(1, 1), Probabilities: p}, "evaluate: 2 rows, 2 positive: the rows need both a positive and a negative label"},
		{"no rows", Input{}, "evaluate: 0 rows, 0 positive"},
		{"lengths", Input{Labels: y, Probabilities: p[:1]}, "evaluate: 2 labels for 1 probabilities"},
		{"bad probability", Input{Labels: y, Probabilities: []float64{-0.1, 0.2}}, "evaluate: probability of row 0 is -0.1"},
		{"segments", Input{Labels: y, Probabilities: p, Segments: []string{"a"}}, "evaluate: 1 segment labels for 2 rows"},
		{"tiers", Input{Labels: y, Probabilities: p, Tiers: &bundle.Tiers{Medium: 0, High: 0.5, Critical: 0.9}}, "evaluate: tier MEDIUM threshold 0"},
		{"shares", Input{Labels: y, Probabilities: p, Shares: []float64{0.1, 2}}, "evaluate: top share 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Evaluate(tc.in); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Evaluate error = %v, want it to start with %q", err, tc.want)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	var r Refusals
	for i := range MaxRefusedExamples + 2 {
		r.Add(i, []string{"features.b"}, errors.New("b"))
	}
	r.Add(100, []string{"features.a", "features.a", "features.c"}, errors.New("a and c"))
	r.Add(101, nil, nil)
	want := []FieldCount{{"features.b", 12}, {"(unknown)", 1}, {"features.a", 1}, {"features.c", 1}}
	if diff := cmp.Diff(want, r.ByField); diff != "" {
		t.Errorf("by field (-want +got):\n%s", diff)
	}
	if r.Rows != 14 || len(r.Examples) != MaxRefusedExamples || r.Examples[0] != (RefusedRow{0, "b"}) {
		t.Errorf("rows %d, %d examples, first %v", r.Rows, len(r.Examples), r.Examples[0])
	}
}

// The report's embedded metrics are what a bundle stores: they survive a bundle's JSON.
func TestMetricsRoundTripThroughBundleJSON(t *testing.T) {
	t.Parallel()
	rep := sampleReport(t)
	raw, err := json.Marshal(rep.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // as bundle.Parse
	var back bundle.Metrics
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rep.Metrics, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func TestWriteTextGolden(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := sampleReport(t).WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt", buf.Bytes())
}

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	rep := sampleReport(t)
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*rep, back); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
	for _, key := range []string{`"roc_auc"`, `"pr_auc"`, `"lift"`, `"tiers"`, `"segments"`, `"refused"`, `"roc_curve"`, `"gains"`} {
		if !bytes.Contains(buf.Bytes(), []byte(key)) {
			t.Errorf("JSON report has no %s", key)
		}
	}
}

func TestWriteHTML(t *testing.T) {
	t.Parallel()
	rep := sampleReport(t)
	rep.Segments[0].Segment = `<script>alert(1)</script>`
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, id := range []string{"roc-chart", "calibration-chart", "lift-chart"} {
		i := strings.Index(html, `<figure id="`+id+`"><svg`)
		if i < 0 {
			t.Errorf("no inline SVG in figure %s", id)
			continue
		}
		if j := strings.Index(html[i:], "</svg>"); j < 0 {
			t.Errorf("figure %s: SVG not closed", id)
		}
	}
	if strings.Contains(html, "font-family:Liberation Sans;") {
		t.Error("the SVG names Liberation Sans without a fallback font")
	}
	if n := strings.Count(html, "<svg"); n != 3 {
		t.Errorf("%d SVG elements, want 3", n)
	}
	for _, want := range []string{"ROC curve (AUC 0.8935)", "Calibration (Brier 0.1303)", "Cumulative gains and lift", "top 5%: lift 2.11x",
		"<td>MEDIUM</td><td>0.3000</td><td>27</td>", "Refused rows", "features.account.contract"} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	for _, bad := range []string{"<script>", "http://", "https://", "<?xml", "<link", "src="} {
		if strings.Contains(html, bad) && !(bad == "http://" && onlySVGNamespaces(html)) {
			t.Errorf("HTML report contains %q: it must be self-contained and escape data", bad)
		}
	}
}

// onlySVGNamespaces reports whether every http:// in html is an XML namespace of an SVG element,
// which names but does not fetch anything.
func onlySVGNamespaces(html string) bool {
	rest := html
	for {
		i := strings.Index(rest, "http://")
		if i < 0 {
			return true
		}
		before := rest[max(0, i-7):i]
		if !strings.HasSuffix(before, `xmlns="`) && !strings.HasSuffix(before, `xlink="`) {
			return false
		}
		rest = rest[i+1:]
	}
}

func TestRenderNilReport(t *testing.T) {
	t.Parallel()
	var r *Report
	var buf bytes.Buffer
	for name, f := range map[string]func() error{
		"text": func() error { return r.WriteText(&buf) },
		"json": func() error { return r.WriteJSON(&buf) },
		"html": func() error { return r.WriteHTML(&buf) },
	} {
		if err := f(); err == nil {
			t.Errorf("%s of a nil report: no error", name)
		}
	}
}
