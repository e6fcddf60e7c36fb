package server

import (
	"context"
	"math"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// ScoreCache remembers every score and keeps the at-risk watchlist; *cache.Redis and *cache.Memory
// are ones. Its errors are internal/cache's sentinels (cache.ErrNotFound, cache.ErrBadPageToken,
// cache.ErrUnavailable); one of an operation that ran out of time wraps context.DeadlineExceeded too.
type ScoreCache interface {
	// Put remembers each response as its customer's latest score and returns, per response, the
	// probability cached for that customer before it, NaN when there was none. It keeps nothing
	// of the responses once it returns: the server may change them afterwards (applyView).
	Put(ctx context.Context, resps []*churnv1.ScoreResponse) ([]float64, error)
	// Get returns the customer's latest cached response and the probability cached before that
	// one (NaN when none); an error wrapping cache.ErrNotFound when there is none.
	Get(ctx context.Context, customerID string) (*churnv1.ScoreResponse, float64, error)
	// ListAtRisk returns a page of the watchlist and the token of the next ("" at the end).
	ListAtRisk(ctx context.Context, minTier churnv1.RiskTier, limit int, pageToken string) ([]*churnv1.ScoreResponse, string, error)
}

// ListAtRisk page sizes.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// remember writes scored customers to the cache in one call and adds RISK_RISING where the
// previous cached probability says so. It fails open: a cache error is counted and logged
// (throttled) and the scores are returned as they are.
func (s *Server) remember(ctx context.Context, resps []*churnv1.ScoreResponse) {
	if len(resps) == 0 {
		return
	}
	prev, err := s.cache.Put(ctx, resps)
	if err != nil {
		s.metrics.cacheWrites.WithLabelValues("error").Inc()
		s.cacheLog.log(ctx, s.logger, "score cache write failed; scores are returned uncached", err)
		return
	}
	s.metrics.cacheWrites.WithLabelValues("ok").Inc()
	for i, p := range prev {
		if i < len(resps) && !math.IsNaN(p) {
			s.addRiskRising(resps[i], p)
		}
	}
}

// addRiskRising appends RISK_RISING when the probability rose enough since previous.
func (s *Server) addRiskRising(r *churnv1.ScoreResponse, previous float64) {
	for _, w := range r.GetWarnings() {
		if w.GetCode() == churnv1.WarningCode_WARNING_CODE_RISK_RISING {
			return
		}
	}
	if w := s.rules.RiskRising(r.GetProbability(), &previous); w != nil {
		r.Warnings = append(r.Warnings, w)
	}
}

// GetScore returns a customer's latest cached score.
func (s *Server) GetScore(ctx context.Context, req *churnv1.GetScoreRequest) (*churnv1.ScoreResponse, error) {
	if err := validateCustomerID(req.GetCustomerId()); err != nil {
		return nil, err
	}
	if err := checkView("view", req.GetView()); err != nil {
		return nil, err
	}
	resp, prev, err := s.cache.Get(ctx, req.GetCustomerId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if !math.IsNaN(prev) {
		s.addRiskRising(resp, prev)
	}
	s.markCached(resp)
	applyView(resp, req.GetView())
	return resp, nil
}

// markCached sets from_cache, and model_superseded when the model version that scored the
// customer is no longer the active one.
func (s *Server) markCached(r *churnv1.ScoreResponse) {
	r.FromCache = true
	if active := s.models.Active(); active != nil {
		r.ModelSuperseded = r.GetModel().GetVersion() != active.Version()
	}
}

// ListAtRisk pages through the watchlist.
func (s *Server) ListAtRisk(ctx context.Context, req *churnv1.ListAtRiskRequest) (*churnv1.ListAtRiskResponse, error) {
	minTier := req.GetMinTier()
	if minTier == churnv1.RiskTier_RISK_TIER_UNSPECIFIED {
		minTier = churnv1.RiskTier_RISK_TIER_MEDIUM
	}
	if minTier < churnv1.RiskTier_RISK_TIER_LOW || minTier > churnv1.RiskTier_RISK_TIER_CRITICAL {
		return nil, invalidArgument("min_tier", "must be a RiskTier value")
	}
	limit := int(req.GetLimit())
	switch {
	case limit == 0:
		limit = defaultPageSize
	case limit < 0 || limit > maxPageSize:
		return nil, invalidArgument("limit", "must be between 1 and 1000 (0 means 50)")
	}
	if err := checkView("view", req.GetView()); err != nil {
		return nil, err
	}
	page, next, err := s.cache.ListAtRisk(ctx, minTier, limit, req.GetPageToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	for _, r := range page {
		s.markCached(r)
		applyView(r, req.GetView())
	}
	return &churnv1.ListAtRiskResponse{Customers: page, NextPageToken: next}, nil
}
