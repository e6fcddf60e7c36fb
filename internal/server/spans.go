package server

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/retention"
)

// Attributes the scoring calls add to their server span (started by the gRPC stats handler; see
// internal/tracing). Nothing is added when the span is not recording (not sampled, or tracing
// off), so they cost nothing then.
const (
	// AttrModelVersion is the model version that scored: Score's, or a batch's or stream's when
	// all its customers were scored by one version.
	AttrModelVersion = attribute.Key("churn.model.version")
	// AttrModelVersions lists the versions a batch or stream used when there were several (at
	// most maxSpanVersions).
	AttrModelVersions = attribute.Key("churn.model.versions")
	// AttrRiskTier is Score's risk tier: LOW, MEDIUM, HIGH or CRITICAL.
	AttrRiskTier = attribute.Key("churn.risk.tier")
	// AttrScoresPrefix + a lower-case tier (churn.scores.high) counts a batch's or stream's
	// customers in that tier.
	AttrScoresPrefix = "churn.scores."
	// AttrScoreErrors counts a batch's or stream's customers that could not be scored.
	AttrScoreErrors = attribute.Key("churn.score_errors")
)

// maxSpanVersions bounds the versions a span lists.
const maxSpanVersions = 8

var tierCountKeys = func() [5]attribute.Key {
	var k [5]attribute.Key
	for t := churnv1.RiskTier_RISK_TIER_LOW; t <= churnv1.RiskTier_RISK_TIER_CRITICAL; t++ {
		k[t] = attribute.Key(AttrScoresPrefix + strings.ToLower(retention.TierName(t)))
	}
	return k
}()

// annotateScore adds Score's model version and tier to the call's span.
func annotateScore(ctx context.Context, r *churnv1.ScoreResponse) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(AttrModelVersion.String(r.GetModel().GetVersion()), AttrRiskTier.String(retention.TierName(r.GetTier())))
}

// spanTally gathers what a batch or stream scored for its span: the versions, the customers per
// tier and the failures. Its size is bounded whatever the number of customers.
type spanTally struct {
	versions []string
	tiers    [5]int
	errors   int
}

func (t *spanTally) scored(r *churnv1.ScoreResponse) {
	if tier := r.GetTier(); tier >= churnv1.RiskTier_RISK_TIER_LOW && tier <= churnv1.RiskTier_RISK_TIER_CRITICAL {
		t.tiers[tier]++
	}
	v := r.GetModel().GetVersion()
	for _, seen := range t.versions {
		if seen == v {
			return
		}
	}
	if len(t.versions) < maxSpanVersions {
		t.versions = append(t.versions, v)
	}
}

func (t *spanTally) failed() { t.errors++ }

// annotate adds the tally to the call's span.
func (t *spanTally) annotate(ctx context.Context) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 7)
	switch {
	case len(t.versions) == 1:
		attrs = append(attrs, AttrModelVersion.String(t.versions[0]))
	case len(t.versions) > 1:
		attrs = append(attrs, AttrModelVersions.StringSlice(t.versions))
	}
	for tier := churnv1.RiskTier_RISK_TIER_LOW; tier <= churnv1.RiskTier_RISK_TIER_CRITICAL; tier++ {
		attrs = append(attrs, tierCountKeys[tier].Int(t.tiers[tier]))
	}
	attrs = append(attrs, AttrScoreErrors.Int(t.errors))
	span.SetAttributes(attrs...)
}
