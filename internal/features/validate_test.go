package features_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/reflect/protoreflect"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
)

// feats builds CustomerFeatures from source=value pairs with features.Set.
func feats(t testing.TB, pairs ...string) *churnv1.CustomerFeatures {
	t.Helper()
	f := &churnv1.CustomerFeatures{}
	for _, p := range pairs {
		source, value, _ := strings.Cut(p, "=")
		if err := features.Set(f, source, value); err != nil {
			t.Fatalf("Set(%q): %v", p, err)
		}
	}
	return f
}

// violations returns the violations of a *ValidationError, nil for nil, and fails on any other
// error.
func violations(t testing.TB, err error) []features.Violation {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *features.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	if len(ve.Violations) == 0 {
		t.Fatalf("a *ValidationError without violations")
	}
	return ve.Violations
}

// validFeatures sets every typed field and both maps to valid values.
func validFeatures(t testing.TB) *churnv1.CustomerFeatures {
	return feats(t,
		"activity.days_since_last_active=3", "activity.active_days_30d=20", "activity.usage_30d=120.5", "activity.usage_prev_30d=130",
		"complaints.count_30d=1", "complaints.count_90d=2", "complaints.open=1", "complaints.escalated_90d=0",
		"service.tickets_90d=4", "service.avg_first_response_hours=2.5", "service.p90_first_response_hours=9",
		"service.avg_resolution_hours=30", "service.sla_breaches_90d=1",
		"account.tenure_months=24", "account.monthly_revenue=49.9", "account.contract=one_year", "account.satisfaction=4",
		"numeric.call_failures=3", "numeric.calls=40", "categorical.plan=pro", "categorical.region=eu")
}

