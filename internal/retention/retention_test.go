package retention

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

func TestAction(t *testing.T) {
	t.Parallel()
	const medium = churnv1.RiskTier_RISK_TIER_MEDIUM
	// account: revenue 50 a month, tenure 12: value 50 x max(24-12, 6) = 600, below the cut of 1000.
	account := func(revenue, tenure *float64) *churnv1.Account {
		return &churnv1.Account{MonthlyRevenue: revenue, TenureMonths: tenure}
	}
	tests := []struct {
		name string
		in   Input
		want *churnv1.RetentionAction
	}{
		{
			name: "low risk",
			in: Input{Tier: churnv1.RiskTier_RISK_TIER_LOW, Features: &churnv1.CustomerFeatures{
				Account: account(ptr(500.0), ptr(1.0)), Complaints: &churnv1.Complaints{Count_30D: ptr(9.0)}}},
			want: &churnv1.RetentionAction{Type: churnv1.ActionType_ACTION_TYPE_NONE, Reason: "risk is low"},
		},
		{
			name: "unspecified tier",
			in:   Input{Features: &churnv1.CustomerFeatures{Account: account(ptr(500.0), ptr(1.0))}},
			want: &churnv1.RetentionAction{Type: churnv1.ActionType_ACTION_TYPE_NONE, Reason: "risk is low"},
		},
		{
			name: "make amends: high value, complaints",
			in: Input{Tier: medium, Features: &churnv1.CustomerFeatures{
				Account:    account(ptr(100.0), ptr(4.0)),
				Complaints: &churnv1.Complaints{Count_30D: ptr(3.0), Open: ptr(2.0)},
				Service:    &churnv1.ServiceResponse{SlaBreaches_90D: ptr(1.0)},
			}},
			want: &churnv1.RetentionAction{Type: churnv1.ActionType_ACTION_TYPE_MAKE_AMENDS, HighValue: true, CompanySide: true,
				Reason: "high value 2000 (cut 1000); company-side cause: complaint spike, SLA breach, 2 open complaints"},
		},
		{
			name: "make amends: at the cut, open complaint only",
			in: Input{Tier: churnv1.RiskTier_RISK_TIER_CRITICAL, Features: &churnv1.CustomerFeatures{
				Account:    account(ptr(50.0), ptr(4.0)),
				Complaints: &churnv1.Complaints{Open: ptr(1.0)},
			}},
			want: &churnv1.RetentionAction{Type: churnv1.ActionType_ACTION_TYPE_MAKE_AMENDS, HighValue: true, CompanySide: true,
				Reason: "high value 1000 (cut 1000); company-side cause: 1 open complaint"},
		},
		{
			name: "win back: high value, activity decline",
			in: Input{Tier: churnv1.RiskTier_RISK_TIER_HIGH, Features: &churnv1.CustomerFeatures{
				Account:  account(ptr(200.0), ptr(30.0)), // 200 x max(-6, 6) = 1200
				Activity: &churnv1.Activity{Usage_30D: ptr(1.0), UsagePrev_30D: ptr(10.0), DaysSinceLastActive: ptr(40.0)},
			}},
			want: &churnv1.RetentionAction{Type: churnv1.ActionType_ACTION_TYPE_WIN_BACK, HighValue: true,
				Reason: "high value 1200 (cut 1000); customer-side cause: activity drop, inactive"},
		},
		{
			name: "win back: tenure absent counts as 0",
			in: Input{Tier: medium, Features: &churnv1.CustomerFeatures{
				Account:  account(ptr(50.0), nil), // 50 x 24
				Activity: &churnv1.Activity{DaysSinceLastActive: ptr(31.0)},
			}},
			want: &churnv1.RetentionAction{Type: churnv1.ActionType_ACTION_TYPE_WIN_BACK, HighValue: true,
				Reason: "high value 1200 (cut 1000); customer-side cause: inactive"},
		},
		{
			name: "opportunistic: low value, slow response",
			in: Input{Tier: medium, Features: &churnv1.CustomerFeatures{
				Account: account(ptr(50.0), ptr(12.0)),
				Service: &churnv1.ServiceResponse{AvgFirstResponseHours: ptr(30.0)},
			}},
			want: &churnv1.RetentionAction{Type: churnv1.ActionType_ACTION_TYPE_OPPORTUNISTIC, CompanySide: true,
				Reason: "low value 600 (below cut 1000); company-side cause: slow response"},
		},
		{
			name: "opportunistic: revenue unknown",
			in: Input{Tier: medium, Features: &churnv1.CustomerFeatures{
				Complaints: &churnv1.Complaints{Count_30D: ptr(2.0)},
			}},
			want: &churnv1.RetentionAction{Type: churnv1.ActionType_ACTION_TYPE_OPPORTUNISTIC, CompanySide: true,
				Reason: "value unknown without monthly_revenue, treated as low (cut 1000); company-side cause: complaint spike"},
		},
		{
			name: "let go: low value, no signal",
			in: Input{Tier: medium, Features: &churnv1.CustomerFeatures{
				Account:    account(ptr(49.99), ptr(12.0)),
				Complaints: &churnv1.Complaints{Open: ptr(0.0)},
			}},
			want: &churnv1.RetentionAction{Type: churnv1.ActionType_ACTION_TYPE_LET_GO,
				Reason: "low value 599.88 (below cut 1000); customer-side cause: no company-side signal"},
		},
		{
			name: "let go: nil features",
			in:   Input{Tier: medium},
			want: &churnv1.RetentionAction{Type: churnv1.ActionType_ACTION_TYPE_LET_GO,
				Reason: "value unknown without monthly_revenue, treated as low (cut 1000); customer-side cause: no company-side signal"},
		},
	}
	r := DefaultRules()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, r.Evaluate(tc.in).Action, protocmp.Transform()); diff != "" {
				t.Errorf("action (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStage(t *testing.T) {
	t.Parallel()
	features := func(tenure *float64, a *churnv1.Activity) *churnv1.CustomerFeatures {
		return &churnv1.CustomerFeatures{Account: &churnv1.Account{TenureMonths: tenure}, Activity: a}
	}
	up := &churnv1.Activity{Usage_30D: ptr(12.0), UsagePrev_30D: ptr(10.0)}
	flat := &churnv1.Activity{Usage_30D: ptr(10.0), UsagePrev_30D: ptr(10.0)}
	halved := &churnv1.Activity{Usage_30D: ptr(5.0), UsagePrev_30D: ptr(10.0)}
	idle := &churnv1.Activity{DaysSinceLastActive: ptr(45.0)}
	tests := []struct {
		name string
		f    *churnv1.CustomerFeatures
		want churnv1.LifecycleStage
	}{
		{"nil features", nil, churnv1.LifecycleStage_LIFECYCLE_STAGE_UNSPECIFIED},
		{"no tenure, no activity", features(nil, &churnv1.Activity{}), churnv1.LifecycleStage_LIFECYCLE_STAGE_UNSPECIFIED},
		{"no tenure, steady activity", features(nil, flat), churnv1.LifecycleStage_LIFECYCLE_STAGE_UNSPECIFIED},
		{"no tenure, declining", features(nil, halved), churnv1.LifecycleStage_LIFECYCLE_STAGE_DECLINING},
		{"new", features(ptr(2.9), halved), churnv1.LifecycleStage_LIFECYCLE_STAGE_NEW},
		{"new months boundary is growing", features(ptr(3.0), up), churnv1.LifecycleStage_LIFECYCLE_STAGE_GROWING},
		{"declining on drop", features(ptr(6.0), halved), churnv1.LifecycleStage_LIFECYCLE_STAGE_DECLINING},
		{"declining on inactivity", features(ptr(30.0), idle), churnv1.LifecycleStage_LIFECYCLE_STAGE_DECLINING},
		{"growing, usage up", features(ptr(11.9), up), churnv1.LifecycleStage_LIFECYCLE_STAGE_GROWING},
		{"growing, no usage data", features(ptr(6.0), nil), churnv1.LifecycleStage_LIFECYCLE_STAGE_GROWING},
		{"mature: young but flat usage", features(ptr(6.0), flat), churnv1.LifecycleStage_LIFECYCLE_STAGE_MATURE},
		{"mature: at mature months", features(ptr(12.0), up), churnv1.LifecycleStage_LIFECYCLE_STAGE_MATURE},
		{"mature: old, no activity", features(ptr(40.0), nil), churnv1.LifecycleStage_LIFECYCLE_STAGE_MATURE},
	}
	r := DefaultRules()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := r.Evaluate(Input{Features: tc.f}).Stage; got != tc.want {
				t.Errorf("stage = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExpectedLoss(t *testing.T) {
	t.Parallel()
	r := DefaultRules()
	tests := []struct {
		name    string
		revenue *float64
		p       float64
		want    float64
	}{
		{"revenue known", ptr(100.0), 0.25, 300},
		{"zero revenue", ptr(0.0), 0.9, 0},
		{"revenue absent", nil, 0.9, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := Input{Probability: tc.p, Features: &churnv1.CustomerFeatures{Account: &churnv1.Account{MonthlyRevenue: tc.revenue}}}
			if got := r.Evaluate(in).ExpectedLoss; got != tc.want {
				t.Errorf("expected loss = %v, want %v", got, tc.want)
			}
		})
	}
	r6 := DefaultRules()
	r6.ExpectedLoss.HorizonMonths = 6
	if got := r6.Evaluate(Input{Probability: 0.5, Features: &churnv1.CustomerFeatures{Account: &churnv1.Account{MonthlyRevenue: ptr(10.0)}}}).ExpectedLoss; got != 30 {
		t.Errorf("horizon 6: expected loss = %v, want 30", got)
	}
	if got := r6.Evaluate(Input{Probability: 0.5}).ExpectedLoss; got != 0 {
		t.Errorf("nil features: expected loss = %v, want 0", got)
	}
}

// typical is a request with every group filled and two warnings raised.
func typical() Input {
	return Input{
		Features: &churnv1.CustomerFeatures{
			Activity:   &churnv1.Activity{DaysSinceLastActive: ptr(3.0), ActiveDays_30D: ptr(12.0), Usage_30D: ptr(40.0), UsagePrev_30D: ptr(100.0)},
			Complaints: &churnv1.Complaints{Count_30D: ptr(2.0), Count_90D: ptr(3.0), Open: ptr(1.0)},
			Service:    &churnv1.ServiceResponse{Tickets_90D: ptr(4.0), AvgFirstResponseHours: ptr(10.0), P90FirstResponseHours: ptr(30.0), SlaBreaches_90D: ptr(0.0)},
			Account:    &churnv1.Account{TenureMonths: ptr(14.0), MonthlyRevenue: ptr(79.5), Contract: ptr("month-to-month"), Satisfaction: ptr(3.0)},
		},
		Probability: 0.62,
		Tier:        churnv1.RiskTier_RISK_TIER_MEDIUM,
	}
}

func TestEvaluateAllocs(t *testing.T) {
	r := DefaultRules()
	many := typical()
	many.Features.Account.Satisfaction = ptr(1.0)
	many.Tier = churnv1.RiskTier_RISK_TIER_HIGH
	for _, tc := range []struct {
		name     string
		in       Input
		warnings int
		want     float64
	}{
		// The action alone; its reason is a constant.
		{"low risk", Input{Features: &churnv1.CustomerFeatures{}, Probability: 0.05, Tier: churnv1.RiskTier_RISK_TIER_LOW}, 0, 1},
		// Each warning and its message, the slice of them, the action and its reason.
		{"typical", typical(), 2, 7},
		{"four warnings", many, 4, 11},
	} {
		if n := len(r.Evaluate(tc.in).Warnings); n != tc.warnings {
			t.Fatalf("%s: %d warnings, want %d", tc.name, n, tc.warnings)
		}
		if got := testing.AllocsPerRun(100, func() { r.Evaluate(tc.in) }); got > tc.want {
			t.Errorf("%s: Evaluate allocates %v times, want <= %v (only the result messages and their slice)", tc.name, got, tc.want)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	r, err := ParseRules([]byte("segments:\n  month-to-month:\n    inactive: {days_since_last_active: 14}\n"))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		in   Input
	}{
		{"typical", typical()},
		// The features of testdata/requests/basic.json and complaints.json, which the default
		// model puts in the CRITICAL tier, as internal/server's benchmarks score them: one warning
		// and a let-go action, three warnings and a make-amends action.
		{"basic", Input{
			Features: &churnv1.CustomerFeatures{
				Complaints: &churnv1.Complaints{Count_30D: ptr(1.0), Count_90D: ptr(2.0)},
				Account:    &churnv1.Account{TenureMonths: ptr(14.0), Contract: ptr("pay_as_you_go")},
			},
			Probability: 0.98, Tier: churnv1.RiskTier_RISK_TIER_CRITICAL,
		}},
		{"complaints", Input{
			Features: &churnv1.CustomerFeatures{
				Complaints: &churnv1.Complaints{Count_30D: ptr(3.0), Count_90D: ptr(4.0)},
				Account:    &churnv1.Account{TenureMonths: ptr(14.0), Contract: ptr("pay_as_you_go"), MonthlyRevenue: ptr(250.0)},
				Service:    &churnv1.ServiceResponse{AvgFirstResponseHours: ptr(40.0), P90FirstResponseHours: ptr(96.0)},
			},
			Probability: 0.98, Tier: churnv1.RiskTier_RISK_TIER_CRITICAL,
		}},
		{"low_risk_no_warnings", Input{Features: &churnv1.CustomerFeatures{Account: &churnv1.Account{TenureMonths: ptr(20.0)}}, Probability: 0.05, Tier: churnv1.RiskTier_RISK_TIER_LOW}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Evaluate(bc.in)
			}
		})
	}
}
