// Package retention turns a customer's features and churn score into early-warning flags, a
// retention action from the value x cause matrix, a lifecycle stage and the expected loss, by
// configurable Rules. It is pure: no I/O besides LoadRules, no logging, and no state beyond the
// read-only warningRules table.
//
// # Warnings
//
// Each rule reads typed fields of CustomerFeatures, whether or not a model uses them; an absent
// field (or sub-message) raises nothing. Evaluate applies the rules of the warningRules table in
// WarningCode order, so its warnings come in that order, each with the observed value, the
// threshold it crossed and a one-line message naming both (numbers by fmtNum: at most two
// decimals, no trailing zeros). RISK_RISING compares the probability with the customer's previous
// score, which only the caller knows: Evaluate does not raise it; the caller calls RiskRising and
// appends its warning.
//
// Adding a warning rule:
//
//  1. its WarningCode value in proto/churn/v1/scoring.proto (then make generate);
//  2. one entry in warningRules, in code order, with its function: the warning or nil;
//  3. its threshold struct as a field of Rules, with its default in DefaultRules and its keys in
//     Rules.fields (rules.go), testdata/rules/default.yaml and the README's table of rules;
//  4. its cases in TestWarnings. TestWarningRules fails until the new code has its entry.
//
// # Action: the value x cause matrix
//
// Below Rules.Action.MinTier (default MEDIUM) the action is NONE ("risk is low"). Otherwise:
//
//	value = monthly_revenue x max(lifetime_months - tenure_months, min_remaining_months)
//	high value   = value >= value_cut (unknown revenue counts as low value)
//	company-side = COMPLAINT_SPIKE, SLOW_RESPONSE or SLA_BREACH raised, or complaints.open > 0
//
//	                   company-side cause   customer-side cause
//	  high value       MAKE_AMENDS          WIN_BACK
//	  low value        OPPORTUNISTIC        LET_GO
//
// An absent tenure counts as 0 months (remaining = lifetime_months). The reason names the value
// against the cut and the causes, e.g. "high value 2000 (cut 1000); company-side cause: complaint
// spike, 2 open complaints".
//
// # Stage
//
// In this order: UNSPECIFIED when tenure is absent and there is no activity data; NEW when tenure <
// new_months; DECLINING when ACTIVITY_DROP or INACTIVE is raised; UNSPECIFIED when tenure is absent
// (new, growing and mature need it); GROWING when tenure < mature_months and usage_30d >
// usage_prev_30d (or either usage is absent); MATURE otherwise.
//
// # Expected loss
//
// probability x monthly_revenue x horizon_months; 0 when monthly_revenue is absent.
//
// # Contract segments
//
// Evaluate uses the Rules of the customer's account.contract segment when Rules.Segments has one.
// RiskRising uses the Rules it is called on: the caller picks the segment.
package retention

