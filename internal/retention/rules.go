package retention

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"go.yaml.in/yaml/v3"
)

// Rules holds every threshold of the early-warning rules, the action matrix, the lifecycle stages
// and the expected loss. Start from DefaultRules or ParseRules: the zero value has every threshold
// at 0 and raises nearly every warning.
//
// The yaml layout is one block per rule, as in testdata/rules/default.yaml; a key that is left out
// keeps its default.
type Rules struct {
	ComplaintSpike  ComplaintSpikeRule  `yaml:"complaint_spike" json:"complaint_spike"`
	SlowResponse    SlowResponseRule    `yaml:"slow_response" json:"slow_response"`
	SLABreach       SLABreachRule       `yaml:"sla_breach" json:"sla_breach"`
	ActivityDrop    ActivityDropRule    `yaml:"activity_drop" json:"activity_drop"`
	Inactive        InactiveRule        `yaml:"inactive" json:"inactive"`
	LowSatisfaction LowSatisfactionRule `yaml:"low_satisfaction" json:"low_satisfaction"`
	HighRisk        HighRiskRule        `yaml:"high_risk" json:"high_risk"`
	Rising          RiskRisingRule      `yaml:"risk_rising" json:"risk_rising"`
	Action          ActionRule          `yaml:"action" json:"action"`
	Stage           StageRule           `yaml:"stage" json:"stage"`
	ExpectedLoss    ExpectedLossRule    `yaml:"expected_loss" json:"expected_loss"`

	// Segments holds, per account.contract value (for example "month-to-month"), the complete rules
	// for customers with that contract. In yaml a segment lists only the keys it overrides (same
	// layout as the top level, without segments); ParseRules fills in the rest from the top level.
	// Nil when there are none.
	Segments map[string]*Rules `yaml:"segments,omitempty" json:"segments,omitempty"`
}

// ComplaintSpikeRule raises COMPLAINT_SPIKE on complaints.count_30d.
type ComplaintSpikeRule struct {
	// Count30dThreshold: complaints in 30 days at or above this fire. Default 2: one complaint can
	// be noise, a second within a month is a pattern (the usual "repeat complainant" cut in
	// customer-service reporting).
	Count30dThreshold float64 `yaml:"count_30d_threshold" json:"count_30d_threshold"`
	// SpikeRatio: also fire when count_30d >= SpikeRatio x the customer's own monthly rate over 90
	// days (count_90d / 3). Default 2.0: twice the customer's own rate.
	SpikeRatio float64 `yaml:"spike_ratio" json:"spike_ratio"`
	// SpikeMinCount: the ratio test needs at least this many complaints in 30 days. Default 1, so a
	// first complaint after a quiet quarter fires; raise it to 2 to ignore single complaints.
	SpikeMinCount float64 `yaml:"spike_min_count" json:"spike_min_count"`
}

// SlowResponseRule raises SLOW_RESPONSE on service.avg_first_response_hours and
// service.p90_first_response_hours.
type SlowResponseRule struct {
	// AvgFirstResponseHours: a mean first response slower than this fires. Default 24: the common
	// one-business-day first-response service level.
	AvgFirstResponseHours float64 `yaml:"avg_first_response_hours" json:"avg_first_response_hours"`
	// P90FirstResponseHours: a p90 first response slower than this fires. Default 48: twice the
	// mean target, so only a long tail of slow answers fires.
	P90FirstResponseHours float64 `yaml:"p90_first_response_hours" json:"p90_first_response_hours"`
}

// SLABreachRule raises SLA_BREACH on service.sla_breaches_90d.
type SLABreachRule struct {
	// Breaches90d: breaches in 90 days at or above this fire. Default 1: any breach is a broken
	// promise the account team should know about.
	Breaches90d float64 `yaml:"breaches_90d" json:"breaches_90d"`
}

// ActivityDropRule raises ACTIVITY_DROP on activity.usage_30d against activity.usage_prev_30d.
type ActivityDropRule struct {
	// DropFraction: fire when usage fell by at least this fraction of the previous 30 days, in
	// (0, 1]. Default 0.5: usage halved month on month, well beyond seasonal noise.
	DropFraction float64 `yaml:"drop_fraction" json:"drop_fraction"`
}

