package features

// Request validation. Map checks every typed field and map entry of a request, whether or not
// its schema reads it, and reports every violation it finds as a *ValidationError. The rules:
// every typed double is finite and within its range in the table of typed fields (counts, days,
// hours, usage, tenure and revenue >= 0, activity.active_days_30d in 0..31,
// account.satisfaction in 1..5); complaints.count_30d is at most complaints.count_90d when both
// are set and valid; typed text fields (account.contract) and categorical values are valid UTF-8
// of at most 256 bytes; each map has at most 256 entries whose keys are non-empty and at most
// bundle.MaxKeyLen bytes; numeric values are finite. A violation of a map entry is named by its
// key (features.numeric.calls); a bad key, or too many entries, by the map. Validation allocates
// only to build the error.

import (
	"strconv"
	"unicode/utf8"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
)

// validateTyped adds the violations of f's typed fields, by the table of typed fields, and of
// the one cross-field rule: complaints.count_30d <= complaints.count_90d.
func (c *collector) validateTyped(f *churnv1.CustomerFeatures) {
	if f == nil {
		return
	}
	for i := range typedFields {
		t := &typedFields[i]
		if t.Text {
			if p := t.str(f); p != nil && (len(*p) > maxValueLen || !validUTF8(*p)) {
				c.add(pathPrefix+t.Source, textProblem(*p))
			}
			continue
		}
		c.within(t, t.num(f))
	}
	n30, n90 := typedFields[count30d].num(f), typedFields[count90d].num(f)
	if n30 != nil && n90 != nil && *n30 > *n90 && finite(*n90) && *n30 >= 0 && *n90 >= 0 && finite(*n30) {
		c.add(pathPrefix+typedFields[count30d].Source, "must be <= count_90d ("+formatFloat(*n90)+"), got "+formatFloat(*n30))
	}
}

// within checks a typed double, absent (nil) or in t.Min..t.Max. It is small enough to be
// inlined, so that a valid field costs two comparisons.
func (c *collector) within(t *TypedField, p *float64) {
	if p == nil || (*p >= t.Min && *p <= t.Max) {
		return
	}
	c.notWithin(t, *p)
}

// notWithin adds the violation of a typed double x outside t.Min..t.Max; a non-finite one is
// reported as such.
func (c *collector) notWithin(t *TypedField, x float64) {
	var want string
	switch {
	case !finite(x):
		want = "must be a finite number"
	case t.Max == noMax:
		want = "must be >= " + formatFloat(t.Min)
	default:
		want = "must be in " + formatFloat(t.Min) + ".." + formatFloat(t.Max)
	}
	c.add(pathPrefix+t.Source, want+", got "+formatFloat(x))
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
	c.add(path, "key "+quote(k)+" is longer than the "+strconv.Itoa(bundle.MaxKeyLen)+" bytes allowed")
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
