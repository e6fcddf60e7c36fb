// Package drift measures score drift: how far the probabilities a model version serves have
// moved from those it gave its training rows. It keeps a histogram of served probabilities per
// loaded model version (churn_score_probability) and, at scrape time, compares it with the
// distribution the version's bundle records (bundle.Training.Scores) by the population
// stability index (churn_score_drift_psi):
//
//	PSI = Σ_i (a_i − e_i) · ln(a_i / e_i)
//
// over the buckets i, where a_i is the share of served probabilities in bucket i and e_i the
// share of the training rows'. Each share is smoothed by half a count, (n_i + 0.5) / (N + 0.5·B)
// for B buckets, so that an empty bucket gives a finite figure. The usual reading: below 0.1 no
// significant shift, 0.1 to 0.25 a moderate one worth a look, above 0.25 a major one (the
// customers, or the data fed to the model, are no longer those it was trained on).
//
// Observe is on the scoring hot path and is one map read and one histogram Observe; the index is
// computed only when Prometheus scrapes (Collect). The labels are bounded: only the versions
// this replica has loaded have series, and a version's series go when it is unloaded.
package drift

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/model"
)

// MinSamples is how many probabilities a version must have served on this replica before its
// PSI is reported: with fewer, the sampling noise of the index alone (about (B−1)/N for B
// buckets) approaches the 0.1 threshold.
const MinSamples = 500

// Metric names.
const (
	HistogramName = "churn_score_probability"
	PSIName       = "churn_score_drift_psi"
)

// Loaded is the set of model versions this replica has loaded. *modelstore.Store is one.
type Loaded interface {
	Get(version string) (*model.Model, bool)
	List() []*model.Model
}

// Monitor keeps the histograms and reports them and the PSI as a Prometheus collector. It is safe
// for concurrent use.
type Monitor struct {
	loaded Loaded
	psi    *prometheus.Desc

	mu     sync.Mutex                               // serialises writers of series
	series atomic.Pointer[map[*model.Model]*series] // never modified once published
}

// series is one version's histogram and its training reference.
type series struct {
	hist prometheus.Histogram
	ref  []uint64 // the bundle's counts per bucket; nil when it records none
}

// New makes a Monitor of the versions in loaded and registers it with reg.
func New(loaded Loaded, reg prometheus.Registerer) (*Monitor, error) {
	m := &Monitor{
		loaded: loaded,
		psi: prometheus.NewDesc(PSIName,
			"Population stability index of the probabilities this replica served with a model version, against the distribution of its training rows' out-of-fold probabilities its bundle records (absent for a bundle without one, and until the version has served "+strconv.Itoa(MinSamples)+" probabilities here): <0.1 stable, 0.1-0.25 moderate shift, >0.25 major shift.",
			[]string{"version"}, nil),
	}
	empty := map[*model.Model]*series{}
	m.series.Store(&empty)
	if err := reg.Register(m); err != nil {
		return nil, err
	}
	return m, nil
}

// Observe counts a probability served by mod. A model that is not (or no longer) loaded is not
// counted: its series would outlive it.
func (m *Monitor) Observe(mod *model.Model, p float64) {
	if s, ok := (*m.series.Load())[mod]; ok {
		s.hist.Observe(p)
		return
	}
	if s := m.add(mod); s != nil {
		s.hist.Observe(p)
	}
}

// add makes the series of a loaded model, dropping those of models no longer loaded; nil when mod
// is not loaded.
func (m *Monitor) add(mod *model.Model) *series {
	if cur, ok := m.loaded.Get(mod.Version()); !ok || cur != mod {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.series.Load()
	if s, ok := old[mod]; ok {
		return s
	}
	next := make(map[*model.Model]*series, len(old)+1)
	for k, s := range old {
		if cur, ok := m.loaded.Get(k.Version()); ok && cur == k {
			next[k] = s
		}
	}
	s := newSeries(mod)
	next[mod] = s
	m.series.Store(&next)
	return s
}

// prune drops the series of the models not among loaded.
func (m *Monitor) prune(loaded []*model.Model) {
	keep := make(map[*model.Model]bool, len(loaded))
	for _, mod := range loaded {
		keep[mod] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.series.Load()
	next := make(map[*model.Model]*series, len(old))
	for k, s := range old {
		if keep[k] {
			next[k] = s
		}
	}
	if len(next) != len(old) {
		m.series.Store(&next)
	}
}

func newSeries(mod *model.Model) *series {
	edges := bundle.ScoreEdges
	var ref []uint64
	if t := mod.Bundle.Manifest.Training; t != nil && t.Scores != nil {
		edges = t.Scores.Edges
		ref = make([]uint64, len(t.Scores.Counts))
		for i, c := range t.Scores.Counts {
			ref[i] = uint64(c)
		}
	}
	return &series{
		ref: ref,
		hist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        HistogramName,
			Help:        "Probabilities served, by model version (only the versions loaded on this replica; buckets: the bundle's training score distribution's edges, else the default ones).",
			Buckets:     edges,
			ConstLabels: prometheus.Labels{"version": mod.Version()},
		}),
	}
}

// Describe sends nothing: the versions, and so the series, change at run time (an unchecked
// collector).
func (m *Monitor) Describe(chan<- *prometheus.Desc) {}

// Collect sends each loaded version's histogram and, when its bundle records a training
// distribution and it has served MinSamples probabilities, its PSI. Versions no longer loaded
// lose their series here.
func (m *Monitor) Collect(ch chan<- prometheus.Metric) {
	loaded := m.loaded.List()
	m.prune(loaded)
	for _, mod := range loaded {
		s, ok := (*m.series.Load())[mod]
		if !ok {
			if s = m.add(mod); s == nil {
				continue // unloaded since List
			}
		}
		ch <- s.hist
		if s.ref == nil {
			continue
		}
		var out dto.Metric
		if err := s.hist.Write(&out); err != nil {
			continue
		}
		if live := bucketCounts(out.GetHistogram()); live != nil {
			if psi, ok := PSI(s.ref, live); ok {
				ch <- prometheus.MustNewConstMetric(m.psi, prometheus.GaugeValue, psi, mod.Version())
			}
		}
	}
}

// bucketCounts turns a histogram's cumulative buckets into counts per bucket, the last one (up to
// +Inf) included; nil before MinSamples.
func bucketCounts(h *dto.Histogram) []uint64 {
	total := h.GetSampleCount()
	if total < MinSamples {
		return nil
	}
	out := make([]uint64, 0, len(h.GetBucket())+1)
	var below uint64
	for _, b := range h.GetBucket() {
		c := b.GetCumulativeCount()
		out = append(out, c-below)
		below = c
	}
	return append(out, total-below)
}

// PSI is the population stability index of the counts actual against the counts expected, bucket
// by bucket, each share smoothed by half a count (see the package doc); false when the two have
// different numbers of buckets or either is empty.
func PSI(expected, actual []uint64) (float64, bool) {
	if len(expected) != len(actual) || len(expected) == 0 {
		return 0, false
	}
	var ne, na float64
	for i := range expected {
		ne += float64(expected[i])
		na += float64(actual[i])
	}
	if ne == 0 || na == 0 {
		return 0, false
	}
	half := 0.5 * float64(len(expected))
	psi := 0.0
	for i := range expected {
		e := (float64(expected[i]) + 0.5) / (ne + half)
		a := (float64(actual[i]) + 0.5) / (na + half)
		psi += (a - e) * math.Log(a/e)
	}
	return psi, true
}
