// Package server is churn's gRPC edge: it validates requests, picks the model, runs the feature
// mapping and the scoring engine, and turns the results and errors into protobuf messages and gRPC
// status codes. It owns the interceptors (metrics, logging, panic recovery, bearer-token auth)
// and the per-score metrics. It reaches models only through the small ModelSource interface, and
// the model lifecycle (ModelService, models.go) only through ModelRegistry.
package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/internal/retention"
	"github.com/churnhq/churn/internal/scoring"
)

// ModelSource hands out models: the active one or a loaded version. *modelstore.Store is one.
type ModelSource interface {
	Active() (*modelstore.Model, error)
	Get(version string) (*modelstore.Model, error)
}

// Options configure a Server.
type Options struct {
	Models ModelSource
	// Cache remembers every score; required.
	Cache ScoreCache
	// Rules raise the warnings and choose the action; retention.DefaultRules when nil.
	Rules      *retention.Rules
	MaxBatch   int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now returns the scoring time; time.Now when nil.
	Now func() time.Time
}

// Server implements churn.v1.ScoringService.
type Server struct {
	churnv1.UnimplementedScoringServiceServer

	models   ModelSource
	cache    ScoreCache
	rules    *retention.Rules
	cacheLog throttledLog
	maxBatch int
	logger   *slog.Logger
	now      func() time.Time
	metrics  *metrics
	scratch  sync.Pool // *scratch: per-call buffers, so scoring allocates only the response
}

var _ churnv1.ScoringServiceServer = (*Server)(nil)

// MaxCustomerIDLen bounds customer ids, in bytes.
const MaxCustomerIDLen = 128

