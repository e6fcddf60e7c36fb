package features

import churnv1 "github.com/churnhq/churn/api/churn/v1"

// TypedFields returns the table of typed fields, for the tests that hold it against the proto
// and the docs.
func TypedFields() []TypedField { return typedFields[:] }

// Validate is Map's validation of f without a schema: the violations of every typed field and
// map entry, whether or not a model reads it (the rules are validate.go's).
func Validate(f *churnv1.CustomerFeatures) error {
	var c collector
	c.validateTyped(f)
	if len(f.GetNumeric()) > 0 {
		c.numericMap(f.Numeric)
	}
	if len(f.GetCategorical()) > 0 {
		c.categoricalMap(f.Categorical)
	}
	return c.err()
}
