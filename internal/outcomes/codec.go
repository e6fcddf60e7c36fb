package outcomes

import (
	"strconv"
	"strings"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// incr is one counter's increment: what one outcome adds to a day's aggregates. The in-process
// store applies them to its structs, the Redis store sends them as HINCRBYFLOAT and applies what
// it reads back the same way, so both count alike.
//
// KPI counters: ch, re, wb (CHURNED, RETAINED, WON_BACK outcomes), rev (revenue lost), norev
// (churners without revenue), jch (churners joined to a score), rn<r>, rr<r> (churners and their
// revenue per reason), wf<c>, wc<c> (flagged and flagged churned per warning code), a<a>.<col>
// (per action, col 0 churned, 1 retained, 2 won back). Histogram counters: b<c>.<bin>, dn<c>.<d>,
// ds<c>.<d> (bin count, decile count and sum of p, class c 0 retained 1 churned), sp<c>, sq<c>
// (sums of p and p²).
type incr struct {
	name string
	by   float64
}

func itoa(i int) string { return strconv.Itoa(i) }

// kpiIncrs is what a valid outcome joined to score (nil: unjoined) adds to a segment's counters.
func kpiIncrs(o *churnv1.Outcome, score *churnv1.ScoreResponse) []incr {
	var out []incr
	col := 0
	switch o.GetType() {
	case churnv1.OutcomeType_OUTCOME_TYPE_CHURNED:
		out = append(out, incr{"ch", 1})
		if o.MonthlyRevenue != nil {
			out = append(out, incr{"rev", o.GetMonthlyRevenue()})
		} else {
			out = append(out, incr{"norev", 1})
		}
		r := itoa(int(o.GetReason()))
		out = append(out, incr{"rn" + r, 1}, incr{"rr" + r, o.GetMonthlyRevenue()})
	case churnv1.OutcomeType_OUTCOME_TYPE_RETAINED:
		out = append(out, incr{"re", 1})
		col = 1
	case churnv1.OutcomeType_OUTCOME_TYPE_WON_BACK:
		out = append(out, incr{"wb", 1})
		col = 2
	}
	if score == nil {
		return out
	}
	if a := int(score.GetAction().GetType()); a >= 0 && a < numActions {
		out = append(out, incr{"a" + itoa(a) + "." + itoa(col), 1})
	}
	if col == 2 {
		return out
	}
	churned := col == 0
	if churned {
		out = append(out, incr{"jch", 1})
	}
	var seen [numWarnings]bool
	for _, w := range score.GetWarnings() {
		c := int(w.GetCode())
		if c <= 0 || c >= numWarnings || seen[c] {
			continue
		}
		seen[c] = true
		out = append(out, incr{"wf" + itoa(c), 1})
		if churned {
			out = append(out, incr{"wc" + itoa(c), 1})
		}
	}
	return out
}

// Sizes of the per-code arrays: the enums' values (UNSPECIFIED included).
const (
	numReasons  = 10
	numWarnings = 9
	numActions  = 6
)

// index splits "<prefix><i>" or "<prefix><i>.<j>" and checks the bounds; ok false otherwise.
func index(name, prefix string, n, m int) (i, j int, ok bool) {
	rest, found := strings.CutPrefix(name, prefix)
	if !found {
		return 0, 0, false
	}
	a, b, two := strings.Cut(rest, ".")
	i, err := strconv.Atoi(a)
	if err != nil || i < 0 || i >= n {
		return 0, 0, false
	}
	if m == 0 {
		return i, 0, !two
	}
	j, err = strconv.Atoi(b)
	if !two || err != nil || j < 0 || j >= m {
		return 0, 0, false
	}
	return i, j, true
}

// apply adds one counter's increment; unknown names are ignored (reported false).
func (k *kpi) apply(name string, v float64) bool {
	n := int64(v)
	switch name {
	case "ch":
		k.churned += n
	case "re":
		k.retained += n
	case "wb":
		k.wonBack += n
	case "rev":
		k.revenueLost += v
	case "norev":
		k.lostNoRevenue += n
	case "jch":
		k.joinedChurned += n
	default:
		if i, _, ok := index(name, "rn", numReasons, 0); ok {
			k.reasonN[i] += n
		} else if i, _, ok := index(name, "rr", numReasons, 0); ok {
			k.reasonRev[i] += v
		} else if i, _, ok := index(name, "wf", numWarnings, 0); ok {
			k.warnFlagged[i] += n
		} else if i, _, ok := index(name, "wc", numWarnings, 0); ok {
			k.warnChurned[i] += n
		} else if i, j, ok := index(name, "a", numActions, 3); ok {
			k.actions[i][j] += n
		} else {
			return false
		}
	}
	return true
}

// histIncrs is what a customer of class churned predicted p adds to a version's histogram.
func histIncrs(p float64, churned bool) []incr {
	c := "0"
	if churned {
		c = "1"
	}
	d := itoa(binOf(p, deciles))
	return []incr{
		{"b" + c + "." + itoa(binOf(p, Bins)), 1},
		{"dn" + c + "." + d, 1},
		{"ds" + c + "." + d, p},
		{"sp" + c, p},
		{"sq" + c, p * p},
	}
}

// apply adds one counter's increment; unknown names are ignored (reported false).
func (h *histogram) apply(name string, v float64) bool {
	if c, b, ok := index(name, "b", 2, Bins); ok {
		h.bins[c][b] += uint32(v)
	} else if c, d, ok := index(name, "dn", 2, deciles); ok {
		h.decN[c][d] += int64(v)
	} else if c, d, ok := index(name, "ds", 2, deciles); ok {
		h.decSum[c][d] += v
	} else if c, _, ok := index(name, "sp", 2, 0); ok {
		h.sumP[c] += v
	} else if c, _, ok := index(name, "sq", 2, 0); ok {
		h.sumP2[c] += v
	} else {
		return false
	}
	return true
}
