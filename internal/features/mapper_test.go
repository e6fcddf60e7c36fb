package features_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
)

// Schema helpers: an input is built by one of numeric, categorical or derived, then refined.

func impute(v float64) bundle.Missing { return bundle.Missing{Policy: bundle.MissingImpute, Value: v} }
func imputeCat(c string) bundle.Missing {
	return bundle.Missing{Policy: bundle.MissingImpute, Category: c}
}
func required() bundle.Missing { return bundle.Missing{Policy: bundle.MissingError} }
func native() bundle.Missing   { return bundle.Missing{Policy: bundle.MissingNative} }
func std(mean, scale float64) *bundle.Standardize {
	return &bundle.Standardize{Mean: mean, Scale: scale}
}

func numeric(name, source string, m bundle.Missing) bundle.Input {
	return bundle.Input{Name: name, Source: source, Type: bundle.TypeNumeric, Missing: m}
}

func categorical(name, source string, m bundle.Missing, unseen string, cats ...string) bundle.Input {
	return bundle.Input{Name: name, Source: source, Type: bundle.TypeCategorical, Missing: m, Unseen: unseen, Categories: cats}
}

func derived(name, op string, m bundle.Missing, args ...string) bundle.Input {
	return bundle.Input{Name: name, Derive: &bundle.Derive{Op: op, Args: args}, Type: bundle.TypeNumeric, Missing: m}
}

func withStd(in bundle.Input, mean, scale float64) bundle.Input {
	in.Standardize = std(mean, scale)
	return in
}

func withTransform(in bundle.Input, t string) bundle.Input {
	in.Transform = t
	return in
}

