package features

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
)

// Mapper maps CustomerFeatures to a model's input vector by one manifest's input schema. New
// compiles the schema into a plan; a Mapper is immutable and safe for concurrent use.
type Mapper struct {
	// steps holds one compiled step per input, in schema order: what Map reads.
	steps []step
	// inputs holds what only errors and InputName need, one per input.
	inputs []input
	// later lists the steps whose standardisation waits until every derived input is computed,
	// because a derived input reads their value before standardisation.
	later []int32
	width int
}

// from is where a step's value comes from.
type from uint8

const (
	fromField       from = iota // a typed double field
	fromNumeric                 // numeric.<key>
	fromText                    // a typed string field (account.contract)
	fromCategorical             // categorical.<key>
	fromDerive                  // earlier inputs
)

// policy is a missing-value policy.
type policy uint8

const (
	policyImpute policy = iota
	policyError
	policyNative
)

// transform is a numeric input's own transform.
type transform uint8

const (
	transformNone transform = iota
	transformLog1p
	transformIndicator
)

// op is a derivation.
type op uint8

const (
	opRatio op = iota
	opDiff
	opLog1p
	opIndicator
	opSum
)

// unseen is a categorical input's policy for an unknown category.
type unseen uint8

const (
	unseenError unseen = iota
	unseenIgnore
	unseenMissing
)

// standardize says when a numeric step is standardised.
type standardize uint8

const (
	standardizeNone  standardize = iota
	standardizeNow               // as the step writes its column
	standardizeLater             // after the last step, as a derived input reads the raw value
)

// linearScanMax is the most categories looked up by a linear scan; more use a map.
const linearScanMax = 8

// step is the compiled form of one input: only what the success path reads.
type step struct {
	from        from
	field       int32 // fromField, fromText: the index in typedFields
	missing     policy
	transform   transform
	op          op // fromDerive
	unseen      unseen
	standardize standardize
	col         int32    // first column
	args        [2]int32 // columns of the derivation's arguments (ratio, diff, log1p, indicator)
	sumArgs     []int32  // columns of a sum's arguments, in order
	imputeCat   int32    // category index imputed for a missing categorical value
	// imputeCol is what an imputed numeric value writes to its column: Missing.Value after the
	// transform, and after the standardisation unless that waits (standardizeLater).
	imputeCol   float64
	mean, scale float64
	key         string // fromNumeric, fromCategorical
	cats        []string
	index       map[string]int32 // category lookup when there are more than linearScanMax
}

// input is what errors and InputName need about one input.
type input struct {
	name string
	// path is the request path violations name: features.<source>, or for a derived input the
	// path of its first argument.
	path string
	// op and args describe a derived input; argInputs are the indices of its arguments.
	op        string
	args      []string
	argInputs []int
	// allowed lists a categorical input's categories for unseen-category errors.
	allowed string
}

// New compiles the input schema of m, which must have passed bundle.Validate: New relies on it
// and does not check the schema again (internal/model.Load does both). What it checks is the one
// thing bundle.Validate leaves to this package: that every source is a field of CustomerFeatures
// (SourceType) of the input's type.
func New(m *bundle.Manifest) (*Mapper, error) {
	mp := &Mapper{
		steps:  make([]step, len(m.Inputs)),
		inputs: make([]input, len(m.Inputs)),
	}
	byName := make(map[string]int, len(m.Inputs))
	for i := range m.Inputs {
		in := &m.Inputs[i]
		if err := mp.compile(i, in, byName); err != nil {
			return nil, fmt.Errorf("inputs[%d] (%s): %w", i, in.Name, err)
		}
		byName[in.Name] = i
	}
	for i := range mp.steps {
		s := &mp.steps[i]
		if s.standardize == standardizeLater {
			mp.later = append(mp.later, int32(i))
		}
		if s.from == fromText || s.from == fromCategorical || s.missing != policyImpute {
			continue
		}
		// Precompute the imputed column (bundle.Validate proved it finite).
		x := s.transform.apply(s.imputeCol)
		if s.standardize == standardizeNow {
			x = (x - s.mean) / s.scale
		}
		s.imputeCol = x
	}
	return mp, nil
}

// apply transforms x, which is not negative for transformLog1p.
func (t transform) apply(x float64) float64 {
	switch t {
	case transformLog1p:
		return math.Log1p(x)
	case transformIndicator:
		if x > 0 {
			return 1
		}
		return 0
	}
	return x
}