func TestValidate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 257)
	tests := []struct {
		name string
		f    *churnv1.CustomerFeatures
		want []features.Violation
	}{
		{name: "nil", f: nil},
		{name: "empty", f: &churnv1.CustomerFeatures{}},
		{name: "empty groups", f: &churnv1.CustomerFeatures{Activity: &churnv1.Activity{}, Complaints: &churnv1.Complaints{},
			Service: &churnv1.ServiceResponse{}, Account: &churnv1.Account{}, Numeric: map[string]float64{}, Categorical: map[string]string{}}},
		{name: "every field valid", f: validFeatures(t)},
		{name: "bounds", f: feats(t, "activity.active_days_30d=0", "account.satisfaction=1", "activity.days_since_last_active=0",
			"complaints.count_30d=0", "complaints.count_90d=0", "account.contract="+strings.Repeat("é", 128),
			"numeric."+strings.Repeat("k", bundle.MaxKeyLen)+"=-1e308", "categorical.c="+strings.Repeat("v", 256))},
		{name: "upper bounds", f: feats(t, "activity.active_days_30d=31", "account.satisfaction=5", "complaints.count_30d=4", "complaints.count_90d=4")},
		{name: "contract empty is valid", f: feats(t, "account.contract=")},

		{name: "negative days", f: feats(t, "activity.days_since_last_active=-1"),
			want: []features.Violation{{"features.activity.days_since_last_active", "must be >= 0, got -1"}}},
		{name: "active days above 31", f: feats(t, "activity.active_days_30d=32"),
			want: []features.Violation{{"features.activity.active_days_30d", "must be in 0..31, got 32"}}},
		{name: "active days negative", f: feats(t, "activity.active_days_30d=-0.5"),
			want: []features.Violation{{"features.activity.active_days_30d", "must be in 0..31, got -0.5"}}},
		{name: "negative usage", f: feats(t, "activity.usage_30d=-2", "activity.usage_prev_30d=-3"),
			want: []features.Violation{{"features.activity.usage_30d", "must be >= 0, got -2"}, {"features.activity.usage_prev_30d", "must be >= 0, got -3"}}},
		{name: "negative complaint count", f: feats(t, "complaints.count_30d=-1"),
			want: []features.Violation{{"features.complaints.count_30d", "must be >= 0, got -1"}}},
		{name: "negative counts", f: feats(t, "complaints.count_90d=-1", "complaints.open=-2", "complaints.escalated_90d=-3"),
			want: []features.Violation{
				{"features.complaints.count_90d", "must be >= 0, got -1"},
				{"features.complaints.open", "must be >= 0, got -2"},
				{"features.complaints.escalated_90d", "must be >= 0, got -3"},
			}},
		{name: "count_30d above count_90d", f: feats(t, "complaints.count_30d=5", "complaints.count_90d=2"),
			want: []features.Violation{{"features.complaints.count_30d", "must be <= count_90d (2), got 5"}}},
		{name: "count_30d alone is not compared", f: feats(t, "complaints.count_30d=5")},
		{name: "count_30d above an invalid count_90d is reported once", f: feats(t, "complaints.count_30d=5", "complaints.count_90d=NaN"),
			want: []features.Violation{{"features.complaints.count_90d", "must be a finite number, got NaN"}}},
		{name: "negative service values", f: feats(t, "service.tickets_90d=-1", "service.avg_first_response_hours=-2",
			"service.p90_first_response_hours=-3", "service.avg_resolution_hours=-4", "service.sla_breaches_90d=-5"),
			want: []features.Violation{
				{"features.service.tickets_90d", "must be >= 0, got -1"},
				{"features.service.avg_first_response_hours", "must be >= 0, got -2"},
				{"features.service.p90_first_response_hours", "must be >= 0, got -3"},
				{"features.service.avg_resolution_hours", "must be >= 0, got -4"},
				{"features.service.sla_breaches_90d", "must be >= 0, got -5"},
			}},
		{name: "negative account values", f: feats(t, "account.tenure_months=-1", "account.monthly_revenue=-0.01"),
			want: []features.Violation{{"features.account.tenure_months", "must be >= 0, got -1"}, {"features.account.monthly_revenue", "must be >= 0, got -0.01"}}},
		{name: "satisfaction below 1", f: feats(t, "account.satisfaction=0"),
			want: []features.Violation{{"features.account.satisfaction", "must be in 1..5, got 0"}}},
		{name: "satisfaction above 5", f: feats(t, "account.satisfaction=5.5"),
			want: []features.Violation{{"features.account.satisfaction", "must be in 1..5, got 5.5"}}},
		{name: "NaN", f: feats(t, "account.tenure_months=NaN"),
			want: []features.Violation{{"features.account.tenure_months", "must be a finite number, got NaN"}}},
		{name: "infinities", f: feats(t, "service.avg_resolution_hours=+Inf", "activity.active_days_30d=-Inf", "account.satisfaction=Inf"),
			want: []features.Violation{
				{"features.activity.active_days_30d", "must be a finite number, got -Inf"},
				{"features.service.avg_resolution_hours", "must be a finite number, got +Inf"},
				{"features.account.satisfaction", "must be a finite number, got +Inf"},
			}},
		{name: "contract too long", f: feats(t, "account.contract="+long),
			want: []features.Violation{{"features.account.contract", "must be at most 256 bytes, got 257"}}},
		{name: "contract not UTF-8", f: feats(t, "account.contract=a\xffb"),
			want: []features.Violation{{"features.account.contract", "must be valid UTF-8"}}},

		{name: "numeric NaN", f: feats(t, "numeric.calls=NaN"),
			want: []features.Violation{{"features.numeric.calls", "must be a finite number, got NaN"}}},
		{name: "numeric infinities sorted by key", f: feats(t, "numeric.b=-Inf", "numeric.a=+Inf", "numeric.c=1"),
			want: []features.Violation{{"features.numeric.a", "must be a finite number, got +Inf"}, {"features.numeric.b", "must be a finite number, got -Inf"}}},
		{name: "numeric empty key", f: &churnv1.CustomerFeatures{Numeric: map[string]float64{"": 1}},
			want: []features.Violation{{"features.numeric", "keys must not be empty"}}},
		{name: "numeric key too long", f: &churnv1.CustomerFeatures{Numeric: map[string]float64{strings.Repeat("k", 129): math.NaN()}},
			want: []features.Violation{{"features.numeric", `key "` + strings.Repeat("k", 64) + `"…(129 bytes) is longer than the 128 bytes allowed`}}},
		{name: "numeric key not UTF-8", f: &churnv1.CustomerFeatures{Numeric: map[string]float64{"a\xff": 1}}},
		{name: "numeric key not UTF-8, bad value", f: &churnv1.CustomerFeatures{Numeric: map[string]float64{"a\xff": math.Inf(-1)}},
			want: []features.Violation{{"features.numeric", `key "a\xff": must be a finite number, got -Inf`}}},
		{name: "numeric too many entries", f: &churnv1.CustomerFeatures{Numeric: manyNumeric(257, math.NaN())},
			want: []features.Violation{{"features.numeric", "must have at most 256 entries, got 257"}}},
		{name: "numeric 256 entries", f: &churnv1.CustomerFeatures{Numeric: manyNumeric(256, 1)}},

		{name: "categorical too long", f: feats(t, "categorical.plan="+long),
			want: []features.Violation{{"features.categorical.plan", "must be at most 256 bytes, got 257"}}},
		{name: "categorical not UTF-8", f: feats(t, "categorical.plan=\xc3"),
			want: []features.Violation{{"features.categorical.plan", "must be valid UTF-8"}}},
		{name: "categorical empty key", f: &churnv1.CustomerFeatures{Categorical: map[string]string{"": "a"}},
			want: []features.Violation{{"features.categorical", "keys must not be empty"}}},
		{name: "categorical key too long", f: &churnv1.CustomerFeatures{Categorical: map[string]string{strings.Repeat("é", 65): "a"}},
			want: []features.Violation{{"features.categorical", `key "` + strings.Repeat("é", 32) + `"…(130 bytes) is longer than the 128 bytes allowed`}}},
		{name: "categorical too many entries", f: &churnv1.CustomerFeatures{Categorical: manyCategorical(300)},
			want: []features.Violation{{"features.categorical", "must have at most 256 entries, got 300"}}},
		{name: "categorical empty value is valid", f: feats(t, "categorical.plan=")},

		{name: "every violation is collected", f: feats(t, "activity.days_since_last_active=-1", "complaints.count_30d=NaN",
			"account.satisfaction=9", "numeric.z=NaN", "numeric.y=Inf", "categorical.x=\xff"),
			want: []features.Violation{
				{"features.activity.days_since_last_active", "must be >= 0, got -1"},
				{"features.complaints.count_30d", "must be a finite number, got NaN"},
				{"features.account.satisfaction", "must be in 1..5, got 9"},
				{"features.numeric.y", "must be a finite number, got +Inf"},
				{"features.numeric.z", "must be a finite number, got NaN"},
				{"features.categorical.x", "must be valid UTF-8"},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := violations(t, features.Validate(tc.f))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate() violations (-want +got):\n%s", diff)
			}
		})
	}
}

