package retention

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/testing/protocmp"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

func ptr[T any](v T) *T { return &v }

// codes returns the codes of ws, in order.
func codes(ws []*churnv1.Warning) []churnv1.WarningCode {
	var cs []churnv1.WarningCode
	for _, w := range ws {
		cs = append(cs, w.GetCode())
	}
	return cs
}

func warningFor(t *testing.T, ws []*churnv1.Warning, code churnv1.WarningCode) *churnv1.Warning {
	t.Helper()
	for _, w := range ws {
		if w.GetCode() == code {
			return w
		}
	}
	return nil
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	const (
		spike    = churnv1.WarningCode_WARNING_CODE_COMPLAINT_SPIKE
		slow     = churnv1.WarningCode_WARNING_CODE_SLOW_RESPONSE
		sla      = churnv1.WarningCode_WARNING_CODE_SLA_BREACH
		drop     = churnv1.WarningCode_WARNING_CODE_ACTIVITY_DROP
		inactive = churnv1.WarningCode_WARNING_CODE_INACTIVE
		lowSat   = churnv1.WarningCode_WARNING_CODE_LOW_SATISFACTION
		high     = churnv1.WarningCode_WARNING_CODE_HIGH_RISK
		rising   = churnv1.WarningCode_WARNING_CODE_RISK_RISING
	)
	tiers := TierThresholds{Medium: 0.3, High: 0.6, Critical: 0.9}
	type want struct {
		code             churnv1.WarningCode
		value, threshold float64
		message          string
	}
	complaints := func(c30, c90 *float64) *churnv1.CustomerFeatures {
		return &churnv1.CustomerFeatures{Complaints: &churnv1.Complaints{Count_30D: c30, Count_90D: c90}}
	}
	service := func(avg, p90, breaches *float64) *churnv1.CustomerFeatures {
		return &churnv1.CustomerFeatures{Service: &churnv1.ServiceResponse{AvgFirstResponseHours: avg, P90FirstResponseHours: p90, SlaBreaches_90D: breaches}}
	}
	activity := func(u30, prev, days *float64) *churnv1.CustomerFeatures {
		return &churnv1.CustomerFeatures{Activity: &churnv1.Activity{Usage_30D: u30, UsagePrev_30D: prev, DaysSinceLastActive: days}}
	}
	sat := func(s *float64) *churnv1.CustomerFeatures {
		return &churnv1.CustomerFeatures{Account: &churnv1.Account{Satisfaction: s}}
	}
	tests := []struct {
		name string
		in   Input
		code churnv1.WarningCode // the code under test
		want *want               // nil: code must not be raised
	}{
		{name: "spike at count threshold", in: Input{Features: complaints(ptr(2.0), ptr(6.0))}, code: spike,
			want: &want{spike, 2, 2, "2 complaints in the last 30 days (threshold 2)"}},
		{name: "spike above count threshold", in: Input{Features: complaints(ptr(3.0), nil)}, code: spike,
			want: &want{spike, 3, 2, "3 complaints in the last 30 days (threshold 2)"}},
		{name: "spike by ratio", in: Input{Features: complaints(ptr(1.0), ptr(1.5))}, code: spike,
			want: &want{spike, 1, 1, "1 complaint in the last 30 days against a 90-day rate of 0.5 a month (threshold 2x the rate = 1)"}},
		{name: "spike ratio just below", in: Input{Features: complaints(ptr(1.0), ptr(1.6))}, code: spike},
		{name: "spike ratio needs min count", in: Input{Features: complaints(ptr(0.0), ptr(0.0))}, code: spike},
		{name: "spike ratio needs count_90d", in: Input{Features: complaints(ptr(1.0), nil)}, code: spike},
		{name: "spike absent count_30d", in: Input{Features: complaints(nil, ptr(9.0))}, code: spike},
		{name: "spike absent complaints", in: Input{Features: &churnv1.CustomerFeatures{}}, code: spike},
		{name: "spike nil features", in: Input{}, code: spike},

		{name: "slow avg above", in: Input{Features: service(ptr(30.0), nil, nil)}, code: slow,
			want: &want{slow, 30, 24, "average first response 30h (threshold 24h)"}},
		{name: "slow avg at threshold", in: Input{Features: service(ptr(24.0), ptr(48.0), nil)}, code: slow},
		{name: "slow p90 above", in: Input{Features: service(ptr(10.0), ptr(50.5), nil)}, code: slow,
			want: &want{slow, 50.5, 48, "p90 first response 50.5h (threshold 48h)"}},
		{name: "slow both, p90 worse", in: Input{Features: service(ptr(25.0), ptr(96.0), nil)}, code: slow,
			want: &want{slow, 96, 48, "p90 first response 96h (threshold 48h)"}},
		{name: "slow both, avg worse", in: Input{Features: service(ptr(48.0), ptr(50.0), nil)}, code: slow,
			want: &want{slow, 48, 24, "average first response 48h (threshold 24h)"}},
		{name: "slow absent", in: Input{Features: service(nil, nil, ptr(0.0))}, code: slow},

		{name: "sla at threshold", in: Input{Features: service(nil, nil, ptr(1.0))}, code: sla,
			want: &want{sla, 1, 1, "1 SLA breach in the last 90 days (threshold 1)"}},
		{name: "sla below", in: Input{Features: service(nil, nil, ptr(0.0))}, code: sla},
		{name: "sla absent", in: Input{Features: service(ptr(1.0), nil, nil)}, code: sla},

		{name: "drop at fraction", in: Input{Features: activity(ptr(50.0), ptr(100.0), nil)}, code: drop,
			want: &want{drop, 0.5, 0.5, "usage down 50% on the previous 30 days (threshold 50%)"}},
		{name: "drop to zero", in: Input{Features: activity(ptr(0.0), ptr(40.0), nil)}, code: drop,
			want: &want{drop, 1, 0.5, "usage down 100% on the previous 30 days (threshold 50%)"}},
		{name: "drop just below", in: Input{Features: activity(ptr(50.1), ptr(100.0), nil)}, code: drop},
		{name: "drop no previous usage", in: Input{Features: activity(ptr(0.0), ptr(0.0), nil)}, code: drop},
		{name: "drop absent previous", in: Input{Features: activity(ptr(0.0), nil, nil)}, code: drop},
		{name: "drop absent current", in: Input{Features: activity(nil, ptr(10.0), nil)}, code: drop},

		{name: "inactive at threshold", in: Input{Features: activity(nil, nil, ptr(30.0))}, code: inactive,
			want: &want{inactive, 30, 30, "30 days since last active (threshold 30)"}},
		{name: "inactive below", in: Input{Features: activity(nil, nil, ptr(29.5))}, code: inactive},
		{name: "inactive absent", in: Input{Features: activity(ptr(1.0), ptr(1.0), nil)}, code: inactive},

		{name: "satisfaction at threshold", in: Input{Features: sat(ptr(2.0))}, code: lowSat,
			want: &want{lowSat, 2, 2, "satisfaction 2 of 5 (threshold 2)"}},
		{name: "satisfaction above", in: Input{Features: sat(ptr(2.5))}, code: lowSat},
		{name: "satisfaction absent", in: Input{Features: sat(nil)}, code: lowSat},

		{name: "high risk at HIGH", in: Input{Probability: 0.82, Tier: churnv1.RiskTier_RISK_TIER_HIGH, TierThresholds: tiers}, code: high,
			want: &want{high, 0.82, 0.6, "tier HIGH at probability 0.82 (threshold tier HIGH, from probability 0.6)"}},
		{name: "high risk at CRITICAL", in: Input{Probability: 0.95, Tier: churnv1.RiskTier_RISK_TIER_CRITICAL, TierThresholds: tiers}, code: high,
			want: &want{high, 0.95, 0.6, "tier CRITICAL at probability 0.95 (threshold tier HIGH, from probability 0.6)"}},
		{name: "high risk without the model's thresholds", in: Input{Probability: 0.95, Tier: churnv1.RiskTier_RISK_TIER_CRITICAL}, code: high,
			want: &want{high, 0.95, 0, "tier CRITICAL at probability 0.95 (threshold tier HIGH)"}},
		{name: "high risk MEDIUM", in: Input{Probability: 0.5, Tier: churnv1.RiskTier_RISK_TIER_MEDIUM, TierThresholds: tiers}, code: high},
		{name: "high risk unspecified", in: Input{Probability: 0.9}, code: high},

		{name: "rising is never raised by Evaluate", in: Input{Probability: 0.99, Tier: churnv1.RiskTier_RISK_TIER_CRITICAL}, code: rising},
	}
	r := DefaultRules()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := warningFor(t, r.Evaluate(tc.in).Warnings, tc.code)
			if tc.want == nil {
				if got != nil {
					t.Fatalf("raised %v, want none", got)
				}
				return
			}
			want := &churnv1.Warning{Code: tc.want.code, Value: tc.want.value, Threshold: tc.want.threshold, Message: tc.want.message}
			if diff := cmp.Diff(want, got, protocmp.Transform(), cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("warning (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWarningsOrder(t *testing.T) {
	t.Parallel()
	r := DefaultRules()
	in := Input{
		Features: &churnv1.CustomerFeatures{
			Activity:   &churnv1.Activity{Usage_30D: ptr(0.0), UsagePrev_30D: ptr(10.0), DaysSinceLastActive: ptr(60.0)},
			Complaints: &churnv1.Complaints{Count_30D: ptr(5.0), Count_90D: ptr(5.0)},
			Service:    &churnv1.ServiceResponse{AvgFirstResponseHours: ptr(99.0), SlaBreaches_90D: ptr(3.0)},
			Account:    &churnv1.Account{Satisfaction: ptr(1.0)},
		},
		Probability: 0.9,
		Tier:        churnv1.RiskTier_RISK_TIER_CRITICAL,
	}
	want := []churnv1.WarningCode{1, 2, 3, 4, 5, 6, 7} // all but RISK_RISING, which RiskRising raises
	if diff := cmp.Diff(want, codes(r.Evaluate(in).Warnings)); diff != "" {
		t.Errorf("codes (-want +got):\n%s", diff)
	}
	if got := r.Evaluate(Input{Features: &churnv1.CustomerFeatures{}}).Warnings; got != nil {
		t.Errorf("no data: warnings %v, want nil", got)
	}
}

func TestRiskRising(t *testing.T) {
	t.Parallel()
	const rising = churnv1.WarningCode_WARNING_CODE_RISK_RISING
	tests := []struct {
		name     string
		p        float64
		previous *float64
		want     *churnv1.Warning // nil: not raised
	}{
		{"at margin", 0.5, ptr(0.4), &churnv1.Warning{Code: rising, Value: 0.5 - 0.4, Threshold: 0.1,
			Message: "probability up 0.1 from 0.4 to 0.5 (threshold 0.1)"}},
		{"above margin", 0.7, ptr(0.3), &churnv1.Warning{Code: rising, Value: 0.7 - 0.3, Threshold: 0.1,
			Message: "probability up 0.4 from 0.3 to 0.7 (threshold 0.1)"}},
		{"below margin", 0.49, ptr(0.4), nil},
		{"rise 0.09", 0.39, ptr(0.3), nil},
		{"falling", 0.1, ptr(0.9), nil},
		{"no previous", 0.9, nil, nil},
	}
	r := DefaultRules()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, r.RiskRising(tc.p, tc.previous), protocmp.Transform(), cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("RiskRising (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWarningRules checks the table Evaluate applies: every warning code but UNSPECIFIED and
// RISK_RISING (raised by RiskRising) has exactly one rule, in code order, so that a new code
// without its rule fails here.
func TestWarningRules(t *testing.T) {
	t.Parallel()
	var want []churnv1.WarningCode
	for c := range churnv1.WarningCode_name {
		code := churnv1.WarningCode(c)
		if code != churnv1.WarningCode_WARNING_CODE_UNSPECIFIED && code != churnv1.WarningCode_WARNING_CODE_RISK_RISING {
			want = append(want, code)
		}
	}
	slices.Sort(want)
	var got []churnv1.WarningCode
	for _, rule := range warningRules {
		got = append(got, rule.code)
		if rule.raise == nil {
			t.Errorf("%v has no raise function", rule.code)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warningRules codes (-want +got):\n%s", diff)
	}
}

func TestSegmentOverride(t *testing.T) {
	t.Parallel()
	r, err := ParseRules([]byte(`
inactive:
  days_since_last_active: 40
segments:
  month-to-month:
    inactive:
      days_since_last_active: 14
    risk_rising:
      margin: 0.05
  two_year: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	in := func(contract *string) Input {
		return Input{
			Features: &churnv1.CustomerFeatures{
				Activity: &churnv1.Activity{DaysSinceLastActive: ptr(20.0)},
				Account:  &churnv1.Account{Contract: contract},
			},
			Probability: 0.36,
		}
	}
	tests := []struct {
		name     string
		contract *string
		want     []churnv1.WarningCode
	}{
		{"segment overrides", ptr("month-to-month"), []churnv1.WarningCode{churnv1.WarningCode_WARNING_CODE_INACTIVE}},
		{"other contract uses top level", ptr("one_year"), nil},
		{"empty segment uses top level", ptr("two_year"), nil},
		{"no contract uses top level", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, codes(r.Evaluate(in(tc.contract)).Warnings)); diff != "" {
				t.Errorf("codes (-want +got):\n%s", diff)
			}
		})
	}
	// A segment inherits the top-level keys it does not override.
	seg := r.Segments["month-to-month"]
	if seg.Inactive.DaysSinceLastActive != 14 || seg.SlowResponse.AvgFirstResponseHours != 24 || r.Inactive.DaysSinceLastActive != 40 {
		t.Errorf("segment = %+v, top = %+v", seg, r)
	}
	if w := warningFor(t, r.Evaluate(in(ptr("month-to-month"))).Warnings, churnv1.WarningCode_WARNING_CODE_INACTIVE); w.GetThreshold() != 14 {
		t.Errorf("segment inactive threshold = %v, want 14", w.GetThreshold())
	}
	// RiskRising uses the rules it is called on: the segment's margin of 0.05, the top level's 0.10.
	if w := seg.RiskRising(0.36, ptr(0.3)); w.GetThreshold() != 0.05 {
		t.Errorf("segment RiskRising = %v, want threshold 0.05", w)
	}
	if w := r.RiskRising(0.36, ptr(0.3)); w != nil {
		t.Errorf("top-level RiskRising = %v, want nil", w)
	}
}

// TestHighRiskThresholdIsTheModelsTier: HIGH_RISK's threshold is the scoring model's probability
// threshold of the rules' minimum tier, whichever tier that is, and its message names the tier.
func TestHighRiskThresholdIsTheModelsTier(t *testing.T) {
	t.Parallel()
	tiers := TierThresholds{Medium: 0.25, High: 0.5, Critical: 0.75}
	for minTier, want := range map[churnv1.RiskTier]float64{
		churnv1.RiskTier_RISK_TIER_LOW: 0, churnv1.RiskTier_RISK_TIER_MEDIUM: 0.25,
		churnv1.RiskTier_RISK_TIER_HIGH: 0.5, churnv1.RiskTier_RISK_TIER_CRITICAL: 0.75,
	} {
		r := DefaultRules()
		r.HighRisk.MinTier = minTier
		res := r.Evaluate(Input{Probability: 0.8, Tier: churnv1.RiskTier_RISK_TIER_CRITICAL, TierThresholds: tiers})
		if len(res.Warnings) != 1 || res.Warnings[0].Code != churnv1.WarningCode_WARNING_CODE_HIGH_RISK {
			t.Fatalf("min tier %s: warnings %v, want HIGH_RISK alone", minTier, res.Warnings)
		}
		w := res.Warnings[0]
		msg := "tier CRITICAL at probability 0.8 (threshold tier " + TierName(minTier) + ", from probability " + fmtNum(want) + ")"
		if w.Threshold != want || w.Value != 0.8 || w.Message != msg {
			t.Errorf("min tier %s: value %v, threshold %v, message %q; want 0.8, %v, %q", minTier, w.Value, w.Threshold, w.Message, want, msg)
		}
	}
}
