// Package server is churn's gRPC edge: it validates requests' ids, picks the model, has it score
// the customer (internal/model: feature mapping, then the scoring engine), adds the retention
// insight (internal/retention), remembers the score (ScoreCache), and turns results into protobuf
// messages and errors into gRPC statuses (toStatus, the one mapping). It owns the interceptors
// (metrics, logging, panic recovery, bearer-token auth, default deadline), the limits (limits.go:
// load shedding before a call's stream exists, stream idle timeouts, upload buffers that follow
// the bytes received), the per-score metrics and the scoring calls' span attributes (spans.go:
// model version and tier on the span internal/tracing starts). It reaches the
// loaded models only through the small Models interface, the score cache through ScoreCache, and
// the model lifecycle (ModelService, models.go) through ModelRegistry, each declared here in the
// server's own terms.
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
	"github.com/churnhq/churn/internal/model"
	"github.com/churnhq/churn/internal/registry"
	"github.com/churnhq/churn/internal/retention"
)

// Models hands out the models this replica has loaded. *modelstore.Store is one.
type Models interface {
	// Active returns the active model, nil when none is.
	Active() *model.Model
	// Get returns a loaded version; false when this replica has not loaded it.
	Get(version string) (*model.Model, bool)
}

// Loader loads, on demand, a stored version that Models has not loaded, for a request that
// names it. *registry.Registry is one; its errors are the registry's, which toStatus maps.
type Loader interface {
	Model(ctx context.Context, version string) (*model.Model, error)
}

// Probabilities is told every probability served and the model that computed it (score drift,
// internal/drift). It is on the hot path: it must be cheap and must not block.
type Probabilities interface {
	Observe(m *model.Model, probability float64)
}

// Options configure a Server.
type Options struct {
	Models Models
	// Loader loads the stored versions requests name that Models has not loaded; nil: requests
	// may name only loaded versions.
	Loader Loader
	// Cache remembers every score; required.
	Cache ScoreCache
	// Probabilities, when set, is told every probability served.
	Probabilities Probabilities
	// Rules raise the warnings and choose the action; retention.DefaultRules when nil.
	Rules      *retention.Rules
	MaxBatch   int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now returns the scoring time; time.Now when nil.
	Now func() time.Time
	// StreamIdleTimeout ends a ScoreStream whose client sends nothing for this long;
	// DefaultStreamIdleTimeout when zero.
	StreamIdleTimeout time.Duration
}

// Server implements churn.v1.ScoringService.
type Server struct {
	churnv1.UnimplementedScoringServiceServer

	models   Models
	loader   Loader
	cache    ScoreCache
	probs    Probabilities
	rules    *retention.Rules
	cacheLog throttledLog
	// unknownLog logs the categories models do not know at most once a minute per input.
	unknownLog throttledLog
	maxBatch   int
	idle       time.Duration
	logger     *slog.Logger
	now        func() time.Time
	metrics    *metrics
	// unscorableLogged holds the model versions whose ErrUnscorable has been logged: once each.
	unscorableLogged sync.Map
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
	if o.StreamIdleTimeout <= 0 {
		o.StreamIdleTimeout = DefaultStreamIdleTimeout
	}
	return &Server{
		models:     o.Models,
		loader:     o.Loader,
		cache:      o.Cache,
		probs:      o.Probabilities,
		rules:      o.Rules,
		cacheLog:   throttledLog{every: 10 * time.Second},
		unknownLog: throttledLog{every: time.Minute},
		maxBatch:   o.MaxBatch,
		idle:       o.StreamIdleTimeout,
		logger:     o.Logger,
		now:        o.Now,
		metrics:    newMetrics(o.Registerer),
	}, nil
}

