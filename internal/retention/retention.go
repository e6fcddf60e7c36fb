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
	"strings"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// Input is what Evaluate needs.
type Input struct {
	Features    *churnv1.CustomerFeatures
	Probability float64
	Tier        churnv1.RiskTier
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

// draft is a raised warning before it becomes a message: its numbers and where its text ends in
// the messages' buffer (it starts where the previous one ends).
type draft struct {
	code             churnv1.WarningCode
	value, threshold float64
	end              int
}

// drafts collects the warnings of one Evaluate, in WarningCode order, while their messages, then
// the action's reason, are appended to one buffer. At the end the buffer becomes one string that
// every message and the reason are slices of, and the action and warnings are one object: the
// cost of enriching a score is mostly allocation and garbage collection, so two allocations serve
// the usual customer instead of two per warning, the slice and the action (see BenchmarkEvaluate
// and BenchmarkEnrichment in internal/server).
type drafts struct {
	list   [numWarnings]draft
	n      int
	raised uint16 // bit c set when code c was raised
}

// add records a warning whose message is the text of msgs after the previous one's: the buffer is
// passed around by value, not kept in drafts, so that it can stay on Evaluate's stack.
func (d *drafts) add(msgs []byte, code churnv1.WarningCode, value, threshold float64) {
	d.list[d.n] = draft{code: code, value: value, threshold: threshold, end: len(msgs)}
	d.n++
	d.raised |= 1 << code
}

func (d *drafts) has(code churnv1.WarningCode) bool { return d.raised&(1<<code) != 0 }

// oneWarning, twoWarnings and threeWarnings are the messages of a customer with one to three
// warnings, the usual counts, as one allocation: the action, the warnings and the slice of pointers to them. Each is
// exactly as large as its parts, because the cost of an allocation here grows with its bytes
// (fresh spans to zero, more frequent collections) about as much as with its count.
type oneWarning struct {
	action   churnv1.RetentionAction
	warnings [1]churnv1.Warning
	ptrs     [1]*churnv1.Warning
}

type twoWarnings struct {
	action   churnv1.RetentionAction
	warnings [2]churnv1.Warning
	ptrs     [2]*churnv1.Warning
}

type threeWarnings struct {
	action   churnv1.RetentionAction
	warnings [3]churnv1.Warning
	ptrs     [3]*churnv1.Warning
}

// messages makes the action and the warnings, whose texts are slices of msgs (the buffer as a
// string): one allocation for up to three warnings, three beyond.
func (d *drafts) messages(msgs string) (*churnv1.RetentionAction, []*churnv1.Warning) {
	var action *churnv1.RetentionAction
	var slab []churnv1.Warning
	var ws []*churnv1.Warning
	switch d.n {
	case 0:
		return new(churnv1.RetentionAction), nil
	case 1:
		m := new(oneWarning)
		action, slab, ws = &m.action, m.warnings[:], m.ptrs[:]
	case 2:
		m := new(twoWarnings)
		action, slab, ws = &m.action, m.warnings[:], m.ptrs[:]
	case 3:
		m := new(threeWarnings)
		action, slab, ws = &m.action, m.warnings[:], m.ptrs[:]
	default:
		action, slab, ws = new(churnv1.RetentionAction), make([]churnv1.Warning, d.n), make([]*churnv1.Warning, d.n)
	}
	from := 0
	for i, w := range d.list[:d.n] {
		slab[i].Code, slab[i].Message, slab[i].Value, slab[i].Threshold = w.code, msgs[from:w.end], w.value, w.threshold
		ws[i] = &slab[i]
		from = w.end
	}
	return action, ws
}

// Evaluate applies the rules (those of the customer's contract segment when there is one) to in.
// It allocates only the result messages: one string for all the texts, and one object for the
// action and up to three warnings.
func (r *Rules) Evaluate(in Input) Result {
	f := in.Features
	acc := f.GetAccount()
	if acc != nil && acc.Contract != nil && r.Segments != nil {
		if seg := r.Segments[*acc.Contract]; seg != nil {
			r = seg
		}
	}
	var d drafts
	var stack [512]byte // the usual messages and reason fit; more grows on the heap
	b := stack[:0]
	b = r.complaintSpike(&d, b, f.GetComplaints())
	b = r.slowResponse(&d, b, f.GetService())
	b = r.slaBreach(&d, b, f.GetService())
	b = r.activityDrop(&d, b, f.GetActivity())
	b = r.inactive(&d, b, f.GetActivity())
	b = r.lowSatisfaction(&d, b, acc)
	b = r.highRisk(&d, b, in.Probability, in.Tier)
	warningsEnd := len(b)
	act, b := r.action(&d, b, in, acc, f.GetComplaints())

	msgs := string(b) // the one copy of every text
	var res Result
	res.Action, res.Warnings = d.messages(msgs)
	res.Action.Type, res.Action.HighValue, res.Action.CompanySide = act.typ, act.high, act.company
	if act.typ == churnv1.ActionType_ACTION_TYPE_NONE {
		res.Action.Reason = "risk is low"
	} else {
		res.Action.Reason = msgs[warningsEnd:]
	}
	res.Stage = r.stage(acc, f.GetActivity(), d.has(churnv1.WarningCode_WARNING_CODE_ACTIVITY_DROP) || d.has(churnv1.WarningCode_WARNING_CODE_INACTIVE))
	if acc != nil && acc.MonthlyRevenue != nil {
		res.ExpectedLoss = in.Probability * *acc.MonthlyRevenue * r.ExpectedLoss.HorizonMonths
	}
	return res
}

// actionCell is the chosen cell of the value x cause matrix.
type actionCell struct {
	typ           churnv1.ActionType
	high, company bool
}

// action picks the cell of the value x cause matrix (see the package comment). Unless the risk is
// too low for an action (type NONE, no reason appended), it appends the reason to b, after the
// warnings' messages.
func (r *Rules) action(d *drafts, b []byte, in Input, acc *churnv1.Account, c *churnv1.Complaints) (actionCell, []byte) {
	rule := &r.Action
	if in.Tier < rule.MinTier {
		return actionCell{typ: churnv1.ActionType_ACTION_TYPE_NONE}, b
	}

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
	spike := d.has(churnv1.WarningCode_WARNING_CODE_COMPLAINT_SPIKE)
	slow := d.has(churnv1.WarningCode_WARNING_CODE_SLOW_RESPONSE)
	breach := d.has(churnv1.WarningCode_WARNING_CODE_SLA_BREACH)
	company := spike || slow || breach || open
	if company {
		b = append(b, "company-side cause:"...)
		sep := byte(' ')
		for _, cause := range [...]struct {
			raised bool
			name   string
		}{{spike, "complaint spike"}, {slow, "slow response"}, {breach, "SLA breach"}} {
			if cause.raised {
				b = append(b, sep)
				if sep == ',' {
					b = append(b, ' ')
				}
				b = append(b, cause.name...)
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
		drop := d.has(churnv1.WarningCode_WARNING_CODE_ACTIVITY_DROP)
		inactive := d.has(churnv1.WarningCode_WARNING_CODE_INACTIVE)
		switch {
		case drop && inactive:
			b = append(b, "activity drop, inactive"...)
		case drop:
			b = append(b, "activity drop"...)
		case inactive:
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
	return actionCell{typ: t, high: high, company: company}, b
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

// RiskRising returns the RISK_RISING warning when p - previous >= the rule's margin, else nil.
// Evaluate does not raise it: only the caller knows the previous probability.
func (r *Rules) RiskRising(p float64, previous *float64) *churnv1.Warning {
	var d drafts
	var stack [96]byte
	b := r.riskRising(&d, stack[:0], p, previous)
	if d.n == 0 {
		return nil
	}
	w := d.list[0]
	return &churnv1.Warning{Code: w.code, Message: string(b), Value: w.value, Threshold: w.threshold}
}

func (r *Rules) riskRising(d *drafts, b []byte, p float64, previous *float64) []byte {
	if previous == nil {
		return b
	}
	rise := p - *previous
	if rise < r.Rising.Margin-eps {
		return b
	}
	b = append(b, "probability up "...)
	b = appendNum(b, rise)
	b = append(b, " from "...)
	b = appendNum(b, *previous)
	b = append(b, " to "...)
	b = appendNum(b, p)
	b = append(b, " (threshold "...)
	b = appendNum(b, r.Rising.Margin)
	b = append(b, ')')
	d.add(b, churnv1.WarningCode_WARNING_CODE_RISK_RISING, rise, r.Rising.Margin)
	return b
}

// plural returns one when v is 1, else many.
func plural(v float64, one, many string) string {
	if v == 1 {
		return one
	}
	return many
}

// countWarning appends "<value><what> (threshold <threshold>)" to b and adds the warning, what
// being one or many by value.
func (d *drafts) countWarning(b []byte, code churnv1.WarningCode, value float64, one, many string, threshold float64) []byte {
	b = appendNum(b, value)
	b = append(b, plural(value, one, many)...)
	b = append(b, " (threshold "...)
	b = appendNum(b, threshold)
	b = append(b, ')')
	d.add(b, code, value, threshold)
	return b
}

func (r *Rules) complaintSpike(d *drafts, b []byte, c *churnv1.Complaints) []byte {
	if c == nil || c.Count_30D == nil {
		return b
	}
	n := *c.Count_30D
	rule := &r.ComplaintSpike
	if n >= rule.Count30dThreshold {
		return d.countWarning(b, churnv1.WarningCode_WARNING_CODE_COMPLAINT_SPIKE, n, " complaint in the last 30 days", " complaints in the last 30 days", rule.Count30dThreshold)
	}
	if c.Count_90D == nil || n < rule.SpikeMinCount {
		return b
	}
	rate := *c.Count_90D / 3
	threshold := rule.SpikeRatio * rate
	if n < threshold-eps {
		return b
	}
	b = appendNum(b, n)
	b = append(b, plural(n, " complaint", " complaints")...)
	b = append(b, " in the last 30 days against a 90-day rate of "...)
	b = appendNum(b, rate)
	b = append(b, " a month (threshold "...)
	b = appendNum(b, rule.SpikeRatio)
	b = append(b, "x the rate = "...)
	b = appendNum(b, threshold)
	b = append(b, ')')
	d.add(b, churnv1.WarningCode_WARNING_CODE_COMPLAINT_SPIKE, n, threshold)
	return b
}

func (r *Rules) slowResponse(d *drafts, b []byte, s *churnv1.ServiceResponse) []byte {
	if s == nil {
		return b
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
		return b
	}
	b = append(b, what...)
	b = appendNum(b, value)
	b = append(b, "h (threshold "...)
	b = appendNum(b, threshold)
	b = append(b, "h)"...)
	d.add(b, churnv1.WarningCode_WARNING_CODE_SLOW_RESPONSE, value, threshold)
	return b
}

func (r *Rules) slaBreach(d *drafts, b []byte, s *churnv1.ServiceResponse) []byte {
	if s == nil || s.SlaBreaches_90D == nil || *s.SlaBreaches_90D < r.SLABreach.Breaches90d {
		return b
	}
	return d.countWarning(b, churnv1.WarningCode_WARNING_CODE_SLA_BREACH, *s.SlaBreaches_90D, " SLA breach in the last 90 days", " SLA breaches in the last 90 days", r.SLABreach.Breaches90d)
}

func (r *Rules) activityDrop(d *drafts, b []byte, a *churnv1.Activity) []byte {
	if a == nil || a.Usage_30D == nil || a.UsagePrev_30D == nil || *a.UsagePrev_30D <= 0 {
		return b
	}
	drop := 1 - *a.Usage_30D / *a.UsagePrev_30D
	threshold := r.ActivityDrop.DropFraction
	if drop < threshold-eps {
		return b
	}
	b = append(b, "usage down "...)
	b = appendNum(b, drop*100)
	b = append(b, "% on the previous 30 days (threshold "...)
	b = appendNum(b, threshold*100)
	b = append(b, "%)"...)
	d.add(b, churnv1.WarningCode_WARNING_CODE_ACTIVITY_DROP, drop, threshold)
	return b
}

func (r *Rules) inactive(d *drafts, b []byte, a *churnv1.Activity) []byte {
	if a == nil || a.DaysSinceLastActive == nil || *a.DaysSinceLastActive < r.Inactive.DaysSinceLastActive {
		return b
	}
	return d.countWarning(b, churnv1.WarningCode_WARNING_CODE_INACTIVE, *a.DaysSinceLastActive, " day since last active", " days since last active", r.Inactive.DaysSinceLastActive)
}

func (r *Rules) lowSatisfaction(d *drafts, b []byte, a *churnv1.Account) []byte {
	if a == nil || a.Satisfaction == nil || *a.Satisfaction > r.LowSatisfaction.Satisfaction {
		return b
	}
	b = append(b, "satisfaction "...)
	b = appendNum(b, *a.Satisfaction)
	b = append(b, " of 5 (threshold "...)
	b = appendNum(b, r.LowSatisfaction.Satisfaction)
	b = append(b, ')')
	d.add(b, churnv1.WarningCode_WARNING_CODE_LOW_SATISFACTION, *a.Satisfaction, r.LowSatisfaction.Satisfaction)
	return b
}

// highRisk's value is the probability and its threshold the minimum tier's number (3 for HIGH):
// the probability cut of a tier belongs to the model.
func (r *Rules) highRisk(d *drafts, b []byte, p float64, tier churnv1.RiskTier) []byte {
	if tier < r.HighRisk.MinTier {
		return b
	}
	b = append(b, "tier "...)
	b = append(b, tierName(tier)...)
	b = append(b, " at probability "...)
	b = appendNum(b, p)
	b = append(b, " (threshold tier "...)
	b = append(b, tierName(r.HighRisk.MinTier)...)
	b = append(b, " = "...)
	b = appendNum(b, float64(r.HighRisk.MinTier))
	b = append(b, ')')
	d.add(b, churnv1.WarningCode_WARNING_CODE_HIGH_RISK, p, float64(r.HighRisk.MinTier))
	return b
}

// tierName is the tier's enum name without the RISK_TIER_ prefix, e.g. HIGH.
func tierName(t churnv1.RiskTier) string { return strings.TrimPrefix(t.String(), "RISK_TIER_") }
