package features

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
)

// TypedField is a typed field of CustomerFeatures as a bundle source names it: group.field, in
// the proto's field names (complaints.count_30d).
type TypedField struct {
	// Source is the name a bundle (and a dataset spec) reads it by.
	Source string
	// Unit says what the number counts, for the docs; empty for text.
	Unit string
	// Min and Max bound a valid value (Max is math.MaxFloat64 when there is no upper bound);
	// every double must also be finite. Unused for text.
	Min, Max float64
	// Text marks a string field, which a bundle reads as a categorical input; the others are
	// doubles, read as numeric inputs.
	Text bool

	num func(*churnv1.CustomerFeatures) *float64 // a double field's pointer, nil when absent
	str func(*churnv1.CustomerFeatures) *string  // a string field's pointer, nil when absent
}

// noMax is the upper bound of a double that must only be finite and >= a lower bound.
const noMax = math.MaxFloat64

// typedFields is the one table of CustomerFeatures' typed fields: which sources a bundle may
// read, their types, how a request reads them, their valid ranges (validate.go), and the docs
// (docs/MODELS.md's table is rendered from it, and a test fails when they differ). Adding a typed
// field to the proto takes one entry here; a test fails when a proto field has none.
var typedFields = [...]TypedField{
	{Source: "activity.days_since_last_active", Unit: "days", Max: noMax, num: double((*churnv1.CustomerFeatures).GetActivity, func(a *churnv1.Activity) *float64 { return a.DaysSinceLastActive })},
	{Source: "activity.active_days_30d", Unit: "days in the last 30", Max: 31, num: double((*churnv1.CustomerFeatures).GetActivity, func(a *churnv1.Activity) *float64 { return a.ActiveDays_30D })},
	{Source: "activity.usage_30d", Unit: "usage in the last 30 days, in the product's own unit", Max: noMax, num: double((*churnv1.CustomerFeatures).GetActivity, func(a *churnv1.Activity) *float64 { return a.Usage_30D })},
	{Source: "activity.usage_prev_30d", Unit: "usage in the 30 days before, same unit", Max: noMax, num: double((*churnv1.CustomerFeatures).GetActivity, func(a *churnv1.Activity) *float64 { return a.UsagePrev_30D })},
	{Source: "complaints.count_30d", Unit: "complaints in the last 30 days (at most count_90d)", Max: noMax, num: double((*churnv1.CustomerFeatures).GetComplaints, func(c *churnv1.Complaints) *float64 { return c.Count_30D })},
	{Source: "complaints.count_90d", Unit: "complaints in the last 90 days", Max: noMax, num: double((*churnv1.CustomerFeatures).GetComplaints, func(c *churnv1.Complaints) *float64 { return c.Count_90D })},
	{Source: "complaints.open", Unit: "complaints still open", Max: noMax, num: double((*churnv1.CustomerFeatures).GetComplaints, func(c *churnv1.Complaints) *float64 { return c.Open })},
	{Source: "complaints.escalated_90d", Unit: "complaints escalated in the last 90 days", Max: noMax, num: double((*churnv1.CustomerFeatures).GetComplaints, func(c *churnv1.Complaints) *float64 { return c.Escalated_90D })},
	{Source: "service.tickets_90d", Unit: "support tickets in the last 90 days", Max: noMax, num: double((*churnv1.CustomerFeatures).GetService, func(s *churnv1.ServiceResponse) *float64 { return s.Tickets_90D })},
	{Source: "service.avg_first_response_hours", Unit: "hours", Max: noMax, num: double((*churnv1.CustomerFeatures).GetService, func(s *churnv1.ServiceResponse) *float64 { return s.AvgFirstResponseHours })},
	{Source: "service.p90_first_response_hours", Unit: "hours", Max: noMax, num: double((*churnv1.CustomerFeatures).GetService, func(s *churnv1.ServiceResponse) *float64 { return s.P90FirstResponseHours })},
	{Source: "service.avg_resolution_hours", Unit: "hours", Max: noMax, num: double((*churnv1.CustomerFeatures).GetService, func(s *churnv1.ServiceResponse) *float64 { return s.AvgResolutionHours })},
	{Source: "service.sla_breaches_90d", Unit: "SLA breaches in the last 90 days", Max: noMax, num: double((*churnv1.CustomerFeatures).GetService, func(s *churnv1.ServiceResponse) *float64 { return s.SlaBreaches_90D })},
	{Source: "account.tenure_months", Unit: "months", Max: noMax, num: double((*churnv1.CustomerFeatures).GetAccount, func(a *churnv1.Account) *float64 { return a.TenureMonths })},
	{Source: "account.monthly_revenue", Unit: "account currency per month", Max: noMax, num: double((*churnv1.CustomerFeatures).GetAccount, func(a *churnv1.Account) *float64 { return a.MonthlyRevenue })},
	{Source: "account.contract", Text: true, str: text((*churnv1.CustomerFeatures).GetAccount, func(a *churnv1.Account) *string { return a.Contract })},
	{Source: "account.satisfaction", Unit: "score on a 1..5 scale", Min: 1, Max: 5, num: double((*churnv1.CustomerFeatures).GetAccount, func(a *churnv1.Account) *float64 { return a.Satisfaction })},
}

