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
// are not standardised.
type Prep struct {
	Inputs []bundle.Input
	// index maps each categorical input's categories to their one-hot offset.
	index []map[string]int
	// offset is each input's first column.
	offset []int
	width  int
}

// Width is the number of model columns.
func (pp *Prep) Width() int { return pp.width }

// Columns names the model columns, as bundle.Manifest.Columns does.
func (pp *Prep) Columns() []string {
	m := bundle.Manifest{Inputs: pp.Inputs}
	return m.Columns()
}

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

// LearnPrep learns the preprocessing of ds's columns from rows for a linear model
// (EncodeStandardized).
func LearnPrep(ds *Dataset, rows []int) (*Prep, error) {
	return LearnPrepFor(ds, rows, EncodeStandardized)
}

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
		pp.add(in)
	}
	return pp, nil
}

// add appends an input and lays out its columns.
func (pp *Prep) add(in bundle.Input) {
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
	in.Unseen = bundle.UnseenError
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
// categorical input sets
// its category's one-hot column to 1. A missing categorical value takes the imputation category.
// It reports false when a categorical value is not a known category: the bundle refuses such a
// request (unseen policy error); x then has all-zero columns for it, as scikit-learn's
// OneHotEncoder(handle_unknown="ignore") does, so that the row can still be measured.
func (pp *Prep) Encode(row []Value, x []float64) bool {
	ok := true
	for j := range pp.Inputs {
		in := &pp.Inputs[j]
		off := pp.offset[j]
		if in.Type != bundle.TypeCategorical {
			switch {
			case row[j].Missing && in.Missing.Policy == bundle.MissingNative:
				x[off] = math.NaN()
			case in.Standardize != nil:
				x[off] = (numericValue(in, row[j]) - in.Standardize.Mean) / in.Standardize.Scale
			default:
				x[off] = numericValue(in, row[j])
			}
			continue
		}
		clear(x[off : off+len(in.Categories)])
		cat := row[j].Cat
		if row[j].Missing {
			cat = in.Missing.Category
		}
		if k, known := pp.index[j][cat]; known {
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
