package features_test

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
)

// lenientInputs reads every typed source, numeric and categorical keys (one of them twice) and
// derived inputs of every op, with the impute and native policies and every unseen policy but
// error, so that most requests map.
func lenientInputs() []bundle.Input {
	return []bundle.Input{
		withStd(withTransform(numeric("days", "activity.days_since_last_active", impute(2)), bundle.TransformLog1p), 1, 0.9),
		numeric("active", "activity.active_days_30d", native()),
		withTransform(numeric("usage", "activity.usage_30d", impute(10)), bundle.TransformLog1p),
		withStd(withTransform(numeric("usage_prev", "activity.usage_prev_30d", impute(10)), bundle.TransformLog1p), 2, 1.5),
		withStd(derived("trend", bundle.OpDiff, impute(0), "usage", "usage_prev"), 0, 0.5),
		withTransform(numeric("c30", "complaints.count_30d", impute(0)), bundle.TransformIndicator),
		numeric("c90", "complaints.count_90d", native()),
		derived("c_ratio", bundle.OpRatio, native(), "c30", "c90"),
		derived("c_sum", bundle.OpSum, native(), "c30", "c90", "active"),
		withStd(numeric("open", "complaints.open", impute(0)), 0.1, 0.3),
		withStd(withTransform(numeric("escalated", "complaints.escalated_90d", impute(0)), bundle.TransformIndicator), 0.05, 0.2),
		numeric("tickets", "service.tickets_90d", impute(1)),
		withStd(withTransform(numeric("first", "service.avg_first_response_hours", impute(3)), bundle.TransformLog1p), 1.3, 0.6),
		withTransform(numeric("p90", "service.p90_first_response_hours", native()), bundle.TransformLog1p),
		withStd(numeric("resolution", "service.avg_resolution_hours", impute(24)), 30, 20),
		numeric("sla", "service.sla_breaches_90d", impute(0)),
		withStd(derived("sla_rate", bundle.OpRatio, impute(0), "sla", "tickets"), 0.1, 0.2),
		withStd(derived("service_total", bundle.OpSum, impute(5), "tickets", "first", "resolution", "sla"), 30, 20),
		withStd(numeric("tenure", "account.tenure_months", impute(12)), 30, 9),
		withStd(withTransform(numeric("revenue", "account.monthly_revenue", impute(50)), bundle.TransformLog1p), 3.9, 0.7),
		categorical("contract", "account.contract", imputeCat("month"), bundle.UnseenIgnore, "month", "one_year", "two_year"),
		withStd(numeric("satisfaction", "account.satisfaction", impute(3)), 3, 1),
		withStd(numeric("a", "numeric.a", impute(0)), 1, 2),
		numeric("b", "numeric.b", native()),
		withTransform(numeric("c", "numeric.c", impute(1)), bundle.TransformLog1p),
		derived("log_a", bundle.OpLog1p, impute(0), "a"),
		derived("b_pos", bundle.OpIndicator, native(), "b"),
		withTransform(numeric("a_pos", "numeric.a", impute(0)), bundle.TransformIndicator),
		categorical("p", "categorical.p", imputeCat("x"), bundle.UnseenMissing, "x", "y"),
		categorical("q", "categorical.q", imputeCat("c"), bundle.UnseenIgnore, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j"),
	}
}

// strictInputs refuses missing values and unknown categories.
func strictInputs() []bundle.Input {
	return []bundle.Input{
		withStd(numeric("tenure", "account.tenure_months", required()), 30, 9),
		numeric("a", "numeric.a", required()),
		numeric("b", "numeric.b", impute(1)),
		withStd(derived("ratio", bundle.OpRatio, required(), "a", "b"), 0, 3),
		derived("total", bundle.OpSum, required(), "tenure", "a", "b"),
		withTransform(numeric("c90", "complaints.count_90d", required()), bundle.TransformLog1p),
		categorical("p", "categorical.p", required(), bundle.UnseenError, "x", "y"),
		categorical("contract", "account.contract", required(), bundle.UnseenMissing, "month", "one_year"),
	}
}

func FuzzMap(f *testing.F) {
	for _, cf := range []*churnv1.CustomerFeatures{
		{},
		validFeatures(f),
		benchFeatures(f),
		extraBenchFeatures(f),
		feats(f, "account.tenure_months=40", "numeric.a=2", "numeric.b=0", "complaints.count_90d=3", "categorical.p=y", "account.contract=month"),
		feats(f, "numeric.a=-1", "numeric.b=-0", "numeric.c=1e308", "categorical.q=j", "categorical.p=z", "account.contract=weekly"),
		feats(f, "complaints.count_30d=3", "complaints.count_90d=1", "account.satisfaction=0", "numeric.a=NaN"),
		feats(f, "account.tenure_months=1e308", "numeric.a=1e308", "numeric.b=1", "service.tickets_90d=1e308", "service.avg_resolution_hours=1e308"),
	} {
		data, err := proto.Marshal(cf)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	schemas := [][]bundle.Input{lenientInputs(), strictInputs()}
	mappers := make([]*features.Mapper, len(schemas))
	for i, ins := range schemas {
		mappers[i] = mustNew(f, ins...)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var cf churnv1.CustomerFeatures
		if err := proto.Unmarshal(data, &cf); err != nil {
			t.Skip()
		}
		verr := features.Validate(&cf)
		vviol := checkViolations(t, "Validate", verr)
		for si, m := range mappers {
			dst := make([]float64, m.Width())
			imputed, err := m.Map(&cf, dst, nil)
			viol := checkViolations(t, "Map", err)
			if len(vviol) > 0 && len(vviol) < 100 && !slices.Equal(vviol, viol[:min(len(viol), len(vviol))]) {
				t.Errorf("schema %d: Map's violations %v do not start with Validate's %v", si, viol, vviol)
			}
			wantCols, wantImputed, ok := referenceMap(schemas[si], &cf)
			if ok != (err == nil) {
				t.Fatalf("schema %d: Map() error = %v; the reference mapping succeeds: %v", si, err, ok)
			}
			if err != nil {
				continue
			}
			if diff := cmp.Diff(wantCols, dst, cmpopts.EquateNaNs()); diff != "" {
				t.Errorf("schema %d: columns (-reference +Map):\n%s", si, diff)
			}
			if diff := cmp.Diff(wantImputed, imputed, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("schema %d: imputed (-reference +Map):\n%s", si, diff)
			}
			col := 0
			for _, in := range schemas[si] {
				n := 1
				if in.Type == bundle.TypeCategorical {
					n = len(in.Categories)
				}
				for _, x := range dst[col : col+n] {
					if math.IsNaN(x) && in.Missing.Policy == bundle.MissingNative {
						continue
					}
					if math.IsNaN(x) || math.IsInf(x, 0) {
						t.Errorf("schema %d: input %s has column %v", si, in.Name, x)
					}
				}
				col += n
			}
		}
	})
}

// checkViolations checks that err is nil or a *ValidationError with violations that each name a
// field of the request, and returns them.
func checkViolations(t *testing.T, what string, err error) []features.Violation {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *features.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("%s: error %v (%T) is not a *ValidationError", what, err, err)
	}
	if len(ve.Violations) == 0 {
		t.Fatalf("%s: a *ValidationError without violations", what)
	}
	for _, v := range ve.Violations {
		if !strings.HasPrefix(v.Field, "features") || v.Description == "" {
			t.Errorf("%s: violation %+v does not name a field of features, or says nothing", what, v)
		}
	}
	return ve.Violations
}