// Score scores one customer.
func (s *Server) Score(ctx context.Context, req *churnv1.ScoreRequest) (*churnv1.ScoreResponse, error) {
	resp, err := s.score(ctx, req)
	if err != nil {
		st := toStatus(ctx, s.logger, err)
		s.metrics.errors.WithLabelValues(rpcScore, status.Code(st).String()).Inc()
		return nil, st
	}
	s.remember(ctx, []*churnv1.ScoreResponse{resp})
	s.metrics.countScore(rpcScore, resp)
	annotateScore(ctx, resp)
	applyView(resp, req.GetView())
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
	if err := checkView("view", req.GetView()); err != nil {
		return nil, err
	}
	results := make([]*churnv1.ScoreBatchResult, n)
	scored := make([]*churnv1.ScoreResponse, 0, n)
	views := make([]churnv1.ScoreView, 0, n) // of scored: the item's, else the batch's
	var tally spanTally
	defer tally.annotate(ctx)
	for i, item := range req.GetRequests() {
		if i%64 == 0 && ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		resp, err := s.score(ctx, item)
		if err != nil {
			results[i] = &churnv1.ScoreBatchResult{Outcome: &churnv1.ScoreBatchResult_Error{Error: s.itemError(ctx, rpcBatch, err, i)}}
			tally.failed()
			continue
		}
		view := item.GetView()
		if view == churnv1.ScoreView_SCORE_VIEW_UNSPECIFIED {
			view = req.GetView()
		}
		views = append(views, view)
		scored = append(scored, resp)
		results[i] = &churnv1.ScoreBatchResult{Outcome: &churnv1.ScoreBatchResult_Response{Response: resp}}
	}
	s.remember(ctx, scored) // one pipelined write for the whole batch
	for i, resp := range scored {
		s.metrics.countScore(rpcBatch, resp)
		tally.scored(resp)
		applyView(resp, views[i])
	}
	return &churnv1.ScoreBatchResponse{Results: results}, nil
}

