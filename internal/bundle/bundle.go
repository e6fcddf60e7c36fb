// Package bundle defines churn's model bundle: a versioned, self-describing JSON document that
// holds a manifest (name, version, input schema, preprocessing, calibration, tier thresholds, check
// vectors, training record) and the model parameters (a logistic regression or a tree ensemble).
//
// The package encodes, decodes and validates the structure: Validate is the one validation of a
// bundle's structure, and internal/features and internal/scoring compile what it passed without
// checking it again. It does not evaluate anything: internal/model.Load, the gate every bundle
// passes, validates, compiles and runs the check vectors. It depends on the standard library and
// jsontext (see DecodeStrict) only.
//
// Layout of the model's input vector ("columns"): the entries of Manifest.Inputs in order; a
// numeric or derived input contributes one column, a categorical input one column per category
// (one-hot, in the order of Categories). Columns lists their names.
package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// FormatVersion is the bundle format this code reads and writes.
const FormatVersion = 1

// MaxColumns bounds the width of a model's input vector.
const MaxColumns = 4096

// Bundle is one model version: its manifest plus its parameters.
type Bundle struct {
	Manifest Manifest `json:"manifest"`
	Model    Model    `json:"model"`
}

// Manifest describes a model version.
type Manifest struct {
	FormatVersion int       `json:"format_version"`
	Name          string    `json:"name"`
	Version       string    `json:"version"`
	CreatedAt     time.Time `json:"created_at"`
	Description   string    `json:"description,omitempty"`
	// Inputs is the input schema with its preprocessing, in column order.
	Inputs      []Input     `json:"inputs"`
	Calibration Calibration `json:"calibration"`
	Tiers       Tiers       `json:"tiers"`
	// CheckVectors are inputs with the probability the trainer computed; a bundle whose check
	// vectors do not reproduce is refused at load time.
	CheckVectors []CheckVector `json:"check_vectors"`
	// Training records how the model was made and how good it is. Optional (imported models).
	Training *Training `json:"training,omitempty"`
}

// Input types.
const (
	TypeNumeric     = "numeric"
	TypeCategorical = "categorical"
)

// Missing-value policies.
const (
	// MissingImpute fills a missing value with Missing.Value (numeric) or Missing.Category
	// (categorical) and reports the input as imputed.
	MissingImpute = "impute"
	// MissingError refuses a request without the value (INVALID_ARGUMENT naming the field).
	MissingError = "error"
	// MissingNative passes NaN to the model: tree ensembles send it down each split's default
	// branch. Only valid for numeric inputs of tree ensembles, without standardisation.
	MissingNative = "native"
)

// MissingCategory is, by convention, the category of a categorical input that stands for a
// missing value: Missing.Category names it and Categories holds it, so that an absent value maps
// onto a column of its own. Trained bundles use it for a text column whose missing value is a
// category (internal/train's MissingAsCategory), imported ones for a one-hot group whose
// missing value sets none of the model's columns (internal/importer). To the format it is a
// category like any other.
const MissingCategory = "(missing)"

// Unseen-category policies (categorical inputs).
const (
	// UnseenError refuses a category not in Categories.
	UnseenError = "error"
	// UnseenIgnore encodes an unseen category as all-zero one-hot columns.
	UnseenIgnore = "ignore"
	// UnseenMissing treats an unseen category as missing (the missing policy applies).
	UnseenMissing = "missing"
)

// Derivation operations. Arguments name earlier numeric inputs and use their values after
// imputation, after their transform and before standardisation; a NaN argument (native missing)
// makes the result missing, as does a result that is not finite.
const (
	OpRatio     = "ratio"     // args[0] / args[1]; missing when args[1] == 0
	OpDiff      = "diff"      // args[0] - args[1]
	OpLog1p     = "log1p"     // log(1 + args[0]); missing when args[0] <= -1
	OpIndicator = "indicator" // 1 when args[0] > 0, else 0
	OpSum       = "sum"       // args[0] + args[1] + … (MinSumArgs..MaxSumArgs arguments), left to right
)

// Bounds on the arguments of OpSum.
const (
	MinSumArgs = 2
	MaxSumArgs = 16
)

