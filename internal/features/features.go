// Package features validates a CustomerFeatures message and maps it to a model's input vector by
// a bundle's schema: its one job is to turn what a caller sent into the columns a model reads.
//
// The typed fields of CustomerFeatures (complaints.count_30d, account.contract, ...) are one
// table (typedFields in source.go): which sources a bundle may read and their types (SourceType),
// how a request reads them, their valid ranges (validate.go) and the docs' table come from it, so a
// new typed field is the proto field and one entry there.
//
// New compiles a manifest's input schema (bundle.Manifest.Inputs), which bundle.Validate has
// checked, into a Mapper; Mapper.Map validates a request and writes its columns: the source read,
// the missing-value policy, the derivation, the transform, the standardisation and the one-hot
// encoding, exactly as internal/bundle documents them. Map checks every typed field and map entry
// of a request, whether or not the schema reads it, and allocates nothing when the request is
// valid.
//
// Set, SetNumber and SetText store a value in a CustomerFeatures under a source name as a bundle
// spells it (complaints.count_30d, numeric.calls), for the tools that build requests from data.
//
// Errors about a request are *ValidationError values that name each bad field by its path in
// the ScoreRequest (for example features.complaints.count_30d or features.numeric.calls); the
// server turns them into INVALID_ARGUMENT with the fields in its details. This package knows
// nothing of gRPC.
package features

import (
	"slices"
	"strconv"
	"strings"

	"github.com/churnhq/churn/internal/bundle"
)

// Limits of a request's free-form parts.
const (
	// maxEntries bounds the entries of the numeric and of the categorical map.
	maxEntries = 256
	// maxValueLen bounds a categorical value and account.contract, in bytes.
	maxValueLen = 256
	// maxViolations bounds the violations of one error, so that a hostile request cannot make a
	// huge error; the rest are counted in a last violation.
	maxViolations = 100
)

// Violation names one bad field by its path in the ScoreRequest, e.g. "features.complaints.count_30d",
// "features.numeric.call_failures", "features.categorical.plan", "features.account.contract".
// Description says what was wrong and what is allowed.
type Violation struct{ Field, Description string }

// ValidationError is every violation found in one request. Mapper.Map returns it as
// *ValidationError, always with at least one violation.
type ValidationError struct{ Violations []Violation }

// Error joins the violations as "field: description" with "; ".
func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.Field)
		b.WriteString(": ")
		b.WriteString(v.Description)
	}
	return b.String()
}

// collector gathers the violations of one request. Its zero value is ready; it allocates only
// when a violation is added.
type collector struct {
	vs      []Violation
	dropped int
}

// add records a violation.
func (c *collector) add(field, desc string) {
	if len(c.vs) >= maxViolations {
		c.dropped++
		return
	}
	c.vs = append(c.vs, Violation{Field: field, Description: desc})
}

// addOnce records a violation unless field already has one: a value that failed validation is
// not reported again by the mapping that reads it.
func (c *collector) addOnce(field, desc string) {
	if c.has(field) {
		return
	}
	c.add(field, desc)
}

// has reports whether field already has a violation.
func (c *collector) has(field string) bool {
	for i := range c.vs {
		if c.vs[i].Field == field {
			return true
		}
	}
	return false
}

// sortFrom sorts the violations from index i on by field, so that violations found while ranging
// over a map come out in the same order every time.
func (c *collector) sortFrom(i int) {
	if len(c.vs)-i > 1 {
		slices.SortFunc(c.vs[i:], func(a, b Violation) int {
			if n := strings.Compare(a.Field, b.Field); n != 0 {
				return n
			}
			return strings.Compare(a.Description, b.Description)
		})
	}
}

// err returns the violations as a *ValidationError, or nil when there are none.
func (c *collector) err() error {
	if len(c.vs) == 0 {
		return nil
	}
	vs := c.vs
	if c.dropped > 0 {
		vs = append(vs, Violation{Field: "features", Description: "and " + strconv.Itoa(c.dropped) + " more violations, not listed"})
	}
	return &ValidationError{Violations: vs}
}

// formatFloat formats x as the descriptions show numbers: shortest form, NaN, +Inf, -Inf.
func formatFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// quote quotes a caller's string for a description, cut to a short, marked prefix.
func quote(s string) string { return bundle.Quote(s) }