// compile fills step i and input i from in and lays out its columns. byName holds the earlier
// inputs.
func (mp *Mapper) compile(i int, in *bundle.Input, byName map[string]int) error {
	s, info := &mp.steps[i], &mp.inputs[i]
	info.name = in.Name
	s.col = int32(mp.width)
	if in.Derive != nil {
		mp.compileDerive(s, info, in, byName)
	} else if err := mp.compileSource(s, info, in); err != nil {
		return err
	}
	if in.Type == bundle.TypeCategorical {
		mp.width += len(in.Categories)
		compileCategorical(s, info, in)
	} else {
		mp.width++
		compileNumeric(s, in)
	}
	return nil
}

// compileSource resolves where a read input's value comes from.
func (mp *Mapper) compileSource(s *step, info *input, in *bundle.Input) error {
	t, err := SourceType(in.Source)
	if err != nil {
		return err
	}
	if t != in.Type {
		return fmt.Errorf("type %q, but source %s is %s", in.Type, in.Source, t)
	}
	info.path = pathPrefix + in.Source
	if key, ok := strings.CutPrefix(in.Source, bundle.NumericPrefix); ok {
		s.from, s.key = fromNumeric, key
	} else if key, ok := strings.CutPrefix(in.Source, bundle.CategoricalPrefix); ok {
		s.from, s.key = fromCategorical, key
	} else {
		s.field = int32(typedField(in.Source))
		s.from = fromField
		if typedFields[s.field].Text {
			s.from = fromText
		}
	}
	return nil
}

// derivations maps a bundle's derive op to the step's.
var derivations = map[string]op{
	bundle.OpRatio: opRatio, bundle.OpDiff: opDiff, bundle.OpLog1p: opLog1p, bundle.OpIndicator: opIndicator, bundle.OpSum: opSum,
}

// compileDerive compiles the derivation of a derived input, whose arguments bundle.Validate found
// among the earlier numeric inputs.
func (mp *Mapper) compileDerive(s *step, info *input, in *bundle.Input, byName map[string]int) {
	d := in.Derive
	s.from, s.op = fromDerive, derivations[d.Op]
	info.op, info.args = d.Op, d.Args
	for k, a := range d.Args {
		j := byName[a]
		arg := &mp.steps[j]
		if s.op == opSum {
			s.sumArgs = append(s.sumArgs, arg.col)
		} else {
			s.args[k] = arg.col
		}
		info.argInputs = append(info.argInputs, j)
		if arg.standardize == standardizeNow {
			arg.standardize = standardizeLater
		}
	}
	if len(d.Args) == 1 {
		s.args[1] = s.args[0]
	}
	info.path = mp.inputs[info.argInputs[0]].path
}

// compileNumeric compiles the missing policy, transform and standardisation of a numeric input.
func compileNumeric(s *step, in *bundle.Input) {
	switch in.Transform {
	case bundle.TransformLog1p:
		s.transform = transformLog1p
	case bundle.TransformIndicator:
		s.transform = transformIndicator
	}
	switch in.Missing.Policy {
	case bundle.MissingImpute:
		s.missing, s.imputeCol = policyImpute, in.Missing.Value
	case bundle.MissingError:
		s.missing = policyError
	case bundle.MissingNative:
		s.missing = policyNative
	}
	if st := in.Standardize; st != nil {
		s.standardize, s.mean, s.scale = standardizeNow, st.Mean, st.Scale
	}
}

// compileCategorical compiles the categories and the policies of a categorical input.
func compileCategorical(s *step, info *input, in *bundle.Input) {
	s.cats = in.Categories
	if len(in.Categories) > linearScanMax {
		s.index = make(map[string]int32, len(in.Categories))
		for k, c := range in.Categories {
			s.index[c] = int32(k)
		}
	}
	switch in.Missing.Policy {
	case bundle.MissingImpute:
		s.missing, s.imputeCat = policyImpute, s.lookup(in.Missing.Category)
	case bundle.MissingError:
		s.missing = policyError
	}
	switch in.Unseen {
	case bundle.UnseenError:
		s.unseen = unseenError
	case bundle.UnseenIgnore:
		s.unseen = unseenIgnore
	case bundle.UnseenMissing:
		s.unseen = unseenMissing
	}
	info.allowed = allowedList(in.Categories)
}

// allowedList quotes the categories for an error, the first ten at most.
func allowedList(cats []string) string {
	const show = 10
	var b strings.Builder
	for k, c := range cats {
		if k == show {
			fmt.Fprintf(&b, " and %d more", len(cats)-show)
			break
		}
		if k > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(c))
	}
	return b.String()
}

// Width returns the number of columns Map writes: len(Manifest.Columns()).
func (m *Mapper) Width() int { return m.width }

// NumInputs returns the number of inputs, len(Manifest.Inputs).
func (m *Mapper) NumInputs() int { return len(m.steps) }