func mustNew(t testing.TB, inputs ...bundle.Input) *features.Mapper {
	t.Helper()
	m, err := features.New(&bundle.Manifest{Inputs: inputs})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// stale fills the column buffer before Map, to show that Map writes every column.
const stale = 99

// mapped is what one Map call produced.
type mapped struct {
	Columns    []float64
	Imputed    []int
	Violations []features.Violation
}

func mapFeatures(t testing.TB, m *features.Mapper, f *churnv1.CustomerFeatures) mapped {
	t.Helper()
	dst := make([]float64, m.Width()+1)
	for i := range dst {
		dst[i] = stale
	}
	imputed, err := m.Map(f, dst, nil)
	got := mapped{Imputed: imputed, Violations: violations(t, err)}
	if err == nil {
		got.Columns = dst[:m.Width()]
	}
	if dst[m.Width()] != stale {
		t.Errorf("Map wrote past Width(): dst[%d] = %v", m.Width(), dst[m.Width()])
	}
	return got
}

func TestMap(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	contract := categorical("contract", "account.contract", imputeCat("month"), bundle.UnseenError, "month", "one_year", "two_year")
	tests := []struct {
		name   string
		inputs []bundle.Input
		f      *churnv1.CustomerFeatures
		want   mapped
	}{
		{
			name:   "typed field read",
			inputs: []bundle.Input{numeric("tenure", "account.tenure_months", required())},
			f:      feats(t, "account.tenure_months=12"),
			want:   mapped{Columns: []float64{12}},
		},
		{
			name:   "numeric map read",
			inputs: []bundle.Input{numeric("calls", "numeric.calls", required())},
			f:      feats(t, "numeric.calls=40", "numeric.other=1"),
			want:   mapped{Columns: []float64{40}},
		},
		{
			name:   "standardize",
			inputs: []bundle.Input{withStd(numeric("calls", "numeric.calls", required()), 10, 4)},
			f:      feats(t, "numeric.calls=40"),
			want:   mapped{Columns: []float64{7.5}},
		},
		{
			name:   "impute a missing typed field in a missing group",
			inputs: []bundle.Input{numeric("a", "service.tickets_90d", impute(1)), withStd(numeric("b", "numeric.calls", impute(20)), 10, 5)},
			f:      nil,
			want:   mapped{Columns: []float64{1, 2}, Imputed: []int{0, 1}},
		},
		{
			name:   "impute a missing typed field in a present group",
			inputs: []bundle.Input{numeric("opened", "complaints.open", impute(0.5)), numeric("c30", "complaints.count_30d", impute(7))},
			f:      feats(t, "complaints.count_30d=0"),
			want:   mapped{Columns: []float64{0.5, 0}, Imputed: []int{0}},
		},
		{
			name:   "zero is not missing",
			inputs: []bundle.Input{numeric("calls", "numeric.calls", impute(5))},
			f:      feats(t, "numeric.calls=0"),
			want:   mapped{Columns: []float64{0}},
		},
		{
			name:   "missing required typed field",
			inputs: []bundle.Input{numeric("tenure", "account.tenure_months", required())},
			f:      feats(t, "account.monthly_revenue=3"),
			want:   mapped{Violations: []features.Violation{{"features.account.tenure_months", "required by the model: missing"}}},
		},
		{
			name:   "missing required map entry",
			inputs: []bundle.Input{numeric("calls", "numeric.calls", required()), categorical("plan", "categorical.plan", required(), bundle.UnseenError, "a")},
			f:      feats(t, "numeric.call=1", "categorical.plan="),
			want: mapped{Violations: []features.Violation{
				{"features.numeric.calls", "required by the model: missing"},
				{"features.categorical.plan", "required by the model: missing"},
			}},
		},
		{
			name:   "native missing is NaN",
			inputs: []bundle.Input{numeric("a", "numeric.a", native()), withTransform(numeric("b", "numeric.b", native()), bundle.TransformIndicator), numeric("c", "numeric.c", native())},
			f:      feats(t, "numeric.c=2"),
			want:   mapped{Columns: []float64{nan, nan, 2}},
		},
		{
			name:   "log1p transform then standardize",
			inputs: []bundle.Input{withStd(withTransform(numeric("u", "activity.usage_30d", required()), bundle.TransformLog1p), 1, 2)},
			f:      feats(t, "activity.usage_30d=3"),
			want:   mapped{Columns: []float64{(math.Log1p(3) - 1) / 2}},
		},
		{
			name:   "log1p transform of an imputed value",
			inputs: []bundle.Input{withTransform(numeric("u", "activity.usage_30d", impute(3)), bundle.TransformLog1p)},
			f:      nil,
			want:   mapped{Columns: []float64{math.Log1p(3)}, Imputed: []int{0}},
		},
		{
			name:   "log1p transform of a negative map value",
			inputs: []bundle.Input{withTransform(numeric("delta", "numeric.delta", required()), bundle.TransformLog1p)},
			f:      feats(t, "numeric.delta=-0.5"),
			want:   mapped{Violations: []features.Violation{{"features.numeric.delta", "must be >= 0 for log1p, got -0.5"}}},
		},
		{
			name:   "indicator transform",
			inputs: []bundle.Input{withTransform(numeric("a", "numeric.a", required()), bundle.TransformIndicator), withTransform(numeric("b", "numeric.b", required()), bundle.TransformIndicator), withStd(withTransform(numeric("c", "numeric.c", required()), bundle.TransformIndicator), 0.5, 0.5)},
			f:      feats(t, "numeric.a=0", "numeric.b=0.1", "numeric.c=-3"),
			want:   mapped{Columns: []float64{0, 1, -1}},
		},
		{
			name:   "one-hot",
			inputs: []bundle.Input{numeric("x", "numeric.x", impute(0)), contract, numeric("y", "numeric.y", impute(0))},
			f:      feats(t, "account.contract=one_year", "numeric.x=1", "numeric.y=2"),
			want:   mapped{Columns: []float64{1, 0, 1, 0, 2}},
		},
		{
			name:   "one-hot of categorical map entry with many categories",
			inputs: []bundle.Input{categorical("c", "categorical.c", required(), bundle.UnseenError, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j")},
			f:      feats(t, "categorical.c=i"),
			want:   mapped{Columns: []float64{0, 0, 0, 0, 0, 0, 0, 0, 1, 0}},
		},
		{
			name:   "categorical missing imputed",
			inputs: []bundle.Input{contract, categorical("plan", "categorical.plan", imputeCat("b"), bundle.UnseenError, "a", "b")},
			f:      nil,
			want:   mapped{Columns: []float64{1, 0, 0, 0, 1}, Imputed: []int{0, 1}},
		},
		{
			name:   "empty string is missing",
			inputs: []bundle.Input{contract, categorical("plan", "categorical.plan", imputeCat("b"), bundle.UnseenError, "a", "b")},
			f:      feats(t, "account.contract=", "categorical.plan="),
			want:   mapped{Columns: []float64{1, 0, 0, 0, 1}, Imputed: []int{0, 1}},
		},
		{
			name:   "unseen category refused",
			inputs: []bundle.Input{contract},
			f:      feats(t, "account.contract=lifetime"),
			want: mapped{Violations: []features.Violation{
				{"features.account.contract", `unknown category "lifetime", want one of "month", "one_year", "two_year"`},
			}},
		},
		{
			name:   "unseen category refused, long list",
			inputs: []bundle.Input{categorical("c", "categorical.c", imputeCat("a"), bundle.UnseenError, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l")},
			f:      feats(t, "categorical.c=z"),
			want: mapped{Violations: []features.Violation{
				{"features.categorical.c", `unknown category "z", want one of "a", "b", "c", "d", "e", "f", "g", "h", "i", "j" and 2 more`},
			}},
		},
		{
			name:   "unseen category ignored",
			inputs: []bundle.Input{categorical("plan", "categorical.plan", imputeCat("a"), bundle.UnseenIgnore, "a", "b")},
			f:      feats(t, "categorical.plan=c"),
			want:   mapped{Columns: []float64{0, 0}},
		},
		{
			name:   "unseen category treated as missing, imputed",
			inputs: []bundle.Input{categorical("plan", "categorical.plan", imputeCat("b"), bundle.UnseenMissing, "a", "b")},
			f:      feats(t, "categorical.plan=c"),
			want:   mapped{Columns: []float64{0, 1}, Imputed: []int{0}},
		},
		{
			name:   "unseen category treated as missing, required",
			inputs: []bundle.Input{categorical("plan", "categorical.plan", required(), bundle.UnseenMissing, "a", "b")},
			f:      feats(t, "categorical.plan=c"),
			want: mapped{Violations: []features.Violation{
				{"features.categorical.plan", `unknown category "c", want one of "a", "b"`},
			}},
		},
		{
			name: "derive from values after imputation and transform, before standardisation",
			inputs: []bundle.Input{
				withStd(withTransform(numeric("u30", "activity.usage_30d", impute(3)), bundle.TransformLog1p), 100, 10),
				withStd(numeric("uprev", "activity.usage_prev_30d", required()), 50, 5),
				withStd(derived("trend", bundle.OpRatio, required(), "u30", "uprev"), 1, 2),
				derived("gap", bundle.OpDiff, required(), "uprev", "u30"),
				withTransform(derived("lgap", bundle.OpLog1p, required(), "gap"), bundle.TransformIndicator),
				derived("any", bundle.OpIndicator, required(), "uprev"),
			},
			f: feats(t, "activity.usage_prev_30d=2"),
			want: mapped{
				Columns: []float64{(math.Log1p(3) - 100) / 10, (2 - 50) / 5.0, (math.Log1p(3)/2 - 1) / 2, 2 - math.Log1p(3), 1, 1},
				Imputed: []int{0},
			},
		},
		{
			name: "sum of values after imputation and transform, before standardisation",
			inputs: []bundle.Input{
				withStd(withTransform(numeric("u30", "activity.usage_30d", impute(3)), bundle.TransformLog1p), 100, 10),
				withStd(numeric("uprev", "activity.usage_prev_30d", required()), 50, 5),
				withTransform(numeric("c90", "complaints.count_90d", impute(0)), bundle.TransformIndicator),
				withStd(derived("total", bundle.OpSum, required(), "u30", "uprev", "c90"), 1, 2),
				derived("twice", bundle.OpSum, required(), "total", "total"),
			},
			f: feats(t, "activity.usage_prev_30d=2", "complaints.count_90d=4"),
			want: mapped{
				Columns: []float64{(math.Log1p(3) - 100) / 10, (2 - 50) / 5.0, 1, (math.Log1p(3) + 2 + 1 - 1) / 2, 2 * (math.Log1p(3) + 2 + 1)},
				Imputed: []int{0},
			},
		},
		{
			name: "sum with a native missing argument, native",
			inputs: []bundle.Input{
				numeric("a", "numeric.a", required()), numeric("b", "numeric.b", native()), numeric("c", "numeric.c", required()),
				derived("s", bundle.OpSum, native(), "a", "b", "c"),
				derived("t", bundle.OpSum, impute(9), "a", "b"),
				derived("u", bundle.OpSum, required(), "a", "c"),
			},
			f:    feats(t, "numeric.a=1", "numeric.c=2"),
			want: mapped{Columns: []float64{1, nan, 2, nan, 9, 3}, Imputed: []int{4}},
		},
		{
			name: "sum with a native missing argument, required",
			inputs: []bundle.Input{
				numeric("a", "numeric.a", required()), numeric("b", "numeric.b", native()), numeric("c", "complaints.count_90d", native()),
				derived("s", bundle.OpSum, required(), "a", "b", "c"),
			},
			f: feats(t, "numeric.a=1", "numeric.b=2"),
			want: mapped{Violations: []features.Violation{
				{"features.complaints.count_90d", `required by the model: input "s" = sum(a, b, c) is undefined: c is missing`},
			}},
		},
		{
			name: "sum overflow is undefined",
			inputs: []bundle.Input{
				numeric("a", "numeric.a", required()), numeric("b", "numeric.b", required()),
				derived("s", bundle.OpSum, impute(7), "a", "b", "a"),
				derived("r", bundle.OpSum, required(), "a", "a"),
			},
			f: feats(t, "numeric.a=1e308", "numeric.b=-1e308"),
			want: mapped{Violations: []features.Violation{
				{"features.numeric.a", `required by the model: input "r" = sum(a, a) is undefined: the result is out of range`},
			}},
		},
		{
			name: "derive ratio with zero denominator imputed",
			inputs: []bundle.Input{
				numeric("a", "numeric.a", required()), numeric("b", "numeric.b", required()),
				withStd(derived("r", bundle.OpRatio, impute(1), "a", "b"), 0, 2),
			},
			f:    feats(t, "numeric.a=3", "numeric.b=0"),
			want: mapped{Columns: []float64{3, 0, 0.5}, Imputed: []int{2}},
		},
		{
			name: "derive ratio with zero denominator required",
			inputs: []bundle.Input{
				numeric("a", "numeric.a", required()), numeric("b", "complaints.count_90d", required()),
				derived("r", bundle.OpRatio, required(), "a", "b"),
			},
			f: feats(t, "numeric.a=3", "complaints.count_90d=0"),
			want: mapped{Violations: []features.Violation{
				{"features.complaints.count_90d", `required by the model: input "r" = ratio(a, b) is undefined: b is 0`},
			}},
		},
		{
			name: "derive from a native missing argument",
			inputs: []bundle.Input{
				numeric("a", "numeric.a", native()), numeric("b", "numeric.b", native()),
				derived("d", bundle.OpDiff, native(), "a", "b"),
				derived("i", bundle.OpIndicator, impute(-1), "b"),
				derived("r", bundle.OpDiff, required(), "a", "b"),
			},
			f: feats(t, "numeric.a=3"),
			want: mapped{Violations: []features.Violation{
				{"features.numeric.b", `required by the model: input "r" = diff(a, b) is undefined: b is missing`},
			}},
		},
		{
			name: "derive from a native missing argument, native",
			inputs: []bundle.Input{
				numeric("a", "numeric.a", native()), numeric("b", "numeric.b", native()),
				derived("d", bundle.OpDiff, native(), "a", "b"),
				derived("i", bundle.OpIndicator, impute(-1), "b"),
			},
			f:    feats(t, "numeric.a=3"),
			want: mapped{Columns: []float64{3, nan, nan, -1}, Imputed: []int{3}},
		},
		{
			name: "derive log1p at -1",
			inputs: []bundle.Input{
				numeric("a", "numeric.a", required()),
				derived("l", bundle.OpLog1p, required(), "a"),
			},
			f: feats(t, "numeric.a=-1"),
			want: mapped{Violations: []features.Violation{
				{"features.numeric.a", `required by the model: input "l" = log1p(a) is undefined: a is -1, but log1p needs more than -1`},
			}},
		},
		{
			name: "derived value negative under a log1p transform",
			inputs: []bundle.Input{
				numeric("a", "numeric.a", required()), numeric("b", "numeric.b", required()),
				withTransform(derived("d", bundle.OpDiff, required(), "a", "b"), bundle.TransformLog1p),
			},
			f: feats(t, "numeric.a=1", "numeric.b=3"),
			want: mapped{Violations: []features.Violation{
				{"features.numeric.a", `input "d" = diff(a, b) is -2, but its log1p transform needs >= 0`},
			}},
		},
		{
			name: "derived overflow is undefined",
			inputs: []bundle.Input{
				numeric("a", "numeric.a", required()), numeric("b", "numeric.b", required()),
				derived("r", bundle.OpRatio, impute(7), "a", "b"),
			},
			f:    feats(t, "numeric.a=1e300", "numeric.b=1e-300"),
			want: mapped{Columns: []float64{1e300, 1e-300, 7}, Imputed: []int{2}},
		},
		{
			name:   "standardised overflow",
			inputs: []bundle.Input{withStd(numeric("a", "numeric.a", required()), -1e308, 1e-5)},
			f:      feats(t, "numeric.a=1e308"),
			want: mapped{Violations: []features.Violation{
				{"features.numeric.a", "is out of the range the model can take, got 1e+308"},
			}},
		},
		{
			name: "deferred standardised overflow",
			inputs: []bundle.Input{
				withStd(numeric("a", "numeric.a", required()), -1e308, 1e-5),
				derived("i", bundle.OpIndicator, required(), "a"),
			},
			f: feats(t, "numeric.a=1e308"),
			want: mapped{Violations: []features.Violation{
				{"features.numeric.a", "is out of the range the model can take, got 1e+308"},
			}},
		},
		{
			name: "a request error is reported once with the mapping's",
			inputs: []bundle.Input{
				withTransform(numeric("c30", "complaints.count_30d", required()), bundle.TransformLog1p),
				numeric("calls", "numeric.calls", required()),
				withStd(numeric("x", "numeric.x", required()), 0, 1),
				derived("r", bundle.OpRatio, required(), "x", "calls"),
				numeric("tenure", "account.tenure_months", required()),
				contract,
			},
			f: feats(t, "complaints.count_30d=-1", "numeric.x=NaN", "account.satisfaction=0", "account.contract=x"),
			want: mapped{Violations: []features.Violation{
				{"features.complaints.count_30d", "must be >= 0, got -1"},
				{"features.account.satisfaction", "must be in 1..5, got 0"},
				{"features.numeric.x", "must be a finite number, got NaN"},
				{"features.numeric.calls", "required by the model: missing"},
				{"features.account.tenure_months", "required by the model: missing"},
				{"features.account.contract", `unknown category "x", want one of "month", "one_year", "two_year"`},
			}},
		},
		{
			name: "map entries the model does not read are validated",
			inputs: []bundle.Input{
				numeric("calls", "numeric.calls", required()),
				categorical("plan", "categorical.plan", required(), bundle.UnseenError, "a", "b"),
			},
			f: feats(t, "numeric.calls=1", "numeric.other=NaN", "categorical.plan=a", "categorical.other=\xff"),
			want: mapped{Violations: []features.Violation{
				{"features.numeric.other", "must be a finite number, got NaN"},
				{"features.categorical.other", "must be valid UTF-8"},
			}},
		},
		{
			name: "map entries the model reads are validated",
			inputs: []bundle.Input{
				numeric("calls", "numeric.calls", impute(0)),
				categorical("plan", "categorical.plan", imputeCat("a"), bundle.UnseenIgnore, "a", "b"),
			},
			f: feats(t, "numeric.calls=-Inf", "categorical.plan="+strings.Repeat("a", 300)),
			want: mapped{Violations: []features.Violation{
				{"features.numeric.calls", "must be a finite number, got -Inf"},
				{"features.categorical.plan", "must be at most 256 bytes, got 300"},
			}},
		},
		{
			name: "two inputs read one key",
			inputs: []bundle.Input{
				numeric("calls", "numeric.calls", impute(0)),
				categorical("plan", "categorical.plan", imputeCat("a"), bundle.UnseenIgnore, "a", "b"),
				withTransform(numeric("any_calls", "numeric.calls", impute(0)), bundle.TransformIndicator),
				categorical("plan2", "categorical.plan", imputeCat("c"), bundle.UnseenIgnore, "b", "c"),
			},
			f:    feats(t, "numeric.calls=4", "categorical.plan=b", "numeric.x=1"),
			want: mapped{Columns: []float64{4, 0, 1, 1, 1, 0}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := mustNew(t, tc.inputs...)
			got := mapFeatures(t, m, tc.f)
			if got.Violations != nil {
				got.Imputed = nil // unspecified on error
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateNaNs(), cmpopts.EquateApprox(0, 1e-12), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Map() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMapValidates shows that Map refuses what Validate refuses, even where the model does not
// read the field.
func TestMapValidates(t *testing.T) {
	t.Parallel()
	m := mustNew(t, numeric("calls", "numeric.calls", impute(1)))
	f := feats(t, "service.sla_breaches_90d=-1")
	got := mapFeatures(t, m, f).Violations
	want := violations(t, features.Validate(f))
	if diff := cmp.Diff(want, got); diff != "" || want == nil {
		t.Errorf("Map() violations (-Validate +Map):\n%s", diff)
	}
}

// TestMapEveryTypedSource maps each typed field of the proto, found by reflection, through a
// schema that reads it, so that a source the bundle accepts but Map cannot read fails here. It
// also checks that Set writes the same field.
func TestMapEveryTypedSource(t *testing.T) {
	t.Parallel()
	for _, g := range groups() {
		fields := g.Message().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			source := fmt.Sprintf("%s.%s", g.Name(), fd.Name())
			t.Run(source, func(t *testing.T) {
				t.Parallel()
				typ, err := features.SourceType(source)
				if err != nil {
					t.Fatalf("the bundle does not know source %s: %v", source, err)
				}
				f := &churnv1.CustomerFeatures{}
				sub := f.ProtoReflect().Mutable(g).Message()
				var in bundle.Input
				var want []float64
				value := "3"
				if typ == bundle.TypeCategorical {
					sub.Set(fd, protoreflect.ValueOfString("b"))
					value = "b"
					in = categorical("in", source, required(), bundle.UnseenError, "a", "b")
					want = []float64{0, 1}
				} else {
					sub.Set(fd, protoreflect.ValueOfFloat64(3))
					in = numeric("in", source, required())
					want = []float64{3}
				}
				if got := feats(t, source+"="+value); !proto.Equal(got, f) {
					t.Errorf("Set(%s=%s) = %v, want %v", source, value, got, f)
				}
				m := mustNew(t, in)
				got := mapFeatures(t, m, f)
				if diff := cmp.Diff(mapped{Columns: want}, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("Map() (-want +got):\n%s", diff)
				}
				// Any other field set must not be read instead.
				if got := mapFeatures(t, m, validFeaturesWithout(t, source)); len(got.Violations) != 1 ||
					got.Violations[0] != (features.Violation{Field: "features." + source, Description: "required by the model: missing"}) {
					t.Errorf("without %s: Map() = %+v, want it missing", source, got)
				}
			})
		}
	}
}

// validFeaturesWithout is validFeatures without one typed field.
func validFeaturesWithout(t testing.TB, source string) *churnv1.CustomerFeatures {
	f := validFeatures(t)
	group, name, _ := strings.Cut(source, ".")
	msg := f.ProtoReflect()
	sub := msg.Get(msg.Descriptor().Fields().ByName(protoreflect.Name(group))).Message()
	sub.Clear(sub.Descriptor().Fields().ByName(protoreflect.Name(name)))
	return f
}

// TestNewRefuses: New checks the sources, the one part of a schema bundle.Validate leaves to
// this package (the rest is bundle.Validate's, tested there).
func TestNewRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		inputs []bundle.Input
		want   string
	}{
		{"unknown typed source", []bundle.Input{numeric("a", "account.age", impute(0))}, "not a CustomerFeatures field"},
		{"unknown group", []bundle.Input{numeric("a", "billing.amount", impute(0))}, "account.tenure_months"},
		{"empty key", []bundle.Input{numeric("a", "numeric.", impute(0))}, "not a CustomerFeatures field"},
		{"key with a space", []bundle.Input{categorical("a", "categorical.a b", required(), bundle.UnseenError, "x")}, "not a CustomerFeatures field"},
		{"numeric input of a text field", []bundle.Input{numeric("a", "account.contract", impute(0))}, "source account.contract is categorical"},
		{"categorical input of a double field", []bundle.Input{categorical("a", "account.tenure_months", required(), bundle.UnseenError, "x")}, "source account.tenure_months is numeric"},
		{"categorical input of a numeric key", []bundle.Input{categorical("a", "numeric.a", required(), bundle.UnseenError, "x")}, "source numeric.a is numeric"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := features.New(&bundle.Manifest{Inputs: tc.inputs})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New() = %v, %v; want an error containing %q", m, err, tc.want)
			}
		})
	}
}

// TestMapManyKeys reads more map keys than Map holds on its stack.
func TestMapManyKeys(t *testing.T) {
	t.Parallel()
	const n = 70
	var inputs []bundle.Input
	var pairs []string
	var want []float64
	for i := range n {
		inputs = append(inputs, numeric(fmt.Sprint("n", i), fmt.Sprint("numeric.k", i), impute(-1)),
			categorical(fmt.Sprint("c", i), fmt.Sprint("categorical.k", i), imputeCat("x"), bundle.UnseenError, "x", "y"))
		if i%3 != 0 {
			pairs = append(pairs, fmt.Sprintf("numeric.k%d=%d", i, i), fmt.Sprintf("categorical.k%d=y", i))
			want = append(want, float64(i), 0, 1)
		} else {
			want = append(want, -1, 1, 0)
		}
	}
	m := mustNew(t, inputs...)
	for name, f := range map[string]*churnv1.CustomerFeatures{
		"exact keys":  feats(t, pairs...),
		"extra entry": feats(t, append(pairs, "numeric.other=1", "categorical.other=z")...),
	} {
		got := mapFeatures(t, m, f)
		if diff := cmp.Diff(want, got.Columns); diff != "" || got.Violations != nil {
			t.Errorf("%s: Map() columns (-want +got):\n%s\nviolations %v", name, diff, got.Violations)
		}
		if len(got.Imputed) != 2*((n+2)/3) {
			t.Errorf("%s: %d inputs imputed, want %d", name, len(got.Imputed), 2*((n+2)/3))
		}
	}
	f := feats(t, append(pairs, "numeric.k69=NaN", "categorical.k68=\xff")...)
	want2 := []features.Violation{
		{"features.numeric.k69", "must be a finite number, got NaN"},
		{"features.categorical.k68", "must be valid UTF-8"}, // and not again as an unknown category
	}
	if diff := cmp.Diff(want2, mapFeatures(t, m, f).Violations); diff != "" {
		t.Errorf("Map() violations (-want +got):\n%s", diff)
	}
}

func TestMapperShape(t *testing.T) {
	t.Parallel()
	man := &bundle.Manifest{Inputs: benchInputs()}
	m, err := features.New(man)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Width(), len(man.Columns()); got != want {
		t.Errorf("Width() = %d, want len(Columns()) = %d", got, want)
	}
	if got, want := m.NumInputs(), len(man.Inputs); got != want {
		t.Errorf("NumInputs() = %d, want %d", got, want)
	}
	for i, in := range man.Inputs {
		if got := m.InputName(i); got != in.Name {
			t.Errorf("InputName(%d) = %q, want %q", i, got, in.Name)
		}
	}
}

func TestMapShortDst(t *testing.T) {
	t.Parallel()
	m := mustNew(t, benchInputs()...)
	_, err := m.Map(nil, make([]float64, m.Width()-1), nil)
	var ve *features.ValidationError
	if err == nil || errors.As(err, &ve) {
		t.Errorf("Map(short dst) = %v, want a plain error", err)
	}
}

// TestMapAllocations gates the success path at zero allocations, with present and with imputed
// values.
func TestMapAllocations(t *testing.T) {
	withSum := append(benchInputs(),
		withStd(derived("usage_total", bundle.OpSum, impute(0), "usage", "usage_prev", "tickets", "sla_breaches", "call_failures"), 10, 3))
	for schema, inputs := range map[string][]bundle.Input{"bench": benchInputs(), "bench with a sum": withSum} {
		m := mustNew(t, inputs...)
		dst := make([]float64, m.Width())
		imputed := make([]int, 0, m.NumInputs())
		for name, f := range map[string]*churnv1.CustomerFeatures{
			"full": benchFeatures(t), "extra entries": extraBenchFeatures(t), "sparse": sparseBenchFeatures(t),
		} {
			if allocs := testing.AllocsPerRun(100, func() {
				var err error
				if imputed, err = m.Map(f, dst, imputed[:0]); err != nil {
					t.Fatal(err)
				}
			}); allocs != 0 {
				t.Errorf("%s, %s: Map: %v allocations, want 0", schema, name, allocs)
			}
		}
	}
}

// TestMapConcurrent maps from many goroutines with one Mapper; run with -race.
func TestMapConcurrent(t *testing.T) {
	t.Parallel()
	m := mustNew(t, benchInputs()...)
	f := benchFeatures(t)
	want := mapFeatures(t, m, f)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if got := mapFeatures(t, m, f); !cmp.Equal(want, got) {
					t.Errorf("concurrent Map() differs: %v", cmp.Diff(want, got))
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestSetRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ source, value string }{
		{"account.age", "1"},
		{"numeric.", "1"},
		{"numeric.a", "many"},
		{"complaints.open", ""},
		{"features.complaints.open", "1"},
	} {
		if err := features.Set(&churnv1.CustomerFeatures{}, tc.source, tc.value); err == nil {
			t.Errorf("Set(%s=%q) succeeded", tc.source, tc.value)
		}
	}
	if err := features.Set(nil, "numeric.a", "1"); err == nil {
		t.Error("Set(nil) succeeded")
	}
}
