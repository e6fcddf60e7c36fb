package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/model"
)

// ModelRegistry stores, validates and activates model versions, in ModelService's terms. The app
// adapts *registry.Registry to it; its errors are the registry's (registry.ErrExists, ...), which
// toStatus maps.
type ModelRegistry interface {
	// Upload validates and stores a bundle and returns the version it stored.
	Upload(ctx context.Context, u ModelUpload) (ModelVersion, error)
	// Activate makes a stored version the active one, on every replica.
	Activate(ctx context.Context, version string) (ModelVersion, error)
	// Delete removes a stored version (never the active one or the rollback target).
	Delete(ctx context.Context, version string) error
	// List returns every version and the activation history, most recent first. It does not wait
	// for the model store.
	List() ([]ModelVersion, []Activation)
	// Get returns one version. It does not wait for the model store.
	Get(version string) (ModelVersion, error)
	// Replica says how this replica stands with the model store.
	Replica() ReplicaState
}

// ReplicaState is how this replica stands with the model store.
type ReplicaState struct {
	// StoreActive is the store's active version as last read; Served the one served here.
	StoreActive, Served string
	// Problem says why this replica does not serve StoreActive; empty when it does.
	Problem string
	// SyncedAt is when the store was last read; SyncError the last read's failure.
	SyncedAt  time.Time
	SyncError error
}

// ModelUpload is a bundle to validate and store.
type ModelUpload struct {
	// Name and Version, when set, must equal the manifest's.
	Name, Version string
	// SHA256 is the announced lower-case hex digest of Data.
	SHA256      string
	Description string
	Data        []byte
}

// ModelVersion is what ModelService reports of one version.
type ModelVersion struct {
	// Model is the version's model; nil when this replica has not loaded it (stored only), or
	// could not (LoadError says why).
	Model     *model.Model
	LoadError error
	// Loaded says Model is loaded on this replica; false for the model an upload validated but
	// that this replica did not keep in memory (see registry.Options.OnDemand).
	Loaded bool
	Active bool
	// Stored says the version is in the model store (uploaded, or recorded at an activation),
	// with the fields below; false for the embedded default or a --model-dir bundle never
	// activated through the store.
	Stored      bool
	Name        string // the manifest's, when the store recorded it
	Version     string
	SHA256      string // of the stored bytes
	Size        int64
	StoredAt    time.Time
	CreatedAt   time.Time // the manifest's, when the store recorded it
	Description string
}

// Activation is one entry of the activation history.
type Activation struct {
	Version string
	At      time.Time
}

// FormatBundleJSON is the one upload format: a churn model bundle (internal/bundle).
const FormatBundleJSON = "churn-bundle-json"

// ModelServiceOptions configure a ModelService.
type ModelServiceOptions struct {
	Registry ModelRegistry
	// MaxUploadBytes bounds an upload; default model.MaxBundleBytes.
	MaxUploadBytes int64
	// StreamIdleTimeout ends an upload whose client sends nothing for this long;
	// DefaultStreamIdleTimeout when zero.
	StreamIdleTimeout time.Duration
	Logger            *slog.Logger
}

// ModelService implements churn.v1.ModelService. Authentication is the Auth interceptor's job.
type ModelService struct {
	churnv1.UnimplementedModelServiceServer

	registry ModelRegistry
	maxBytes int64
	idle     time.Duration
	logger   *slog.Logger
}

var _ churnv1.ModelServiceServer = (*ModelService)(nil)

