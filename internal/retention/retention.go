// Package retention turns a customer's features and churn score into early-warning flags, a
// retention action from the value x cause matrix, a lifecycle stage and the expected loss, by
// configurable Rules. It is pure: no I/O besides LoadRules, no globals, no logging.
//
// # Warnings
//
// Each rule reads typed fields of CustomerFeatures, whether or not a model uses them; an absent
// field (or sub-message) raises nothing. Warnings come in WarningCode order, each with the observed
// value, the threshold it crossed and a one-line message naming both.
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
// An absent tenure counts as 0 months (remaining = lifetime_months).
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
package retention

import (
	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// Input is what Evaluate needs.
type Input struct {
	Features    *churnv1.CustomerFeatures
	Probability float64
	Tier        churnv1.RiskTier
	Previous    *float64 // the customer's previous cached probability, nil when none
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

// numWarnings is the number of warning codes, RISK_RISING being the last.
const numWarnings = int(churnv1.WarningCode_WARNING_CODE_RISK_RISING)

// Evaluate applies the rules (those of the customer's contract segment when there is one) to in.
// It allocates only the result messages.
func (r *Rules) Evaluate(in Input) Result {
	f := in.Features
	acc := f.GetAccount()
	if acc != nil && acc.Contract != nil && r.Segments != nil {
		if seg := r.Segments[*acc.Contract]; seg != nil {
			r = seg
		}
	}
	var ws [numWarnings]*churnv1.Warning
	ws[0] = r.complaintSpike(f.GetComplaints())
	ws[1] = r.slowResponse(f.GetService())
	ws[2] = r.slaBreach(f.GetService())
	ws[3] = r.activityDrop(f.GetActivity())
	ws[4] = r.inactive(f.GetActivity())
	ws[5] = r.lowSatisfaction(acc)
	ws[6] = r.highRisk(in.Probability, in.Tier)
	ws[7] = r.RiskRising(in.Probability, in.Previous)
	n := 0
	for _, w := range ws {
		if w != nil {
			n++
		}
	}
	var res Result
	if n > 0 {
		res.Warnings = make([]*churnv1.Warning, 0, n)
		for _, w := range ws {
			if w != nil {
				res.Warnings = append(res.Warnings, w)
			}
		}
	}
	res.Action = r.action(in, acc, f.GetComplaints(), &ws)
	res.Stage = r.stage(acc, f.GetActivity(), ws[3] != nil || ws[4] != nil)
	if acc != nil && acc.MonthlyRevenue != nil {
		res.ExpectedLoss = in.Probability * *acc.MonthlyRevenue * r.ExpectedLoss.HorizonMonths
	}
	return res
}

// action picks the cell of the value x cause matrix (see the package comment).
func (r *Rules) action(in Input, acc *churnv1.Account, c *churnv1.Complaints, ws *[numWarnings]*churnv1.Warning) *churnv1.RetentionAction {
	rule := &r.Action
	if in.Tier < rule.MinTier {
		return &churnv1.RetentionAction{Type: churnv1.ActionType_ACTION_TYPE_NONE, Reason: "risk is low"}
	}
	var buf [256]byte
	b := buf[:0]

	known := acc != nil && acc.MonthlyRevenue != nil
	high := false
	if known {
		tenure := 0.0
		if acc.TenureMonths != nil {
			tenure = *acc.TenureMonths
		}
		value := *acc.MonthlyRevenue * max(rule.LifetimeMonths-tenure, rule.MinRemainingMonths)
		high = value >= rule.ValueCut
		if high {
			b = append(b, "high value "...)
		} else {
			b = append(b, "low value "...)
		}
		b = appendNum(b, value)
		if high {
			b = append(b, " (cut "...)
		} else {
			b = append(b, " (below cut "...)
		}
	} else {
		b = append(b, "value unknown without monthly_revenue, treated as low (cut "...)
	}
	b = appendNum(b, rule.ValueCut)
	b = append(b, "); "...)

	open := c != nil && c.Open != nil && *c.Open > 0
	company := ws[0] != nil || ws[1] != nil || ws[2] != nil || open
	if company {
		b = append(b, "company-side cause:"...)
		sep := byte(' ')
		for i, name := range [...]string{"complaint spike", "slow response", "SLA breach"} {
			if ws[i] != nil {
				b = append(b, sep)
				if sep == ',' {
					b = append(b, ' ')
				}
				b = append(b, name...)
				sep = ','
			}
		}
		if open {
			b = append(b, sep)
			if sep == ',' {
				b = append(b, ' ')
			}
			b = appendNum(b, *c.Open)
			b = append(b, plural(*c.Open, " open complaint", " open complaints")...)
		}
	} else {
		b = append(b, "customer-side cause: "...)
		switch {
		case ws[3] != nil && ws[4] != nil:
			b = append(b, "activity drop, inactive"...)
		case ws[3] != nil:
			b = append(b, "activity drop"...)
		case ws[4] != nil:
			b = append(b, "inactive"...)
		default:
			b = append(b, "no company-side signal"...)
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
	return &churnv1.RetentionAction{Type: t, Reason: string(b), HighValue: high, CompanySide: company}
}

// stage places the customer in the lifecycle (see the package comment).
func (r *Rules) stage(acc *churnv1.Account, a *churnv1.Activity, declining bool) churnv1.LifecycleStage {
	var tenure *float64
	if acc != nil {
		tenure = acc.TenureMonths
	}
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

// RiskRising returns the RISK_RISING warning when p - previous >= the rule's margin, else nil (used
// on its own when a cached score is read back).
func (r *Rules) RiskRising(p float64, previous *float64) *churnv1.Warning {
	if previous == nil {
		return nil
	}
	rise := p - *previous
	if rise < r.Rising.Margin-eps {
		return nil
	}
	var buf [96]byte
	b := append(buf[:0], "probability up "...)
	b = appendNum(b, rise)
	b = append(b, " from "...)
	b = appendNum(b, *previous)
	b = append(b, " to "...)
	b = appendNum(b, p)
	b = append(b, " (threshold "...)
	b = appendNum(b, r.Rising.Margin)
	b = append(b, ')')
	return warning(churnv1.WarningCode_WARNING_CODE_RISK_RISING, b, rise, r.Rising.Margin)
}

func warning(code churnv1.WarningCode, msg []byte, value, threshold float64) *churnv1.Warning {
	return &churnv1.Warning{Code: code, Message: string(msg), Value: value, Threshold: threshold}
}

// plural returns one when v is 1, else many.
func plural(v float64, one, many string) string {
	if v == 1 {
		return one
	}
	return many
}

// countWarning builds "<value><what> (threshold <threshold>)", what being one or many by value.
func countWarning(code churnv1.WarningCode, value float64, one, many string, threshold float64) *churnv1.Warning {
	var buf [96]byte
	b := appendNum(buf[:0], value)
	b = append(b, plural(value, one, many)...)
	b = append(b, " (threshold "...)
	b = appendNum(b, threshold)
	b = append(b, ')')
	return warning(code, b, value, threshold)
}

func (r *Rules) complaintSpike(c *churnv1.Complaints) *churnv1.Warning {
	if c == nil || c.Count_30D == nil {
		return nil
	}
	n := *c.Count_30D
	rule := &r.ComplaintSpike
	if n >= rule.Count30dThreshold {
		return countWarning(churnv1.WarningCode_WARNING_CODE_COMPLAINT_SPIKE, n, " complaint in the last 30 days", " complaints in the last 30 days", rule.Count30dThreshold)
	}
	if c.Count_90D == nil || n < rule.SpikeMinCount {
		return nil
	}
	rate := *c.Count_90D / 3
	threshold := rule.SpikeRatio * rate
	if n < threshold-eps {
		return nil
	}
	var buf [128]byte
	b := appendNum(buf[:0], n)
	b = append(b, plural(n, " complaint", " complaints")...)
	b = append(b, " in the last 30 days against a 90-day rate of "...)
	b = appendNum(b, rate)
	b = append(b, " a month (threshold "...)
	b = appendNum(b, rule.SpikeRatio)
	b = append(b, "x the rate = "...)
	b = appendNum(b, threshold)
	b = append(b, ')')
	return warning(churnv1.WarningCode_WARNING_CODE_COMPLAINT_SPIKE, b, n, threshold)
}

func (r *Rules) slowResponse(s *churnv1.ServiceResponse) *churnv1.Warning {
	if s == nil {
		return nil
	}
	rule := &r.SlowResponse
	// Report the worse of the two, measured as the ratio to its threshold.
	var what string
	var value, threshold, worst float64
	if s.AvgFirstResponseHours != nil && *s.AvgFirstResponseHours > rule.AvgFirstResponseHours {
		what, value, threshold = "average first response ", *s.AvgFirstResponseHours, rule.AvgFirstResponseHours
		worst = value / threshold
	}
	if s.P90FirstResponseHours != nil && *s.P90FirstResponseHours > rule.P90FirstResponseHours {
		if ratio := *s.P90FirstResponseHours / rule.P90FirstResponseHours; what == "" || ratio > worst {
			what, value, threshold = "p90 first response ", *s.P90FirstResponseHours, rule.P90FirstResponseHours
		}
	}
	if what == "" {
		return nil
	}
	var buf [96]byte
	b := append(buf[:0], what...)
	b = appendNum(b, value)
	b = append(b, "h (threshold "...)
	b = appendNum(b, threshold)
	b = append(b, "h)"...)
	return warning(churnv1.WarningCode_WARNING_CODE_SLOW_RESPONSE, b, value, threshold)
}

func (r *Rules) slaBreach(s *churnv1.ServiceResponse) *churnv1.Warning {
	if s == nil || s.SlaBreaches_90D == nil || *s.SlaBreaches_90D < r.SLABreach.Breaches90d {
		return nil
	}
	return countWarning(churnv1.WarningCode_WARNING_CODE_SLA_BREACH, *s.SlaBreaches_90D, " SLA breach in the last 90 days", " SLA breaches in the last 90 days", r.SLABreach.Breaches90d)
}

func (r *Rules) activityDrop(a *churnv1.Activity) *churnv1.Warning {
	if a == nil || a.Usage_30D == nil || a.UsagePrev_30D == nil || *a.UsagePrev_30D <= 0 {
		return nil
	}
	drop := 1 - *a.Usage_30D / *a.UsagePrev_30D
	threshold := r.ActivityDrop.DropFraction
	if drop < threshold-eps {
		return nil
	}
	var buf [96]byte
	b := append(buf[:0], "usage down "...)
	b = appendNum(b, drop*100)
	b = append(b, "% on the previous 30 days (threshold "...)
	b = appendNum(b, threshold*100)
	b = append(b, "%)"...)
	return warning(churnv1.WarningCode_WARNING_CODE_ACTIVITY_DROP, b, drop, threshold)
}

func (r *Rules) inactive(a *churnv1.Activity) *churnv1.Warning {
	if a == nil || a.DaysSinceLastActive == nil || *a.DaysSinceLastActive < r.Inactive.DaysSinceLastActive {
		return nil
	}
	return countWarning(churnv1.WarningCode_WARNING_CODE_INACTIVE, *a.DaysSinceLastActive, " day since last active", " days since last active", r.Inactive.DaysSinceLastActive)
}

func (r *Rules) lowSatisfaction(a *churnv1.Account) *churnv1.Warning {
	if a == nil || a.Satisfaction == nil || *a.Satisfaction > r.LowSatisfaction.Satisfaction {
		return nil
	}
	var buf [64]byte
	b := append(buf[:0], "satisfaction "...)
	b = appendNum(b, *a.Satisfaction)
	b = append(b, " of 5 (threshold "...)
	b = appendNum(b, r.LowSatisfaction.Satisfaction)
	b = append(b, ')')
	return warning(churnv1.WarningCode_WARNING_CODE_LOW_SATISFACTION, b, *a.Satisfaction, r.LowSatisfaction.Satisfaction)
}

// highRisk's value is the probability and its threshold the minimum tier's number (3 for HIGH):
// the probability cut of a tier belongs to the model.
func (r *Rules) highRisk(p float64, tier churnv1.RiskTier) *churnv1.Warning {
	if tier < r.HighRisk.MinTier {
		return nil
	}
	var buf [96]byte
	b := append(buf[:0], "tier "...)
	b = append(b, tierName(tier)...)
	b = append(b, " at probability "...)
	b = appendNum(b, p)
	b = append(b, " (threshold tier "...)
	b = append(b, tierName(r.HighRisk.MinTier)...)
	b = append(b, " = "...)
	b = appendNum(b, float64(r.HighRisk.MinTier))
	b = append(b, ')')
	return warning(churnv1.WarningCode_WARNING_CODE_HIGH_RISK, b, p, float64(r.HighRisk.MinTier))
}

func tierName(t churnv1.RiskTier) string {
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
	return "UNSPECIFIED"
}