// Input is one model input: where it is read from, its type and its preprocessing.
type Input struct {
	// Name is the model-facing name, unique in the bundle (drivers and imputed inputs use it).
	Name string `json:"name"`
	// Source is where the value is read from in CustomerFeatures: a typed field such as
	// `complaints.count_30d` or `account.contract`, or `numeric.<key>` / `categorical.<key>`.
	// Empty for a derived input.
	Source string `json:"source,omitempty"`
	// Derive computes the input from earlier inputs instead of reading it.
	Derive *Derive `json:"derive,omitempty"`
	// Type is TypeNumeric or TypeCategorical (derived inputs are numeric).
	Type string `json:"type"`
	// Missing says what happens when the value is absent.
	Missing Missing `json:"missing"`
	// Categories are the one-hot categories of a categorical input, in column order.
	Categories []string `json:"categories,omitempty"`
	// Unseen is the policy for a category not in Categories.
	Unseen string `json:"unseen,omitempty"`
	// Transform, when set, is applied to a numeric value after imputation and before
	// standardisation: TransformLog1p or TransformIndicator.
	Transform string `json:"transform,omitempty"`
	// Standardize, when set, maps a numeric value x to (x - Mean) / Scale.
	Standardize *Standardize `json:"standardize,omitempty"`
	// Range, when set, is the range of a numeric input's values in the training data, before any
	// transform. internal/model's gate probes the model at its ends: a model that cannot score a
	// customer at the edge of its own training data is refused before it serves.
	Range *Range `json:"range,omitempty"`
}

// Range is the smallest and the largest value of an input seen in training.
type Range struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// Transforms of a numeric input's own value.
const (
	TransformLog1p     = "log1p"     // log(1 + x); an input with this transform must be >= 0
	TransformIndicator = "indicator" // 1 when x > 0, else 0
)

// Derive is a derived input.
type Derive struct {
	Op   string   `json:"op"`
	Args []string `json:"args"`
}

// Missing is a missing-value policy.
type Missing struct {
	Policy   string  `json:"policy"`
	Value    float64 `json:"value,omitempty"`
	Category string  `json:"category,omitempty"`
}

// Standardize holds the centre and scale of a numeric input.
type Standardize struct {
	Mean  float64 `json:"mean"`
	Scale float64 `json:"scale"`
}

// Model types.
const (
	ModelLogistic = "logistic_regression"
	ModelTrees    = "tree_ensemble"
)

// Model holds the parameters. The model computes a margin (log-odds); the probability is
// sigmoid(margin), then calibrated.
type Model struct {
	Type     string        `json:"type"`
	Logistic *Logistic     `json:"logistic,omitempty"`
	Trees    *TreeEnsemble `json:"trees,omitempty"`
}

// Logistic is a logistic regression: margin = Intercept + sum(Weights[i] * column[i]).
type Logistic struct {
	Intercept float64   `json:"intercept"`
	Weights   []float64 `json:"weights"`
}

// Split comparisons of tree ensembles.
const (
	// CompareLess sends x < threshold left (XGBoost).
	CompareLess = "lt"
	// CompareLessEqual sends x <= threshold left (LightGBM, scikit-learn).
	CompareLessEqual = "le"
)

// TreeEnsemble is a sum of regression trees: margin = BaseScore + sum of the leaf values reached.
type TreeEnsemble struct {
	BaseScore  float64 `json:"base_score"`
	Comparison string  `json:"comparison"`
	Trees      []Tree  `json:"trees"`
}

// Tree stores nodes in parallel arrays; node 0 is the root. Node i is a leaf when Left[i] == -1,
// and its value is Value[i]; otherwise it splits on column Feature[i] at Threshold[i], and a
// missing (NaN) value goes left when DefaultLeft[i]. Children have larger indices than parents.
type Tree struct {
	Feature     []int32   `json:"feature"`
	Threshold   []float64 `json:"threshold"`
	Left        []int32   `json:"left"`
	Right       []int32   `json:"right"`
	DefaultLeft []bool    `json:"default_left"`
	Value       []float64 `json:"value"`
}

// Calibration methods.
const (
	CalibrationNone     = "none"
	CalibrationPlatt    = "platt"    // p = sigmoid(A * margin + B)
	CalibrationIsotonic = "isotonic" // p = piecewise-linear interpolation of (X, Y) at sigmoid(margin)
)

// Calibration maps the model's output to a calibrated probability.
type Calibration struct {
	Method string    `json:"method"`
	A      float64   `json:"a,omitempty"`
	B      float64   `json:"b,omitempty"`
	X      []float64 `json:"x,omitempty"`
	Y      []float64 `json:"y,omitempty"`
}

// Tiers are the probability thresholds of the risk tiers: a probability p is CRITICAL when
// p >= Critical, else HIGH when p >= High, else MEDIUM when p >= Medium, else LOW.
type Tiers struct {
	Medium   float64 `json:"medium"`
	High     float64 `json:"high"`
	Critical float64 `json:"critical"`
}

