package features

// TypedFields returns the table of typed fields, for the tests that hold it against the proto
// and the docs.
func TypedFields() []TypedField { return typedFields[:] }
