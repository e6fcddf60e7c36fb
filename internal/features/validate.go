package features

import (
	"math"
	"strconv"
	"unicode/utf8"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
)

// Validate checks every typed field and map entry of f, whether or not any model reads it, and
// returns every violation it finds as a *ValidationError. A nil f is valid.
//
// The rules: every double is finite; counts (complaints.*, service.tickets_90d,
// service.sla_breaches_90d), days, hours, usage, tenure and revenue are >= 0;
// activity.active_days_30d is in 0..31; account.satisfaction is in 1..5; complaints.count_30d is
// at most complaints.count_90d when both are set; account.contract and categorical values are
// valid UTF-8 of at most 256 bytes; each map has at most 256 entries whose keys are non-empty
// and at most bundle.MaxKeyLen bytes; numeric values are finite. A violation of a map entry is
// named by its key (features.numeric.calls); a bad key, or too many entries, by the map.
//
// Validate allocates only to build the error.
func Validate(f *churnv1.CustomerFeatures) error {
	var c collector
	c.validate(f)
	return c.err()
}

// validate adds the violations of f.
func (c *collector) validate(f *churnv1.CustomerFeatures) {
	c.validateTyped(f)
	if len(f.GetNumeric()) > 0 {
		c.numericMap(f.Numeric)
	}
	if len(f.GetCategorical()) > 0 {
		c.categoricalMap(f.Categorical)
	}
}

// validateTyped adds the violations of f's typed fields.
func (c *collector) validateTyped(f *churnv1.CustomerFeatures) {
	if f == nil {
		return
	}
	if a := f.Activity; a != nil {
		c.within(pathDaysSinceLastActive, a.DaysSinceLastActive, 0, noMax)
		c.within(pathActiveDays30d, a.ActiveDays_30D, 0, 31)
		c.within(pathUsage30d, a.Usage_30D, 0, noMax)
		c.within(pathUsagePrev30d, a.UsagePrev_30D, 0, noMax)
	}
	if cm := f.Complaints; cm != nil {
		ok30 := c.within(pathCount30d, cm.Count_30D, 0, noMax)
		ok90 := c.within(pathCount90d, cm.Count_90D, 0, noMax)
		c.within(pathOpen, cm.Open, 0, noMax)
		c.within(pathEscalated90d, cm.Escalated_90D, 0, noMax)
		if ok30 && ok90 && cm.Count_30D != nil && cm.Count_90D != nil && *cm.Count_30D > *cm.Count_90D {
			c.add(pathCount30d, "must be <= count_90d ("+formatFloat(*cm.Count_90D)+"), got "+formatFloat(*cm.Count_30D))
		}
	}
	if s := f.Service; s != nil {
		c.within(pathTickets90d, s.Tickets_90D, 0, noMax)
		c.within(pathAvgFirstResponseHours, s.AvgFirstResponseHours, 0, noMax)
		c.within(pathP90FirstResponseHours, s.P90FirstResponseHours, 0, noMax)
		c.within(pathAvgResolutionHours, s.AvgResolutionHours, 0, noMax)
		c.within(pathSLABreaches90d, s.SlaBreaches_90D, 0, noMax)
	}
	if a := f.Account; a != nil {
		c.within(pathTenureMonths, a.TenureMonths, 0, noMax)
		c.within(pathMonthlyRevenue, a.MonthlyRevenue, 0, noMax)
		if a.Contract != nil {
			c.text(pathContract, *a.Contract)
		}
		c.within(pathSatisfaction, a.Satisfaction, 1, 5)
	}
}

// noMax is the upper bound of a double that must only be finite and >= a lower bound.
const noMax = math.MaxFloat64

// within checks an optional double that must be in lo..hi, and reports whether it is absent or
// valid. It is small enough to be inlined, so that a valid field costs two comparisons.
func (c *collector) within(path string, p *float64, lo, hi float64) bool {
	if p == nil || (*p >= lo && *p <= hi) {
		return true
	}
	return c.notWithin(path, p, lo, hi)
}

// notWithin adds the violation of a double *p outside lo..hi; a non-finite one is reported as
// such. It returns false.
func (c *collector) notWithin(path string, p *float64, lo, hi float64) bool {
	x := *p
	var want string
	switch {
	case !finite(x):
		want = "must be a finite number"
	case hi == noMax:
		want = "must be >= " + formatFloat(lo)
	default:
		want = "must be in " + formatFloat(lo) + ".." + formatFloat(hi)
	}
	c.add(path, want+", got "+formatFloat(x))
	return false
}

// text checks a string field: valid UTF-8 of at most maxValueLen bytes.
func (c *collector) text(path, s string) {
	if len(s) > maxValueLen || !validUTF8(s) {
		c.add(path, textProblem(s))
	}
}

// textProblem describes what is wrong with a string that is too long or not UTF-8.
func textProblem(s string) string {
	if len(s) > maxValueLen {
		return "must be at most " + strconv.Itoa(maxValueLen) + " bytes, got " + strconv.Itoa(len(s))
	}
	return "must be valid UTF-8"
}

// validUTF8 is utf8.ValidString with a quicker path for the short ASCII strings requests hold.
func validUTF8(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return utf8.ValidString(s[i:])
		}
	}
	return true
}

// numericMap checks the numeric map: its size, its keys and finite values.
func (c *collector) numericMap(m map[string]float64) {
	if len(m) > maxEntries {
		c.tooMany(pathNumeric, len(m))
		return
	}
	start := len(c.vs)
	for k, x := range m {
		if k == "" || len(k) > bundle.MaxKeyLen {
			c.badKey(pathNumeric, k)
			continue
		}
		if !finite(x) {
			c.entry(pathNumeric, k, "must be a finite number, got "+formatFloat(x))
		}
	}
	c.sortFrom(start)
}

// categoricalMap checks the categorical map: its size, its keys and its values.
func (c *collector) categoricalMap(m map[string]string) {
	if len(m) > maxEntries {
		c.tooMany(pathCategorical, len(m))
		return
	}
	start := len(c.vs)
	for k, v := range m {
		if k == "" || len(k) > bundle.MaxKeyLen {
			c.badKey(pathCategorical, k)
			continue
		}
		if len(v) > maxValueLen || !validUTF8(v) {
			c.entry(pathCategorical, k, textProblem(v))
		}
	}
	c.sortFrom(start)
}

// tooMany adds the violation of a map with too many entries. Its entries are not checked one by
// one, which keeps the error small.
func (c *collector) tooMany(path string, n int) {
	c.add(path, "must have at most "+strconv.Itoa(maxEntries)+" entries, got "+strconv.Itoa(n))
}

// badKey adds the violation of a map key that is empty or too long. It is reported on the map,
// not on a path that would contain it.
func (c *collector) badKey(path, k string) {
	if k == "" {
		c.add(path, "keys must not be empty")
		return
	}
	c.add(path, "key "+quote(k)+" is "+strconv.Itoa(len(k))+" bytes, at most "+strconv.Itoa(bundle.MaxKeyLen)+" allowed")
}

// entry adds the violation of the map entry with key k. Its path is map.key, unless k is not
// valid UTF-8 and so cannot be part of a path: then the map is named. (A key is not otherwise
// required to be UTF-8: protobuf decoding already refuses one that is not, and such a key can
// never match a schema's key.)
func (c *collector) entry(path, k, desc string) {
	if !validUTF8(k) {
		c.add(path, "key "+quote(k)+": "+desc)
		return
	}
	c.add(path+"."+k, desc)
}

// finite reports whether x is neither NaN nor infinite.
func finite(x float64) bool { return x-x == 0 }