// CheckVector is a request's features (CustomerFeatures in protobuf JSON) with the probability
// the trainer computed for them.
type CheckVector struct {
	Features    json.RawMessage `json:"features"`
	Probability float64         `json:"probability"`
}

// CheckTolerance is the largest accepted difference between a check vector's probability and the
// probability the serving code computes.
const CheckTolerance = 1e-9

// Training records how a model was made.
type Training struct {
	Trainer string             `json:"trainer"`
	Command string             `json:"command,omitempty"`
	Dataset string             `json:"dataset,omitempty"`
	Seed    int64              `json:"seed,omitempty"`
	Params  map[string]float64 `json:"params,omitempty"`
	Rows    map[string]int     `json:"rows,omitempty"` // e.g. train, test
	Metrics *Metrics           `json:"metrics,omitempty"`
	// Scores is the distribution of the probabilities the model gave the training rows, the
	// reference churnd measures the served probabilities against (score drift). Optional: a
	// bundle without it gets no drift figure.
	Scores *ScoreDistribution `json:"scores,omitempty"`
}

// ScoreEdges are the upper bounds of the probability buckets a trainer records
// Training.Scores at, and churnd's histogram of served probabilities uses for a bundle without
// them. Fine at the low end, where most customers' probabilities are.
var ScoreEdges = []float64{0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99}

// MaxScoreEdges bounds the buckets of a score distribution.
const MaxScoreEdges = 64

// ScoreDistribution counts probabilities by bucket: Counts[i] is the number of probabilities p
// with Edges[i-1] < p <= Edges[i] (Prometheus's histogram buckets), the first bucket from 0,
// the last (Counts[len(Edges)]) up to 1.
type ScoreDistribution struct {
	// Split names the rows: "out_of_fold" (each training row scored by the model of the
	// cross-fitting fold that did not train on it).
	Split  string    `json:"split"`
	Edges  []float64 `json:"edges"`
	Counts []int     `json:"counts"`
}

// NewScoreDistribution counts probabilities p into the buckets of edges.
func NewScoreDistribution(split string, edges, p []float64) *ScoreDistribution {
	d := &ScoreDistribution{Split: split, Edges: slices.Clone(edges), Counts: make([]int, len(edges)+1)}
	for _, x := range p {
		d.Counts[sort.SearchFloat64s(edges, x)]++ // the first edge >= x: buckets are (lower, upper]
	}
	return d
}

func (d *ScoreDistribution) validate() error {
	if d.Split == "" {
		return errors.New("split is empty")
	}
	if len(d.Edges) == 0 || len(d.Edges) > MaxScoreEdges {
		return fmt.Errorf("want 1 to %d edges, got %d", MaxScoreEdges, len(d.Edges))
	}
	for i, e := range d.Edges {
		if !finite(e) || e <= 0 || e >= 1 || (i > 0 && e <= d.Edges[i-1]) {
			return fmt.Errorf("edges must increase strictly within (0, 1); edges[%d] is %g", i, e)
		}
	}
	if len(d.Counts) != len(d.Edges)+1 {
		return fmt.Errorf("want %d counts (one more than edges), got %d", len(d.Edges)+1, len(d.Counts))
	}
	total := 0
	for i, c := range d.Counts {
		if c < 0 {
			return fmt.Errorf("counts[%d] is negative", i)
		}
		total += c
	}
	if total == 0 {
		return errors.New("counts are all 0")
	}
	return nil
}

// Metrics is an evaluation of the model on held-out rows.
type Metrics struct {
	Split       string           `json:"split"`
	Rows        int              `json:"rows"`
	Positives   int              `json:"positives"`
	ROCAUC      float64          `json:"roc_auc"`
	PRAUC       float64          `json:"pr_auc"`
	LogLoss     float64          `json:"log_loss"`
	Brier       float64          `json:"brier"`
	Calibration []CalibrationBin `json:"calibration,omitempty"`
	// Lift is the lift and capture at the top shares of rows by predicted probability (the
	// retention team's budgets: 5, 10 and 20%).
	Lift []LiftPoint `json:"lift,omitempty"`
	// Tiers is the confusion of flagging the rows at or above each tier threshold.
	Tiers []TierConfusion `json:"tiers,omitempty"`
	// SegmentColumn names the column Segments breaks the rows down by.
	SegmentColumn string           `json:"segment_column,omitempty"`
	Segments      []SegmentMetrics `json:"segments,omitempty"`
}

