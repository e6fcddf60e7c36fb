package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc/codes"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// RPC label values.
const (
	rpcScore  = "Score"
	rpcBatch  = "ScoreBatch"
	rpcStream = "ScoreStream"
)

// metrics counts individual scores (a batch or a stream holds many) by tier and failures by code;
// per-call counts and latencies come from the gRPC metrics interceptor.
type metrics struct {
	scores *prometheus.CounterVec
	errors *prometheus.CounterVec
	byTier map[string][5]prometheus.Counter // rpc → tier enum value → counter, to skip label hashing
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		scores: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_scores_total",
			Help: "Customers scored, by RPC and risk tier.",
		}, []string{"rpc", "tier"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_score_errors_total",
			Help: "Customers that could not be scored, by RPC and gRPC code.",
		}, []string{"rpc", "code"}),
		byTier: map[string][5]prometheus.Counter{},
	}
	for _, rpc := range []string{rpcScore, rpcBatch, rpcStream} {
		var cs [5]prometheus.Counter
		for t := churnv1.RiskTier_RISK_TIER_LOW; t <= churnv1.RiskTier_RISK_TIER_CRITICAL; t++ {
			cs[t] = m.scores.WithLabelValues(rpc, tierLabel(t))
		}
		m.byTier[rpc] = cs
		for _, c := range []codes.Code{codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.Internal} {
			m.errors.WithLabelValues(rpc, c.String())
		}
	}
	return m
}

func (m *metrics) countTier(rpc string, t churnv1.RiskTier) {
	if t >= churnv1.RiskTier_RISK_TIER_LOW && t <= churnv1.RiskTier_RISK_TIER_CRITICAL {
		m.byTier[rpc][t].Inc()
	}
}

// tierLabel is LOW, MEDIUM, HIGH or CRITICAL.
func tierLabel(t churnv1.RiskTier) string {
	return t.String()[len("RISK_TIER_"):]
}