// referenceMap maps f by inputs the plain way, from the bundle format's documentation: it reads
// typed fields by protobuf reflection and map entries by lookup, and keeps each input's value
// before standardisation by name. ok is false when Map should refuse f.
func referenceMap(inputs []bundle.Input, f *churnv1.CustomerFeatures) (cols []float64, imputed []int, ok bool) {
	if features.Validate(f) != nil {
		return nil, nil, false
	}
	raw := map[string]float64{}
	for i, in := range inputs {
		if in.Type == bundle.TypeCategorical {
			v := readString(f, in.Source)
			onehot := make([]float64, len(in.Categories))
			k := slices.Index(in.Categories, v)
			if v != "" && k < 0 {
				switch in.Unseen {
				case bundle.UnseenIgnore:
					cols = append(cols, onehot...)
					continue
				case bundle.UnseenError:
					return nil, nil, false
				}
			}
			if k < 0 {
				if in.Missing.Policy != bundle.MissingImpute {
					return nil, nil, false
				}
				k = slices.Index(in.Categories, in.Missing.Category)
				imputed = append(imputed, i)
			}
			onehot[k] = 1
			cols = append(cols, onehot...)
			continue
		}
		var x float64
		var present bool
		if in.Derive != nil {
			x, present = referenceDerive(in.Derive, raw)
		} else {
			x, present = readDouble(f, in.Source)
		}
		if !present {
			switch in.Missing.Policy {
			case bundle.MissingImpute:
				x = in.Missing.Value
				imputed = append(imputed, i)
			case bundle.MissingNative:
				raw[in.Name] = math.NaN()
				cols = append(cols, math.NaN())
				continue
			default:
				return nil, nil, false
			}
		}
		switch in.Transform {
		case bundle.TransformLog1p:
			if x < 0 {
				return nil, nil, false
			}
			x = math.Log1p(x)
		case bundle.TransformIndicator:
			x = map[bool]float64{true: 1, false: 0}[x > 0]
		}
		raw[in.Name] = x
		if s := in.Standardize; s != nil {
			x = (x - s.Mean) / s.Scale
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, nil, false
		}
		cols = append(cols, x)
	}
	return cols, imputed, true
}

