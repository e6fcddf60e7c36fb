package bundle

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// valid returns a small valid bundle: two numeric inputs, a categorical one and a derived one.
func valid() *Bundle {
	return &Bundle{
		Manifest: Manifest{
			FormatVersion: FormatVersion,
			Name:          "test-model",
			Version:       "v1",
			CreatedAt:     time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
			Inputs: []Input{
				{Name: "complaints", Source: "complaints.count_90d", Type: TypeNumeric, Missing: Missing{Policy: MissingImpute, Value: 0}, Transform: TransformIndicator},
				{Name: "tenure", Source: "account.tenure_months", Type: TypeNumeric, Missing: Missing{Policy: MissingError}, Standardize: &Standardize{Mean: 30, Scale: 10}},
				{Name: "contract", Source: "account.contract", Type: TypeCategorical, Categories: []string{"a", "b"}, Unseen: UnseenError, Missing: Missing{Policy: MissingImpute, Category: "a"}},
				{Name: "ratio", Derive: &Derive{Op: OpRatio, Args: []string{"complaints", "tenure"}}, Type: TypeNumeric, Missing: Missing{Policy: MissingImpute}},
			},
			Calibration:  Calibration{Method: CalibrationNone},
			Tiers:        Tiers{Medium: 0.2, High: 0.5, Critical: 0.8},
			CheckVectors: []CheckVector{{Features: json.RawMessage(`{}`), Probability: 0.5}},
		},
		Model: Model{Type: ModelLogistic, Logistic: &Logistic{Intercept: -1, Weights: []float64{1, 2, 3, 4, 5}}},
	}
}

func TestColumns(t *testing.T) {
	got := valid().Manifest.Columns()
	want := []string{"complaints", "tenure", "contract=a", "contract=b", "ratio"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Columns (-want +got):\n%s", diff)
	}
}