// LiftPoint measures the top Share of rows by predicted probability. Rows tied at the cut count
// pro rata (the expected result of breaking the tie at random), so Positives may be fractional.
type LiftPoint struct {
	Share     float64 `json:"share"`
	Rows      int     `json:"rows"`
	Positives float64 `json:"positives"`
	// Lift is the positive rate of the top rows over the positive rate of all rows.
	Lift float64 `json:"lift"`
	// Capture is the share of all positives that are in the top rows.
	Capture float64 `json:"capture"`
}

// TierConfusion is the confusion matrix of flagging the rows whose probability is at or above a
// tier's threshold (p >= Threshold) as churners.
type TierConfusion struct {
	Tier      string  `json:"tier"`
	Threshold float64 `json:"threshold"`
	TP        int     `json:"tp"`
	FP        int     `json:"fp"`
	TN        int     `json:"tn"`
	FN        int     `json:"fn"`
	// Precision is TP / (TP + FP), 0 when no row is flagged; Recall is TP / (TP + FN).
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
}

// SegmentMetrics evaluates the rows of one segment.
type SegmentMetrics struct {
	Segment   string `json:"segment"`
	Rows      int    `json:"rows"`
	Positives int    `json:"positives"`
	// ROCAUC is set when the segment has rows of both labels.
	ROCAUC        *float64 `json:"roc_auc,omitempty"`
	Brier         float64  `json:"brier"`
	MeanPredicted float64  `json:"mean_predicted"`
	ObservedRate  float64  `json:"observed_rate"`
}

// CalibrationBin is one row of a calibration table.
type CalibrationBin struct {
	Lower         float64 `json:"lower"`
	Upper         float64 `json:"upper"`
	Count         int     `json:"count"`
	MeanPredicted float64 `json:"mean_predicted"`
	ObservedRate  float64 `json:"observed_rate"`
}

// Map-key prefixes of free-form sources: numeric.<key> and categorical.<key>.
const (
	NumericPrefix     = "numeric."
	CategoricalPrefix = "categorical."
)

// MaxKeyLen bounds the key of a numeric.<key> or categorical.<key> source.
const MaxKeyLen = 128

// ValidKey reports whether k can be the key of a numeric.<key> or categorical.<key> source: not
// empty, at most MaxKeyLen bytes, no white space.
func ValidKey(k string) bool {
	return k != "" && len(k) <= MaxKeyLen && !strings.ContainsAny(k, " \t\r\n")
}

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	versionRE = nameRE
)

// ValidVersion reports whether v is a well-formed model version (also used for model names).
func ValidVersion(v string) bool { return versionRE.MatchString(v) }

// DecodeStrict decodes data, one JSON value, into v. Unknown fields are errors, and so are a name
// used twice in one object (which encoding/json would resolve silently, the last one winning) and
// anything but white space after the value. The project's hand-written JSON formats (bundles,
// dataset specs, import schemas) are all read this way, so that a typo is an error rather than a
// silently ignored setting. Errors quote at most a short prefix of the input (Clip).
//
// Duplicate names are found by jsontext (github.com/go-json-experiment/json, the Go team's
// prototype of encoding/json/v2, whose jsontext package validates RFC 7493 I-JSON); encoding/json
// then decodes.
func DecodeStrict(data []byte, v any) error {
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	if err := dec.SkipValue(); err != nil {
		return errors.New(Clip(err.Error()))
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	jd := json.NewDecoder(bytes.NewReader(data))
	jd.DisallowUnknownFields()
	if err := jd.Decode(v); err != nil {
		return errors.New(Clip(err.Error()))
	}
	return nil
}

// DecodeObject reads data, one JSON object (or null, which has no members), and calls member with
// each member's name and value in document order, so that formats whose order matters (a dataset
// spec's columns) or whose members each decode strictly can read one. field names the object in
// errors, want describes it for the error when data is something else; member's errors are
// returned as they are.
func DecodeObject(data []byte, field, want string, member func(name string, value json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s: %v", field, Clip(err.Error()))
	}
	if tok == nil {
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%s: want %s", field, want)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: %v", field, Clip(err.Error()))
		}
		name := tok.(string) // object keys are strings
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return fmt.Errorf("%s[%s]: %v", field, Quote(name), Clip(err.Error()))
		}
		if err := member(name, value); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMember decodes one member's value into v, refusing unknown fields.
func DecodeMember(value json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New(Clip(err.Error()))
	}
	return nil
}

