package model

import (
	"math"

	"github.com/churnhq/churn/internal/bundle"
)

// inputSpan is where an input's columns are and how to undo its standardisation.
type inputSpan struct {
	name        string
	start, n    int
	categories  []string // a categorical input's, in column order; nil for a numeric one
	mean, scale float64  // scale 0: not standardised
}

func spans(m *bundle.Manifest) []inputSpan {
	out := make([]inputSpan, len(m.Inputs))
	col := 0
	for i, in := range m.Inputs {
		s := inputSpan{name: in.Name, start: col, n: 1}
		if in.Type == bundle.TypeCategorical {
			s.categories, s.n = in.Categories, len(in.Categories)
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

// MaxDrivers is the most drivers Explain gives: MaxDriversPerSide on each side and OtherDrivers.
const MaxDrivers = 2*MaxDriversPerSide + 1

// OtherDrivers is the name of the driver that adds up the contributions of the inputs not named.
const OtherDrivers = "(other inputs)"

// Driver is one input's share of the margin.
type Driver struct {
	// Feature is the input's name (a categorical input's one-hot columns are added up under its
	// name), or OtherDrivers.
	Feature string
	// Value is the input's value as the model saw it after imputation and transform, before
	// standardisation. For a categorical input it is 1, and Category is the category the model
	// saw (0 and no Category when it saw none: an unknown category under the ignore policy); for
	// OtherDrivers, how many inputs it adds up.
	Value float64
	// Contribution is its share of the margin; positive raises the churn risk.
	Contribution float64
	// Category is a categorical input's category, after imputation: its one-hot column that is
	// set. Empty for a numeric input.
	Category string
}

// share is one input's contribution to the margin: what drivers ranks. It holds no pointer, so
// that the ranking's moves need no write barrier (ranking Drivers, with their strings, was 15% of
// a Score's CPU while the collector ran: issue 16); the Driver is made for the named ones only.
type share struct {
	c     float64
	input int
}

// drivers names, from x (the columns that Score mapped) and contrib (their contributions to the
// margin, from scoring.Evaluator.Explain), the MaxDriversPerSide inputs that raised the risk most
// and those that lowered it most, each with its contribution to the margin (its one-hot columns
// added up), ordered from most raising to most lowering. The contributions of the remaining
// inputs are added up in one OtherDrivers entry, so that the base and the drivers' contributions
// add up to the margin. all is scratch space for every input's share; the at most MaxDrivers
// drivers are appended to out, which has room for them.
func (m *Model) drivers(x, contrib []float64, all []share, out []Driver) []Driver {
	all = all[:0]
	for k, s := range m.inputs {
		var c float64
		for j := s.start; j < s.start+s.n; j++ {
			c += contrib[j]
		}
		if c == 0 {
			continue
		}
		// Insert in order, largest contribution first; ties keep the inputs' order.
		all = append(all, share{c, k})
		for j := len(all) - 1; j > 0 && all[j-1].c < c; j-- {
			all[j-1], all[j] = all[j], all[j-1]
		}
	}

	// The strongest on each side are at the two ends of the sorted list.
	up, down := 0, 0
	for up < len(all) && up < MaxDriversPerSide && all[up].c > 0 {
		up++
	}
	for down < len(all)-up && down < MaxDriversPerSide && all[len(all)-1-down].c < 0 {
		down++
	}
	rest := all[up : len(all)-down]
	for _, sh := range all[:up] {
		out = append(out, m.driver(x, sh))
	}
	if len(rest) > 0 {
		other := Driver{Feature: OtherDrivers, Value: float64(len(rest))}
		for _, sh := range rest {
			other.Contribution += sh.c
		}
		out = append(out, other)
	}
	for _, sh := range all[len(all)-down:] {
		out = append(out, m.driver(x, sh))
	}
	return out
}

// driver is the Driver of one input's share: its name, contribution, and the value the model saw.
func (m *Model) driver(x []float64, sh share) Driver {
	s := &m.inputs[sh.input]
	d := Driver{Feature: s.name, Contribution: sh.c}
	if s.categories != nil { // the customer's category is the one column set, if any
		for k, cat := range s.categories {
			if x[s.start+k] == 1 {
				d.Value, d.Category = 1, cat
				break
			}
		}
		return d
	}
	d.Value = x[s.start]
	if s.scale != 0 {
		d.Value = roundValue(d.Value*s.scale + s.mean)
	}
	return d
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
