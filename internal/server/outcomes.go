package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/outcomes"
)

// OutcomeStore records outcomes and answers the reports, in OutcomeService's terms;
// *outcomes.Store is one. Record's per-item errors are *outcomes.FieldError (the field within the
// outcome) or the score cache's or the store's (cache.ErrUnavailable, outcomes.ErrUnavailable:
// retry); the reports' field errors name the request's field.
type OutcomeStore interface {
	Record(ctx context.Context, outs []*churnv1.Outcome) []outcomes.Result
	// SetBases records base counts, all or none.
	SetBases(ctx context.Context, bs []*churnv1.BaseCount) error
	ChurnReport(ctx context.Context, req *churnv1.GetChurnReportRequest) (*churnv1.ChurnReport, error)
	ModelPerformance(ctx context.Context, req *churnv1.GetModelPerformanceRequest) (*churnv1.ModelPerformance, error)
}

// OutcomeServiceOptions configure an OutcomeService.
type OutcomeServiceOptions struct {
	Store OutcomeStore
	// MaxBatch bounds the outcomes of one RecordOutcomes (the server's --max-batch).
	MaxBatch int
	Logger   *slog.Logger
}

// OutcomeService implements churn.v1.OutcomeService. Authentication is the Auth interceptor's
// job: the scoring rules apply.
type OutcomeService struct {
	churnv1.UnimplementedOutcomeServiceServer

	store    OutcomeStore
	maxBatch int
	logger   *slog.Logger
}

var _ churnv1.OutcomeServiceServer = (*OutcomeService)(nil)

// NewOutcomeService makes an OutcomeService.
func NewOutcomeService(o OutcomeServiceOptions) (*OutcomeService, error) {
	if o.Store == nil {
		return nil, errors.New("server: no outcome store")
	}
	if o.MaxBatch < 1 {
		return nil, errors.New("server: MaxBatch must be >= 1")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &OutcomeService{store: o.Store, maxBatch: o.MaxBatch, logger: o.Logger}, nil
}

// RecordOutcomes records a batch; a bad outcome gets its own error, the others are recorded.
// The base counts come first, all or none: one bad base count refuses the call before anything
// is recorded.
func (s *OutcomeService) RecordOutcomes(ctx context.Context, req *churnv1.RecordOutcomesRequest) (*churnv1.RecordOutcomesResponse, error) {
	n, nb := len(req.GetOutcomes()), len(req.GetBaseCounts())
	if n == 0 && nb == 0 {
		return nil, invalidArgument("outcomes", "must hold at least one outcome or base count")
	}
	if n > s.maxBatch || nb > s.maxBatch {
		return nil, status.Errorf(codes.ResourceExhausted, "outcomes: %d items and %d base counts, the limit is %d each per call; split the batch", n, nb, s.maxBatch)
	}
	if nb > 0 {
		if err := s.store.SetBases(ctx, req.GetBaseCounts()); err != nil {
			return nil, toStatus(ctx, s.logger, err)
		}
	}
	res := s.store.Record(ctx, req.GetOutcomes())
	out := &churnv1.RecordOutcomesResponse{Results: make([]*churnv1.OutcomeResult, len(res))}
	for i, r := range res {
		or := &churnv1.OutcomeResult{Duplicate: r.Duplicate}
		if r.Err != nil {
			or.Error = s.outcomeError(ctx, r.Err, i)
		} else if r.Score != nil {
			or.ScoredBy, or.ScoredAt = r.Score.GetModel(), r.Score.GetScoredAt()
		}
		out.Results[i] = or
	}
	return out, nil
}

// outcomeError is the error of one outcome, its field named as outcomes[i].<field>.
func (s *OutcomeService) outcomeError(ctx context.Context, err error, index int) *churnv1.ItemError {
	var fe *outcomes.FieldError
	if errors.As(err, &fe) {
		field := fmt.Sprintf("outcomes[%d].%s", index, fe.Field)
		return &churnv1.ItemError{
			Code:            int32(codes.InvalidArgument),
			Message:         field + ": " + fe.Description,
			FieldViolations: []*churnv1.FieldViolation{{Field: field, Description: fe.Description}},
		}
	}
	st := status.Convert(toStatus(ctx, s.logger, err))
	return &churnv1.ItemError{Code: int32(st.Code()), Message: fmt.Sprintf("outcomes[%d]: %s", index, st.Message())}
}

// GetChurnReport returns the churn KPIs per period and segment.
func (s *OutcomeService) GetChurnReport(ctx context.Context, req *churnv1.GetChurnReportRequest) (*churnv1.ChurnReport, error) {
	rep, err := s.store.ChurnReport(ctx, req)
	if err != nil {
		return nil, toStatus(ctx, s.logger, err)
	}
	return rep, nil
}

// GetModelPerformance returns the live quality of model versions.
func (s *OutcomeService) GetModelPerformance(ctx context.Context, req *churnv1.GetModelPerformanceRequest) (*churnv1.ModelPerformance, error) {
	perf, err := s.store.ModelPerformance(ctx, req)
	if err != nil {
		return nil, toStatus(ctx, s.logger, err)
	}
	return perf, nil
}