// Limits of what an error quotes of its input.
const (
	// maxQuoted bounds the bytes of a string Quote repeats.
	maxQuoted = 64
	// maxWord bounds the bytes of one run of non-space characters Clip repeats: a number of
	// 5,000,000 digits in a bundle must not come back whole in an error, a log line or a gRPC
	// trailer.
	maxWord = 96
)

// Quote quotes s for an error message (strconv.Quote), cut to its first 64 bytes at a rune
// boundary and marked "…(N bytes)" when it is longer: errors name what they refuse without
// repeating input of any size.
func Quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(prefix(s, maxQuoted)) + fmt.Sprintf("…(%d bytes)", len(s))
}

// Clip shortens every run of non-space characters of msg longer than 96 bytes to its first 64,
// marked "…(N bytes)": for messages of other packages (encoding/json's) that quote their input.
func Clip(msg string) string {
	if len(msg) <= maxWord {
		return msg
	}
	var b strings.Builder
	for len(msg) > 0 {
		word, sep, rest := msg, "", ""
		if i := strings.IndexAny(msg, " \t\n"); i >= 0 {
			word, sep, rest = msg[:i], msg[i:i+1], msg[i+1:]
		}
		if len(word) > maxWord {
			fmt.Fprintf(&b, "%s…(%d bytes)", prefix(word, maxQuoted), len(word))
		} else {
			b.WriteString(word)
		}
		b.WriteString(sep)
		msg = rest
	}
	return b.String()
}

// prefix is s cut to at most n bytes at a rune boundary.
func prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ErrInvalid is wrapped by every structural error of Parse and Validate.
var ErrInvalid = errors.New("invalid model bundle")

