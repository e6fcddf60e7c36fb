package train

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/churnhq/churn/internal/bundle"
)

// Prep is the preprocessing learned from the training rows, one bundle input per spec column:
// the imputation value (training median of the raw values) or category (training mode), the
// categories (sorted), the transform and the standardisation (mean and population standard
// deviation of the imputed, transformed training values; scale 1 for a constant column), as
// scikit-learn's SimpleImputer, OneHotEncoder and StandardScaler learn them. Categorical inputs
// are not standardised. Then one input per derived input of the spec, learned the same way from
// its training values (derived from the other inputs as serving derives them).
type Prep struct {
	Inputs []bundle.Input
	// args holds the indices in Inputs of each derived input's arguments (nil for a column's).
	args [][]int
	// index maps each categorical input's categories to their one-hot offset.
	index []map[string]int
	// offset is each input's first column.
	offset []int
	width  int
}

// Width is the number of model columns.
func (pp *Prep) Width() int { return pp.width }

// Encoding says how a trainer wants its rows encoded.
type Encoding int

const (
	// EncodeStandardized imputes every missing value, standardises numeric inputs and one-hot
	// encodes categorical ones (linear models; scikit-learn's protocol).
	EncodeStandardized Encoding = iota
	// EncodeRaw keeps numeric inputs on their own scale (after the transform) and gives the
	// numeric inputs that have missing training values the native missing policy (NaN, sent
	// down each split's learned default branch); the others are imputed as with
	// EncodeStandardized. Categorical inputs are one-hot. For tree ensembles that handle NaN.
	EncodeRaw
	// EncodeRawImputed is EncodeRaw with every missing value imputed, for tree learners that
	// cannot take NaN.
	EncodeRawImputed
)