// InputName returns the name of Manifest.Inputs[i], for 0 <= i < NumInputs().
func (m *Mapper) InputName(i int) string { return m.inputs[i].name }

// Map validates all of f (the rules are validate.go's) and writes its Width() columns into dst[:Width()], by the
// schema: for each input in order, the value is read from its source (an absent typed field,
// map entry or empty string is missing) or derived from earlier inputs (an undefined result is
// missing); a missing value is imputed (and the input's index appended to imputed), refused, or
// written as NaN (native); a numeric value is then transformed and standardised, a categorical
// one is one-hot encoded. It returns imputed, extended.
//
// Errors are *ValidationError, with the violations of the request first and then those of the
// mapping (a required input missing, an unknown category, a value its preprocessing cannot
// take). The only other error is a dst shorter than Width(), a programming error. On error, dst
// and the appended indices are unspecified.
//
// Map allocates nothing when f is valid, unless imputed has to grow.
func (m *Mapper) Map(f *churnv1.CustomerFeatures, dst []float64, imputed []int) ([]int, error) {
	if len(dst) < m.width {
		return imputed, fmt.Errorf("features: dst has %d columns, the schema makes %d", len(dst), m.width)
	}
	dst = dst[:m.width]
	var c collector
	c.validateTyped(f)
	num, cat := f.GetNumeric(), f.GetCategorical()
	if len(num) > 0 {
		c.numericMap(num)
	}
	if len(cat) > 0 {
		c.categoricalMap(cat)
	}
	for i := range m.steps {
		s := &m.steps[i]
		if s.from == fromText || s.from == fromCategorical {
			v := ""
			if s.from == fromText {
				if p := typedFields[s.field].str(f); p != nil {
					v = *p
				}
			} else {
				v = cat[s.key]
			}
			imputed = m.mapCategorical(&c, i, v, dst, imputed)
			continue
		}
		var x float64
		present := false
		switch s.from {
		case fromField:
			if p := typedFields[s.field].num(f); p != nil {
				x, present = *p, true
			}
		case fromNumeric:
			x, present = num[s.key]
		case fromDerive:
			x, present = s.derive(dst)
		}
		if !present {
			switch s.missing {
			case policyImpute:
				dst[s.col] = s.imputeCol
				imputed = append(imputed, i)
			case policyNative:
				dst[s.col] = math.NaN()
			default:
				m.missing(&c, i, dst)
				dst[s.col] = math.NaN()
			}
			continue
		}
		raw := x
		switch s.transform {
		case transformLog1p:
			if !(x >= 0) {
				m.negativeLog1p(&c, i, x)
				dst[s.col] = math.NaN()
				continue
			}
			x = math.Log1p(x)
		case transformIndicator:
			x = transformIndicator.apply(x)
		}
		if s.standardize == standardizeNow {
			x = (x - s.mean) / s.scale
		}
		if !finite(x) {
			m.outOfRange(&c, i, raw)
			x = math.NaN()
		}
		dst[s.col] = x
	}
	for _, i := range m.later {
		s := &m.steps[i]
		x := dst[s.col]
		if !finite(x) {
			continue // NaN: already reported
		}
		y := (x - s.mean) / s.scale
		if !finite(y) {
			m.outOfRange(&c, int(i), x)
		}
		dst[s.col] = y
	}
	return imputed, c.err()
}

// derive computes a derived value from the raw columns of its arguments; false means undefined.
func (s *step) derive(dst []float64) (float64, bool) {
	if s.op == opSum {
		// Left to right, as the trainer adds them; a NaN argument makes the sum NaN.
		var x float64
		for _, c := range s.sumArgs {
			x += dst[c]
		}
		return x, finite(x)
	}
	a, b := dst[s.args[0]], dst[s.args[1]]
	var x float64
	switch s.op {
	case opRatio:
		if b == 0 {
			return 0, false
		}
		x = a / b
	case opDiff:
		x = a - b
	case opLog1p:
		if !(a > -1) {
			return 0, false
		}
		x = math.Log1p(a)
	case opIndicator:
		if a > 0 {
			x = 1
		} else if a <= 0 {
			x = 0
		} else {
			return 0, false // NaN
		}
	}
	return x, finite(x)
}