// InactiveRule raises INACTIVE on activity.days_since_last_active.
type InactiveRule struct {
	// DaysSinceLastActive: this many days or more without activity fire. Default 30: a full
	// billing month without use.
	DaysSinceLastActive float64 `yaml:"days_since_last_active" json:"days_since_last_active"`
}

// LowSatisfactionRule raises LOW_SATISFACTION on account.satisfaction (1..5).
type LowSatisfactionRule struct {
	// Satisfaction: a score at or below this fires, in [1, 5]. Default 2: the "dissatisfied" and
	// "very dissatisfied" answers of a 5-point CSAT scale.
	Satisfaction float64 `yaml:"satisfaction" json:"satisfaction"`
}

// HighRiskRule raises HIGH_RISK on the risk tier.
type HighRiskRule struct {
	// MinTier: the tier from which HIGH_RISK fires. Default HIGH. In yaml: low, medium, high or
	// critical. The warning's threshold is this tier's number (3 for HIGH), its value the
	// probability: the probability cut of a tier belongs to the model, not to these rules.
	MinTier churnv1.RiskTier `yaml:"min_tier" json:"min_tier"`
}

// RiskRisingRule raises RISK_RISING against the customer's previous cached probability. Only
// Rules.RiskRising applies it (Evaluate does not know the previous probability), with the margin
// of the Rules it is called on: a segment's margin counts when the caller calls the segment's
// RiskRising.
type RiskRisingRule struct {
	// Margin: fire when the probability rose by at least this much, in (0, 1]. Default 0.10: ten
	// points, well above the jitter of a recalibrated model on unchanged inputs.
	Margin float64 `yaml:"margin" json:"margin"`
}

// ActionRule configures the value x cause matrix.
type ActionRule struct {
	// MinTier: the tier from which an action is proposed; below it the action is NONE. Default
	// MEDIUM: low risk needs no spend.
	MinTier churnv1.RiskTier `yaml:"min_tier" json:"min_tier"`
	// LifetimeMonths: expected customer lifetime. Default 24: a typical two-year subscription
	// lifetime (telecom and SaaS churn studies put the median at 2 to 3 years).
	LifetimeMonths float64 `yaml:"lifetime_months" json:"lifetime_months"`
	// MinRemainingMonths: the remaining lifetime is never below this. Default 6: a customer kept
	// today stays at least half a year.
	MinRemainingMonths float64 `yaml:"min_remaining_months" json:"min_remaining_months"`
	// ValueCut: a customer worth at least this (monthly revenue x remaining months) is high value.
	// Default 1000, in the account currency: set it to your own median customer value.
	ValueCut float64 `yaml:"value_cut" json:"value_cut"`
}

// StageRule configures the lifecycle stages.
type StageRule struct {
	// NewMonths: tenure below this is NEW. Default 3: the onboarding quarter.
	NewMonths float64 `yaml:"new_months" json:"new_months"`
	// MatureMonths: tenure below this (and not declining) is GROWING, above is MATURE. Default 12:
	// the first renewal.
	MatureMonths float64 `yaml:"mature_months" json:"mature_months"`
}

// ExpectedLossRule configures the expected loss.
type ExpectedLossRule struct {
	// HorizonMonths: revenue at risk is counted over this many months. Default 12: a year of
	// revenue, the horizon finance plans on.
	HorizonMonths float64 `yaml:"horizon_months" json:"horizon_months"`
}

// DefaultRules returns the rules of testdata/rules/default.yaml; each default's reason is on its
// field.
func DefaultRules() Rules {
	return Rules{
		ComplaintSpike:  ComplaintSpikeRule{Count30dThreshold: 2, SpikeRatio: 2, SpikeMinCount: 1},
		SlowResponse:    SlowResponseRule{AvgFirstResponseHours: 24, P90FirstResponseHours: 48},
		SLABreach:       SLABreachRule{Breaches90d: 1},
		ActivityDrop:    ActivityDropRule{DropFraction: 0.5},
		Inactive:        InactiveRule{DaysSinceLastActive: 30},
		LowSatisfaction: LowSatisfactionRule{Satisfaction: 2},
		HighRisk:        HighRiskRule{MinTier: churnv1.RiskTier_RISK_TIER_HIGH},
		Rising:          RiskRisingRule{Margin: 0.10},
		Action: ActionRule{
			MinTier:            churnv1.RiskTier_RISK_TIER_MEDIUM,
			LifetimeMonths:     24,
			MinRemainingMonths: 6,
			ValueCut:           1000,
		},
		Stage:        StageRule{NewMonths: 3, MatureMonths: 12},
		ExpectedLoss: ExpectedLossRule{HorizonMonths: 12},
	}
}

