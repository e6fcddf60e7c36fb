package registry

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/churnhq/churn/internal/model"
)

// Model returns the model of a version a request names: a loaded one at once, or a stored one
// loaded now (on demand; one load at a time, each version once however many requests wait for
// it). ErrNotFound when the version is neither loaded nor stored; ErrNotLoaded when loading on
// demand is off; ErrFailed when this replica refuses the stored bundle.
func (r *Registry) Model(ctx context.Context, version string) (*model.Model, error) {
	if m, ok := r.store.Get(version); ok {
		return m, nil
	}
	r.mu.Lock()
	rec, known := r.records[version]
	f, failed := r.failed[version]
	r.mu.Unlock()
	switch {
	case !known:
		return nil, fmt.Errorf("%w: %q is neither loaded on this replica nor stored", ErrNotFound, version)
	case failed && f.Record.SHA256 == rec.SHA256:
		return nil, fmt.Errorf("%w: %q: %v", ErrFailed, version, f.Err)
	case r.onDemand == 0:
		return nil, fmt.Errorf("%w: %q is stored but not loaded, and loading on demand is off (--model-on-demand 0): activate it, or name a loaded version", ErrNotLoaded, version)
	}
	ch := r.loads.DoChan(version, func() (any, error) { return r.loadOnDemand(version) })
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*model.Model), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// loadOnDemand loads a stored version for the requests that name it. Its deadline is its own, not
// the first caller's: the callers waiting for it have theirs.
func (r *Registry) loadOnDemand(version string) (*model.Model, error) {
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	select {
	case r.loadSlot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: loading %q on demand: waiting for the loads before it: %v", ErrUnavailable, version, ctx.Err())
	}
	defer func() { <-r.loadSlot }()
	if m, ok := r.store.Get(version); ok { // loaded meanwhile (activated, or the load before this one)
		return m, nil
	}
	r.mu.Lock()
	rec, known := r.records[version]
	r.mu.Unlock()
	if !known {
		return nil, fmt.Errorf("%w: %q was deleted", ErrNotFound, version)
	}
	m, err := r.loadRecord(ctx, rec)
	if err != nil {
		r.metrics.demandLoads.WithLabelValues("error").Inc()
		return nil, r.refused(rec, err)
	}
	r.metrics.demandLoads.WithLabelValues("ok").Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.records[version]; !ok || cur.SHA256 != rec.SHA256 {
		return m, nil // deleted or replaced while it loaded: serve these requests, keep nothing
	}
	if !r.add(m, rec.SHA256) {
		loaded, _ := r.store.Get(version)
		return loaded, nil
	}
	r.demand = append(r.demand, version)
	r.trimDemand()
	r.logger.InfoContext(ctx, "model version loaded on demand", "version", version, "on_demand", len(r.demand), "limit", r.onDemand)
	return m, nil
}

// loadRecord reads a stored version's bytes and loads them through the gate. The bytes must hash
// to the record's sha256.
func (r *Registry) loadRecord(ctx context.Context, rec Record) (*model.Model, error) {
	data, err := r.backend.Get(ctx, rec.Version)
	if err != nil {
		return nil, storeError(err)
	}
	m, err := model.Load(data)
	if err != nil {
		return nil, err
	}
	if m.Version() != rec.Version {
		return nil, fmt.Errorf("%w: stored as %q, the manifest says %q", model.ErrInvalid, rec.Version, m.Version())
	}
	if m.SHA256 != rec.SHA256 {
		return nil, fmt.Errorf("%w: the stored bytes of %q hash to %s, their record says %s", model.ErrInvalid, rec.Version, m.SHA256, rec.SHA256)
	}
	m.Origin = model.OriginStore
	return m, nil
}

// add puts a model loaded from the backend into the store; false when its version was loaded
// already. r.mu must be held.
func (r *Registry) add(m *model.Model, sha string) bool {
	if err := r.store.Add(m); err != nil {
		return false
	}
	r.sources[m.Version()] = sha
	return true
}

// unloadUnneeded moves the loaded store versions that are no longer needed (no longer the
// rollback target, say) to the on-demand list, which keeps at most OnDemand of them.
func (r *Registry) unloadUnneeded() {
	r.mu.Lock()
	defer r.mu.Unlock()
	need := r.needed(r.state)
	active := r.store.Active()
	for _, m := range r.store.List() {
		v := m.Version()
		if m.Origin == model.OriginStore && m != active && !slices.Contains(need, v) && !slices.Contains(r.demand, v) {
			r.demand = append(r.demand, v)
		}
	}
	r.trimDemand()
}

