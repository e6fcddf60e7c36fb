package registry

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/churnhq/churn/internal/model"
)

// Upload is an upload to validate and store.
type Upload struct {
	// Name and Version, when set, must equal the manifest's.
	Name, Version string
	// SHA256 is the announced lower-case hex digest of Data.
	SHA256      string
	Description string
	Data        []byte
}

// Upload verifies the bytes against their digest, loads and probes the bundle, and stores it. A
// version that exists with the same bytes is returned as it is (a retried upload), and stored
// again when the backend lost it; with other bytes it is ErrExists. Nothing is stored unless
// every check passed.
func (r *Registry) Upload(ctx context.Context, u Upload) (*model.Model, error) {
	m, err := r.upload(ctx, u)
	switch {
	case err == nil:
		r.metrics.uploads.WithLabelValues("stored").Inc()
	case errors.Is(err, model.ErrInvalid), errors.Is(err, ErrChecksum), errors.Is(err, ErrMetadata), errors.Is(err, ErrExists):
		r.metrics.uploads.WithLabelValues("refused").Inc()
	default:
		r.metrics.uploads.WithLabelValues("error").Inc()
	}
	return m, err
}

func (r *Registry) upload(ctx context.Context, u Upload) (*model.Model, error) {
	sum := sha256.Sum256(u.Data)
	if got := hex.EncodeToString(sum[:]); got != u.SHA256 {
		return nil, fmt.Errorf("%w: the bytes received hash to %s, the upload announced %s", ErrChecksum, got, u.SHA256)
	}
	m, err := model.Load(u.Data)
	if err != nil {
		return nil, err
	}
	if u.Name != "" && u.Name != m.Name() {
		return nil, fmt.Errorf("%w: name %q, the manifest says %q", ErrMetadata, u.Name, m.Name())
	}
	if u.Version != "" && u.Version != m.Version() {
		return nil, fmt.Errorf("%w: version %q, the manifest says %q", ErrMetadata, u.Version, m.Version())
	}
	m.Origin = model.OriginStore

	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.unlock()
	v := m.Version()
	r.mu.Lock()
	source := r.sources[v]
	f, failed := r.failed[v]
	r.mu.Unlock()
	// sameBytes: the bytes this replica has loaded for v (as uploaded, or as written back).
	sameBytes := func(sha string) bool { return sha == m.SHA256 || sha == source }
	old, loaded := r.store.Get(v)
	if loaded {
		if old.SHA256 != m.SHA256 && source != m.SHA256 {
			return nil, fmt.Errorf("%w: %q with other bytes (sha256 %s)", ErrExists, v, old.SHA256)
		}
		sameBytes = func(sha string) bool { return sha == m.SHA256 || sha == old.SHA256 || sha == source }
	}
	rec := Record{Version: v, SHA256: m.SHA256, Size: m.Size, StoredAt: r.now().UTC(), Name: m.Name(),
		CreatedAt: m.Bundle.Manifest.CreatedAt, Description: u.Description}
	// Put stores the version unless its record and bundle are both there: a retried upload, or
	// an upload of a version that the backend lost (stored again, whether this replica has it
	// loaded or not).
	if err := r.backend.Put(ctx, rec, u.Data); err != nil {
		if !errors.Is(err, ErrExists) {
			return nil, unavailable(err)
		}
		// Stored already: by another replica, or by this upload's earlier attempt whose reply
		// was lost. The same bytes are the stored version; other bytes are a conflict.
		stored, _, serr := r.backend.Stat(ctx, v)
		if serr != nil {
			return nil, unavailable(serr)
		}
		if stored == nil {
			return nil, fmt.Errorf("%w: %q was deleted while this upload stored it; upload it again", ErrUnavailable, v)
		}
		if !sameBytes(stored.SHA256) {
			why := ""
			if failed {
				why = fmt.Sprintf(", which this replica refused: %v", f.Err)
			}
			return nil, fmt.Errorf("%w: %q is stored with other bytes (sha256 %s)%s", ErrExists, v, stored.SHA256, why)
		}
		rec = *stored
	} else {
		r.logger.InfoContext(ctx, "model stored", "name", m.Name(), "version", v, "sha256", m.SHA256, "bytes", m.Size)
	}
	r.mu.Lock()
	r.records[v] = rec
	delete(r.failed, v)
	if loaded {
		m = old
		r.sources[v] = rec.SHA256
	} else {
		r.add(m, rec.SHA256)
		r.demand = append(r.demand, v) // a version just uploaded is likely activated next
		r.trimDemand()
	}
	st := r.state
	r.mu.Unlock()
	if err := r.backend.Notify(ctx); err != nil {
		r.logger.WarnContext(ctx, "could not notify the other replicas of an upload; they reconcile on their own", "err", err)
	}
	if v == st.Active {
		r.apply(st, nil) // the store's active version, which this replica could not serve until now
	}
	r.prune(ctx)
	return m, nil
}

