package outcomes

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// GaugeWindow is the trailing window of the live-quality gauges, in UTC days (today included).
const GaugeWindow = 30

// gauges is a collector computing, at each scrape, the live quality of the model versions that
// Options.GaugeVersions names (the served ones: a bounded set of labels) over GaugeWindow days.
type gauges struct {
	s             *Store
	versions      func() []string
	auc, brier, n *prometheus.Desc
}

func newGauges(s *Store, versions func() []string) *gauges {
	return &gauges{
		s:        s,
		versions: versions,
		auc:      prometheus.NewDesc("churn_model_live_roc_auc", "Live ROC-AUC of a served model version over the outcomes of the last 30 UTC days (binned, see GetModelPerformance); absent without both churners and non-churners.", []string{"version"}, nil),
		brier:    prometheus.NewDesc("churn_model_live_brier", "Live Brier score of a served model version over the outcomes of the last 30 UTC days; absent without outcomes.", []string{"version"}, nil),
		n:        prometheus.NewDesc("churn_model_live_customers", "Customers with a CHURNED or RETAINED outcome joined to a score of a served model version, over the last 30 UTC days.", []string{"version"}, nil),
	}
}

func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.auc
	ch <- g.brier
	ch <- g.n
}

func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	for _, v := range g.versions() {
		if v == "" {
			continue
		}
		var perf churnv1.ModelPeriodPerformance
		h, err := g.s.recent(v, GaugeWindow)
		if err != nil {
			continue // the store is unreachable: no sample rather than a wrong one
		}
		h.performance(&perf)
		ch <- prometheus.MustNewConstMetric(g.n, prometheus.GaugeValue, float64(perf.GetCustomers()), v)
		if perf.GetCustomers() > 0 {
			ch <- prometheus.MustNewConstMetric(g.brier, prometheus.GaugeValue, perf.GetBrier(), v)
		}
		if perf.GetChurned() > 0 && perf.GetChurned() < perf.GetCustomers() {
			ch <- prometheus.MustNewConstMetric(g.auc, prometheus.GaugeValue, perf.GetRocAuc(), v)
		}
	}
}

// recent adds up the histograms of a version (under any model name) over the last days days.
func (s *Store) recent(version string, days int64) (*histogram, error) {
	ctx, cancel := context.WithTimeout(context.Background(), RedisTimeout)
	defer cancel()
	today := dayOf(s.now())
	v, err := s.view(ctx, today-days+1, today, nil)
	if err != nil {
		return nil, err
	}
	defer v.done()
	var h histogram
	for d := today - days + 1; d <= today; d++ {
		a := v.days[d]
		if a == nil {
			continue
		}
		for k, dh := range a.models {
			if k.version == version {
				h.merge(dh)
			}
		}
	}
	return &h, nil
}
