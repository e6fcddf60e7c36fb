package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/internal/registry"
)

// ModelRegistry stores, validates and activates model versions. *registry.Registry is one.
type ModelRegistry interface {
	Upload(ctx context.Context, u registry.Upload) (*modelstore.Model, error)
	Activate(ctx context.Context, version string) (*modelstore.Model, error)
	List() ([]registry.Version, []registry.Activation)
	Get(version string) (registry.Version, error)
}

// FormatBundleJSON is the one upload format: a churn model bundle (internal/bundle).
const FormatBundleJSON = "churn-bundle-json"

// ModelServiceOptions configure a ModelService.
type ModelServiceOptions struct {
	Registry ModelRegistry
	// MaxUploadBytes bounds an upload; default modelstore.MaxBundleBytes.
	MaxUploadBytes int64
	Logger         *slog.Logger
}

// ModelService implements churn.v1.ModelService. Authentication is the Auth interceptor's job.
type ModelService struct {
	churnv1.UnimplementedModelServiceServer

	registry ModelRegistry
	maxBytes int64
	logger   *slog.Logger
}

var _ churnv1.ModelServiceServer = (*ModelService)(nil)

// NewModelService makes a ModelService.
func NewModelService(o ModelServiceOptions) (*ModelService, error) {
	if o.Registry == nil {
		return nil, errors.New("server: no model registry")
	}
	if o.MaxUploadBytes <= 0 || o.MaxUploadBytes > modelstore.MaxBundleBytes {
		o.MaxUploadBytes = modelstore.MaxBundleBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &ModelService{registry: o.Registry, maxBytes: o.MaxUploadBytes, logger: o.Logger}, nil
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// UploadModel receives metadata then chunks, and hands the whole bundle to the registry, which
// validates it before storing anything.
func (s *ModelService) UploadModel(stream churnv1.ModelService_UploadModelServer) error {
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return invalidArgument("metadata", "the upload is empty; the first message must carry metadata")
		}
		return err
	}
	md := first.GetMetadata()
	if md == nil {
		return invalidArgument("metadata", "the first message must carry metadata, the chunks follow")
	}
	if err := s.checkMetadata(md); err != nil {
		return err
	}
	var buf bytes.Buffer
	if md.GetSizeBytes() > 0 {
		buf.Grow(int(md.GetSizeBytes()))
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err // the client went away or the deadline passed: nothing is stored
		}
		if msg.GetMetadata() != nil {
			return invalidArgument("metadata", "sent twice; only the first message carries metadata")
		}
		chunk := msg.GetChunk()
		if int64(buf.Len())+int64(len(chunk)) > s.maxBytes {
			return status.Errorf(codes.ResourceExhausted, "the upload exceeds the size limit of %d bytes", s.maxBytes)
		}
		if n := md.GetSizeBytes(); n > 0 && int64(buf.Len()+len(chunk)) > n {
			return invalidArgument("metadata.size_bytes", fmt.Sprintf("announced %d bytes, more arrived", n))
		}
		buf.Write(chunk)
	}
	if buf.Len() == 0 {
		return invalidArgument("chunk", "no bytes were uploaded")
	}
	if n := md.GetSizeBytes(); n > 0 && int64(buf.Len()) != n {
		return invalidArgument("metadata.size_bytes", fmt.Sprintf("the upload is truncated: %d of %d bytes arrived", buf.Len(), n))
	}
	m, err := s.registry.Upload(stream.Context(), registry.Upload{
		Name: md.GetName(), Version: md.GetVersion(), SHA256: md.GetSha256(), Description: md.GetDescription(), Data: buf.Bytes(),
	})
	if err != nil {
		return s.toStatus(stream.Context(), err)
	}
	v, err := s.registry.Get(m.Version())
	if err != nil {
		return s.toStatus(stream.Context(), err)
	}
	return stream.SendAndClose(modelInfo(v))
}