func TestEncodeParseRoundTrip(t *testing.T) {
	b := valid()
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParseRejectsTrailingDataAndUnknownFields(t *testing.T) {
	data, err := valid().Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tail := range []string{`{}`, `}`, `]`} { // a stray closing delimiter too
		if _, err := Parse(append(append([]byte(nil), data...), tail...)); !errors.Is(err, ErrInvalid) {
			t.Errorf("trailing %q: %v, want ErrInvalid", tail, err)
		}
	}
	if _, err := Parse(append(append([]byte(nil), data...), " \n\t"...)); err != nil {
		t.Errorf("trailing white space: %v, want the bundle", err)
	}
	withUnknown := strings.Replace(string(data), `"name": "test-model"`, `"name": "test-model", "nmae": "x"`, 1)
	if _, err := Parse([]byte(withUnknown)); err == nil || !strings.Contains(err.Error(), "nmae") {
		t.Errorf("unknown field: %v, want an error naming it", err)
	}
}

// TestValidate breaks one field of a valid bundle per case and expects an error naming it.
func TestValidate(t *testing.T) {
	tree := func(b *Bundle) {
		b.Model = Model{Type: ModelTrees, Trees: &TreeEnsemble{Comparison: CompareLess, Trees: []Tree{{
			Feature: []int32{0, 0, 0}, Threshold: []float64{0.5, 0, 0}, Left: []int32{1, -1, -1}, Right: []int32{2, -1, -1},
			DefaultLeft: []bool{true, false, false}, Value: []float64{0, -1, 1},
		}}}}
	}
	tests := []struct {
		name   string
		mutate func(b *Bundle)
		want   string
	}{
		{"format version", func(b *Bundle) { b.Manifest.FormatVersion = 9 }, "format_version"},
		{"bad name", func(b *Bundle) { b.Manifest.Name = "has space" }, "manifest.name"},
		{"bad version", func(b *Bundle) { b.Manifest.Version = "../x" }, "manifest.version"},
		{"no created time", func(b *Bundle) { b.Manifest.CreatedAt = time.Time{} }, "created_at"},
		{"no inputs", func(b *Bundle) { b.Manifest.Inputs = nil }, "inputs is empty"},
		{"type mismatch", func(b *Bundle) { b.Manifest.Inputs[0].Type = TypeCategorical }, "inputs[0]"},
		{"duplicate name", func(b *Bundle) { b.Manifest.Inputs[1].Name = "complaints" }, "duplicate name"},
		{"zero scale", func(b *Bundle) { b.Manifest.Inputs[1].Standardize.Scale = 0 }, "standardize"},
		{"unknown transform", func(b *Bundle) { b.Manifest.Inputs[0].Transform = "sqrt" }, "transform"},
		{"unknown policy", func(b *Bundle) { b.Manifest.Inputs[0].Missing.Policy = "zero" }, "missing.policy"},
		{"native with logistic", func(b *Bundle) { b.Manifest.Inputs[0].Missing.Policy = MissingNative }, "native"},
		{"impute category not listed", func(b *Bundle) { b.Manifest.Inputs[2].Missing.Category = "z" }, "missing.category"},
		{"unknown unseen policy", func(b *Bundle) { b.Manifest.Inputs[2].Unseen = "guess" }, "unseen"},
		{"duplicate category", func(b *Bundle) { b.Manifest.Inputs[2].Categories = []string{"a", "a"} }, "duplicate category"},
		{"derive of a later input", func(b *Bundle) { b.Manifest.Inputs[3].Derive.Args = []string{"complaints", "later"} }, "not an earlier input"},
		{"derive of a categorical", func(b *Bundle) { b.Manifest.Inputs[3].Derive.Args = []string{"complaints", "contract"} }, "not numeric"},
		{"unknown derive op", func(b *Bundle) { b.Manifest.Inputs[3].Derive.Op = "max" }, "derive op"},
		{"sum of one", func(b *Bundle) { b.Manifest.Inputs[3].Derive = &Derive{Op: OpSum, Args: []string{"tenure"}} }, "sum takes 2 to 16 arguments, got 1"},
		{"sum of seventeen", func(b *Bundle) {
			b.Manifest.Inputs[3].Derive = &Derive{Op: OpSum, Args: slices.Repeat([]string{"tenure"}, 17)}
		}, "got 17"},
		{"sum of a categorical", func(b *Bundle) {
			b.Manifest.Inputs[3].Derive = &Derive{Op: OpSum, Args: []string{"complaints", "tenure", "contract"}}
		}, `derive argument "contract" is not numeric`},
		{"sum of a later input", func(b *Bundle) {
			b.Manifest.Inputs[3].Derive = &Derive{Op: OpSum, Args: []string{"complaints", "ratio"}}
		}, "not an earlier input"},
		{"weights for the wrong width", func(b *Bundle) { b.Model.Logistic.Weights = b.Model.Logistic.Weights[:4] }, "4 weights for 5 columns"},
		{"unknown model type", func(b *Bundle) { b.Model.Type = "svm" }, "unknown type"},
		{"tiers out of order", func(b *Bundle) { b.Manifest.Tiers.High = 0.9 }, "tiers"},
		{"no check vectors", func(b *Bundle) { b.Manifest.CheckVectors = nil }, "check_vectors"},
		{"check probability outside [0,1]", func(b *Bundle) { b.Manifest.CheckVectors[0].Probability = 1.5 }, "check_vectors[0]"},
		{"score edges not increasing", func(b *Bundle) {
			b.Manifest.Training = &Training{Trainer: "t", Scores: &ScoreDistribution{Split: "out_of_fold", Edges: []float64{0.5, 0.2}, Counts: []int{1, 1, 1}}}
		}, "manifest.training.scores: edges must increase"},
		{"score edge at 1", func(b *Bundle) {
			b.Manifest.Training = &Training{Trainer: "t", Scores: &ScoreDistribution{Split: "out_of_fold", Edges: []float64{1}, Counts: []int{1, 1}}}
		}, "edges[0] is 1"},
		{"score counts of the wrong length", func(b *Bundle) {
			b.Manifest.Training = &Training{Trainer: "t", Scores: &ScoreDistribution{Split: "out_of_fold", Edges: []float64{0.5}, Counts: []int{1}}}
		}, "want 2 counts"},
		{"score counts all 0", func(b *Bundle) {
			b.Manifest.Training = &Training{Trainer: "t", Scores: &ScoreDistribution{Split: "out_of_fold", Edges: []float64{0.5}, Counts: []int{0, 0}}}
		}, "counts are all 0"},
		{"negative score count", func(b *Bundle) {
			b.Manifest.Training = &Training{Trainer: "t", Scores: &ScoreDistribution{Split: "out_of_fold", Edges: []float64{0.5}, Counts: []int{3, -1}}}
		}, "counts[1] is negative"},
		{"score split empty", func(b *Bundle) {
			b.Manifest.Training = &Training{Trainer: "t", Scores: &ScoreDistribution{Edges: []float64{0.5}, Counts: []int{1, 1}}}
		}, "split is empty"},
		{"isotonic not monotone", func(b *Bundle) {
			b.Manifest.Calibration = Calibration{Method: CalibrationIsotonic, X: []float64{0, 1}, Y: []float64{0.5, 0.2}}
		}, "non-decreasing"},
		{"tree child before parent", func(b *Bundle) { tree(b); b.Model.Trees.Trees[0].Left[0] = 0 }, "must come after it"},
		{"tree feature out of range", func(b *Bundle) { tree(b); b.Model.Trees.Trees[0].Feature[0] = 5 }, "feature 5"},
		{"tree arrays of different lengths", func(b *Bundle) { tree(b); b.Model.Trees.Trees[0].Value = nil }, "one entry per node"},
		{"tree comparison", func(b *Bundle) { tree(b); b.Model.Trees.Comparison = "gt" }, "comparison"},
		{"logistic weights that would overflow", func(b *Bundle) { b.Model.Logistic.Weights[0] = 1e300 }, "would overflow"},
		{"range upside down", func(b *Bundle) { b.Manifest.Inputs[1].Range = &Range{Min: 2, Max: 1} }, "range wants"},
		{"range of a derived input", func(b *Bundle) { b.Manifest.Inputs[3].Range = &Range{Min: 0, Max: 1} }, "range wants"},
		{"range of a categorical input", func(b *Bundle) { b.Manifest.Inputs[2].Range = &Range{Min: 0, Max: 1} }, "range apply to numeric"},
		{"tree node with one child twice", func(b *Bundle) { tree(b); b.Model.Trees.Trees[0].Right[0] = 1 }, "a child of two splits"},
		{"tree node with two parents", func(b *Bundle) {
			b.Model = Model{Type: ModelTrees, Trees: &TreeEnsemble{Comparison: CompareLess, Trees: []Tree{{
				Feature: []int32{0, 0, 0, 0, 0}, Threshold: []float64{1, 2, 0, 0, 0}, Left: []int32{1, 3, -1, -1, -1}, Right: []int32{2, 3, -1, -1, -1},
				DefaultLeft: make([]bool, 5), Value: make([]float64, 5),
			}}}}
		}, "a child of two splits"},
		{"tree leaf not finite", func(b *Bundle) { tree(b); b.Model.Trees.Trees[0].Value[1] = math.Inf(1) }, "not finite"},
		{"tree threshold NaN", func(b *Bundle) { tree(b); b.Model.Trees.Trees[0].Threshold[0] = math.NaN() }, "threshold is NaN"},
		{"tree leaves that could overflow", func(b *Bundle) {
			tree(b)
			b.Model.Trees.Trees[0].Value = []float64{0, -6e299, 6e299}
			b.Model.Trees.Trees = append(b.Model.Trees.Trees, b.Model.Trees.Trees[0])
		}, "could overflow"},
		{"tree too deep", func(b *Bundle) {
			b.Model = Model{Type: ModelTrees, Trees: &TreeEnsemble{Comparison: CompareLess, Trees: []Tree{chain(MaxTreeDepth + 1)}}}
		}, "deeper than 256"},
		{"tree too large", func(b *Bundle) {
			b.Model = Model{Type: ModelTrees, Trees: &TreeEnsemble{Comparison: CompareLess, Trees: []Tree{leaves(MaxTreeNodes + 1)}}}
		}, "nodes"},
		{"impute NaN", func(b *Bundle) { b.Manifest.Inputs[0].Missing.Value = math.NaN() }, "not finite"},
		{"negative impute under log1p", func(b *Bundle) {
			b.Manifest.Inputs[0].Transform, b.Manifest.Inputs[0].Missing.Value = TransformLog1p, -1
		}, "log1p"},
		{"impute that standardises to infinity", func(b *Bundle) {
			b.Manifest.Inputs[1].Missing = Missing{Policy: MissingImpute, Value: 1e308}
			b.Manifest.Inputs[1].Standardize = &Standardize{Mean: -1e308, Scale: 1e-3}
		}, "standardises to"},
		{"infinite mean", func(b *Bundle) { b.Manifest.Inputs[1].Standardize.Mean = math.Inf(1) }, "finite mean"},
		{"native standardised", func(b *Bundle) { tree(b); b.Manifest.Inputs[1].Missing.Policy = MissingNative }, "native cannot be combined"},
		{"native categorical", func(b *Bundle) { tree(b); b.Manifest.Inputs[2].Missing.Policy = MissingNative }, "for a categorical input"},
		{"no categories", func(b *Bundle) { b.Manifest.Inputs[2].Categories = nil }, "needs categories"},
		{"standardised categorical", func(b *Bundle) { b.Manifest.Inputs[2].Standardize = &Standardize{Scale: 1} }, "numeric inputs only"},
		{"source and derive", func(b *Bundle) { b.Manifest.Inputs[3].Source = "numeric.r" }, "both source and derive"},
		{"neither source nor derive", func(b *Bundle) { b.Manifest.Inputs[0].Source = "" }, "needs a source or a derive"},
		{"derive of itself", func(b *Bundle) { b.Manifest.Inputs[3].Derive.Args = []string{"ratio", "tenure"} }, "not an earlier input"},
		{"categorical derive", func(b *Bundle) { b.Manifest.Inputs[3].Type = TypeCategorical }, "must be numeric"},
		{"unknown input type", func(b *Bundle) { b.Manifest.Inputs[0].Type = "text" }, "unknown type"},
		{"too many columns", func(b *Bundle) {
			b.Manifest.Inputs[2].Categories = make([]string, MaxColumns)
			for i := range b.Manifest.Inputs[2].Categories {
				b.Manifest.Inputs[2].Categories[i] = strconv.Itoa(i)
			}
			b.Manifest.Inputs[2].Missing.Category = "0"
		}, "columns, at most 4096"},
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid bundle: %v", err)
	}
	for _, n := range []int{MinSumArgs, MaxSumArgs} {
		b := valid()
		b.Manifest.Inputs[3].Derive = &Derive{Op: OpSum, Args: slices.Repeat([]string{"complaints", "tenure"}, n/2)}
		if err := b.Validate(); err != nil {
			t.Errorf("a sum of %d arguments: %v", n, err)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := valid()
			tc.mutate(b)
			err := b.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}

// chain is a tree of n splits, each with a leaf on its left and the next split on its right:
// depth n.
func chain(n int) Tree {
	var t Tree
	for i := range n {
		t.Feature = append(t.Feature, 0, 0)
		t.Threshold = append(t.Threshold, float64(i), 0)
		t.Left = append(t.Left, int32(2*i+1), -1)
		t.Right = append(t.Right, int32(2*i+2), -1)
		t.DefaultLeft = append(t.DefaultLeft, true, false)
		t.Value = append(t.Value, 0, 1)
	}
	t.Feature, t.Threshold, t.Left, t.Right = append(t.Feature, 0), append(t.Threshold, 0), append(t.Left, -1), append(t.Right, -1)
	t.DefaultLeft, t.Value = append(t.DefaultLeft, false), append(t.Value, 1)
	return t
}

// leaves is a tree of n nodes, a leaf at the root and n-1 unreachable leaves.
func leaves(n int) Tree {
	t := Tree{Feature: make([]int32, n), Threshold: make([]float64, n), Left: make([]int32, n), Right: make([]int32, n), DefaultLeft: make([]bool, n), Value: make([]float64, n)}
	for i := range n {
		t.Left[i], t.Right[i] = -1, -1
	}
	return t
}

func TestValidateAcceptsATreeAtTheDepthBound(t *testing.T) {
	b := valid()
	b.Model = Model{Type: ModelTrees, Trees: &TreeEnsemble{Comparison: CompareLess, Trees: []Tree{chain(MaxTreeDepth)}}}
	if err := b.Validate(); err != nil {
		t.Fatalf("a chain %d splits deep: %v", MaxTreeDepth, err)
	}
}

// TestParseRefusesDuplicateNames: encoding/json would keep the last of two members of one name;
// a bundle that says two things about one setting is refused, naming where.
func TestParseRefusesDuplicateNames(t *testing.T) {
	data, err := valid().Encode()
	if err != nil {
		t.Fatal(err)
	}
	dup := strings.Replace(string(data), `"name": "test-model"`, `"name": "test-model", "name": "other"`, 1)
	if _, err := Parse([]byte(dup)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `duplicate object member name "name" within "/manifest"`) {
		t.Fatalf("Parse of a duplicate name = %v, want ErrInvalid naming it and where", err)
	}
}

// TestErrorsQuoteAShortPrefix: a bundle's oversized values come back in errors as a short, marked
// prefix, never whole (a 5,000,000-digit number once came back whole, in the gRPC trailer too).
func TestErrorsQuoteAShortPrefix(t *testing.T) {
	data, err := valid().Encode()
	if err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("9", 5_000_000)
	for name, doc := range map[string]string{
		"number":  strings.Replace(string(data), `"intercept": -1`, `"intercept": `+huge, 1),
		"string":  strings.Replace(string(data), `"name": "test-model"`, `"name": "`+huge+`"`, 1),
		"input":   strings.Replace(string(data), `"name": "complaints"`, `"name": "`+huge+`"`, 1),
		"unknown": strings.Replace(string(data), `"name": "test-model"`, `"name": "test-model", "`+huge+`": 1`, 1),
	} {
		_, err := Parse([]byte(doc))
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Parse = %v, want ErrInvalid", name, err)
			continue
		}
		if n := len(err.Error()); n > 400 || !strings.Contains(err.Error(), "bytes)") {
			t.Errorf("%s: error of %d bytes, want a short one with a marked prefix: %.300s", name, n, err)
		}
	}
}

func TestQuoteAndClip(t *testing.T) {
	if got := Quote("short"); got != `"short"` {
		t.Errorf("Quote(short) = %s", got)
	}
	if got, want := Quote(strings.Repeat("é", 40)), `"`+strings.Repeat("é", 32)+`"…(80 bytes)`; got != want {
		t.Errorf("Quote of 80 bytes = %s, want %s", got, want)
	}
	msg := "json: cannot unmarshal number " + strings.Repeat("1", 200) + " into Go value"
	if got, want := Clip(msg), "json: cannot unmarshal number "+strings.Repeat("1", 64)+"…(200 bytes) into Go value"; got != want {
		t.Errorf("Clip = %q, want %q", got, want)
	}
	if got := Clip("short message"); got != "short message" {
		t.Errorf("Clip changed a short message: %q", got)
	}
}

// TestNewScoreDistribution counts into Prometheus's buckets, (lower, upper]: a probability on an
// edge is in the bucket that edge closes.
func TestNewScoreDistribution(t *testing.T) {
	d := NewScoreDistribution("out_of_fold", []float64{0.1, 0.5}, []float64{0, 0.05, 0.1, 0.10001, 0.5, 0.7, 1})
	want := &ScoreDistribution{Split: "out_of_fold", Edges: []float64{0.1, 0.5}, Counts: []int{3, 2, 2}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("NewScoreDistribution (-want +got):\n%s", diff)
	}
	b := valid()
	b.Manifest.Training = &Training{Trainer: "t", Scores: d}
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
