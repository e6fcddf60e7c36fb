package outcomes

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the store's counters.
type metrics struct {
	outcomes     *prometheus.CounterVec
	joins        *prometheus.CounterVec
	keyEvictions prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		outcomes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_outcomes_total",
			Help: "Outcomes received, by type and result (recorded, duplicate, refused).",
		}, []string{"type", "result"}),
		joins: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_outcome_joins_total",
			Help: "Recorded outcomes by how they joined the customer's last score: joined, not_scored, scored_after (scored again after the outcome), version_limit (too many model versions that day), error (the score cache failed; the outcome was refused).",
		}, []string{"result"}),
		keyEvictions: f.NewCounter(prometheus.CounterOpts{
			Name: "churn_outcome_keys_evicted_total",
			Help: "Idempotency keys forgotten to keep --outcome-max-keys; a retry of an outcome whose key was forgotten counts again.",
		}),
	}
	for _, t := range []string{"churned", "retained", "won_back", "invalid"} {
		for _, r := range []string{"recorded", "duplicate", "refused"} {
			m.outcomes.WithLabelValues(t, r)
		}
	}
	for _, r := range []string{"joined", "not_scored", "scored_after", "version_limit", "error"} {
		m.joins.WithLabelValues(r)
	}
	return m
}