func manyNumeric(n int, x float64) map[string]float64 {
	m := make(map[string]float64, n)
	for i := range n {
		m[fmt.Sprint("k", i)] = x
	}
	return m
}

func manyCategorical(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprint("k", i)] = "v"
	}
	return m
}

func TestValidationErrorMessage(t *testing.T) {
	t.Parallel()
	err := features.Validate(feats(t, "complaints.count_30d=-1", "numeric.calls=NaN"))
	want := "features.complaints.count_30d: must be >= 0, got -1; features.numeric.calls: must be a finite number, got NaN"
	if err == nil || err.Error() != want {
		t.Errorf("Validate() error = %v, want %s", err, want)
	}
}

func TestValidateBoundsTheError(t *testing.T) {
	t.Parallel()
	f := &churnv1.CustomerFeatures{Numeric: map[string]float64{}, Categorical: map[string]string{}}
	for i := range 200 {
		f.Numeric[fmt.Sprint("n", i)] = math.NaN()
		f.Categorical[fmt.Sprint("c", i)] = "\xff"
	}
	vs := violations(t, features.Validate(f))
	if len(vs) != 101 {
		t.Fatalf("got %d violations, want 100 and a last one counting the rest", len(vs))
	}
	if want := (features.Violation{Field: "features", Description: "and 300 more violations, not listed"}); vs[100] != want {
		t.Errorf("last violation = %+v, want %+v", vs[100], want)
	}
}

// groups returns the message fields of CustomerFeatures (activity, complaints, ...).
func groups() []protoreflect.FieldDescriptor {
	fields := (&churnv1.CustomerFeatures{}).ProtoReflect().Descriptor().Fields()
	var gs []protoreflect.FieldDescriptor
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.Kind() == protoreflect.MessageKind && !fd.IsMap() {
			gs = append(gs, fd)
		}
	}
	return gs
}

// TestValidateNamesEveryTypedField sets each double field of the proto, found by reflection, to
// NaN, and wants exactly one violation naming its proto path; so a field added to the proto
// without validation fails here.
func TestValidateNamesEveryTypedField(t *testing.T) {
	t.Parallel()
	n := 0
	for _, g := range groups() {
		fields := g.Message().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			path := fmt.Sprintf("features.%s.%s", g.Name(), fd.Name())
			f := &churnv1.CustomerFeatures{}
			sub := f.ProtoReflect().Mutable(g).Message()
			want := "must be a finite number, got NaN"
			switch fd.Kind() {
			case protoreflect.DoubleKind:
				sub.Set(fd, protoreflect.ValueOfFloat64(math.NaN()))
			case protoreflect.StringKind:
				sub.Set(fd, protoreflect.ValueOfString(strings.Repeat("s", 300)))
				want = "must be at most 256 bytes, got 300"
			default:
				t.Fatalf("%s is a %v; Validate knows doubles and strings", path, fd.Kind())
			}
			n++
			got := violations(t, features.Validate(f))
			if diff := cmp.Diff([]features.Violation{{Field: path, Description: want}}, got); diff != "" {
				t.Errorf("%s: violations (-want +got):\n%s", path, diff)
			}
		}
	}
	if n != 17 {
		t.Errorf("checked %d typed fields, want 17", n)
	}
}

func TestValidateAllocations(t *testing.T) {
	f := validFeatures(t)
	if allocs := testing.AllocsPerRun(100, func() {
		if err := features.Validate(f); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("Validate of a valid request: %v allocations, want 0", allocs)
	}
}