// LearnPrepFor learns the preprocessing of ds's columns from rows for the encoding enc.
func LearnPrepFor(ds *Dataset, rows []int, enc Encoding) (*Prep, error) {
	if len(rows) == 0 {
		return nil, fmt.Errorf("no training rows")
	}
	pp := &Prep{}
	for j, c := range ds.Columns {
		in := bundle.Input{Name: c.Name, Source: c.Source, Type: c.Type(), Missing: bundle.Missing{Policy: c.Missing}}
		var err error
		if in.Type == bundle.TypeCategorical {
			in.Unseen = c.Unseen
			err = learnCategorical(&in, ds, rows, j)
		} else {
			in.Transform = c.Transform
			if enc == EncodeRaw && in.Missing.Policy == bundle.MissingImpute && anyMissing(ds, rows, j) {
				in.Missing.Policy = bundle.MissingNative
			}
			err = learnNumeric(&in, ds, rows, j)
			if enc != EncodeStandardized {
				in.Standardize = nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("column %q: %v", c.CSV, err)
		}
		pp.add(in, nil)
	}
	for k, d := range ds.Derived {
		if err := pp.learnDerived(d, ds, rows, enc); err != nil {
			return nil, fmt.Errorf("derived[%d] %q: %v", k, d.Name, err)
		}
	}
	return pp, nil
}

// learnDerived appends the derived input d: its training values are derived from the earlier
// inputs' values after imputation and transform (NaN when native missing), as serving derives
// them. Its missing value (a NaN argument, a zero denominator, an overflow) is imputed with the
// median of the defined training values, or has the native policy under EncodeRaw when a
// training value is undefined. It is standardised for EncodeStandardized.
func (pp *Prep) learnDerived(d Derived, ds *Dataset, rows []int, enc Encoding) error {
	byName := make(map[string]int, len(pp.Inputs))
	for j, in := range pp.Inputs {
		byName[in.Name] = j
	}
	args := make([]int, len(d.Args))
	for k, a := range d.Args {
		j, ok := byName[a]
		if !ok {
			return fmt.Errorf("argument %q is not an earlier input", a)
		}
		if pp.Inputs[j].Type != bundle.TypeNumeric {
			return fmt.Errorf("argument %q is not numeric", a)
		}
		args[k] = j
	}
	in := bundle.Input{
		Name: d.Name, Derive: &bundle.Derive{Op: d.Op, Args: slices.Clone(d.Args)}, Type: bundle.TypeNumeric,
		Missing: bundle.Missing{Policy: bundle.MissingImpute},
	}
	n := len(pp.Inputs)
	pp.add(in, args) // its Missing and Standardize are set below; derive does not read them
	x := make([]float64, pp.width)
	vals := make([]float64, len(rows))
	defined := make([]bool, len(rows))
	var present []float64
	for k, i := range rows {
		pp.encodeRaw(ds.Rows[i], x, n)
		vals[k], defined[k] = pp.derive(n, x)
		if defined[k] {
			present = append(present, vals[k])
		}
	}
	if len(present) == 0 {
		return fmt.Errorf("no training row has a defined value")
	}
	last := &pp.Inputs[n]
	if enc == EncodeRaw && len(present) < len(rows) {
		last.Missing.Policy = bundle.MissingNative
	} else {
		last.Missing.Value = median(present)
	}
	if enc != EncodeStandardized {
		return nil
	}
	for k := range vals {
		if !defined[k] {
			vals[k] = last.Missing.Value
		}
	}
	mean, std := meanStd(vals)
	if slices.Min(vals) == slices.Max(vals) || !isFinite(std) {
		std = 1
	}
	if !isFinite(mean) {
		return fmt.Errorf("the training mean is not finite")
	}
	last.Standardize = &bundle.Standardize{Mean: mean, Scale: std}
	return nil
}

// derive computes derived input j from the pre-standardisation columns x of its arguments, as
// internal/features does; false means undefined (a NaN argument, a zero denominator, log1p at or
// below -1, a result that is not finite).
func (pp *Prep) derive(j int, x []float64) (float64, bool) {
	args := pp.args[j]
	var v float64
	if pp.Inputs[j].Derive.Op == bundle.OpSum {
		for _, a := range args { // left to right, as serving adds them
			v += x[pp.offset[a]]
		}
		return v, isFinite(v)
	}
	a := x[pp.offset[args[0]]]
	b := a
	if len(args) > 1 {
		b = x[pp.offset[args[1]]]
	}
	switch pp.Inputs[j].Derive.Op {
	case bundle.OpRatio:
		if b == 0 {
			return 0, false
		}
		v = a / b
	case bundle.OpDiff:
		v = a - b
	case bundle.OpLog1p:
		if !(a > -1) {
			return 0, false
		}
		v = math.Log1p(a)
	case bundle.OpIndicator:
		switch {
		case a > 0:
			v = 1
		case a <= 0:
			v = 0
		default:
			return 0, false // NaN
		}
	}
	return v, isFinite(v)
}

// add appends an input (with the indices of its arguments when it is derived) and lays out its
// columns.
func (pp *Prep) add(in bundle.Input, args []int) {
	pp.args = append(pp.args, args)
	pp.offset = append(pp.offset, pp.width)
	var idx map[string]int
	if in.Type == bundle.TypeCategorical {
		idx = make(map[string]int, len(in.Categories))
		for k, c := range in.Categories {
			idx[c] = k
		}
		pp.width += len(in.Categories)
	} else {
		pp.width++
	}
	pp.index = append(pp.index, idx)
	pp.Inputs = append(pp.Inputs, in)
}

// anyMissing reports whether column j misses a value in rows.
func anyMissing(ds *Dataset, rows []int, j int) bool {
	for _, i := range rows {
		if ds.Rows[i][j].Missing {
			return true
		}
	}
	return false
}

// learnNumeric sets the imputation value and the standardisation of numeric input in.
func learnNumeric(in *bundle.Input, ds *Dataset, rows []int, j int) error {
	var present []float64
	for _, i := range rows {
		if v := ds.Rows[i][j]; !v.Missing {
			present = append(present, v.Num)
		}
	}
	if len(present) == 0 {
		return fmt.Errorf("every training value is missing")
	}
	if in.Missing.Policy == bundle.MissingImpute {
		in.Missing.Value = median(present)
	}
	in.Range = &bundle.Range{Min: slices.Min(present), Max: slices.Max(present)}
	vals := make([]float64, len(rows))
	for k, i := range rows {
		vals[k] = numericValue(in, ds.Rows[i][j])
	}
	mean, std := meanStd(vals)
	if slices.Min(vals) == slices.Max(vals) || !isFinite(std) {
		std = 1 // a constant column: its standardised value is 0 (mean rounding aside)
	}
	if !isFinite(mean) {
		return fmt.Errorf("the training mean is not finite")
	}
	in.Standardize = &bundle.Standardize{Mean: mean, Scale: std}
	return nil
}

// learnCategorical sets the categories (sorted) and the imputation category (the most frequent,
// the first in sorted order on a tie) of categorical input in.
func learnCategorical(in *bundle.Input, ds *Dataset, rows []int, j int) error {
	counts := map[string]int{}
	for _, i := range rows {
		if v := ds.Rows[i][j]; !v.Missing {
			counts[v.Cat]++
		}
	}
	if len(counts) == 0 {
		return fmt.Errorf("every training value is missing")
	}
	for c := range counts {
		in.Categories = append(in.Categories, c)
	}
	sort.Strings(in.Categories)
	if in.Missing.Policy == bundle.MissingImpute {
		mode := in.Categories[0]
		for _, c := range in.Categories {
			if counts[c] > counts[mode] {
				mode = c
			}
		}
		in.Missing.Category = mode
	}
	return nil
}

// numericValue is the value of a numeric input before standardisation: the raw value or the
// imputation value, then the transform.
func numericValue(in *bundle.Input, v Value) float64 {
	x := v.Num
	if v.Missing {
		x = in.Missing.Value
	}
	switch in.Transform {
	case bundle.TransformLog1p:
		x = math.Log1p(x)
	case bundle.TransformIndicator:
		if x > 0 {
			x = 1
		} else {
			x = 0
		}
	}
	return x
}

// Encode writes row's model columns into x (len Width()), exactly as the serving code maps a
// request: a numeric column is (transform(imputed raw) - mean) / scale (without the
// standardisation when the input has none; NaN for a missing value under the native policy), a
// categorical input sets its category's one-hot column to 1, and a derived input is derived from
// its arguments' values before standardisation (its missing policy applies when it is
// undefined), then standardised. A missing categorical value takes the imputation category.
// A categorical value that is not a known category is missing when the input's unseen policy is
// missing (the default) and its missing policy imputes; otherwise the bundle refuses such a
// request, and Encode reports false: x then has all-zero columns for it, as scikit-learn's
// OneHotEncoder(handle_unknown="ignore") does, so that the row can still be measured.
func (pp *Prep) Encode(row []Value, x []float64) bool {
	ok := pp.encodeRaw(row, x, len(pp.Inputs))
	for j := range pp.Inputs {
		in := &pp.Inputs[j]
		if s := in.Standardize; s != nil && in.Type != bundle.TypeCategorical {
			off := pp.offset[j]
			if !math.IsNaN(x[off]) {
				x[off] = (x[off] - s.Mean) / s.Scale
			}
		}
	}
	return ok
}

// encodeRaw is Encode of the first n inputs without the standardisation.
func (pp *Prep) encodeRaw(row []Value, x []float64, n int) bool {
	ok := true
	for j := range pp.Inputs[:n] {
		in := &pp.Inputs[j]
		off := pp.offset[j]
		if in.Derive != nil {
			v, defined := pp.derive(j, x)
			switch {
			case defined:
				x[off] = v
			case in.Missing.Policy == bundle.MissingNative:
				x[off] = math.NaN()
			default:
				x[off] = in.Missing.Value
			}
			continue
		}
		if in.Type != bundle.TypeCategorical {
			if row[j].Missing && in.Missing.Policy == bundle.MissingNative {
				x[off] = math.NaN()
			} else {
				x[off] = numericValue(in, row[j])
			}
			continue
		}
		clear(x[off : off+len(in.Categories)])
		cat := row[j].Cat
		if row[j].Missing {
			cat = in.Missing.Category
		}
		k, known := pp.index[j][cat]
		if !known && in.Unseen == bundle.UnseenMissing && in.Missing.Policy == bundle.MissingImpute {
			k, known = pp.index[j][in.Missing.Category]
		}
		if known {
			x[off+k] = 1
		} else {
			ok = false
		}
	}
	return ok
}

// median is the middle value, or the mean of the two middle values (numpy.median).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// meanStd is the mean and the population standard deviation (two passes).
func meanStd(xs []float64) (mean, std float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		d := x - mean
		ss += d * d
	}
	return mean, math.Sqrt(ss / float64(len(xs)))
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