// NewModelService makes a ModelService.
func NewModelService(o ModelServiceOptions) (*ModelService, error) {
	if o.Registry == nil {
		return nil, errors.New("server: no model registry")
	}
	if o.MaxUploadBytes <= 0 || o.MaxUploadBytes > model.MaxBundleBytes {
		o.MaxUploadBytes = model.MaxBundleBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.StreamIdleTimeout <= 0 {
		o.StreamIdleTimeout = DefaultStreamIdleTimeout
	}
	return &ModelService{registry: o.Registry, maxBytes: o.MaxUploadBytes, idle: o.StreamIdleTimeout, logger: o.Logger}, nil
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// UploadModel receives metadata then chunks, and hands the whole bundle to the registry, which
// validates it before storing anything. The buffer grows with the bytes that arrive, never with
// the size the metadata announces; a client that sends nothing for the idle timeout is cut off.
// (How many uploads run at once is bounded by Limits, class upload.)
func (s *ModelService) UploadModel(stream churnv1.ModelService_UploadModelServer) error {
	in := receive(stream.Context(), stream.Recv, s.idle)
	defer in.stop()
	first, err := in.next()
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
	var data []byte
	for {
		msg, err := in.next()
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
		if int64(len(data))+int64(len(chunk)) > s.maxBytes {
			return status.Errorf(codes.ResourceExhausted, "the upload exceeds the size limit of %d bytes", s.maxBytes)
		}
		if n := md.GetSizeBytes(); n > 0 && int64(len(data)+len(chunk)) > n {
			return invalidArgument("metadata.size_bytes", fmt.Sprintf("announced %d bytes, more arrived", n))
		}
		data = appendChunk(data, chunk, md.GetSizeBytes())
	}
	if len(data) == 0 {
		return invalidArgument("chunk", "no bytes were uploaded")
	}
	if n := md.GetSizeBytes(); n > 0 && int64(len(data)) != n {
		return invalidArgument("metadata.size_bytes", fmt.Sprintf("the upload is truncated: %d of %d bytes arrived", len(data), n))
	}
	v, err := s.registry.Upload(stream.Context(), ModelUpload{
		Name: md.GetName(), Version: md.GetVersion(), SHA256: md.GetSha256(), Description: md.GetDescription(), Data: data,
	})
	if err != nil {
		return toStatus(stream.Context(), s.logger, err)
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
	if v := md.GetVersion(); v != "" && !model.ValidVersion(v) {
		return invalidArgument("metadata.version", versionSyntax)
	}
	if n := md.GetName(); n != "" && !model.ValidVersion(n) {
		return invalidArgument("metadata.name", versionSyntax)
	}
	return nil
}

// ListModels lists every version, the activation history and this replica's state.
func (s *ModelService) ListModels(context.Context, *churnv1.ListModelsRequest) (*churnv1.ListModelsResponse, error) {
	versions, history := s.registry.List()
	rs := s.registry.Replica()
	replica := &churnv1.ReplicaState{StoreActiveVersion: rs.StoreActive, ServedVersion: rs.Served, InSync: rs.Problem == "", Message: rs.Problem}
	if !rs.SyncedAt.IsZero() {
		replica.SyncedAt = timestamppb.New(rs.SyncedAt)
	}
	if rs.SyncError != nil {
		replica.SyncError = rs.SyncError.Error()
	}
	resp := &churnv1.ListModelsResponse{Models: make([]*churnv1.ModelInfo, len(versions)), Replica: replica}
	for i, v := range versions {
		resp.Models[i] = modelInfo(v)
		if v.Active {
			resp.ActiveVersion = v.Version
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
		return nil, toStatus(ctx, s.logger, err)
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
			return nil, toStatus(ctx, s.logger, err)
		}
		if v.Name != "" && v.Name != n {
			return nil, status.Errorf(codes.NotFound, "name: version %q belongs to model %q, not %q", req.GetVersion(), v.Name, n)
		}
	}
	v, err := s.registry.Activate(ctx, req.GetVersion())
	if err != nil {
		return nil, toStatus(ctx, s.logger, err)
	}
	s.logger.InfoContext(ctx, "model activated by request", "version", v.Version)
	return modelInfo(v), nil
}

// DeleteModel removes a stored version, unless it is the active one or the rollback target.
func (s *ModelService) DeleteModel(ctx context.Context, req *churnv1.DeleteModelRequest) (*churnv1.DeleteModelResponse, error) {
	if err := checkVersion(req.GetVersion()); err != nil {
		return nil, err
	}
	if err := s.registry.Delete(ctx, req.GetVersion()); err != nil {
		return nil, toStatus(ctx, s.logger, err)
	}
	s.logger.InfoContext(ctx, "model deleted by request", "version", req.GetVersion())
	return &churnv1.DeleteModelResponse{Version: req.GetVersion()}, nil
}

func checkVersion(v string) error {
	if v == "" {
		return invalidArgument("version", "is required")
	}
	if !model.ValidVersion(v) {
		return invalidArgument("version", versionSyntax)
	}
	return nil
}

// modelInfo describes a version for the API. A stored version's sha256 and size are of the
// stored bytes, the same on every replica.
func modelInfo(v ModelVersion) *churnv1.ModelInfo {
	info := &churnv1.ModelInfo{Format: FormatBundleJSON, Status: churnv1.ModelStatus_MODEL_STATUS_READY, Version: v.Version, Name: v.Name}
	if v.Stored {
		info.Sha256 = v.SHA256
		info.SizeBytes = v.Size
		info.StoredAt = timestamppb.New(v.StoredAt)
		info.Description = v.Description
		info.Origin = model.OriginStore
		if !v.CreatedAt.IsZero() {
			info.CreatedAt = timestamppb.New(v.CreatedAt)
		}
	}
	if v.Model == nil {
		info.Status = churnv1.ModelStatus_MODEL_STATUS_STORED
		if v.LoadError != nil {
			info.Status = churnv1.ModelStatus_MODEL_STATUS_FAILED
			info.Error = v.LoadError.Error()
		}
		return info
	}
	m := v.Model
	man := &m.Bundle.Manifest
	switch {
	case v.Active:
		info.Status = churnv1.ModelStatus_MODEL_STATUS_ACTIVE
	case !v.Loaded:
		info.Status = churnv1.ModelStatus_MODEL_STATUS_STORED
	}
	info.Name, info.Version, info.Origin = m.Name(), m.Version(), m.Origin
	if !v.Stored {
		info.Sha256, info.SizeBytes = m.SHA256, m.Size
	}
	info.ModelType = m.Type()
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
