package modelstore

import (
	"cmp"
	"math"
	"slices"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
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

// Drivers explains the score of x, the columns that Score mapped: each input's contribution to
// the margin (its one-hot columns added up), ordered from the one that raised the risk most to
// the one that lowered it most, with the base they add to. Inputs that contribute nothing are
// left out; base + Σ contributions is the margin. contrib is scratch space of Mapper.Width().
func (m *Model) Drivers(x, contrib []float64) (base float64, drivers []*churnv1.Driver) {
	base = m.Eval.Contributions(x, contrib)
	slab := make([]churnv1.Driver, 0, len(m.spans))
	for _, s := range m.spans {
		var c, v float64
		for j := s.start; j < s.start+s.n; j++ {
			c += contrib[j]
		}
		if c == 0 {
			continue
		}
		switch {
		case s.categorical:
			v = 1 // the customer's category is the one column set
		case s.scale != 0:
			v = roundSignificant(x[s.start]*s.scale + s.mean)
		default:
			v = x[s.start]
		}
		slab = append(slab, churnv1.Driver{Feature: s.name, Value: v, Contribution: c})
	}
	drivers = make([]*churnv1.Driver, len(slab))
	for i := range slab {
		drivers[i] = &slab[i]
	}
	slices.SortStableFunc(drivers, func(a, b *churnv1.Driver) int { return cmp.Compare(b.Contribution, a.Contribution) })
	return base, drivers
}

// roundSignificant rounds to 12 significant digits: undoing the standardisation brings back the
// caller's value up to rounding (0.9999999999999999 for 1), and 12 digits remove that error
// without hiding any precision a feature value carries.
func roundSignificant(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	e := 11 - int(math.Floor(math.Log10(math.Abs(v))))
	if e < -300 || e > 300 {
		return v
	}
	p := math.Pow10(e)
	if r := math.Round(v*p) / p; !math.IsInf(r, 0) && !math.IsNaN(r) {
		return r
	}
	return v
}