// ParseError is a rules file error at a line. Key is the dotted key ("slow_response.
// avg_first_response_hours", "segments.month-to-month.inactive.days_since_last_active"), empty for
// a yaml syntax error.
type ParseError struct {
	Line int
	Key  string
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Key == "" {
		return "line " + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return "line " + strconv.Itoa(e.Line) + ": " + e.Key + " " + e.Msg
}

// LoadRules reads and parses a rules file; errors start with the path ("rules.yaml line 7: ...").
func LoadRules(path string) (Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Rules{}, err
	}
	r, err := ParseRules(data)
	if err != nil {
		return Rules{}, fmt.Errorf("%s %w", path, err)
	}
	return r, nil
}

// ParseRules parses yaml rules over DefaultRules: a key left out keeps its default, an empty
// document gives DefaultRules. Unknown keys, wrong types, out-of-range values and duplicate keys are
// refused with a *ParseError naming the line and the key.
func ParseRules(data []byte) (Rules, error) {
	return parse(data, DefaultRules())
}

// parse parses data over base (tests use a zero base to check that a file sets every key).
func parse(data []byte, base Rules) (Rules, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return base, nil
		}
		return Rules{}, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return Rules{}, yamlError(err)
		}
		return Rules{}, &ParseError{Line: extra.Line, Msg: "a rules file holds one yaml document"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return base, nil
		}
		root = root.Content[0]
	}
	root = deref(root)
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return base, nil
	}
	if root.Kind != yaml.MappingNode {
		return Rules{}, &ParseError{Line: root.Line, Msg: "rules must be a mapping of rule names to settings"}
	}
	r := base
	r.Segments = nil
	var segs *yaml.Node
	var segsKey *yaml.Node
	if err := r.apply(root, "", func(k, v *yaml.Node) bool {
		if k.Value != "segments" {
			return false
		}
		segs, segsKey = v, k
		return true
	}); err != nil {
		return Rules{}, err
	}
	if segs == nil {
		return r, nil
	}
	segs = deref(segs)
	if segs.Kind == yaml.ScalarNode && segs.Tag == "!!null" {
		return r, nil
	}
	if segs.Kind != yaml.MappingNode {
		return Rules{}, &ParseError{Line: segsKey.Line, Key: "segments", Msg: "must be a mapping of contract to rules"}
	}
	r.Segments = make(map[string]*Rules, len(segs.Content)/2)
	for i := 0; i+1 < len(segs.Content); i += 2 {
		k, v := deref(segs.Content[i]), deref(segs.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			return Rules{}, &ParseError{Line: k.Line, Key: "segments", Msg: "segment names must be non-empty contract values"}
		}
		prefix := "segments." + k.Value
		if _, dup := r.Segments[k.Value]; dup {
			return Rules{}, &ParseError{Line: k.Line, Key: prefix, Msg: "is defined twice"}
		}
		seg := r
		seg.Segments = nil
		if !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
			if v.Kind != yaml.MappingNode {
				return Rules{}, &ParseError{Line: k.Line, Key: prefix, Msg: "must be a mapping of rule names to settings"}
			}
			if err := seg.apply(v, prefix+".", nil); err != nil {
				return Rules{}, err
			}
		}
		r.Segments[k.Value] = &seg
	}
	return r, nil
}

