package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache"
)

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
	entries := make([]cache.Entry, len(resps))
	for i, r := range resps {
		entries[i] = cache.Entry{CustomerID: r.GetCustomerId(), Response: r, Probability: r.GetProbability(), Tier: r.GetTier(), ExpectedLoss: r.GetExpectedLoss()}
	}
	prev, err := s.cache.Put(ctx, entries)
	if err != nil {
		s.metrics.cacheWrites.WithLabelValues("error").Inc()
		s.cacheLog.log(s.logger, "score cache write failed; scores are returned uncached", err)
		return
	}
	s.metrics.cacheWrites.WithLabelValues("ok").Inc()
	for i, p := range prev {
		if i < len(resps) && p.Found {
			s.addRiskRising(resps[i], p.Probability)
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
	resp, prev, err := s.cache.Get(ctx, req.GetCustomerId())
	if err != nil {
		return nil, s.cacheStatus(ctx, err, "customer_id: no cached score for this customer; call Score")
	}
	if prev.Found {
		s.addRiskRising(resp, prev.Probability)
	}
	s.markCached(resp)
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
	page, err := s.cache.ListAtRisk(ctx, minTier, limit, req.GetPageToken())
	if err != nil {
		return nil, s.cacheStatus(ctx, err, "")
	}
	for _, r := range page.Responses {
		s.markCached(r)
	}
	return &churnv1.ListAtRiskResponse{Customers: page.Responses, NextPageToken: page.NextPageToken}, nil
}

// cacheStatus maps cache errors to gRPC statuses.
func (s *Server) cacheStatus(ctx context.Context, err error, notFound string) error {
	switch {
	case errors.Is(err, cache.ErrNotFound):
		return status.Error(codes.NotFound, notFound)
	case errors.Is(err, cache.ErrBadPageToken):
		return invalidArgument("page_token", "is not a token this service issued")
	case errors.Is(err, cache.ErrUnavailable):
		return status.Error(codes.Unavailable, "the score cache is unreachable; retry later, or call Score")
	}
	return s.toStatus(ctx, err)
}