// trimDemand drops from the on-demand list what became needed or active, unloads what was
// deleted, and unloads the versions loaded longest ago beyond OnDemand. r.mu must be held.
func (r *Registry) trimDemand() {
	need := r.needed(r.state)
	active := r.store.Active()
	keep := r.demand[:0]
	for _, v := range r.demand {
		m, loaded := r.store.Get(v)
		_, stored := r.records[v]
		switch {
		case !loaded || m == active || slices.Contains(need, v):
		case !stored:
			r.unload(v)
		default:
			keep = append(keep, v)
		}
	}
	for len(keep) > r.onDemand {
		r.unload(keep[0])
		keep = keep[1:]
	}
	r.demand = slices.Clip(keep)
}

// unload removes a version from the store (never the active one). r.mu must be held.
func (r *Registry) unload(version string) {
	if err := r.store.Remove(version); err == nil {
		delete(r.sources, version)
		r.logger.Debug("model version unloaded", "version", version)
	}
}

// Version is what the registry knows of one version, for ListModels and GetModel.
type Version struct {
	// Model is the loaded version; nil when it is stored but not loaded on this replica, or
	// failed to load (Err says why).
	Model  *model.Model
	Record *Record // nil for a version that is not in the store (embedded, --model-dir)
	Err    error   // why it failed to load
	Active bool
}

// List returns every version, loaded or stored, oldest first (by the manifest's creation time),
// then the failed ones, and the activation history, most recent first. It reads memory only.
func (r *Registry) List() ([]Version, []Activation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	active := r.store.Active()
	var out, failed []Version
	seen := map[string]bool{}
	for _, m := range r.store.List() {
		out = append(out, r.version(m, active))
		seen[m.Version()] = true
	}
	for v, rec := range r.records {
		if seen[v] {
			continue
		}
		if f, ok := r.failed[v]; ok {
			failed = append(failed, Version{Record: &rec, Err: f.Err})
			continue
		}
		out = append(out, Version{Record: &rec})
	}
	slices.SortFunc(out, func(a, b Version) int {
		return cmp.Or(a.created().Compare(b.created()), cmp.Compare(a.name(), b.name()))
	})
	slices.SortFunc(failed, func(a, b Version) int { return cmp.Compare(a.name(), b.name()) })
	return append(out, failed...), slices.Clone(r.state.History)
}

// Get returns one version; ErrNotFound when unknown. It reads memory only.
func (r *Registry) Get(version string) (Version, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.store.Get(version); ok {
		return r.version(m, r.store.Active()), nil
	}
	rec, ok := r.records[version]
	if !ok {
		return Version{}, fmt.Errorf("%w: %q", ErrNotFound, version)
	}
	v := Version{Record: &rec}
	if f, ok := r.failed[version]; ok {
		v.Err = f.Err
	}
	return v, nil
}

// version describes a loaded model; r.mu must be held.
func (r *Registry) version(m, active *model.Model) Version {
	v := Version{Model: m, Active: m == active}
	if rec, ok := r.records[m.Version()]; ok {
		v.Record = &rec
	}
	return v
}

// created is when the version's model was made: its manifest's time, else its record's.
func (v Version) created() time.Time {
	switch {
	case v.Model != nil:
		return v.Model.Bundle.Manifest.CreatedAt
	case !v.Record.CreatedAt.IsZero():
		return v.Record.CreatedAt
	}
	return v.Record.StoredAt
}

func (v Version) name() string {
	if v.Model != nil {
		return v.Model.Version()
	}
	return v.Record.Version
}

// Replica is how this replica stands with the backend.
type Replica struct {
	// StoreActive is the backend's active version as last read (empty when none was activated
	// through the store); Served is the version this replica serves to requests naming none.
	StoreActive, Served string
	// Problem says why this replica does not serve StoreActive; empty when it does (or when the
	// backend has no active version).
	Problem string
	// SyncedAt is when a sync last read the backend; SyncErr is the last sync's failure.
	SyncedAt time.Time
	SyncErr  error
}

// Replica returns how this replica stands with the backend. It reads memory only.
func (r *Registry) Replica() Replica {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := Replica{StoreActive: r.state.Active, Problem: r.problem, SyncedAt: r.syncedAt, SyncErr: r.syncErr}
	if m := r.store.Active(); m != nil {
		out.Served = m.Version()
	}
	return out
}
