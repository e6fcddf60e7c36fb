package retention

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

func TestParseRulesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		line int
		key  string
		msg  string // a substring of the error
	}{
		{"unknown rule", "inactive:\n  days_since_last_active: 3\nbogus:\n  x: 1\n", 3, "bogus", "is not a known rule"},
		{"unknown key", "slow_response:\n  avg_first_response_hours: 3\n  avg_hours: 2\n", 3, "slow_response.avg_hours", "is not a known key"},
		{"negative threshold", "# c\ninactive:\n  days_since_last_active: -3\n", 3, "inactive.days_since_last_active", "must be > 0, got -3"},
		{"zero threshold", "slow_response:\n  avg_first_response_hours: 0\n", 2, "slow_response.avg_first_response_hours", "must be > 0"},
		{"wrong type", "sla_breach:\n  breaches_90d: lots\n", 2, "sla_breach.breaches_90d", `must be a number, got "lots"`},
		{"quoted number", "sla_breach:\n  breaches_90d: \"2\"\n", 2, "sla_breach.breaches_90d", "must be a number"},
		{"list value", "sla_breach:\n  breaches_90d: [1]\n", 2, "sla_breach.breaches_90d", "must be a number"},
		{"nan", "sla_breach:\n  breaches_90d: .nan\n", 2, "sla_breach.breaches_90d", "finite"},
		{"fraction above 1", "activity_drop:\n  drop_fraction: 1.5\n", 2, "activity_drop.drop_fraction", "must be in (0, 1]"},
		{"satisfaction out of scale", "low_satisfaction:\n  satisfaction: 6\n", 2, "low_satisfaction.satisfaction", "must be in [1, 5]"},
		{"bad tier", "high_risk:\n  min_tier: severe\n", 2, "high_risk.min_tier", "must be one of low, medium, high, critical"},
		{"rule not a mapping", "inactive: 30\n", 1, "inactive", "must be a mapping"},
		{"duplicate key", "inactive:\n  days_since_last_active: 3\n  days_since_last_active: 4\n", 3, "inactive.days_since_last_active", "defined twice"},
		{"duplicate rule", "inactive: {}\ninactive: {}\n", 2, "inactive", "defined twice"},
		{"mature before new", "stage:\n  new_months: 6\n  mature_months: 4\n", 3, "stage.mature_months", "must be >= stage.new_months"},
		{"new after default mature", "stage:\n  new_months: 13\n", 2, "stage.new_months", "must be >= stage.new_months (13)"},
		{"segment unknown key", "segments:\n  month-to-month:\n    inactive:\n      days: 3\n", 4, "segments.month-to-month.inactive.days", "is not a known key"},
		{"segment bad value", "segments:\n  month-to-month:\n    risk_rising:\n      margin: 2\n", 4, "segments.month-to-month.risk_rising.margin", "must be in (0, 1]"},
		{"nested segments", "segments:\n  a:\n    segments: {}\n", 3, "segments.a.segments", "is not a known rule"},
		{"segments not a mapping", "segments: [a]\n", 1, "segments", "must be a mapping"},
		{"top level list", "- 1\n", 1, "", "must be a mapping"},
		{"syntax error", "inactive:\n  days_since_last_active: 3\n bad\n", 2, "", "did not find expected key"},
		{"two documents", "inactive: {}\n---\ninactive: {}\n", 2, "", "one yaml document"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseRules([]byte(tc.yaml))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if pe.Line != tc.line || pe.Key != tc.key || !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("err = %+v (%q), want line %d key %q msg containing %q", pe, err, tc.line, tc.key, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "line ") || !strings.Contains(err.Error(), tc.key) {
				t.Errorf("message %q does not start with the line and name the key", err)
			}
		})
	}
}

func TestParseRulesValid(t *testing.T) {
	t.Parallel()
	for _, empty := range []string{"", "\n# only a comment\n", "~\n", "inactive:\n"} {
		r, err := ParseRules([]byte(empty))
		if err != nil {
			t.Fatalf("%q: %v", empty, err)
		}
		if diff := cmp.Diff(DefaultRules(), r); diff != "" {
			t.Errorf("%q: rules (-want +got):\n%s", empty, diff)
		}
	}
	r, err := ParseRules([]byte("high_risk: {min_tier: CRITICAL}\naction: {min_tier: RISK_TIER_HIGH, value_cut: 2.5e3}\nrisk_rising: {margin: 0.2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultRules()
	want.HighRisk.MinTier = churnv1.RiskTier_RISK_TIER_CRITICAL
	want.Action.MinTier = churnv1.RiskTier_RISK_TIER_HIGH
	want.Action.ValueCut = 2500
	want.Rising.Margin = 0.2
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
}

func TestLoadRulesNamesFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte("# rules\n\nslow_response:\n  p90_first_response_hours: 4\n\n\n  avg_first_response_hours: -1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadRules(path)
	want := path + " line 7: slow_response.avg_first_response_hours must be > 0, got -1"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	if _, err := LoadRules(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file: no error")
	}
}

func FuzzParseRules(f *testing.F) {
	if data, err := os.ReadFile(defaultFile); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"inactive:\n  days_since_last_active: 3\n",
		"segments:\n  month-to-month:\n    inactive: {days_since_last_active: 14}\n",
		"stage: {new_months: 6, mature_months: 4}\n",
		"a: &x {b: *x}\n",
		"high_risk: {min_tier: high}\nrisk_rising: {margin: .nan}\n",
		"- [\n",
		"segments: {a: *b}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRules(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 0 {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			return
		}
		// Valid rules evaluate without panicking and stay within their ranges.
		for _, rr := range append([]*Rules{&r}, segmentsOf(r)...) {
			if rr.ActivityDrop.DropFraction <= 0 || rr.ActivityDrop.DropFraction > 1 || rr.Stage.MatureMonths < rr.Stage.NewMonths {
				t.Fatalf("accepted out-of-range rules %+v", rr)
			}
		}
		r.Evaluate(Input{Features: &churnv1.CustomerFeatures{Account: &churnv1.Account{Contract: ptr("month-to-month")}}})
	})
}

func segmentsOf(r Rules) []*Rules {
	var out []*Rules
	for _, s := range r.Segments {
		out = append(out, s)
	}
	return out
}