import (
	"strings"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// Input is what Evaluate needs.
type Input struct {
	Features    *churnv1.CustomerFeatures
	Probability float64
	Tier        churnv1.RiskTier
	// TierThresholds are the scoring model's tier thresholds, which HIGH_RISK reports as its
	// threshold; the zero value when the caller does not know them.
	TierThresholds TierThresholds
}

// TierThresholds are a model's probability thresholds of the risk tiers: a probability p is
// CRITICAL when p >= Critical, else HIGH when p >= High, else MEDIUM when p >= Medium, else LOW.
type TierThresholds struct {
	Medium, High, Critical float64
}

// of returns the lowest probability of tier t: 0 for LOW (and UNSPECIFIED).
func (th TierThresholds) of(t churnv1.RiskTier) float64 {
	switch t {
	case churnv1.RiskTier_RISK_TIER_MEDIUM:
		return th.Medium
	case churnv1.RiskTier_RISK_TIER_HIGH:
		return th.High
	case churnv1.RiskTier_RISK_TIER_CRITICAL:
		return th.Critical
	}
	return 0
}

// Result is the outcome of Evaluate.
type Result struct {
	Warnings     []*churnv1.Warning // in WarningCode order; nil when none
	Action       *churnv1.RetentionAction
	Stage        churnv1.LifecycleStage
	ExpectedLoss float64
}

// eps absorbs float rounding at the boundaries of differences (0.5 - 0.4 < 0.1 in float64).
const eps = 1e-9

// A warningRule raises one warning code. raise returns the warning's value, threshold and
// message, or nil when the customer does not cross the threshold; Evaluate sets its Code.
type warningRule struct {
	code  churnv1.WarningCode
	raise func(r *Rules, in Input) *churnv1.Warning
}

// warningRules are the rules Evaluate applies, in WarningCode order. RISK_RISING is not among
// them: it needs the previous score (see RiskRising).
var warningRules = []warningRule{
	{churnv1.WarningCode_WARNING_CODE_COMPLAINT_SPIKE, complaintSpike},
	{churnv1.WarningCode_WARNING_CODE_SLOW_RESPONSE, slowResponse},
	{churnv1.WarningCode_WARNING_CODE_SLA_BREACH, slaBreach},
	{churnv1.WarningCode_WARNING_CODE_ACTIVITY_DROP, activityDrop},
	{churnv1.WarningCode_WARNING_CODE_INACTIVE, inactive},
	{churnv1.WarningCode_WARNING_CODE_LOW_SATISFACTION, lowSatisfaction},
	{churnv1.WarningCode_WARNING_CODE_HIGH_RISK, highRisk},
}

// Evaluate applies the rules (those of the customer's contract segment when there is one) to in.
func (r *Rules) Evaluate(in Input) Result {
	r = r.forContract(in.Features.GetAccount())
	var warnings []*churnv1.Warning
	for _, rule := range warningRules {
		if w := rule.raise(r, in); w != nil {
			if warnings == nil {
				// Room for every rule: one allocation, not one per doubling (BenchmarkEvaluate/
				// complaints, 3 warnings: 9 allocations instead of 11, 2.65 µs instead of 3.35 µs
				// at load 9; docs/PERFORMANCE.md, "Plain retention rules").
				warnings = make([]*churnv1.Warning, 0, len(warningRules))
			}
			w.Code = rule.code
			warnings = append(warnings, w)
		}
	}
	declining := raised(warnings, churnv1.WarningCode_WARNING_CODE_ACTIVITY_DROP) ||
		raised(warnings, churnv1.WarningCode_WARNING_CODE_INACTIVE)
	return Result{
		Warnings:     warnings,
		Action:       r.action(in, warnings),
		Stage:        r.stage(in.Features, declining),
		ExpectedLoss: r.expectedLoss(in),
	}
}

// forContract returns the rules of the account's contract segment, or r when it has none.
func (r *Rules) forContract(acc *churnv1.Account) *Rules {
	if acc == nil || acc.Contract == nil {
		return r
	}
	if seg := r.Segments[*acc.Contract]; seg != nil {
		return seg
	}
	return r
}

// raised reports whether warnings holds code.
func raised(warnings []*churnv1.Warning, code churnv1.WarningCode) bool {
	for _, w := range warnings {
		if w.Code == code {
			return true
		}
	}
	return false
}

// action picks the cell of the value x cause matrix and says why (see the package comment).
func (r *Rules) action(in Input, warnings []*churnv1.Warning) *churnv1.RetentionAction {
	rule := &r.Action
	if in.Tier < rule.MinTier {
		return &churnv1.RetentionAction{Type: churnv1.ActionType_ACTION_TYPE_NONE, Reason: "risk is low"}
	}

	acc := in.Features.GetAccount()
	known := acc != nil && acc.MonthlyRevenue != nil
	var value float64
	if known {
		value = *acc.MonthlyRevenue * max(rule.LifetimeMonths-acc.GetTenureMonths(), rule.MinRemainingMonths)
	}
	high := known && value >= rule.ValueCut

	// The causes named in the reason: the company-side warnings raised (and the open complaints,
	// which come last), else the customer-side ones.
	causes := make([]string, 0, 3)
	if raised(warnings, churnv1.WarningCode_WARNING_CODE_COMPLAINT_SPIKE) {
		causes = append(causes, "complaint spike")
	}
	if raised(warnings, churnv1.WarningCode_WARNING_CODE_SLOW_RESPONSE) {
		causes = append(causes, "slow response")
	}
	if raised(warnings, churnv1.WarningCode_WARNING_CODE_SLA_BREACH) {
		causes = append(causes, "SLA breach")
	}
	open := in.Features.GetComplaints().GetOpen()
	company := len(causes) > 0 || open > 0
	if !company {
		if raised(warnings, churnv1.WarningCode_WARNING_CODE_ACTIVITY_DROP) {
			causes = append(causes, "activity drop")
		}
		if raised(warnings, churnv1.WarningCode_WARNING_CODE_INACTIVE) {
			causes = append(causes, "inactive")
		}
		if len(causes) == 0 {
			causes = append(causes, "no company-side signal")
		}
	}

	var t churnv1.ActionType
	switch {
	case high && company:
		t = churnv1.ActionType_ACTION_TYPE_MAKE_AMENDS
	case high:
		t = churnv1.ActionType_ACTION_TYPE_WIN_BACK
	case company:
		t = churnv1.ActionType_ACTION_TYPE_OPPORTUNISTIC
	default:
		t = churnv1.ActionType_ACTION_TYPE_LET_GO
	}

	// The reason: the value against the cut, then the causes, e.g. "high value 2000 (cut 1000);
	// company-side cause: complaint spike, 2 open complaints".
	var reason strings.Builder
	reason.Grow(128) // the usual reasons are 45 to 110 bytes: one allocation, not four (16 to 128 bytes)
	switch {
	case !known:
		reason.WriteString("value unknown without monthly_revenue, treated as low (cut ")
	case high:
		reason.WriteString("high value ")
		reason.WriteString(fmtNum(value))
		reason.WriteString(" (cut ")
	default:
		reason.WriteString("low value ")
		reason.WriteString(fmtNum(value))
		reason.WriteString(" (below cut ")
	}
	reason.WriteString(fmtNum(rule.ValueCut))
	if company {
		reason.WriteString("); company-side cause: ")
	} else {
		reason.WriteString("); customer-side cause: ")
	}
	for i, cause := range causes {
		if i > 0 {
			reason.WriteString(", ")
		}
		reason.WriteString(cause)
	}
	if open > 0 {
		if len(causes) > 0 {
			reason.WriteString(", ")
		}
		reason.WriteString(fmtNum(open))
		reason.WriteString(plural(open, " open complaint", " open complaints"))
	}
	return &churnv1.RetentionAction{Type: t, HighValue: high, CompanySide: company, Reason: reason.String()}
}

// stage places the customer in the lifecycle (see the package comment).
func (r *Rules) stage(f *churnv1.CustomerFeatures, declining bool) churnv1.LifecycleStage {
	var tenure *float64
	if acc := f.GetAccount(); acc != nil {
		tenure = acc.TenureMonths
	}
	a := f.GetActivity()
	activity := a != nil && (a.DaysSinceLastActive != nil || a.ActiveDays_30D != nil || a.Usage_30D != nil || a.UsagePrev_30D != nil)
	switch {
	case tenure == nil && !activity:
		return churnv1.LifecycleStage_LIFECYCLE_STAGE_UNSPECIFIED
	case tenure != nil && *tenure < r.Stage.NewMonths:
		return churnv1.LifecycleStage_LIFECYCLE_STAGE_NEW
	case declining:
		return churnv1.LifecycleStage_LIFECYCLE_STAGE_DECLINING
	case tenure == nil:
		return churnv1.LifecycleStage_LIFECYCLE_STAGE_UNSPECIFIED
	case *tenure < r.Stage.MatureMonths && (a == nil || a.Usage_30D == nil || a.UsagePrev_30D == nil || *a.Usage_30D > *a.UsagePrev_30D):
		return churnv1.LifecycleStage_LIFECYCLE_STAGE_GROWING
	}
	return churnv1.LifecycleStage_LIFECYCLE_STAGE_MATURE
}

// expectedLoss is probability x monthly_revenue x horizon_months, 0 when the revenue is absent.
func (r *Rules) expectedLoss(in Input) float64 {
	acc := in.Features.GetAccount()
	if acc == nil || acc.MonthlyRevenue == nil {
		return 0
	}
	return in.Probability * *acc.MonthlyRevenue * r.ExpectedLoss.HorizonMonths
}

// RiskRising returns the RISK_RISING warning when p - previous >= r.Rising.Margin, else nil (also
// nil without a previous probability). Evaluate does not raise it: only the caller knows the
// previous score.
func (r *Rules) RiskRising(p float64, previous *float64) *churnv1.Warning {
	if previous == nil {
		return nil
	}
	rise := p - *previous
	margin := r.Rising.Margin
	if rise < margin-eps {
		return nil
	}
	return &churnv1.Warning{
		Code:      churnv1.WarningCode_WARNING_CODE_RISK_RISING,
		Value:     rise,
		Threshold: margin,
		Message:   "probability up " + fmtNum(rise) + " from " + fmtNum(*previous) + " to " + fmtNum(p) + " (threshold " + fmtNum(margin) + ")",
	}
}

// plural returns one when v is 1, else many.
func plural(v float64, one, many string) string {
	if v == 1 {
		return one
	}
	return many
}

// countWarning is a warning whose message reads "<value><what> (threshold <threshold>)", what
// being one or many by value.
func countWarning(value float64, one, many string, threshold float64) *churnv1.Warning {
	return &churnv1.Warning{
		Value:     value,
		Threshold: threshold,
		Message:   fmtNum(value) + plural(value, one, many) + " (threshold " + fmtNum(threshold) + ")",
	}
}

func complaintSpike(r *Rules, in Input) *churnv1.Warning {
	c := in.Features.GetComplaints()
	if c == nil || c.Count_30D == nil {
		return nil
	}
	n := *c.Count_30D
	rule := &r.ComplaintSpike
	if n >= rule.Count30dThreshold {
		return countWarning(n, " complaint in the last 30 days", " complaints in the last 30 days", rule.Count30dThreshold)
	}
	if c.Count_90D == nil || n < rule.SpikeMinCount {
		return nil
	}
	rate := *c.Count_90D / 3
	threshold := rule.SpikeRatio * rate
	if n < threshold-eps {
		return nil
	}
	return &churnv1.Warning{
		Value:     n,
		Threshold: threshold,
		Message: fmtNum(n) + plural(n, " complaint", " complaints") + " in the last 30 days against a 90-day rate of " +
			fmtNum(rate) + " a month (threshold " + fmtNum(rule.SpikeRatio) + "x the rate = " + fmtNum(threshold) + ")",
	}
}

// slowResponse reports the worse of the average and the p90 first response, measured as the
// ratio to its threshold.
func slowResponse(r *Rules, in Input) *churnv1.Warning {
	s := in.Features.GetService()
	if s == nil {
		return nil
	}
	rule := &r.SlowResponse
	var what string
	var value, threshold float64
	if s.AvgFirstResponseHours != nil && *s.AvgFirstResponseHours > rule.AvgFirstResponseHours {
		what, value, threshold = "average first response ", *s.AvgFirstResponseHours, rule.AvgFirstResponseHours
	}
	if s.P90FirstResponseHours != nil && *s.P90FirstResponseHours > rule.P90FirstResponseHours {
		p90 := *s.P90FirstResponseHours
		if what == "" || p90/rule.P90FirstResponseHours > value/threshold {
			what, value, threshold = "p90 first response ", p90, rule.P90FirstResponseHours
		}
	}
	if what == "" {
		return nil
	}
	return &churnv1.Warning{
		Value:     value,
		Threshold: threshold,
		Message:   what + fmtNum(value) + "h (threshold " + fmtNum(threshold) + "h)",
	}
}

func slaBreach(r *Rules, in Input) *churnv1.Warning {
	s := in.Features.GetService()
	if s == nil || s.SlaBreaches_90D == nil || *s.SlaBreaches_90D < r.SLABreach.Breaches90d {
		return nil
	}
	return countWarning(*s.SlaBreaches_90D, " SLA breach in the last 90 days", " SLA breaches in the last 90 days", r.SLABreach.Breaches90d)
}

func activityDrop(r *Rules, in Input) *churnv1.Warning {
	a := in.Features.GetActivity()
	if a == nil || a.Usage_30D == nil || a.UsagePrev_30D == nil || *a.UsagePrev_30D <= 0 {
		return nil
	}
	drop := 1 - *a.Usage_30D / *a.UsagePrev_30D
	threshold := r.ActivityDrop.DropFraction
	if drop < threshold-eps {
		return nil
	}
	return &churnv1.Warning{
		Value:     drop,
		Threshold: threshold,
		Message:   "usage down " + fmtNum(drop*100) + "% on the previous 30 days (threshold " + fmtNum(threshold*100) + "%)",
	}
}

func inactive(r *Rules, in Input) *churnv1.Warning {
	a := in.Features.GetActivity()
	if a == nil || a.DaysSinceLastActive == nil || *a.DaysSinceLastActive < r.Inactive.DaysSinceLastActive {
		return nil
	}
	return countWarning(*a.DaysSinceLastActive, " day since last active", " days since last active", r.Inactive.DaysSinceLastActive)
}

func lowSatisfaction(r *Rules, in Input) *churnv1.Warning {
	acc := in.Features.GetAccount()
	if acc == nil || acc.Satisfaction == nil || *acc.Satisfaction > r.LowSatisfaction.Satisfaction {
		return nil
	}
	return &churnv1.Warning{
		Value:     *acc.Satisfaction,
		Threshold: r.LowSatisfaction.Satisfaction,
		Message:   "satisfaction " + fmtNum(*acc.Satisfaction) + " of 5 (threshold " + fmtNum(r.LowSatisfaction.Satisfaction) + ")",
	}
}

// highRisk's value is the probability and its threshold the scoring model's probability
// threshold of the minimum tier (the cut of a tier belongs to the model, in.TierThresholds); the
// message names the tiers. Without the thresholds (their zero value) the threshold is 0 and the
// message names the tier only.
func highRisk(r *Rules, in Input) *churnv1.Warning {
	minTier := r.HighRisk.MinTier
	if in.Tier < minTier {
		return nil
	}
	// One concatenation per message: TestEvaluateAllocs counts the allocations of Evaluate.
	w := &churnv1.Warning{Value: in.Probability}
	if in.TierThresholds == (TierThresholds{}) {
		w.Message = "tier " + TierName(in.Tier) + " at probability " + fmtNum(in.Probability) + " (threshold tier " + TierName(minTier) + ")"
		return w
	}
	w.Threshold = in.TierThresholds.of(minTier)
	w.Message = "tier " + TierName(in.Tier) + " at probability " + fmtNum(in.Probability) +
		" (threshold tier " + TierName(minTier) + ", from probability " + fmtNum(w.Threshold) + ")"
	return w
}

// TierName is the tier's enum name without the RISK_TIER_ prefix, e.g. HIGH: the tier as
// messages, metric labels and span attributes name it. A switch rather than t.String(), which goes
// through protobuf's reflection: a third of HIGH_RISK's cost per Score (docs/PERFORMANCE.md,
// "Issue 11: the whole change against its budget").
func TierName(t churnv1.RiskTier) string {
	switch t {
	case churnv1.RiskTier_RISK_TIER_LOW:
		return "LOW"
	case churnv1.RiskTier_RISK_TIER_MEDIUM:
		return "MEDIUM"
	case churnv1.RiskTier_RISK_TIER_HIGH:
		return "HIGH"
	case churnv1.RiskTier_RISK_TIER_CRITICAL:
		return "CRITICAL"
	}
	return strings.TrimPrefix(t.String(), "RISK_TIER_")
}