// Activate makes a version the active one: first in the backend (so that it survives a restart
// and reaches the other replicas), then here. The version is loaded from the backend when it is
// not loaded here, and written back to the backend when it is loaded here but the backend lost
// it; the backend sets the active version only while the version's record and bundle are there.
func (r *Registry) Activate(ctx context.Context, version string) (*model.Model, error) {
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.unlock()
	st, err := r.backend.State(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	m, err := r.servable(ctx, version)
	if err != nil {
		return nil, err
	}
	now := r.now().UTC()
	if cur := r.store.Active(); cur != nil && len(st.History) == 0 && cur.Version() != version {
		// The first activation through the store: record the version serving until now (the
		// embedded default or --model-version), so that a roll back has somewhere to go.
		first := Activation{Version: cur.Version(), At: now}
		if err := r.activateStored(ctx, cur, first); err != nil {
			return nil, err
		}
		st.History = []Activation{first}
	}
	a := Activation{Version: version, At: now}
	if err := r.activateStored(ctx, m, a); err != nil {
		return nil, err
	}
	st.Active = version
	st.History = append([]Activation{a}, st.History...)
	if len(st.History) > MaxHistory {
		st.History = st.History[:MaxHistory]
	}
	if err := r.store.Activate(version); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.state = st
	r.problem = ""
	r.mu.Unlock()
	r.applied(version)
	r.unloadUnneeded()
	if err := r.backend.Notify(ctx); err != nil {
		r.logger.WarnContext(ctx, "could not notify the other replicas of an activation; they reconcile on their own", "err", err)
	}
	return m, nil
}

// activateStored writes m back when the backend lacks it, then appends a to the activation state.
// The backend refuses a version it does not hold (deleted, or lost again, since the write back):
// one more write back and try, then the refusal is the answer.
func (r *Registry) activateStored(ctx context.Context, m *model.Model, a Activation) error {
	var err error
	for range 2 {
		if err = r.writeBack(ctx, m); err != nil {
			return err
		}
		if err = r.backend.Activate(ctx, a); err == nil || !errors.Is(err, ErrNotStored) {
			break
		}
	}
	if err != nil {
		return storeError(err)
	}
	return nil
}

// servable returns a version's model: loaded here, or loaded from the backend now.
func (r *Registry) servable(ctx context.Context, version string) (*model.Model, error) {
	if m, ok := r.store.Get(version); ok {
		return m, nil
	}
	rec, hasBundle, err := r.backend.Stat(ctx, version)
	if err != nil {
		return nil, unavailable(err)
	}
	r.mu.Lock()
	_, known := r.records[version] // listed before, or named by the activation state: it was stored
	known = known || slices.ContainsFunc(r.state.History, func(a Activation) bool { return a.Version == version })
	f, failed := r.failed[version]
	r.mu.Unlock()
	switch {
	case rec == nil && !hasBundle && known:
		return nil, fmt.Errorf("%w: neither the record nor the bundle of %q is in the model store any more, and this replica has not loaded it: upload it again", ErrNotStored, version)
	case rec == nil && !hasBundle:
		return nil, fmt.Errorf("%w: %q is neither stored nor loaded", ErrNotFound, version)
	case rec == nil || !hasBundle:
		return nil, fmt.Errorf("%w, and this replica has not loaded it: upload it again", notStored(version, rec != nil, hasBundle))
	case failed && f.Record.SHA256 == rec.SHA256:
		return nil, fmt.Errorf("%w: %q: %v", ErrFailed, version, f.Err)
	}
	m, err := r.loadRecord(ctx, *rec)
	if err != nil {
		return nil, r.refused(*rec, err)
	}
	r.mu.Lock()
	r.records[version] = *rec
	r.add(m, rec.SHA256)
	r.mu.Unlock()
	return m, nil
}

// writeBack puts a loaded version into the backend when its record or bundle is not there: a
// version that did not come from the backend (the embedded default, a --model-dir bundle), or
// one the backend lost. The bytes are the bundle encoded again (bundle.Encode: the same model;
// the bytes equal the uploaded ones when those were encoded the same way, as churnctl does), and
// the record's sha256 is of those bytes.
func (r *Registry) writeBack(ctx context.Context, m *model.Model) error {
	v := m.Version()
	rec, hasBundle, err := r.backend.Stat(ctx, v)
	if err != nil {
		return unavailable(err)
	}
	if rec != nil && hasBundle {
		r.mu.Lock()
		r.records[v] = *rec
		r.mu.Unlock()
		return nil
	}
	missing := notStored(v, rec != nil, hasBundle)
	data, err := m.Bundle.Encode()
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	r.mu.Lock()
	known, wasStored := r.records[v]
	r.mu.Unlock()
	next := Record{Version: v, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), StoredAt: r.now().UTC(),
		Name: m.Name(), CreatedAt: m.Bundle.Manifest.CreatedAt}
	if rec != nil {
		next.Description = rec.Description
	} else if wasStored {
		next.Description = known.Description
	}
	if err := r.backend.Put(ctx, next, data); err != nil && !errors.Is(err, ErrExists) {
		return unavailable(err)
	}
	r.mu.Lock()
	r.records[v] = next
	if loaded, ok := r.store.Get(v); ok && loaded == m {
		r.sources[v] = next.SHA256
	}
	r.mu.Unlock()
	if wasStored || m.Origin == model.OriginStore {
		r.metrics.repairs.WithLabelValues("version").Inc()
		r.logger.WarnContext(ctx, "model version written back to the model store, which had lost it", "version", v, "missing", missing.Error(), "sha256", next.SHA256)
	}
	r.mu.Lock()
	r.wrote = true
	r.mu.Unlock()
	return nil
}