// apply sets r from a mapping of rule blocks; keys are reported under prefix. other, when not nil,
// takes top-level keys that are not rule blocks (segments) and reports whether it did.
func (r *Rules) apply(m *yaml.Node, prefix string, other func(k, v *yaml.Node) bool) error {
	fields := r.fields()
	seen := make(map[string]bool)
	line := make(map[string]int)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := deref(m.Content[i]), deref(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return &ParseError{Line: k.Line, Key: strings.TrimSuffix(prefix, "."), Msg: "has a key that is not a name"}
		}
		group := k.Value
		if seen[group] {
			return &ParseError{Line: k.Line, Key: prefix + group, Msg: "is defined twice"}
		}
		seen[group] = true
		if other != nil && other(k, v) {
			continue
		}
		if !hasGroup(fields, group) {
			return &ParseError{Line: k.Line, Key: prefix + group, Msg: "is not a known rule (known: " + groupNames(fields) + ")"}
		}
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			continue
		}
		if v.Kind != yaml.MappingNode {
			return &ParseError{Line: k.Line, Key: prefix + group, Msg: "must be a mapping of settings"}
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			fk, fv := deref(v.Content[j]), deref(v.Content[j+1])
			if fk.Kind != yaml.ScalarNode {
				return &ParseError{Line: fk.Line, Key: prefix + group, Msg: "has a key that is not a name"}
			}
			name := group + "." + fk.Value
			f := findField(fields, name)
			if f == nil {
				return &ParseError{Line: fk.Line, Key: prefix + name, Msg: "is not a known key (known in " + group + ": " + fieldNames(fields, group) + ")"}
			}
			if seen[name] {
				return &ParseError{Line: fk.Line, Key: prefix + name, Msg: "is defined twice"}
			}
			seen[name] = true
			line[name] = fv.Line
			if msg := f.set(fv); msg != "" {
				return &ParseError{Line: fv.Line, Key: prefix + name, Msg: msg}
			}
		}
	}
	if r.Stage.MatureMonths < r.Stage.NewMonths {
		key := "stage.mature_months"
		if line[key] == 0 {
			key = "stage.new_months"
		}
		return &ParseError{Line: line[key], Key: prefix + key, Msg: "stage.mature_months (" + fmtNum(r.Stage.MatureMonths) +
			") must be >= stage.new_months (" + fmtNum(r.Stage.NewMonths) + ")"}
	}
	return nil
}

// field is one settable key of Rules.
type field struct {
	name  string // "group.key"
	num   *float64
	tier  *churnv1.RiskTier
	check func(float64) string // "" when valid, else what it must be
}

func (f *field) set(n *yaml.Node) string {
	if f.tier != nil {
		t, ok := parseTier(n)
		if !ok {
			return "must be one of low, medium, high, critical, got " + strconv.Quote(n.Value)
		}
		*f.tier = t
		return ""
	}
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		if n.Kind == yaml.ScalarNode {
			return "must be a number, got " + strconv.Quote(n.Value)
		}
		return "must be a number"
	}
	var v float64
	if err := n.Decode(&v); err != nil {
		return "must be a number, got " + strconv.Quote(n.Value)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "must be a finite number, got " + n.Value
	}
	if msg := f.check(v); msg != "" {
		return msg + ", got " + fmtNum(v)
	}
	*f.num = v
	return ""
}

func positive(v float64) string {
	if v <= 0 {
		return "must be > 0"
	}
	return ""
}

func nonNegative(v float64) string {
	if v < 0 {
		return "must be >= 0"
	}
	return ""
}

func fraction(v float64) string {
	if v <= 0 || v > 1 {
		return "must be in (0, 1]"
	}
	return ""
}

func satisfaction(v float64) string {
	if v < 1 || v > 5 {
		return "must be in [1, 5]"
	}
	return ""
}