// New makes a Server.
func New(o Options) (*Server, error) {
	if o.Models == nil {
		return nil, errors.New("server: no model source")
	}
	if o.Cache == nil {
		return nil, errors.New("server: no score cache")
	}
	if o.Rules == nil {
		r := retention.DefaultRules()
		o.Rules = &r
	}
	if o.MaxBatch < 1 {
		return nil, errors.New("server: MaxBatch must be >= 1")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Server{
		models:   o.Models,
		cache:    o.Cache,
		rules:    o.Rules,
		cacheLog: throttledLog{every: 10 * time.Second},
		maxBatch: o.MaxBatch,
		logger:   o.Logger,
		now:      o.Now,
		metrics:  newMetrics(o.Registerer),
		scratch:  sync.Pool{New: func() any { return new(scratch) }},
	}, nil
}

type scratch struct {
	x       []float64
	contrib []float64
	imputed []int
}

// Score scores one customer.
func (s *Server) Score(ctx context.Context, req *churnv1.ScoreRequest) (*churnv1.ScoreResponse, error) {
	sc := s.scratch.Get().(*scratch)
	resp, err := s.score(req, sc)
	s.scratch.Put(sc)
	if err != nil {
		s.metrics.errors.WithLabelValues(rpcScore, codeOf(err).String()).Inc()
		return nil, s.toStatus(ctx, err)
	}
	s.remember(ctx, []*churnv1.ScoreResponse{resp})
	s.metrics.countScore(rpcScore, resp)
	return resp, nil
}

// ScoreBatch scores up to MaxBatch customers; a bad item gets its own error.
func (s *Server) ScoreBatch(ctx context.Context, req *churnv1.ScoreBatchRequest) (*churnv1.ScoreBatchResponse, error) {
	n := len(req.GetRequests())
	if n == 0 {
		return nil, invalidArgument("requests", "must hold at least one request")
	}
	if n > s.maxBatch {
		return nil, status.Errorf(codes.ResourceExhausted, "requests: %d items, the limit is %d per batch; split the batch or use ScoreStream", n, s.maxBatch)
	}
	sc := s.scratch.Get().(*scratch)
	defer s.scratch.Put(sc)
	results := make([]*churnv1.ScoreBatchResult, n)
	scored := make([]*churnv1.ScoreResponse, 0, n)
	for i, item := range req.GetRequests() {
		if i%64 == 0 && ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		resp, err := s.score(item, sc)
		if err != nil {
			s.metrics.errors.WithLabelValues(rpcBatch, codeOf(err).String()).Inc()
			results[i] = &churnv1.ScoreBatchResult{Outcome: &churnv1.ScoreBatchResult_Error{Error: s.itemError(ctx, err, i)}}
			continue
		}
		scored = append(scored, resp)
		results[i] = &churnv1.ScoreBatchResult{Outcome: &churnv1.ScoreBatchResult_Response{Response: resp}}
	}
	s.remember(ctx, scored) // one pipelined write for the whole batch
	for _, resp := range scored {
		s.metrics.countScore(rpcBatch, resp)
	}
	return &churnv1.ScoreBatchResponse{Results: results}, nil
}

// ScoreStream scores a stream of customers in order. Each request is answered before the next is
// read, so a slow reader slows the stream through gRPC flow control instead of growing a queue.
func (s *Server) ScoreStream(stream churnv1.ScoringService_ScoreStreamServer) error {
	ctx := stream.Context()
	sc := s.scratch.Get().(*scratch)
	defer s.scratch.Put(sc)
	for i := 0; ; i++ {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := s.score(req, sc)
		if err != nil {
			s.metrics.errors.WithLabelValues(rpcStream, codeOf(err).String()).Inc()
			resp = &churnv1.ScoreResponse{CustomerId: req.GetCustomerId(), Error: s.itemError(ctx, err, i)}
		} else {
			s.remember(ctx, []*churnv1.ScoreResponse{resp})
			s.metrics.countScore(rpcStream, resp)
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// score validates one request and scores it with the model it asks for.
func (s *Server) score(req *churnv1.ScoreRequest, sc *scratch) (*churnv1.ScoreResponse, error) {
	if err := validateCustomerID(req.GetCustomerId()); err != nil {
		return nil, err
	}
	m, err := s.model(req.GetModelVersion())
	if err != nil {
		return nil, err
	}
	w := m.Mapper.Width()
	if cap(sc.x) < w {
		sc.x, sc.contrib = make([]float64, w), make([]float64, w)
	}
	x := sc.x[:w]
	ex, imputed, err := m.Explain(req.GetFeatures(), x, sc.contrib[:w], sc.imputed[:0])
	sc.imputed = imputed
	if err != nil {
		return nil, err
	}
	tier := tierProto(ex.Tier)
	insight := s.rules.Evaluate(retention.Input{Features: req.GetFeatures(), Probability: ex.Probability, Tier: tier})
	resp := &churnv1.ScoreResponse{
		CustomerId:   req.GetCustomerId(),
		Probability:  ex.Probability,
		Tier:         tier,
		Warnings:     insight.Warnings,
		Drivers:      ex.Drivers,
		Action:       insight.Action,
		Stage:        insight.Stage,
		ExpectedLoss: insight.ExpectedLoss,
		Margin:       ex.Margin,
		DriversBase:  ex.Base,
		Model:        m.Ref,
		ScoredAt:     timestamppb.New(s.now()),
	}
	if len(imputed) > 0 {
		resp.ImputedInputs = make([]string, len(imputed))
		for i, idx := range imputed {
			resp.ImputedInputs[i] = m.Mapper.InputName(idx)
		}
	}
	return resp, nil
}

func (s *Server) model(version string) (*modelstore.Model, error) {
	if version == "" {
		return s.models.Active()
	}
	if !bundle.ValidVersion(version) {
		return nil, invalidArgument("model_version", "must be 1-64 characters of [A-Za-z0-9._-] starting with a letter or digit")
	}
	return s.models.Get(version)
}

func validateCustomerID(id string) error {
	switch {
	case id == "":
		return invalidArgument("customer_id", "must not be empty")
	case len(id) > MaxCustomerIDLen:
		return invalidArgument("customer_id", "must be at most 128 bytes")
	case !utf8.ValidString(id):
		return invalidArgument("customer_id", "must be valid UTF-8")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return invalidArgument("customer_id", "must not contain control characters")
		}
	}
	return nil
}

func tierProto(t scoring.Tier) churnv1.RiskTier {
	switch t {
	case scoring.TierLow:
		return churnv1.RiskTier_RISK_TIER_LOW
	case scoring.TierMedium:
		return churnv1.RiskTier_RISK_TIER_MEDIUM
	case scoring.TierHigh:
		return churnv1.RiskTier_RISK_TIER_HIGH
	case scoring.TierCritical:
		return churnv1.RiskTier_RISK_TIER_CRITICAL
	}
	return churnv1.RiskTier_RISK_TIER_UNSPECIFIED
}

// featureViolations is how errors name bad fields; features' paths are already request paths.
func featureViolations(err error) ([]features.Violation, bool) {
	var ve *features.ValidationError
	if errors.As(err, &ve) {
		return ve.Violations, true
	}
	return nil, false
}