// Delete removes a stored version from the backend and unloads it here. The active version and
// the rollback target are refused (ErrProtected), also when a concurrent activation on another
// replica made them so: the backend checks in the same step as it deletes.
func (r *Registry) Delete(ctx context.Context, version string) error {
	if err := r.lock(ctx); err != nil {
		return err
	}
	defer r.unlock()
	if err := r.delete(ctx, version); err != nil {
		return err
	}
	r.metrics.deletions.WithLabelValues("request").Inc()
	r.logger.InfoContext(ctx, "model version deleted", "version", version)
	if err := r.backend.Notify(ctx); err != nil {
		r.logger.WarnContext(ctx, "could not notify the other replicas of a deletion; they reconcile on their own", "err", err)
	}
	return nil
}

// delete removes one version from the backend and from memory; the write lock must be held.
func (r *Registry) delete(ctx context.Context, version string) error {
	if err := r.backend.Delete(ctx, version); err != nil {
		if errors.Is(err, ErrNotStored) {
			return fmt.Errorf("%w: %q is not in the model store (the embedded default and --model-dir bundles cannot be deleted)", ErrNotFound, version)
		}
		return storeError(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.records, version)
	delete(r.failed, version)
	if m, ok := r.store.Get(version); ok && m.Origin == model.OriginStore && r.store.Remove(version) == nil {
		delete(r.sources, version)
	}
	r.demand = slices.DeleteFunc(r.demand, func(v string) bool { return v == version })
	return nil
}

// prune deletes the versions beyond the Retention most recently stored ones, but for the active
// version, the rollback target and ModelVersion. A failure is logged: the upload that
// triggered it has succeeded. The write lock must be held.
func (r *Registry) prune(ctx context.Context) {
	if r.retention == 0 {
		return
	}
	recs, st, err := r.read(ctx)
	if err != nil {
		r.logger.WarnContext(ctx, "retention: could not read the model store; older versions are kept for now", "err", err)
		return
	}
	slices.SortFunc(recs, func(a, b Record) int {
		return cmp.Or(b.StoredAt.Compare(a.StoredAt), cmp.Compare(b.Version, a.Version))
	})
	for i, rec := range recs {
		v := rec.Version
		if i < r.retention || v == st.Active || v == st.RollbackTarget() || v == r.modelVersion {
			continue
		}
		if err := r.delete(ctx, v); err != nil {
			if !errors.Is(err, ErrProtected) && !errors.Is(err, ErrNotFound) {
				r.logger.WarnContext(ctx, "retention: could not delete an old version", "version", v, "err", err)
			}
			continue
		}
		r.metrics.deletions.WithLabelValues("retention").Inc()
		r.logger.InfoContext(ctx, "model version deleted by retention", "version", v, "stored_at", rec.StoredAt, "retention", r.retention)
	}
}