func (s *ModelService) checkMetadata(md *churnv1.UploadMetadata) error {
	if f := md.GetFormat(); f != "" && f != FormatBundleJSON {
		return invalidArgument("metadata.format", fmt.Sprintf("unknown format %q: uploads are %s bundles; convert XGBoost, LightGBM or scikit-learn models with churnctl import", f, FormatBundleJSON))
	}
	if !sha256Hex.MatchString(md.GetSha256()) {
		return invalidArgument("metadata.sha256", "must be the bundle's SHA-256 as 64 lower-case hex digits")
	}
	if n := md.GetSizeBytes(); n < 0 {
		return invalidArgument("metadata.size_bytes", "must not be negative")
	} else if n > s.maxBytes {
		return status.Errorf(codes.ResourceExhausted, "metadata.size_bytes: %d bytes exceed the size limit of %d bytes", n, s.maxBytes)
	}
	if v := md.GetVersion(); v != "" && !bundle.ValidVersion(v) {
		return invalidArgument("metadata.version", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if n := md.GetName(); n != "" && !bundle.ValidVersion(n) {
		return invalidArgument("metadata.name", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// ListModels lists every version and the activation history.
func (s *ModelService) ListModels(context.Context, *churnv1.ListModelsRequest) (*churnv1.ListModelsResponse, error) {
	versions, history := s.registry.List()
	resp := &churnv1.ListModelsResponse{Models: make([]*churnv1.ModelInfo, len(versions))}
	for i, v := range versions {
		resp.Models[i] = modelInfo(v)
		if v.Active {
			resp.ActiveVersion = v.Model.Version()
		}
	}
	for _, a := range history {
		resp.Activations = append(resp.Activations, &churnv1.Activation{Version: a.Version, ActivatedAt: timestamppb.New(a.At)})
	}
	return resp, nil
}

// GetModel returns one version.
func (s *ModelService) GetModel(ctx context.Context, req *churnv1.GetModelRequest) (*churnv1.ModelInfo, error) {
	if err := checkVersion(req.GetVersion()); err != nil {
		return nil, err
	}
	v, err := s.registry.Get(req.GetVersion())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return modelInfo(v), nil
}

// ActivateModel activates a stored version (also to roll back).
func (s *ModelService) ActivateModel(ctx context.Context, req *churnv1.ActivateModelRequest) (*churnv1.ModelInfo, error) {
	if err := checkVersion(req.GetVersion()); err != nil {
		return nil, err
	}
	if n := req.GetName(); n != "" {
		v, err := s.registry.Get(req.GetVersion())
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		if v.Model != nil && v.Model.Name() != n {
			return nil, status.Errorf(codes.NotFound, "name: version %q belongs to model %q, not %q", req.GetVersion(), v.Model.Name(), n)
		}
	}
	m, err := s.registry.Activate(ctx, req.GetVersion())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.logger.InfoContext(ctx, "model activated by request", "version", m.Version())
	v, err := s.registry.Get(m.Version())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return modelInfo(v), nil
}

func checkVersion(v string) error {
	if v == "" {
		return invalidArgument("version", "is required")
	}
	if !bundle.ValidVersion(v) {
		return invalidArgument("version", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// toStatus maps the registry's errors to gRPC statuses; unknown errors are logged and become a
// generic INTERNAL.
func (s *ModelService) toStatus(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, registry.ErrChecksum):
		return invalidArgument("metadata.sha256", err.Error())
	case errors.Is(err, registry.ErrMetadata):
		return invalidArgument("metadata", err.Error())
	case errors.Is(err, bundle.ErrInvalid):
		return invalidArgument("bundle", err.Error())
	case errors.Is(err, modelstore.ErrExists):
		return status.Error(codes.AlreadyExists, "version: "+err.Error())
	case errors.Is(err, modelstore.ErrNotFound):
		return status.Error(codes.NotFound, "version: "+err.Error())
	case errors.Is(err, registry.ErrFailed):
		return status.Error(codes.FailedPrecondition, "version: "+err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	if errors.Is(err, registry.ErrUnavailable) {
		s.logger.WarnContext(ctx, "model store unavailable", "err", err)
		return status.Error(codes.Unavailable, "the model store is unavailable; a write whose answer was lost may have been applied: list the models before retrying")
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	s.logger.ErrorContext(ctx, "model service failed", "err", err)
	return status.Error(codes.Internal, "internal error")
}

// modelInfo describes a version for the API.
func modelInfo(v registry.Version) *churnv1.ModelInfo {
	info := &churnv1.ModelInfo{Format: FormatBundleJSON, Status: churnv1.ModelStatus_MODEL_STATUS_READY}
	if v.Record != nil {
		info.Version = v.Record.Version
		info.Sha256 = v.Record.SHA256
		info.SizeBytes = v.Record.Size
		info.StoredAt = timestamppb.New(v.Record.StoredAt)
		info.Description = v.Record.Description
		info.Origin = modelstore.OriginStore
	}
	if v.Err != nil {
		info.Status = churnv1.ModelStatus_MODEL_STATUS_FAILED
		info.Error = v.Err.Error()
		return info
	}
	m := v.Model
	man := &m.Bundle.Manifest
	if v.Active {
		info.Status = churnv1.ModelStatus_MODEL_STATUS_ACTIVE
	}
	info.Name, info.Version, info.Origin = m.Name(), m.Version(), m.Origin
	info.Sha256, info.SizeBytes = m.SHA256, m.Size
	info.ModelType = m.Bundle.Model.Type
	info.CreatedAt = timestamppb.New(man.CreatedAt)
	if info.Description == "" {
		info.Description = man.Description
	}
	info.Tiers = &churnv1.TierThresholds{Medium: man.Tiers.Medium, High: man.Tiers.High, Critical: man.Tiers.Critical}
	for _, in := range man.Inputs {
		info.Inputs = append(info.Inputs, &churnv1.ModelInput{
			Name: in.Name, Source: in.Source, Type: in.Type, Missing: in.Missing.Policy, Categories: in.Categories,
		})
	}
	if t := man.Training; t != nil {
		ev := &churnv1.ModelEvaluation{Trainer: t.Trainer}
		if mt := t.Metrics; mt != nil {
			ev.Split, ev.Rows, ev.Positives = mt.Split, int64(mt.Rows), int64(mt.Positives)
			ev.RocAuc, ev.PrAuc, ev.LogLoss, ev.Brier = mt.ROCAUC, mt.PRAUC, mt.LogLoss, mt.Brier
		}
		info.Evaluation = ev
	}
	return info
}
