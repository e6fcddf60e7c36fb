package app

import (
	"context"
	"fmt"

	"github.com/churnhq/churn/internal/model"
	"github.com/churnhq/churn/internal/registry"
	"github.com/churnhq/churn/internal/server"
	"github.com/churnhq/churn/models"
)

// ModelRegistry adapts the registry to the server's ModelRegistry: the server declares what it
// needs in its own terms, the registry keeps its own, and this is the one place that knows both.
// (Exported for the server's tests, which run ModelService on a real registry.)
func ModelRegistry(r *registry.Registry) server.ModelRegistry { return modelRegistry{r} }

type modelRegistry struct{ r *registry.Registry }

func (a modelRegistry) Upload(ctx context.Context, u server.ModelUpload) (server.ModelVersion, error) {
	m, err := a.r.Upload(ctx, registry.Upload{Name: u.Name, Version: u.Version, SHA256: u.SHA256, Description: u.Description, Data: u.Data})
	if err != nil {
		return server.ModelVersion{}, err
	}
	v, err := a.Get(m.Version())
	if err != nil {
		return server.ModelVersion{}, err
	}
	if v.Model == nil { // validated and stored, not kept in memory: the answer still describes it
		v.Model = m
	}
	return v, nil
}

func (a modelRegistry) Activate(ctx context.Context, version string) (server.ModelVersion, error) {
	m, err := a.r.Activate(ctx, version)
	if err != nil {
		return server.ModelVersion{}, err
	}
	return a.Get(m.Version())
}

func (a modelRegistry) Delete(ctx context.Context, version string) error {
	return a.r.Delete(ctx, version)
}

func (a modelRegistry) Replica() server.ReplicaState {
	s := a.r.Replica()
	return server.ReplicaState{StoreActive: s.StoreActive, Served: s.Served, Problem: s.Problem, SyncedAt: s.SyncedAt, SyncError: s.SyncErr}
}

func (a modelRegistry) List() ([]server.ModelVersion, []server.Activation) {
	versions, history := a.r.List()
	out := make([]server.ModelVersion, len(versions))
	for i, v := range versions {
		out[i] = modelVersion(v)
	}
	acts := make([]server.Activation, len(history))
	for i, h := range history {
		acts[i] = server.Activation{Version: h.Version, At: h.At}
	}
	return out, acts
}

func (a modelRegistry) Get(version string) (server.ModelVersion, error) {
	v, err := a.r.Get(version)
	if err != nil {
		return server.ModelVersion{}, err
	}
	return modelVersion(v), nil
}

// modelVersion is the server's view of a registry version.
func modelVersion(v registry.Version) server.ModelVersion {
	out := server.ModelVersion{Model: v.Model, LoadError: v.Err, Loaded: v.Model != nil, Active: v.Active}
	if v.Model != nil {
		out.Name, out.Version = v.Model.Name(), v.Model.Version()
	}
	if rec := v.Record; rec != nil {
		out.Stored = true
		out.Version, out.SHA256, out.Size, out.StoredAt, out.Description = rec.Version, rec.SHA256, rec.Size, rec.StoredAt, rec.Description
		out.CreatedAt = rec.CreatedAt
		if out.Name == "" {
			out.Name = rec.Name
		}
	}
	return out
}

// activeAmong is version when one of models has it, else "" (the newest is then active until the
// registry loads version from the model store).
func activeAmong(models []*model.Model, version string) string {
	for _, m := range models {
		if m.Version() == version {
			return version
		}
	}
	return ""
}

// loadModels loads the bundles of --model-dir, or the embedded default.
func loadModels(dir string) ([]*model.Model, error) {
	if dir != "" {
		return model.LoadDir(dir)
	}
	m, err := model.LoadFS(models.FS, models.DefaultName)
	if err != nil {
		return nil, fmt.Errorf("embedded default model: %w", err)
	}
	return []*model.Model{m}, nil
}
