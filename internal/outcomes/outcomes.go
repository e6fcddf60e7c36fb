// Package outcomes closes the loop between scores and what became of the customers: it validates
// the outcomes callers report (churned, retained, won back), records each once (idempotency keys),
// joins it to the customer's last score issued at or before it, and adds it to per-day aggregates
// from which it answers the churn KPIs per period and segment (ChurnReport) and the live quality
// of each model version (ModelPerformance). The aggregates live in process by default, bounded by
// the days kept, the model versions and contracts per day and the keys remembered, never by the
// number of customers (see Options); with Options.Redis they live in Redis (redis.go), shared by
// every replica, written through the same increments (codec.go).
//
// # The join
//
// The score cache (internal/cache) holds each customer's latest score only, with its model
// version, probability, tier, stage, warnings, action and scored_at. An outcome is joined to it
// when it was issued at or before the outcome's occurred_at; when the customer was scored again
// after the outcome, the score before it is gone, and the outcome is recorded unjoined (it counts
// in the KPIs, not in model performance; churn_outcome_joins_total{result="scored_after"}), rather
// than joined to a score that could not have predicted it. Scoring a customer after they left is
// rare in practice; record outcomes promptly to keep it so.
//
// # Customers at the start of a period
//
// Without a base count from the caller, the customers at a period's start are those whose fate in
// the period was reported: its CHURNED plus RETAINED outcomes (WON_BACK outcomes are customers who
// had already left). So churn rate = CHURNED / (CHURNED + RETAINED) × 100%, which is exact when the
// caller reports every customer's end-of-period status (as churnctl replay does). A base count the
// caller reports for a period (RecordOutcomesRequest.base_counts) wins for the all-customers row.
//
// # Why hand-written
//
// The aggregates are a few counters and fixed-width histograms; no library offers exactly the
// mergeable per-day histogram this needs (an HDR or t-digest sketch would bound rank error, not the
// bin-pair ROC-AUC error this package states), so they are plain Go.
package outcomes

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache"
)

// Scores is where the store finds each customer's last score: the score cache (*cache.Memory and
// *cache.Redis are ones). Get returns an error wrapping cache.ErrNotFound when there is none.
type Scores interface {
	Get(ctx context.Context, customerID string) (*churnv1.ScoreResponse, float64, error)
}

// Defaults of Options.
const (
	DefaultRetentionDays = 400
	DefaultMaxKeys       = 250_000
	DefaultMaxVersions   = 8
	DefaultMaxContracts  = 16
)

// OtherContract is the contract segment of contracts beyond Options.MaxContracts.
const OtherContract = "(other)"

