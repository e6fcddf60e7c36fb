package features_test

import (
	"strings"
	"testing"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
)

// benchInputs is a realistic 15-input schema (19 columns): typed fields with log1p, indicator and
// standardisation, two derived inputs, a numeric map entry and two one-hot inputs.
func benchInputs() []bundle.Input {
	return []bundle.Input{
		withStd(withTransform(numeric("days_inactive", "activity.days_since_last_active", impute(2)), bundle.TransformLog1p), 1.2, 0.9),
		withStd(numeric("active_days", "activity.active_days_30d", impute(18)), 17.5, 8.1),
		withStd(withTransform(numeric("usage", "activity.usage_30d", impute(100)), bundle.TransformLog1p), 4.2, 1.1),
		withStd(withTransform(numeric("usage_prev", "activity.usage_prev_30d", impute(100)), bundle.TransformLog1p), 4.3, 1.1),
		withStd(derived("usage_trend", bundle.OpDiff, impute(0), "usage", "usage_prev"), 0, 0.4),
		withStd(numeric("complaints_30d", "complaints.count_30d", impute(0)), 0.3, 0.7),
		withStd(withTransform(numeric("complained_90d", "complaints.count_90d", impute(0)), bundle.TransformIndicator), 0.08, 0.27),
		withStd(numeric("tickets", "service.tickets_90d", impute(1)), 2.1, 1.9),
		withStd(numeric("sla_breaches", "service.sla_breaches_90d", impute(0)), 0.4, 0.8),
		withStd(derived("sla_rate", bundle.OpRatio, impute(0), "sla_breaches", "tickets"), 0.1, 0.2),
		withStd(numeric("tenure", "account.tenure_months", required()), 32.6, 8.6),
		withStd(withTransform(numeric("revenue", "account.monthly_revenue", impute(50)), bundle.TransformLog1p), 3.9, 0.7),
		categorical("contract", "account.contract", imputeCat("month"), bundle.UnseenError, "month", "one_year", "two_year"),
		withStd(numeric("call_failures", "numeric.call_failures", impute(6)), 7.6, 7.3),
		categorical("plan", "categorical.plan", imputeCat("basic"), bundle.UnseenIgnore, "basic", "plus", "pro", "team"),
	}
}

// benchFeatures is a full request for benchInputs: every typed field, and the map entries the
// model reads.
func benchFeatures(t testing.TB) *churnv1.CustomerFeatures {
	return feats(t,
		"activity.days_since_last_active=3", "activity.active_days_30d=20", "activity.usage_30d=120.5", "activity.usage_prev_30d=130",
		"complaints.count_30d=1", "complaints.count_90d=2", "complaints.open=1", "complaints.escalated_90d=0",
		"service.tickets_90d=4", "service.avg_first_response_hours=2.5", "service.p90_first_response_hours=9",
		"service.avg_resolution_hours=30", "service.sla_breaches_90d=1",
		"account.tenure_months=24", "account.monthly_revenue=49.9", "account.contract=one_year", "account.satisfaction=4",
		"numeric.call_failures=3", "categorical.plan=pro")
}

// extraBenchFeatures is benchFeatures with map entries the model does not read, which Map must
// still validate.
func extraBenchFeatures(t testing.TB) *churnv1.CustomerFeatures {
	f := benchFeatures(t)
	for _, p := range []string{"numeric.calls=40", "numeric.sms=12", "numeric.age=31", "categorical.region=eu"} {
		source, value, _ := strings.Cut(p, "=")
		if err := features.Set(f, source, value); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// sparseBenchFeatures leaves most of benchInputs to imputation.
func sparseBenchFeatures(t testing.TB) *churnv1.CustomerFeatures {
	return feats(t, "account.tenure_months=24", "account.contract=two_year")
}

func BenchmarkMap(b *testing.B) {
	m := mustNew(b, benchInputs()...)
	for _, bc := range []struct {
		name string
		f    *churnv1.CustomerFeatures
	}{{"full", benchFeatures(b)}, {"extra-entries", extraBenchFeatures(b)}, {"sparse", sparseBenchFeatures(b)}} {
		b.Run(bc.name, func(b *testing.B) {
			dst := make([]float64, m.Width())
			imputed := make([]int, 0, m.NumInputs())
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if imputed, err = m.Map(bc.f, dst, imputed[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	f := extraBenchFeatures(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := features.Validate(f); err != nil {
			b.Fatal(err)
		}
	}
}