func (r *Rules) fields() []field {
	return []field{
		{name: "complaint_spike.count_30d_threshold", num: &r.ComplaintSpike.Count30dThreshold, check: positive},
		{name: "complaint_spike.spike_ratio", num: &r.ComplaintSpike.SpikeRatio, check: positive},
		{name: "complaint_spike.spike_min_count", num: &r.ComplaintSpike.SpikeMinCount, check: positive},
		{name: "slow_response.avg_first_response_hours", num: &r.SlowResponse.AvgFirstResponseHours, check: positive},
		{name: "slow_response.p90_first_response_hours", num: &r.SlowResponse.P90FirstResponseHours, check: positive},
		{name: "sla_breach.breaches_90d", num: &r.SLABreach.Breaches90d, check: positive},
		{name: "activity_drop.drop_fraction", num: &r.ActivityDrop.DropFraction, check: fraction},
		{name: "inactive.days_since_last_active", num: &r.Inactive.DaysSinceLastActive, check: positive},
		{name: "low_satisfaction.satisfaction", num: &r.LowSatisfaction.Satisfaction, check: satisfaction},
		{name: "high_risk.min_tier", tier: &r.HighRisk.MinTier},
		{name: "risk_rising.margin", num: &r.Rising.Margin, check: fraction},
		{name: "action.min_tier", tier: &r.Action.MinTier},
		{name: "action.lifetime_months", num: &r.Action.LifetimeMonths, check: positive},
		{name: "action.min_remaining_months", num: &r.Action.MinRemainingMonths, check: nonNegative},
		{name: "action.value_cut", num: &r.Action.ValueCut, check: nonNegative},
		{name: "stage.new_months", num: &r.Stage.NewMonths, check: nonNegative},
		{name: "stage.mature_months", num: &r.Stage.MatureMonths, check: nonNegative},
		{name: "expected_loss.horizon_months", num: &r.ExpectedLoss.HorizonMonths, check: positive},
	}
}

func findField(fs []field, name string) *field {
	for i := range fs {
		if fs[i].name == name {
			return &fs[i]
		}
	}
	return nil
}

func groupOf(name string) string {
	g, _, _ := strings.Cut(name, ".")
	return g
}

func hasGroup(fs []field, group string) bool {
	for _, f := range fs {
		if groupOf(f.name) == group {
			return true
		}
	}
	return false
}

func groupNames(fs []field) string {
	var names []string
	for _, f := range fs {
		g := groupOf(f.name)
		if len(names) == 0 || names[len(names)-1] != g {
			names = append(names, g)
		}
	}
	return strings.Join(names, ", ")
}

func fieldNames(fs []field, group string) string {
	var names []string
	for _, f := range fs {
		if g, k, _ := strings.Cut(f.name, "."); g == group {
			names = append(names, k)
		}
	}
	return strings.Join(names, ", ")
}

// parseTier reads low, medium, high or critical (any case, with or without RISK_TIER_).
func parseTier(n *yaml.Node) (churnv1.RiskTier, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return 0, false
	}
	s := strings.ToLower(n.Value)
	switch strings.TrimPrefix(s, "risk_tier_") {
	case "low":
		return churnv1.RiskTier_RISK_TIER_LOW, true
	case "medium":
		return churnv1.RiskTier_RISK_TIER_MEDIUM, true
	case "high":
		return churnv1.RiskTier_RISK_TIER_HIGH, true
	case "critical":
		return churnv1.RiskTier_RISK_TIER_CRITICAL, true
	}
	return 0, false
}

// deref follows yaml aliases.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// yamlError turns a yaml syntax error ("yaml: line 3: ...") into a *ParseError.
func yamlError(err error) error {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, "yaml: line ")
	if ok {
		num, tail, ok2 := strings.Cut(rest, ": ")
		if n, err2 := strconv.Atoi(num); ok2 && err2 == nil {
			return &ParseError{Line: n, Msg: tail}
		}
	}
	return &ParseError{Line: 1, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// fmtNum formats v with at most two decimals and no trailing zeros.
func fmtNum(v float64) string {
	var buf [32]byte
	return string(appendNum(buf[:0], v))
}

// appendNum appends v with at most two decimals and no trailing zeros.
func appendNum(b []byte, v float64) []byte {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.AppendInt(b, int64(v), 10)
	}
	start := len(b)
	b = strconv.AppendFloat(b, v, 'f', 2, 64)
	if bytes.IndexByte(b[start:], '.') >= 0 {
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
		if b[len(b)-1] == '.' {
			b = b[:len(b)-1]
		}
	}
	if string(b[start:]) == "-0" {
		b = append(b[:start], '0')
	}
	return b
}