// double makes the reader of a double field of one of CustomerFeatures' groups: nil when the
// group or the field is absent.
func double[G any](group func(*churnv1.CustomerFeatures) *G, field func(*G) *float64) func(*churnv1.CustomerFeatures) *float64 {
	return func(f *churnv1.CustomerFeatures) *float64 {
		if g := group(f); g != nil {
			return field(g)
		}
		return nil
	}
}

// text is double for a string field.
func text[G any](group func(*churnv1.CustomerFeatures) *G, field func(*G) *string) func(*churnv1.CustomerFeatures) *string {
	return func(f *churnv1.CustomerFeatures) *string {
		if g := group(f); g != nil {
			return field(g)
		}
		return nil
	}
}

// typedField returns the index of a typed source in typedFields, or -1.
func typedField(source string) int {
	for i := range typedFields {
		if typedFields[i].Source == source {
			return i
		}
	}
	return -1
}

// Paths of the request's parts that violations name.
const (
	pathPrefix      = "features." // a bundle source's request path is pathPrefix + source
	pathNumeric     = "features.numeric"
	pathCategorical = "features.categorical"
)

// The two fields of the one cross-field rule, complaints.count_30d <= complaints.count_90d.
var (
	count30d = typedField("complaints.count_30d")
	count90d = typedField("complaints.count_90d")
)

// SourceType returns the input type a source yields (bundle.TypeNumeric or TypeCategorical): a
// typed field of the table, numeric.<key> or categorical.<key>. An unknown source is an error that
// lists the typed fields.
func SourceType(source string) (string, error) {
	if i := typedField(source); i >= 0 {
		if typedFields[i].Text {
			return bundle.TypeCategorical, nil
		}
		return bundle.TypeNumeric, nil
	}
	if key, ok := strings.CutPrefix(source, bundle.NumericPrefix); ok && bundle.ValidKey(key) {
		return bundle.TypeNumeric, nil
	}
	if key, ok := strings.CutPrefix(source, bundle.CategoricalPrefix); ok && bundle.ValidKey(key) {
		return bundle.TypeCategorical, nil
	}
	names := make([]string, len(typedFields))
	for i := range typedFields {
		names[i] = typedFields[i].Source
	}
	return "", fmt.Errorf("source %s is not a CustomerFeatures field: want numeric.<key>, categorical.<key> (a key of at most %d bytes without white space) or a typed field: %s",
		quote(source), bundle.MaxKeyLen, strings.Join(names, ", "))
}