// mapCategorical writes the one-hot columns of categorical step i, whose value is v ("" when
// absent).
func (m *Mapper) mapCategorical(c *collector, i int, v string, dst []float64, imputed []int) []int {
	s := &m.steps[i]
	cols := dst[s.col : int(s.col)+len(s.cats)]
	for k := range cols {
		cols[k] = 0
	}
	k := int32(-1)
	if v != "" {
		k = s.lookup(v)
		if k < 0 {
			switch s.unseen {
			case unseenIgnore:
				return imputed
			case unseenError:
				m.unseenCategory(c, i, v)
				return imputed
			}
		}
	}
	if k < 0 {
		if s.missing != policyImpute {
			if v != "" {
				m.unseenCategory(c, i, v)
			} else {
				m.missing(c, i, dst)
			}
			return imputed
		}
		k = s.imputeCat
		imputed = append(imputed, i)
	}
	cols[k] = 1
	return imputed
}

// Unknown returns, for categorical input i, the value f holds that is not one of the input's
// categories; false when f holds one of them or none, or input i is not categorical. A Map that
// imputed input i imputed it for this value when Unknown reports one (the input's unseen policy
// is missing), else because the value was absent.
func (m *Mapper) Unknown(f *churnv1.CustomerFeatures, i int) (string, bool) {
	s := &m.steps[i]
	var v string
	switch s.from {
	case fromText:
		if p := typedFields[s.field].str(f); p != nil {
			v = *p
		}
	case fromCategorical:
		v = f.GetCategorical()[s.key]
	default:
		return "", false
	}
	return v, v != "" && s.lookup(v) < 0
}

// lookup returns the index of category v, or -1.
func (s *step) lookup(v string) int32 {
	if s.index != nil {
		if k, ok := s.index[v]; ok {
			return k
		}
		return -1
	}
	for k, c := range s.cats {
		if c == v {
			return int32(k)
		}
	}
	return -1
}

// The functions below build violations; only a bad request reaches them.

// missing adds the violation of required input i, missing. A derived input is missing when its
// value is undefined; the violation names the argument to blame and says why.
func (m *Mapper) missing(c *collector, i int, dst []float64) {
	info := &m.inputs[i]
	s := &m.steps[i]
	if s.from != fromDerive {
		c.addOnce(info.path, "required by the model: missing")
		return
	}
	blame, why := 0, ""
	if s.op == opSum {
		why = "the result is out of range"
		for k, col := range s.sumArgs {
			if math.IsNaN(dst[col]) {
				blame, why = k, info.args[k]+" is missing"
				break
			}
		}
		c.addOnce(m.inputs[info.argInputs[blame]].path, "required by the model: "+m.describe(i)+" is undefined: "+why)
		return
	}
	a, b := dst[s.args[0]], dst[s.args[1]]
	switch {
	case math.IsNaN(a):
		why = info.args[0] + " is missing"
	case len(info.args) > 1 && math.IsNaN(b):
		blame, why = 1, info.args[1]+" is missing"
	case s.op == opRatio && b == 0:
		blame, why = 1, info.args[1]+" is 0"
	case s.op == opLog1p && a <= -1:
		why = info.args[0] + " is " + formatFloat(a) + ", but log1p needs more than -1"
	default:
		why = "the result is out of range"
	}
	c.addOnce(m.inputs[info.argInputs[blame]].path, "required by the model: "+m.describe(i)+" is undefined: "+why)
}

// negativeLog1p adds the violation of input i whose value x is negative but has a log1p transform.
func (m *Mapper) negativeLog1p(c *collector, i int, x float64) {
	desc := "must be >= 0 for log1p, got " + formatFloat(x)
	if m.steps[i].from == fromDerive {
		desc = m.describe(i) + " is " + formatFloat(x) + ", but its log1p transform needs >= 0"
	}
	c.addOnce(m.inputs[i].path, desc)
}

// outOfRange adds the violation of input i whose value x (before its transform and
// standardisation) makes a non-finite column.
func (m *Mapper) outOfRange(c *collector, i int, x float64) {
	var desc string
	switch {
	case !finite(x):
		desc = "must be a finite number, got " + formatFloat(x)
	case m.steps[i].from == fromDerive:
		desc = m.describe(i) + " is " + formatFloat(x) + ", out of the range the model can take"
	default:
		desc = "is out of the range the model can take, got " + formatFloat(x)
	}
	c.addOnce(m.inputs[i].path, desc)
}

// unseenCategory adds the violation of categorical input i with unknown category v.
func (m *Mapper) unseenCategory(c *collector, i int, v string) {
	info := &m.inputs[i]
	c.addOnce(info.path, "unknown category "+quote(v)+", want one of "+info.allowed)
}

// describe names input i for an error: `input "name"`, with its derivation when derived.
func (m *Mapper) describe(i int) string {
	info := &m.inputs[i]
	d := "input " + strconv.Quote(info.name)
	if info.op != "" {
		d += " = " + info.op + "(" + strings.Join(info.args, ", ") + ")"
	}
	return d
}
