package model

import (
	"math"

	"github.com/churnhq/churn/internal/bundle"
)

// inputSpan is where an input's columns are and how to undo its standardisation.
type inputSpan struct {
	name        string
	start, n    int
	categorical bool
	mean, scale float64 // scale 0: not standardised
}

func spans(m *bundle.Manifest) []inputSpan {
	out := make([]inputSpan, len(m.Inputs))
	col := 0
	for i, in := range m.Inputs {
		s := inputSpan{name: in.Name, start: col, n: 1}
		if in.Type == bundle.TypeCategorical {
			s.categorical, s.n = true, len(in.Categories)
		} else if in.Standardize != nil {
			s.mean, s.scale = in.Standardize.Mean, in.Standardize.Scale
		}
		col += s.n
		out[i] = s
	}
	return out
}

// MaxDriversPerSide is how many inputs Explain names on each side (raising, lowering the risk).
const MaxDriversPerSide = 4

// OtherDrivers is the name of the driver that adds up the contributions of the inputs not named.
const OtherDrivers = "(other inputs)"

// Driver is one input's share of the margin.
type Driver struct {
	// Feature is the input's name (a categorical input's one-hot columns are added up under its
	// name), or OtherDrivers.
	Feature string
	// Value is the input's value as the model saw it after imputation and transform, before
	// standardisation; 1 for a categorical input; for OtherDrivers, how many inputs it adds up.
	Value float64
	// Contribution is its share of the margin; positive raises the churn risk.
	Contribution float64
}

// drivers names, from x (the columns that Score mapped) and contrib (their contributions to the
// margin, from scoring.Evaluator.Explain), the MaxDriversPerSide inputs that raised the risk most
// and those that lowered it most, each with its contribution to the margin (its one-hot columns
// added up), ordered from most raising to most lowering. The contributions of the remaining
// inputs are added up in one OtherDrivers entry, so that the base and the drivers' contributions
// add up to the margin. all is scratch space for every input's driver; the result is a new slice
// of at most 2·MaxDriversPerSide+1.
func (m *Model) drivers(x, contrib []float64, all []Driver) []Driver {
	all = all[:0]
	for _, s := range m.inputs {
		var c float64
		for j := s.start; j < s.start+s.n; j++ {
			c += contrib[j]
		}
		if c == 0 {
			continue
		}
		v := 1.0 // a categorical input: the customer's category is the one column set
		if !s.categorical {
			v = x[s.start]
			if s.scale != 0 {
				v = roundValue(v*s.scale + s.mean)
			}
		}
		// Insert in order, largest contribution first; ties keep the inputs' order.
		all = append(all, Driver{Feature: s.name, Value: v, Contribution: c})
		for j := len(all) - 1; j > 0 && all[j-1].Contribution < c; j-- {
			all[j-1], all[j] = all[j], all[j-1]
		}
	}

	// The strongest on each side are at the two ends of the sorted list.
	up, down := 0, 0
	for up < len(all) && up < MaxDriversPerSide && all[up].Contribution > 0 {
		up++
	}
	for down < len(all)-up && down < MaxDriversPerSide && all[len(all)-1-down].Contribution < 0 {
		down++
	}
	rest := all[up : len(all)-down]
	out := make([]Driver, 0, up+down+1)
	out = append(out, all[:up]...)
	if len(rest) > 0 {
		other := Driver{Feature: OtherDrivers, Value: float64(len(rest))}
		for _, d := range rest {
			other.Contribution += d.Contribution
		}
		out = append(out, other)
	}
	return append(out, all[len(all)-down:]...)
}

// roundValue rounds to 9 decimals (for |v| < 1e6; larger values are left alone): undoing the
// standardisation brings back the caller's value only up to rounding (0.9999999999999999 for
// 1, 120.49999999999994 for 120.5), and feature values carry no meaning at 1e-9.
func roundValue(v float64) float64 {
	if math.Abs(v) < 1e6 {
		return math.Round(v*1e9) / 1e9
	}
	return v
}