// Parse decodes and validates a bundle. Unknown fields are refused, so that a typo in a
// hand-written bundle is an error rather than a silently ignored setting.
func Parse(data []byte) (*Bundle, error) {
	var b Bundle
	if err := DecodeStrict(data, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return &b, nil
}

// Encode writes the bundle as indented JSON.
func (b *Bundle) Encode() ([]byte, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Columns returns the names of the model's input columns: an input's name, or `name=category`
// for each one-hot column of a categorical input.
func (m *Manifest) Columns() []string {
	var cols []string
	for _, in := range m.Inputs {
		if in.Type == TypeCategorical {
			for _, c := range in.Categories {
				cols = append(cols, in.Name+"="+c)
			}
			continue
		}
		cols = append(cols, in.Name)
	}
	return cols
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// Validate checks the structure: names, schema, preprocessing, model shape, calibration, tiers.
// It does not evaluate the check vectors (internal/model.Load does), and leaves the input sources
// to internal/features, whose table of typed fields says which exist.
func (b *Bundle) Validate() error {
	m := &b.Manifest
	if m.FormatVersion != FormatVersion {
		return invalid("manifest.format_version is %d, this build reads %d", m.FormatVersion, FormatVersion)
	}
	if !nameRE.MatchString(m.Name) {
		return invalid("manifest.name %s: want 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit", Quote(m.Name))
	}
	if !ValidVersion(m.Version) {
		return invalid("manifest.version %s: want 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit", Quote(m.Version))
	}
	if m.CreatedAt.IsZero() {
		return invalid("manifest.created_at is missing")
	}
	if len(m.Inputs) == 0 {
		return invalid("manifest.inputs is empty")
	}
	native := false
	seen := make(map[string]*Input, len(m.Inputs))
	width := 0
	for i := range m.Inputs {
		in := &m.Inputs[i]
		if err := validateInput(in, seen, b.Model.Type); err != nil {
			return invalid("manifest.inputs[%d] (%s): %v", i, Quote(in.Name), err)
		}
		if in.Missing.Policy == MissingNative {
			native = true
		}
		seen[in.Name] = in
		if in.Type == TypeCategorical {
			width += len(in.Categories)
		} else {
			width++
		}
	}
	if width > MaxColumns {
		return invalid("the inputs make %d columns, at most %d", width, MaxColumns)
	}
	if err := b.Model.validate(width); err != nil {
		return invalid("model: %v", err)
	}
	if native && b.Model.Type != ModelTrees {
		return invalid("missing policy %q needs a tree ensemble", MissingNative)
	}
	if err := m.Calibration.validate(); err != nil {
		return invalid("manifest.calibration: %v", err)
	}
	t := m.Tiers
	if !finite(t.Medium, t.High, t.Critical) || !(0 < t.Medium && t.Medium <= t.High && t.High <= t.Critical && t.Critical <= 1) {
		return invalid("manifest.tiers: want 0 < medium <= high <= critical <= 1, got %g, %g, %g", t.Medium, t.High, t.Critical)
	}
	if len(m.CheckVectors) == 0 {
		return invalid("manifest.check_vectors is empty: a bundle must prove it reproduces its trainer")
	}
	for i, cv := range m.CheckVectors {
		if len(cv.Features) == 0 || !finite(cv.Probability) || cv.Probability < 0 || cv.Probability > 1 {
			return invalid("manifest.check_vectors[%d]: want features and a probability in [0,1]", i)
		}
	}
	if m.Training != nil && m.Training.Scores != nil {
		if err := m.Training.Scores.validate(); err != nil {
			return invalid("manifest.training.scores: %v", err)
		}
	}
	return nil
}

// CheckDerive checks a derivation's op and its number of arguments (not what the arguments
// name), as Validate does.
func CheckDerive(d *Derive) error {
	if d.Op == OpSum {
		if n := len(d.Args); n < MinSumArgs || n > MaxSumArgs {
			return fmt.Errorf("derive op sum takes %d to %d arguments, got %d", MinSumArgs, MaxSumArgs, n)
		}
		return nil
	}
	want := map[string]int{OpRatio: 2, OpDiff: 2, OpLog1p: 1, OpIndicator: 1}[d.Op]
	if want == 0 {
		return fmt.Errorf("unknown derive op %s (want ratio, diff, log1p, indicator or sum)", Quote(d.Op))
	}
	if len(d.Args) != want {
		return fmt.Errorf("derive op %s takes %d arguments, got %d", d.Op, want, len(d.Args))
	}
	return nil
}

func validateInput(in *Input, seen map[string]*Input, modelType string) error {
	if !nameRE.MatchString(in.Name) && !ValidKey(in.Name) {
		return fmt.Errorf("bad name %s", Quote(in.Name))
	}
	if strings.Contains(in.Name, "=") {
		return fmt.Errorf("name %s must not contain '='", Quote(in.Name))
	}
	if _, dup := seen[in.Name]; dup {
		return fmt.Errorf("duplicate name %s", Quote(in.Name))
	}
	switch {
	case in.Source != "" && in.Derive != nil:
		return errors.New("has both source and derive")
	case in.Source != "":
		// Which sources exist, and their types, is the feature mapper's table
		// (internal/features.SourceType), checked when the schema is compiled.
	case in.Derive != nil:
		if in.Type != TypeNumeric {
			return fmt.Errorf("a derived input must be numeric, not %s", Quote(in.Type))
		}
		if err := CheckDerive(in.Derive); err != nil {
			return err
		}
		for _, a := range in.Derive.Args {
			arg, ok := seen[a]
			if !ok {
				return fmt.Errorf("derive argument %s is not an earlier input", Quote(a))
			}
			if arg.Type != TypeNumeric {
				return fmt.Errorf("derive argument %s is not numeric", Quote(a))
			}
		}
	default:
		return errors.New("needs a source or a derive")
	}
	switch in.Type {
	case TypeNumeric:
		if len(in.Categories) > 0 || in.Unseen != "" {
			return errors.New("categories and unseen apply to categorical inputs only")
		}
		switch in.Transform {
		case "", TransformLog1p, TransformIndicator:
		default:
			return fmt.Errorf("unknown transform %s (want log1p or indicator)", Quote(in.Transform))
		}
		if r := in.Range; r != nil && (in.Source == "" || !finite(r.Min, r.Max) || r.Min > r.Max) {
			return fmt.Errorf("range wants a read (not derived) input and finite min <= max, got %g, %g", r.Min, r.Max)
		}
		if s := in.Standardize; s != nil && (!finite(s.Mean, s.Scale) || s.Scale <= 0) {
			return fmt.Errorf("standardize wants a finite mean and a positive scale, got %g, %g", s.Mean, s.Scale)
		}
		switch in.Missing.Policy {
		case MissingImpute:
			if err := checkImputed(in); err != nil {
				return err
			}
		case MissingError:
		case MissingNative:
			if modelType != ModelTrees {
				return errors.New("missing policy native needs a tree ensemble")
			}
			if in.Standardize != nil {
				return errors.New("missing policy native cannot be combined with standardize")
			}
		default:
			return fmt.Errorf("unknown missing.policy %s (want impute, error or native)", Quote(in.Missing.Policy))
		}
	case TypeCategorical:
		if in.Standardize != nil || in.Transform != "" || in.Range != nil {
			return errors.New("standardize, transform and range apply to numeric inputs only")
		}
		if len(in.Categories) == 0 {
			return errors.New("a categorical input needs categories")
		}
		cats := make(map[string]bool, len(in.Categories))
		for _, c := range in.Categories {
			if cats[c] {
				return fmt.Errorf("duplicate category %s", Quote(c))
			}
			cats[c] = true
		}
		switch in.Missing.Policy {
		case MissingImpute:
			if !cats[in.Missing.Category] {
				return fmt.Errorf("missing.category %s is not one of the categories", Quote(in.Missing.Category))
			}
		case MissingError:
		default:
			return fmt.Errorf("unknown missing.policy %s for a categorical input (want impute or error)", Quote(in.Missing.Policy))
		}
		switch in.Unseen {
		case UnseenError, UnseenIgnore, UnseenMissing:
		default:
			return fmt.Errorf("unknown unseen policy %s (want error, ignore or missing)", Quote(in.Unseen))
		}
	default:
		return fmt.Errorf("unknown type %s (want numeric or categorical)", Quote(in.Type))
	}
	return nil
}

// checkImputed checks that a numeric input's imputed value makes a finite column: a finite
// value, not negative under log1p, finite once standardised.
func checkImputed(in *Input) error {
	v := in.Missing.Value
	if !finite(v) {
		return errors.New("missing.value is not finite")
	}
	x := v
	switch in.Transform {
	case TransformLog1p:
		if v < 0 {
			return fmt.Errorf("missing.value %g is negative, but the log1p transform needs >= 0", v)
		}
		x = math.Log1p(v)
	case TransformIndicator:
		x = 0
		if v > 0 {
			x = 1
		}
	}
	if st := in.Standardize; st != nil && finite(st.Mean, st.Scale) && st.Scale > 0 {
		if y := (x - st.Mean) / st.Scale; !finite(y) {
			return fmt.Errorf("missing.value %g standardises to %g", v, y)
		}
	}
	return nil
}

func (md *Model) validate(width int) error {
	switch md.Type {
	case ModelLogistic:
		l := md.Logistic
		if l == nil || md.Trees != nil {
			return errors.New("a logistic_regression model needs logistic parameters only")
		}
		if len(l.Weights) != width {
			return fmt.Errorf("logistic.weights has %d weights for %d columns", len(l.Weights), width)
		}
		if !finite(l.Intercept) || !finite(l.Weights...) {
			return errors.New("logistic parameters must be finite")
		}
		sum := math.Abs(l.Intercept)
		for _, w := range l.Weights {
			sum += math.Abs(w)
		}
		if !(sum <= MaxLogisticWeights) {
			return fmt.Errorf("the intercept and the weights add up to %g in magnitude, more than %g: the margin would overflow on ordinary inputs", sum, MaxLogisticWeights)
		}
	case ModelTrees:
		if md.Trees == nil || md.Logistic != nil {
			return errors.New("a tree_ensemble model needs trees parameters only")
		}
		return md.Trees.validate(width)
	default:
		return fmt.Errorf("unknown type %s (want %s or %s)", Quote(md.Type), ModelLogistic, ModelTrees)
	}
	return nil
}

// MaxLogisticWeights bounds the magnitudes of a logistic regression's intercept and weights,
// added up, so that the margin of inputs below 1e290 in magnitude is finite. Trained models stay
// many orders of magnitude below it (their inputs are standardised, their weights regularised).
const MaxLogisticWeights = 1e12

// Bounds of a tree ensemble. They keep a hostile or broken bundle from making scoring slow or
// its arithmetic overflow: the deepest tree sets how many steps every walk of its group of trees
// takes, and the sum of the largest leaf magnitudes bounds every margin.
const (
	// MaxTreeNodes bounds the nodes of one tree.
	MaxTreeNodes = 1 << 20
	// MaxEnsembleNodes bounds the nodes of all the trees together.
	MaxEnsembleNodes = 1 << 24
	// MaxTreeDepth bounds the depth of a tree (the root is at depth 0). XGBoost's and
	// scikit-learn's defaults are 6 and 3; LightGBM's 31 leaves reach depth 30 at most.
	MaxTreeDepth = 256
	// MaxMargin bounds BaseScore plus every tree's largest leaf magnitude, so that no sum of leaf
	// values can overflow: a margin of 1e300 is a probability of exactly 0 or 1 anyway.
	MaxMargin = 1e300
)

func (te *TreeEnsemble) validate(width int) error {
	if te.Comparison != CompareLess && te.Comparison != CompareLessEqual {
		return fmt.Errorf("trees.comparison %s (want lt or le)", Quote(te.Comparison))
	}
	if !finite(te.BaseScore) {
		return errors.New("trees.base_score must be finite")
	}
	if len(te.Trees) == 0 {
		return errors.New("trees.trees is empty")
	}
	total := 0
	bound := math.Abs(te.BaseScore)
	for i := range te.Trees {
		largest, err := te.Trees[i].validate(width)
		if err != nil {
			return fmt.Errorf("trees.trees[%d]: %v", i, err)
		}
		bound += largest
		if total += len(te.Trees[i].Left); total > MaxEnsembleNodes {
			return fmt.Errorf("the trees have more than %d nodes", MaxEnsembleNodes)
		}
	}
	if !(bound <= MaxMargin) {
		return fmt.Errorf("base_score and the largest leaf values sum to %g, more than %g: the margin could overflow", bound, MaxMargin)
	}
	return nil
}

// validate checks one tree and returns its largest leaf magnitude. Nodes no walk reaches are
// allowed (scoring leaves them out).
func (t *Tree) validate(width int) (float64, error) {
	n := len(t.Left)
	if n == 0 || n > MaxTreeNodes {
		return 0, fmt.Errorf("has %d nodes, want 1..%d", n, MaxTreeNodes)
	}
	if len(t.Right) != n || len(t.Feature) != n || len(t.Threshold) != n || len(t.DefaultLeft) != n || len(t.Value) != n {
		return 0, errors.New("feature, threshold, left, right, default_left and value must have one entry per node")
	}
	// depth[i] is node i's depth, -1 for a node no split points at yet; a root at 0. Children come
	// after their parent, so the parent's depth is known when a child is reached.
	depth := make([]int32, n)
	for i := 1; i < n; i++ {
		depth[i] = -1
	}
	largest := 0.0
	for i := range n {
		l, r := t.Left[i], t.Right[i]
		if l == -1 {
			if r != -1 {
				return 0, fmt.Errorf("node %d: a leaf needs left == right == -1", i)
			}
			if !finite(t.Value[i]) {
				return 0, fmt.Errorf("node %d: leaf value is not finite", i)
			}
			largest = max(largest, math.Abs(t.Value[i]))
			continue
		}
		// Children after their parent rules out cycles, so evaluation always ends; one parent
		// per node makes the tree a tree, which scoring copies node by node.
		if l <= int32(i) || r <= int32(i) || int(l) >= n || int(r) >= n {
			return 0, fmt.Errorf("node %d: children %d, %d must come after it and be < %d", i, l, r, n)
		}
		if l == r || depth[l] != -1 || depth[r] != -1 {
			return 0, fmt.Errorf("node %d: a child of two splits (children %d, %d)", i, l, r)
		}
		if t.Feature[i] < 0 || int(t.Feature[i]) >= width {
			return 0, fmt.Errorf("node %d: feature %d outside 0..%d", i, t.Feature[i], width-1)
		}
		if math.IsNaN(t.Threshold[i]) {
			return 0, fmt.Errorf("node %d: threshold is NaN", i)
		}
		d := max(depth[i], 0) + 1 // a node no split reaches counts as a root
		if d > MaxTreeDepth {
			return 0, fmt.Errorf("node %d: deeper than %d levels", i, MaxTreeDepth)
		}
		depth[l], depth[r] = d, d
	}
	return largest, nil
}

func (c *Calibration) validate() error {
	switch c.Method {
	case CalibrationNone:
	case CalibrationPlatt:
		if !finite(c.A, c.B) {
			return errors.New("platt a and b must be finite")
		}
	case CalibrationIsotonic:
		if len(c.X) < 2 || len(c.X) != len(c.Y) {
			return errors.New("isotonic needs x and y of the same length >= 2")
		}
		for i := range c.X {
			if !finite(c.X[i], c.Y[i]) || c.Y[i] < 0 || c.Y[i] > 1 {
				return fmt.Errorf("isotonic point %d must be finite with y in [0,1]", i)
			}
			if i > 0 && (c.X[i] < c.X[i-1] || c.Y[i] < c.Y[i-1]) {
				return fmt.Errorf("isotonic points must be non-decreasing in x and y (point %d)", i)
			}
		}
	default:
		return fmt.Errorf("unknown method %s (want none, platt or isotonic)", Quote(c.Method))
	}
	return nil
}