// referenceDerive computes a derived value; false means undefined.
func referenceDerive(d *bundle.Derive, raw map[string]float64) (float64, bool) {
	if d.Op == bundle.OpSum {
		var x float64
		for _, a := range d.Args {
			x += raw[a]
		}
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	}
	a := raw[d.Args[0]]
	var x float64
	switch d.Op {
	case bundle.OpRatio:
		b := raw[d.Args[1]]
		if b == 0 {
			return 0, false
		}
		x = a / b
	case bundle.OpDiff:
		x = a - raw[d.Args[1]]
	case bundle.OpLog1p:
		if a <= -1 {
			return 0, false
		}
		x = math.Log1p(a)
	case bundle.OpIndicator:
		if math.IsNaN(a) {
			return 0, false
		}
		if a > 0 {
			x = 1
		}
	}
	return x, !math.IsNaN(x) && !math.IsInf(x, 0)
}

// readDouble reads a numeric source; false when it is absent.
func readDouble(f *churnv1.CustomerFeatures, source string) (float64, bool) {
	if k, ok := strings.CutPrefix(source, bundle.NumericPrefix); ok {
		x, ok := f.GetNumeric()[k]
		return x, ok
	}
	sub, fd := typedField(f, source)
	if !sub.Has(fd) {
		return 0, false
	}
	return sub.Get(fd).Float(), true
}

// readString reads a categorical source; "" when it is absent.
func readString(f *churnv1.CustomerFeatures, source string) string {
	if k, ok := strings.CutPrefix(source, bundle.CategoricalPrefix); ok {
		return f.GetCategorical()[k]
	}
	sub, fd := typedField(f, source)
	return sub.Get(fd).String()
}

// typedField resolves group.field in f by reflection; the group message may be empty.
func typedField(f *churnv1.CustomerFeatures, source string) (protoreflect.Message, protoreflect.FieldDescriptor) {
	g, name, _ := strings.Cut(source, ".")
	msg := f.ProtoReflect()
	sub := msg.Get(msg.Descriptor().Fields().ByName(protoreflect.Name(g))).Message()
	return sub, sub.Descriptor().Fields().ByName(protoreflect.Name(name))
}
