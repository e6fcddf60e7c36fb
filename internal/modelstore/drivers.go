package modelstore

import (
	"math"

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

// MaxDriversPerSide is how many inputs Drivers names on each side (raising, lowering the risk).
const MaxDriversPerSide = 4

// OtherDrivers is the name of the driver that adds up the contributions of the inputs not named.
const OtherDrivers = "(other inputs)"

// drivers names, from x (the columns that Score mapped) and contrib (their contributions to the
// margin, from scoring.Evaluator.Explain), the MaxDriversPerSide inputs that raised the risk most
// and those that lowered it most, each with its contribution to the margin (its one-hot columns
// added up), ordered from most raising to most lowering. The contributions of the remaining
// inputs are added up in one OtherDrivers entry, so that the base and the drivers' contributions
// add up to the margin. It makes one allocation, the drivers and their slice together (a
// driverBlock), nothing else for up to 64 inputs; a response carries at most
// 2·MaxDriversPerSide+1 of them.
func (m *Model) drivers(x, contrib []float64) (drivers []*churnv1.Driver) {
	type item struct {
		c, v float64
		name string
	}
	var buf [64]item
	items := buf[:0]
	for _, s := range m.spans {
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
		// Insertion sort by contribution, largest first; stable, and fast for a few dozen inputs.
		items = append(items, item{})
		i := len(items) - 1
		for ; i > 0 && items[i-1].c < c; i-- {
			items[i] = items[i-1]
		}
		items[i] = item{c, v, s.name}
	}
	// Keep the strongest on each side; items is sorted, so they are at the two ends.
	up, down := 0, 0
	for up < len(items) && up < MaxDriversPerSide && items[up].c > 0 {
		up++
	}
	for down < len(items)-up && down < MaxDriversPerSide && items[len(items)-1-down].c < 0 {
		down++
	}
	var other float64
	rest := items[up : len(items)-down]
	for _, it := range rest {
		other += it.c
	}
	n := up + down
	if len(rest) > 0 {
		n++
	}
	blk := new(driverBlock)
	drivers = blk.ptrs[:n:n]
	set := func(i int, name string, v, c float64) {
		blk.slab[i].Feature, blk.slab[i].Value, blk.slab[i].Contribution = name, v, c
		drivers[i] = &blk.slab[i]
	}
	k := 0
	for _, it := range items[:up] {
		set(k, it.name, it.v, it.c)
		k++
	}
	if len(rest) > 0 {
		set(k, OtherDrivers, float64(len(rest)), other)
		k++
	}
	for _, it := range items[len(items)-down:] {
		set(k, it.name, it.v, it.c)
		k++
	}
	return drivers
}

// driverBlock holds the drivers of one response and the slice that points at them, so that they
// are one allocation instead of two: the cost of Drivers is mostly allocation and garbage
// collection, not arithmetic. A model with 2·MaxDriversPerSide inputs or more, the usual case,
// fills it; a smaller one leaves a few structs unused.
type driverBlock struct {
	slab [2*MaxDriversPerSide + 1]churnv1.Driver
	ptrs [2*MaxDriversPerSide + 1]*churnv1.Driver
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