// Options configure a Store.
type Options struct {
	// Scores is the score cache outcomes are joined to; required.
	Scores Scores
	// HorizonMonths is the rules' expected_loss.horizon_months: churn cost = revenue lost × it.
	HorizonMonths float64
	// RetentionDays is how many UTC days of aggregates are kept (today included); outcomes older
	// are refused. DefaultRetentionDays when 0.
	RetentionDays int
	// MaxKeys is how many idempotency keys are remembered (first in, first out; ~60 bytes each):
	// a retry after that many newer outcomes counts again. DefaultMaxKeys when 0.
	MaxKeys int
	// MaxVersions bounds the model versions with a histogram per day (~8 KB each); outcomes joined
	// to a further version count in the KPIs only (churn_outcome_joins_total{result="version_limit"}).
	MaxVersions int
	// MaxContracts bounds the distinct contracts kept as segments; others are OtherContract.
	MaxContracts int
	Registerer   prometheus.Registerer
	// Redis, when set, keeps the aggregates, keys and base counts in Redis (see redis.go), shared
	// by every replica; nil keeps them in process.
	Redis *RedisOptions
	// GaugeVersions returns the model versions whose live quality is exported as gauges
	// (churn_model_live_*): the served ones, a bounded set. None when nil.
	GaugeVersions func() []string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Store is the in-process outcome store. It is safe for concurrent use.
type Store struct {
	scores        Scores
	horizon       float64
	retentionDays int64
	maxVersions   int
	maxContracts  int
	now           func() time.Time
	metrics       *metrics

	redis     *redisStore // nil: in process
	mu        sync.Mutex
	keys      keySet
	days      map[int64]*day
	bases     map[baseKey]int64
	contracts map[string]bool
}

// day is the aggregates of one UTC day.
type day struct {
	segs   map[segKey]*kpi
	models map[modelKey]*histogram
}

// modelKey names a model version.
type modelKey struct{ name, version string }

type segKey struct {
	seg   churnv1.Segment
	value string
}

type baseKey struct {
	period churnv1.Period
	start  int64 // unix seconds of the period's start
}

// kpi is the counters of one day and segment.
type kpi struct {
	churned, retained, wonBack int64
	revenueLost                float64
	lostNoRevenue              int64
	reasonN                    [numReasons]int64
	reasonRev                  [numReasons]float64
	joinedChurned              int64
	warnFlagged, warnChurned   [numWarnings]int64
	actions                    [numActions][3]int64 // action × (churned, retained, won back)
}

// New makes a Store.
func New(o Options) (*Store, error) {
	if o.Scores == nil {
		return nil, errors.New("outcomes: no score cache")
	}
	if o.HorizonMonths < 0 || math.IsNaN(o.HorizonMonths) {
		return nil, fmt.Errorf("outcomes: horizon %v months", o.HorizonMonths)
	}
	if o.RetentionDays == 0 {
		o.RetentionDays = DefaultRetentionDays
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.MaxVersions == 0 {
		o.MaxVersions = DefaultMaxVersions
	}
	if o.MaxContracts == 0 {
		o.MaxContracts = DefaultMaxContracts
	}
	if o.RetentionDays < 1 || o.MaxKeys < 1 || o.MaxVersions < 1 || o.MaxContracts < 1 {
		return nil, errors.New("outcomes: retention days, keys, versions and contracts must be >= 1")
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{
		scores:        o.Scores,
		horizon:       o.HorizonMonths,
		retentionDays: int64(o.RetentionDays),
		maxVersions:   o.MaxVersions,
		maxContracts:  o.MaxContracts,
		now:           o.Now,
		metrics:       newMetrics(o.Registerer),
		keys:          newKeySet(o.MaxKeys),
		days:          map[int64]*day{},
		bases:         map[baseKey]int64{},
		contracts:     map[string]bool{},
	}
	if o.Redis != nil {
		r, err := newRedisStore(*o.Redis, o)
		if err != nil {
			return nil, err
		}
		s.redis = r
	}
	if o.GaugeVersions != nil {
		if err := o.Registerer.Register(newGauges(s, o.GaugeVersions)); err != nil {
			return nil, fmt.Errorf("outcomes: %w", err)
		}
	}
	return s, nil
}

// oldestDay is the first day kept at now.
func (s *Store) oldestDay(now time.Time) int64 { return dayOf(now) - s.retentionDays + 1 }

// Result is what became of one outcome: Err (a *FieldError, or an error wrapping
// cache.ErrUnavailable when the score cache could not be read: retry) and nothing recorded; or
// Duplicate; or recorded, with the Score it was joined to (nil when none).
type Result struct {
	Err       error
	Duplicate bool
	Score     *churnv1.ScoreResponse
}

// Record validates and records a batch of outcomes, each on its own: a bad one is refused with
// its Result.Err and the others are recorded.
func (s *Store) Record(ctx context.Context, outs []*churnv1.Outcome) []Result {
	res := make([]Result, len(outs))
	now := s.now()
	oldest := dayStart(s.oldestDay(now))
	for i, o := range outs {
		if err := validate(o, now, oldest); err != nil {
			s.metrics.outcomes.WithLabelValues(typeLabel(o.GetType()), "refused").Inc()
			res[i].Err = err
			continue
		}
		score, err := s.join(ctx, o)
		if err != nil {
			s.metrics.outcomes.WithLabelValues(typeLabel(o.GetType()), "refused").Inc()
			res[i].Err = err
			continue
		}
		dup, err := s.add(ctx, o, score, now)
		if err != nil {
			s.metrics.outcomes.WithLabelValues(typeLabel(o.GetType()), "refused").Inc()
			res[i].Err = err
			continue
		}
		res[i] = Result{Duplicate: dup, Score: score}
		if dup {
			s.metrics.outcomes.WithLabelValues(typeLabel(o.GetType()), "duplicate").Inc()
		} else {
			s.metrics.outcomes.WithLabelValues(typeLabel(o.GetType()), "recorded").Inc()
		}
	}
	return res
}

// join returns the customer's last score issued at or before the outcome, nil when there is none.
func (s *Store) join(ctx context.Context, o *churnv1.Outcome) (*churnv1.ScoreResponse, error) {
	resp, _, err := s.scores.Get(ctx, o.GetCustomerId())
	switch {
	case errors.Is(err, cache.ErrNotFound):
		s.metrics.joins.WithLabelValues("not_scored").Inc()
		return nil, nil
	case err != nil:
		s.metrics.joins.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("joining the outcome to the customer's last score: %w", err)
	case resp.GetScoredAt() == nil || resp.GetScoredAt().AsTime().After(o.GetOccurredAt().AsTime()):
		s.metrics.joins.WithLabelValues("scored_after").Inc()
		return nil, nil
	}
	return resp, nil
}

// key is the digest of an outcome's idempotency key, or of its identity when it has none.
func key(o *churnv1.Outcome) [16]byte {
	var src string
	if k := o.GetIdempotencyKey(); k != "" {
		src = "k\x00" + k
	} else {
		at := o.GetOccurredAt()
		src = fmt.Sprintf("o\x00%s\x00%d\x00%d.%09d", o.GetCustomerId(), o.GetType(), at.GetSeconds(), at.GetNanos())
	}
	sum := sha256.Sum256([]byte(src))
	var k [16]byte
	copy(k[:], sum[:16])
	return k
}

// add records a valid outcome joined to score (nil: unjoined); it reports a duplicate instead
// when its key was seen.
func (s *Store) add(ctx context.Context, o *churnv1.Outcome, score *churnv1.ScoreResponse, now time.Time) (duplicate bool, err error) {
	if s.redis != nil {
		return s.redis.add(ctx, o, score, s.metrics)
	}
	return s.addMemory(o, score, now), nil
}

// addMemory is add in process.
func (s *Store) addMemory(o *churnv1.Outcome, score *churnv1.ScoreResponse, now time.Time) (duplicate bool) {
	k := key(o)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.keys.add(k) {
		return true
	}
	if s.keys.evicted {
		s.keys.evicted = false
		s.metrics.keyEvictions.Inc()
	}
	s.prune(now)
	d := s.day(dayOf(o.GetOccurredAt().AsTime()))

	tier := churnv1.RiskTier_RISK_TIER_UNSPECIFIED
	stage := churnv1.LifecycleStage_LIFECYCLE_STAGE_UNSPECIFIED
	if score != nil {
		tier, stage = score.GetTier(), score.GetStage()
	}
	for _, sk := range []segKey{
		{churnv1.Segment_SEGMENT_UNSPECIFIED, ""},
		{churnv1.Segment_SEGMENT_TIER, tier.String()},
		{churnv1.Segment_SEGMENT_STAGE, stage.String()},
		{churnv1.Segment_SEGMENT_CONTRACT, s.contract(o.GetContract())},
	} {
		k := d.segs[sk]
		if k == nil {
			k = &kpi{}
			d.segs[sk] = k
		}
		k.add(o, score)
	}

	if score == nil {
		return false
	}
	s.metrics.joins.WithLabelValues("joined").Inc()
	if o.GetType() == churnv1.OutcomeType_OUTCOME_TYPE_WON_BACK {
		return false
	}
	ref := modelKey{name: score.GetModel().GetName(), version: score.GetModel().GetVersion()}
	h := d.models[ref]
	if h == nil {
		if len(d.models) >= s.maxVersions {
			s.metrics.joins.WithLabelValues("version_limit").Inc()
			return false
		}
		h = &histogram{}
		d.models[ref] = h
	}
	h.add(score.GetProbability(), o.GetType() == churnv1.OutcomeType_OUTCOME_TYPE_CHURNED)
	return false
}

// contract is the segment value of a contract: itself while fewer than maxContracts are known.
func (s *Store) contract(c string) string {
	if s.contracts[c] {
		return c
	}
	if len(s.contracts) >= s.maxContracts {
		return OtherContract
	}
	s.contracts[c] = true
	return c
}

// day returns the aggregates of day d, made on first use.
func (s *Store) day(d int64) *day {
	a := s.days[d]
	if a == nil {
		a = &day{segs: map[segKey]*kpi{}, models: map[modelKey]*histogram{}}
		s.days[d] = a
	}
	return a
}

// prune drops the days older than the retention and the base counts of periods that ended before
// it. The map holds at most retentionDays days afterwards, so this loop is bounded by them.
func (s *Store) prune(now time.Time) {
	oldest := s.oldestDay(now)
	for d := range s.days {
		if d < oldest {
			delete(s.days, d)
		}
	}
	for k := range s.bases {
		if dayOf(periodEnd(k.period, time.Unix(k.start, 0).UTC()))-1 < oldest {
			delete(s.bases, k)
		}
	}
}

// add counts one outcome joined to score (nil: unjoined).
func (k *kpi) add(o *churnv1.Outcome, score *churnv1.ScoreResponse) {
	for _, in := range kpiIncrs(o, score) {
		k.apply(in.name, in.by)
	}
}

// merge adds o into k.
func (k *kpi) merge(o *kpi) {
	k.churned += o.churned
	k.retained += o.retained
	k.wonBack += o.wonBack
	k.revenueLost += o.revenueLost
	k.lostNoRevenue += o.lostNoRevenue
	k.joinedChurned += o.joinedChurned
	for i := range k.reasonN {
		k.reasonN[i] += o.reasonN[i]
		k.reasonRev[i] += o.reasonRev[i]
	}
	for i := range k.warnFlagged {
		k.warnFlagged[i] += o.warnFlagged[i]
		k.warnChurned[i] += o.warnChurned[i]
	}
	for i := range k.actions {
		for j := range k.actions[i] {
			k.actions[i][j] += o.actions[i][j]
		}
	}
}

// SetBases records the caller's counts of customers at the start of periods, all or none: a bad
// one is refused with a *FieldError naming base_counts[i].<field>, and nothing is recorded.
func (s *Store) SetBases(ctx context.Context, bs []*churnv1.BaseCount) error {
	now := s.now()
	keys := make([]baseKey, len(bs))
	for i, b := range bs {
		k, err := s.checkBase(b, now)
		if err != nil {
			err.Field = fmt.Sprintf("base_counts[%d].%s", i, err.Field)
			return err
		}
		keys[i] = k
	}
	if s.redis != nil {
		vals := make([]int64, len(bs))
		for i, b := range bs {
			vals[i] = b.GetCustomers()
		}
		return s.redis.setBases(ctx, keys, vals)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range bs {
		s.bases[keys[i]] = b.GetCustomers()
	}
	return nil
}

// checkBase checks one base count and returns its key.
func (s *Store) checkBase(b *churnv1.BaseCount, now time.Time) (baseKey, *FieldError) {
	switch b.GetPeriod() {
	case churnv1.Period_PERIOD_DAY, churnv1.Period_PERIOD_WEEK, churnv1.Period_PERIOD_MONTH:
	default:
		return baseKey{}, fieldErr("period", "must be DAY, WEEK or MONTH, got %s", b.GetPeriod())
	}
	if b.GetPeriodStart() == nil || b.GetPeriodStart().CheckValid() != nil {
		return baseKey{}, fieldErr("period_start", "must be a valid timestamp")
	}
	if b.GetCustomers() < 0 {
		return baseKey{}, fieldErr("customers", "must be >= 0, got %d", b.GetCustomers())
	}
	start := periodStart(b.GetPeriod(), b.GetPeriodStart().AsTime())
	if start.After(now) {
		return baseKey{}, fieldErr("period_start", "the period starts %s, in the future", start.Format(time.RFC3339))
	}
	if dayOf(periodEnd(b.GetPeriod(), start))-1 < s.oldestDay(now) {
		return baseKey{}, fieldErr("period_start", "the period ended before the oldest day kept (--outcome-retention-days)")
	}
	return baseKey{b.GetPeriod(), start.Unix()}, nil
}

// ChurnReport answers GetChurnReport; its field errors name the request's field.
func (s *Store) ChurnReport(ctx context.Context, req *churnv1.GetChurnReportRequest) (*churnv1.ChurnReport, error) {
	from, to, err := timeRange(req.GetFrom(), req.GetTo())
	if err != nil {
		return nil, err
	}
	p := req.GetPeriod()
	if err := validPeriod("period", p); err != nil {
		return nil, err
	}
	if p == churnv1.Period_PERIOD_UNSPECIFIED {
		p = churnv1.Period_PERIOD_MONTH
	}
	seg := req.GetSegment()
	if _, ok := churnv1.Segment_name[int32(seg)]; !ok {
		return nil, fieldErr("segment", "unknown segment %d", int32(seg))
	}
	spans, ferr := periods(p, from, to)
	if ferr != nil {
		return nil, ferr
	}
	out := &churnv1.ChurnReport{HorizonMonths: s.horizon}
	bk := make([]baseKey, len(spans))
	for i, sp := range spans {
		bk[i] = baseKey{p, sp.start.Unix()}
	}
	v, err := s.view(ctx, spans[0].first, spans[len(spans)-1].last, bk)
	if err != nil {
		return nil, err
	}
	defer v.done()
	for _, sp := range spans {
		sums := map[string]*kpi{}
		for d := sp.first; d <= sp.last; d++ {
			a := v.days[d]
			if a == nil {
				continue
			}
			for sk, k := range a.segs {
				if sk.seg != seg {
					continue
				}
				if sums[sk.value] == nil {
					sums[sk.value] = &kpi{}
				}
				sums[sk.value].merge(k)
			}
		}
		if seg == churnv1.Segment_SEGMENT_UNSPECIFIED && sums[""] == nil {
			sums[""] = &kpi{}
		}
		names := make([]string, 0, len(sums))
		for n := range sums {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			row := s.kpiRow(sums[n])
			row.PeriodStart, row.PeriodEnd, row.Segment = timestamppb.New(sp.start), timestamppb.New(sp.end), n
			if base, ok := v.bases[baseKey{p, sp.start.Unix()}]; ok && seg == churnv1.Segment_SEGMENT_UNSPECIFIED {
				row.CustomersAtStart, row.BaseReported = base, true
				rates(row)
			}
			out.Rows = append(out.Rows, row)
		}
	}
	return out, nil
}

// kpiRow turns summed counters into a report row (without period and segment).
func (s *Store) kpiRow(k *kpi) *churnv1.ChurnKPIs {
	row := &churnv1.ChurnKPIs{
		CustomersAtStart:    k.churned + k.retained,
		Lost:                k.churned,
		Retained:            k.retained,
		WonBack:             k.wonBack,
		RevenueLostPerMonth: k.revenueLost,
		LostWithoutRevenue:  k.lostNoRevenue,
		ChurnCost:           k.revenueLost * s.horizon,
	}
	rates(row)
	if k.churned > 0 {
		row.WinBackRatePercent = float64(k.wonBack) / float64(k.churned) * 100
	}
	for r, n := range k.reasonN {
		if n > 0 {
			row.Reasons = append(row.Reasons, &churnv1.ReasonCount{Reason: churnv1.OutcomeReason(r), Lost: n, RevenueLostPerMonth: k.reasonRev[r]})
		}
	}
	for c, n := range k.warnFlagged {
		if n == 0 {
			continue
		}
		w := &churnv1.WarningOutcome{Code: churnv1.WarningCode(c), Flagged: n, FlaggedChurned: k.warnChurned[c]}
		w.Precision = float64(k.warnChurned[c]) / float64(n)
		if k.joinedChurned > 0 {
			w.Recall = float64(k.warnChurned[c]) / float64(k.joinedChurned)
		}
		row.Warnings = append(row.Warnings, w)
	}
	for a, n := range k.actions {
		if n[0]+n[1]+n[2] > 0 {
			row.Actions = append(row.Actions, &churnv1.ActionOutcome{Action: churnv1.ActionType(a), Churned: n[0], Retained: n[1], WonBack: n[2]})
		}
	}
	return row
}

// rates sets the churn and retention rates from customers_at_start and lost.
func rates(row *churnv1.ChurnKPIs) {
	row.ChurnRatePercent, row.RetentionRatePercent = 0, 0
	if n := row.CustomersAtStart; n > 0 {
		row.ChurnRatePercent = float64(row.Lost) / float64(n) * 100
		row.RetentionRatePercent = float64(n-row.Lost) / float64(n) * 100
	}
}

// ModelPerformance answers GetModelPerformance; its field errors name the request's field.
func (s *Store) ModelPerformance(ctx context.Context, req *churnv1.GetModelPerformanceRequest) (*churnv1.ModelPerformance, error) {
	from, to, err := timeRange(req.GetFrom(), req.GetTo())
	if err != nil {
		return nil, err
	}
	p := req.GetPeriod()
	if err := validPeriod("period", p); err != nil {
		return nil, err
	}
	spans, ferr := periods(p, from, to)
	if ferr != nil {
		return nil, ferr
	}
	out := &churnv1.ModelPerformance{}
	v, err := s.view(ctx, spans[0].first, spans[len(spans)-1].last, nil)
	if err != nil {
		return nil, err
	}
	defer v.done()
	for _, sp := range spans {
		sums := map[modelKey]*histogram{}
		for d := sp.first; d <= sp.last; d++ {
			a := v.days[d]
			if a == nil {
				continue
			}
			for ref, h := range a.models {
				if req.GetVersion() != "" && ref.version != req.GetVersion() {
					continue
				}
				if sums[ref] == nil {
					sums[ref] = &histogram{}
				}
				sums[ref].merge(h)
			}
		}
		refs := make([]modelKey, 0, len(sums))
		for ref := range sums {
			refs = append(refs, ref)
		}
		slices.SortFunc(refs, func(a, b modelKey) int {
			if a.version != b.version {
				return strings.Compare(a.version, b.version)
			}
			return strings.Compare(a.name, b.name)
		})
		for _, ref := range refs {
			row := &churnv1.ModelPeriodPerformance{Model: &churnv1.ModelRef{Name: ref.name, Version: ref.version}}
			if p != churnv1.Period_PERIOD_UNSPECIFIED {
				row.PeriodStart, row.PeriodEnd = timestamppb.New(sp.start), timestamppb.New(sp.end)
			}
			sums[ref].performance(row)
			out.Rows = append(out.Rows, row)
		}
	}
	return out, nil
}

// view is the aggregates a report reads: days and base counts, and done to call when read.
type view struct {
	days  map[int64]*day
	bases map[baseKey]int64
	done  func()
}

// view returns the days first..last (clamped to the days kept) and the base counts bk: in
// process, the store's own maps, locked until done; with Redis, read from it.
func (s *Store) view(ctx context.Context, first, last int64, bk []baseKey) (view, error) {
	now := s.now()
	first, last = max(first, s.oldestDay(now)), min(last, dayOf(now)+1)
	if s.redis != nil {
		days, bases, err := s.redis.read(ctx, first, last, bk)
		return view{days: days, bases: bases, done: func() {}}, err
	}
	s.mu.Lock()
	s.prune(now)
	return view{days: s.days, bases: s.bases, done: s.mu.Unlock}, nil
}

// timeRange checks a request's from and to.
func timeRange(from, to *timestamppb.Timestamp) (time.Time, time.Time, error) {
	if from == nil || from.CheckValid() != nil {
		return time.Time{}, time.Time{}, fieldErr("from", "must be a valid timestamp")
	}
	if to == nil || to.CheckValid() != nil {
		return time.Time{}, time.Time{}, fieldErr("to", "must be a valid timestamp")
	}
	return from.AsTime(), to.AsTime(), nil
}

// typeLabel is the metric label of an outcome type, from a bounded set.
func typeLabel(t churnv1.OutcomeType) string {
	switch t {
	case churnv1.OutcomeType_OUTCOME_TYPE_CHURNED:
		return "churned"
	case churnv1.OutcomeType_OUTCOME_TYPE_RETAINED:
		return "retained"
	case churnv1.OutcomeType_OUTCOME_TYPE_WON_BACK:
		return "won_back"
	}
	return "invalid"
}