// Set stores value in f under a bundle source name: a typed field such as complaints.count_30d
// or account.contract, or numeric.<key> / categorical.<key>. A numeric value is parsed with
// strconv.ParseFloat. It does not validate the value (Map does); it is how command-line
// tools build a request from source=value pairs.
func Set(f *churnv1.CustomerFeatures, source, value string) error {
	typ, err := SourceType(source)
	if err != nil {
		return err
	}
	if typ == bundle.TypeCategorical {
		return SetText(f, source, value)
	}
	x, err := strconv.ParseFloat(value, 64)
	if err != nil {
		return fmt.Errorf("source %s is numeric: %s is not a number", source, quote(value))
	}
	return SetNumber(f, source, x)
}

// SetNumber stores x in f under a numeric source: a typed double field or numeric.<key>.
func SetNumber(f *churnv1.CustomerFeatures, source string, x float64) error {
	if f == nil {
		return fmt.Errorf("set %s: nil CustomerFeatures", source)
	}
	if typ, err := SourceType(source); err != nil {
		return err
	} else if typ != bundle.TypeNumeric {
		return fmt.Errorf("source %s is categorical, not numeric", source)
	}
	if key, ok := strings.CutPrefix(source, bundle.NumericPrefix); ok {
		if f.Numeric == nil {
			f.Numeric = map[string]float64{}
		}
		f.Numeric[key] = x
		return nil
	}
	return setTyped(f, source, protoreflect.ValueOfFloat64(x))
}

// SetText stores s in f under a categorical source: a typed string field or categorical.<key>.
func SetText(f *churnv1.CustomerFeatures, source, s string) error {
	if f == nil {
		return fmt.Errorf("set %s: nil CustomerFeatures", source)
	}
	if typ, err := SourceType(source); err != nil {
		return err
	} else if typ != bundle.TypeCategorical {
		return fmt.Errorf("source %s is numeric, not categorical", source)
	}
	if key, ok := strings.CutPrefix(source, bundle.CategoricalPrefix); ok {
		if f.Categorical == nil {
			f.Categorical = map[string]string{}
		}
		f.Categorical[key] = s
		return nil
	}
	return setTyped(f, source, protoreflect.ValueOfString(s))
}

// Unset removes the value of a source from f: a typed field is cleared, a map entry deleted.
func Unset(f *churnv1.CustomerFeatures, source string) error {
	if _, err := SourceType(source); err != nil {
		return err
	}
	if key, ok := strings.CutPrefix(source, bundle.NumericPrefix); ok {
		delete(f.GetNumeric(), key)
		return nil
	}
	if key, ok := strings.CutPrefix(source, bundle.CategoricalPrefix); ok {
		delete(f.GetCategorical(), key)
		return nil
	}
	group, field, err := protoField(source)
	if err != nil {
		return err
	}
	if msg := f.ProtoReflect(); msg.Has(group) {
		msg.Mutable(group).Message().Clear(field)
	}
	return nil
}

// setTyped stores v in the typed field named by source, creating its group, through protobuf
// reflection: a source's name is its proto field path, so setting needs nothing of the table.
func setTyped(f *churnv1.CustomerFeatures, source string, v protoreflect.Value) error {
	group, field, err := protoField(source)
	if err != nil {
		return err
	}
	f.ProtoReflect().Mutable(group).Message().Set(field, v)
	return nil
}

// protoField resolves a typed source such as account.contract to its group field in
// CustomerFeatures and the scalar field inside it.
func protoField(source string) (group, field protoreflect.FieldDescriptor, err error) {
	g, name, ok := strings.Cut(source, ".")
	if !ok {
		return nil, nil, fmt.Errorf("source %s is not group.field", quote(source))
	}
	group = (&churnv1.CustomerFeatures{}).ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(g))
	if group == nil || group.Message() == nil || group.IsList() || group.IsMap() {
		return nil, nil, fmt.Errorf("source %s: CustomerFeatures has no group %q", quote(source), g)
	}
	field = group.Message().Fields().ByName(protoreflect.Name(name))
	if field == nil || field.IsList() || field.IsMap() {
		return nil, nil, fmt.Errorf("source %s: %s has no field %q", quote(source), group.Message().Name(), name)
	}
	return group, field, nil
}
