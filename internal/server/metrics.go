package server

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc/codes"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/retention"
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
	scores   *prometheus.CounterVec
	errors   *prometheus.CounterVec
	warnings *prometheus.CounterVec
	// cacheWrites counts score-cache writes by result (ok, error); a failed write never fails a score.
	cacheWrites *prometheus.CounterVec
	// unscorable counts valid requests a model could not score (model.ErrUnscorable), by version.
	unscorable *prometheus.CounterVec
	// unknownCategories counts categories a model did not know and scored as missing, by input.
	unknownCategories *prometheus.CounterVec
	byTier            map[string][5]prometheus.Counter           // rpc → tier enum value → counter, to skip label hashing
	byWarning         map[churnv1.WarningCode]prometheus.Counter // the warnings' counters, to skip label hashing
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
		warnings: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_warnings_total",
			Help: "Early-warning flags raised, by code.",
		}, []string{"code"}),
		cacheWrites: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_cache_writes_total",
			Help: "Score-cache writes by result (ok, error); a batch is one write.",
		}, []string{"result"}),
		unscorable: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_model_unscorable_total",
			Help: "Valid requests a model version could not score (its probability was not a number): the model's fault; each is an INTERNAL error.",
		}, []string{"version"}),
		unknownCategories: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_unknown_categories_total",
			Help: "Categories a model did not know, scored as missing (its unseen policy) and listed in the response, by model input.",
		}, []string{"input"}),
		byTier:    map[string][5]prometheus.Counter{},
		byWarning: map[churnv1.WarningCode]prometheus.Counter{},
	}
	for c := range churnv1.WarningCode_name {
		if code := churnv1.WarningCode(c); code != churnv1.WarningCode_WARNING_CODE_UNSPECIFIED {
			m.byWarning[code] = m.warnings.WithLabelValues(warningLabel(code))
		}
	}
	m.cacheWrites.WithLabelValues("ok")
	m.cacheWrites.WithLabelValues("error")
	for _, rpc := range []string{rpcScore, rpcBatch, rpcStream} {
		var cs [5]prometheus.Counter
		for t := churnv1.RiskTier_RISK_TIER_LOW; t <= churnv1.RiskTier_RISK_TIER_CRITICAL; t++ {
			cs[t] = m.scores.WithLabelValues(rpc, retention.TierName(t))
		}
		m.byTier[rpc] = cs
		for _, c := range []codes.Code{codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.Internal} {
			m.errors.WithLabelValues(rpc, c.String())
		}
	}
	return m
}

// countScore counts a scored customer by tier and its warnings by code.
func (m *metrics) countScore(rpc string, r *churnv1.ScoreResponse) {
	if t := r.GetTier(); t >= churnv1.RiskTier_RISK_TIER_LOW && t <= churnv1.RiskTier_RISK_TIER_CRITICAL {
		m.byTier[rpc][t].Inc()
	}
	for _, w := range r.GetWarnings() {
		if c, ok := m.byWarning[w.GetCode()]; ok {
			c.Inc()
		} else {
			m.warnings.WithLabelValues(warningLabel(w.GetCode())).Inc()
		}
	}
}

// warningLabel is COMPLAINT_SPIKE, SLOW_RESPONSE, ...
func warningLabel(c churnv1.WarningCode) string {
	return strings.TrimPrefix(c.String(), "WARNING_CODE_")
}