// ScoreStream scores a stream of customers in order. Each request is answered before the next is
// taken (the receiver reads at most one ahead), so a client that does not read its responses
// slows the stream through gRPC flow control instead of growing a queue: what it can make the
// server hold is bounded by the stream's flow-control windows (--grpc-window-bytes, and gRPC's
// 64 KiB of queued responses). A client that sends nothing for the idle timeout is cut off.
func (s *Server) ScoreStream(stream churnv1.ScoringService_ScoreStreamServer) error {
	ctx := stream.Context()
	in := receive(ctx, stream.Recv, s.idle)
	defer in.stop()
	var tally spanTally
	defer tally.annotate(ctx)
	for i := 0; ; i++ {
		req, err := in.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := s.score(ctx, req)
		if err != nil {
			resp = &churnv1.ScoreResponse{CustomerId: req.GetCustomerId(), Error: s.itemError(ctx, rpcStream, err, i)}
			tally.failed()
		} else {
			s.remember(ctx, []*churnv1.ScoreResponse{resp})
			s.metrics.countScore(rpcStream, resp)
			tally.scored(resp)
			applyView(resp, req.GetView())
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// score validates one request and scores it with the model it asks for: the model maps and
// evaluates the features and explains the score, the rules add the retention insight, and the
// results become the response.
func (s *Server) score(ctx context.Context, req *churnv1.ScoreRequest) (*churnv1.ScoreResponse, error) {
	if err := validateCustomerID(req.GetCustomerId()); err != nil {
		return nil, err
	}
	if err := checkView("view", req.GetView()); err != nil {
		return nil, err
	}
	m, err := s.model(ctx, req.GetModelVersion())
	if err != nil {
		return nil, err
	}
	res, err := m.Explain(req.GetFeatures())
	if errors.Is(err, model.ErrUnscorable) {
		s.unscorable(ctx, m, err)
	}
	if err != nil {
		return nil, err
	}
	if s.probs != nil {
		s.probs.Observe(m, res.Probability)
	}
	insight := s.rules.Evaluate(retention.Input{Features: req.GetFeatures(), Probability: res.Probability, Tier: res.Tier, TierThresholds: tierThresholds(m)})
	for _, u := range res.Unknown {
		s.metrics.unknownCategories.WithLabelValues(u.Input).Inc()
		if ok, suppressed := s.unknownLog.allow(m.Version() + " " + u.Input); ok {
			s.logger.InfoContext(ctx, "a category the model does not know was scored as missing (logged at most once a minute per input)",
				"version", m.Version(), "input", u.Input, "value", u.Value, "suppressed_since_last", suppressed)
		}
	}
	// The response, its model reference and its timestamp in one allocation, not three: they
	// live exactly as long as each other.
	b := &struct {
		resp churnv1.ScoreResponse
		ref  churnv1.ModelRef
		at   timestamppb.Timestamp
	}{}
	now := s.now()
	b.ref.Name, b.ref.Version = m.Name(), m.Version()
	b.at.Seconds, b.at.Nanos = now.Unix(), int32(now.Nanosecond())
	b.resp = churnv1.ScoreResponse{
		CustomerId:        req.GetCustomerId(),
		Probability:       res.Probability,
		Tier:              res.Tier,
		Warnings:          insight.Warnings,
		Drivers:           driverMessages(res.Drivers()),
		Action:            insight.Action,
		Stage:             insight.Stage,
		ExpectedLoss:      insight.ExpectedLoss,
		ImputedInputs:     res.Imputed,
		UnknownCategories: unknownMessages(res.Unknown),
		Margin:            res.Margin,
		DriversBase:       res.Base,
		Model:             &b.ref,
		ScoredAt:          &b.at,
	}
	return &b.resp, nil
}

// tierThresholds are the model's tier thresholds in the retention rules' terms.
func tierThresholds(m *model.Model) retention.TierThresholds {
	t := m.Bundle.Manifest.Tiers
	return retention.TierThresholds{Medium: t.Medium, High: t.High, Critical: t.Critical}
}

// unscorable counts a valid request the model could not score, and logs it once per version:
// the model's owner must fix it, and an attacker must not flood the log with it.
func (s *Server) unscorable(ctx context.Context, m *model.Model, err error) {
	s.metrics.unscorable.WithLabelValues(m.Version()).Inc()
	if _, logged := s.unscorableLogged.LoadOrStore(m.Version(), true); !logged {
		s.logger.ErrorContext(ctx, "a model cannot score valid requests: it computes a probability that is not a number; "+
			"they fail with INTERNAL (logged once per version, counted in churn_model_unscorable_total)",
			"version", m.Version(), "err", err)
	}
}

// unknownMessages makes the unknown categories' messages; nil when there are none.
func unknownMessages(unknown []model.UnknownCategory) []*churnv1.UnknownCategory {
	if len(unknown) == 0 {
		return nil
	}
	out := make([]*churnv1.UnknownCategory, len(unknown))
	for i, u := range unknown {
		out[i] = &churnv1.UnknownCategory{Input: u.Input, Value: u.Value}
	}
	return out
}

// driverBlock holds a response's driver messages and the slice of pointers to them, so that
// they take one allocation rather than one each or two (docs/PERFORMANCE.md, "Issue 11: the
// whole change against its budget").
type driverBlock struct {
	msgs [model.MaxDrivers]churnv1.Driver
	ptrs [model.MaxDrivers]*churnv1.Driver
}

// driverMessages makes the drivers' messages.
func driverMessages(drivers []model.Driver) []*churnv1.Driver {
	if len(drivers) == 0 {
		return nil
	}
	b := new(driverBlock)
	out := b.ptrs[:len(drivers)]
	for i, d := range drivers {
		m := &b.msgs[i]
		m.Feature, m.Value, m.Contribution, m.Category = d.Feature, d.Value, d.Contribution, d.Category
		out[i] = m
	}
	return out
}

// model returns the model a request asks for: the active one, a loaded version, or a stored
// version the Loader loads now.
func (s *Server) model(ctx context.Context, version string) (*model.Model, error) {
	if version == "" {
		if m := s.models.Active(); m != nil {
			return m, nil
		}
		return nil, errNoActiveModel
	}
	if !model.ValidVersion(version) {
		return nil, invalidArgument("model_version", versionSyntax)
	}
	if m, ok := s.models.Get(version); ok {
		return m, nil
	}
	if s.loader == nil {
		return nil, versionNotLoaded("model_version", version)
	}
	m, err := s.loader.Model(ctx, version)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, versionNotLoaded("model_version", version)
	}
	return m, err
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
