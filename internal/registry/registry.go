// Package registry is the model lifecycle behind ModelService: it stores uploaded model versions
// and the activation history in a Backend (a local directory by default, Redis when replicas
// share it), passes every upload through the validation gate (model.Load: parse, validate,
// compile, check vectors, probes) before anything is stored, and keeps the in-memory
// modelstore.Store of this replica in step with the backend: at start-up, at once when another
// replica publishes a change, and by a periodic reconcile as a safety net.
//
// The store's active model is swapped atomically (modelstore.Store.Activate), so requests never
// fail during a swap; the backend is written first, so a replica that restarts finds the version
// that was active.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/churnhq/churn/internal/model"
	"github.com/churnhq/churn/internal/modelstore"
)

// Errors of the registry; the server maps them to gRPC codes.
var (
	// ErrFailed means the version is stored but this replica could not load it.
	ErrFailed = errors.New("model version failed to load")
	// ErrChecksum means the uploaded bytes do not have the announced sha256.
	ErrChecksum = errors.New("sha256 mismatch")
	// ErrMetadata means the upload's announced name or version differ from the manifest's.
	ErrMetadata = errors.New("upload metadata differs from the manifest")
	// ErrNotFound means no version of that name is stored or loaded.
	ErrNotFound = errors.New("model version not found")
	// ErrUnavailable wraps a failure to read or write the backend (Redis down, a disk error).
	// A write whose reply was lost may still have been stored: list the versions before retrying.
	ErrUnavailable = errors.New("model store unavailable")
)

// Options configure a Registry.
type Options struct {
	Backend Backend
	Store   *modelstore.Store
	// Reconcile is the period of the safety-net reconcile; default 10s.
	Reconcile  time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Registry keeps a modelstore.Store in step with a Backend. It is safe for concurrent use.
type Registry struct {
	backend   Backend
	store     *modelstore.Store
	reconcile time.Duration
	logger    *slog.Logger
	now       func() time.Time
	metrics   *metrics

	mu      sync.Mutex         // serialises Upload, Activate and sync
	failed  map[string]Failure // stored versions this replica refused
	records map[string]Record  // every stored version seen, loaded or failed
	history []Activation       // most recent first
}

// Failure is a stored version this replica could not load.
type Failure struct {
	Record Record
	Err    error
}

type metrics struct {
	uploads     *prometheus.CounterVec
	activations prometheus.Counter
	syncs       *prometheus.CounterVec
	active      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		uploads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_model_uploads_total", Help: "Model uploads by result (stored, refused, error).",
		}, []string{"result"}),
		activations: f.NewCounter(prometheus.CounterOpts{
			Name: "churn_model_activations_total", Help: "Model activations applied on this replica, from any replica.",
		}),
		syncs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_model_syncs_total", Help: "Reconciles of this replica with the model store, by result (ok, error).",
		}, []string{"result"}),
		active: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "churn_model_active_info", Help: "The active model (value 1), by name and version.",
		}, []string{"name", "version"}),
	}
	for _, r := range []string{"stored", "refused", "error"} {
		m.uploads.WithLabelValues(r)
	}
	m.syncs.WithLabelValues("ok")
	m.syncs.WithLabelValues("error")
	return m
}

// New makes a registry and runs a first sync, so that the store holds every stored version and
// the backend's active one is active. A backend that cannot be read is not fatal (the replica
// serves the models it has, logs, and the reconcile loop retries); a backend's active version
// that fails to load is logged and left inactive.
func New(ctx context.Context, o Options) (*Registry, error) {
	if o.Backend == nil || o.Store == nil {
		return nil, errors.New("registry: Backend and Store are required")
	}
	if o.Reconcile <= 0 {
		o.Reconcile = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	r := &Registry{
		backend: o.Backend, store: o.Store, reconcile: o.Reconcile, logger: o.Logger, now: o.Now,
		metrics: newMetrics(o.Registerer),
		failed:  map[string]Failure{}, records: map[string]Record{},
	}
	if m := o.Store.Active(); m != nil {
		r.metrics.active.WithLabelValues(m.Name(), m.Version()).Set(1)
	}
	if err := r.Sync(ctx); err != nil {
		r.logger.Warn("model store unreadable at start-up; serving the models at hand, retrying", "backend", r.backend.Name(), "err", err)
	}
	return r, nil
}

// Run follows the backend until ctx ends: a sync on every change notification and every
// Reconcile period.
func (r *Registry) Run(ctx context.Context) {
	changes := r.backend.Changes(ctx)
	tick := time.NewTicker(r.reconcile)
	defer tick.Stop()
	lastErr := "" // a failure is logged when it starts or changes, not every period
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-tick.C:
		}
		err := r.Sync(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && err.Error() != lastErr:
			r.logger.Warn("model store sync failed", "backend", r.backend.Name(), "err", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			r.logger.Info("model store sync recovered", "backend", r.backend.Name())
			lastErr = ""
		}
	}
}

// Sync loads the stored versions this replica lacks and applies the backend's active version.
func (r *Registry) Sync(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.sync(ctx)
	if err != nil {
		r.metrics.syncs.WithLabelValues("error").Inc()
	} else {
		r.metrics.syncs.WithLabelValues("ok").Inc()
	}
	return err
}

func (r *Registry) sync(ctx context.Context) error {
	recs, err := r.backend.List(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var errs []error
	for _, rec := range recs {
		if _, known := r.records[rec.Version]; known {
			continue
		}
		if err := r.load(ctx, rec); err != nil {
			if !errors.Is(err, model.ErrInvalid) {
				// Unreadable now (a timeout, an evicted key): skip it this round, retry at the
				// next sync, and go on with the other versions and the activation state.
				errs = append(errs, fmt.Errorf("version %q: %w", rec.Version, err))
				continue
			}
			r.failed[rec.Version] = Failure{Record: rec, Err: err}
			r.logger.Error("stored model version refused by this replica", "version", rec.Version, "err", err)
		}
		r.records[rec.Version] = rec
	}
	st, err := r.backend.State(ctx)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("%w: %v", ErrUnavailable, err))...)
	}
	r.history = st.History
	if st.Active != "" {
		if cur := r.store.Active(); cur == nil || cur.Version() != st.Active {
			if err := r.store.Activate(st.Active); err != nil {
				// Activated elsewhere but not servable here (a version this replica refused, or
				// the embedded default of another build): keep serving the current model.
				errs = append(errs, fmt.Errorf("active version %q cannot be served here, keeping the current one: %w", st.Active, err))
			} else {
				r.applied(st.Active)
			}
		}
	}
	return errors.Join(errs...)
}

// load reads, verifies and adds one stored version to the store.
func (r *Registry) load(ctx context.Context, rec Record) error {
	data, err := r.backend.Get(ctx, rec.Version)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	m, err := model.Load(data)
	if err != nil {
		return err
	}
	if m.Version() != rec.Version {
		return fmt.Errorf("%w: stored as %q, the manifest says %q", model.ErrInvalid, rec.Version, m.Version())
	}
	m.Origin = model.OriginStore
	if err := r.store.Add(m); err != nil && !errors.Is(err, modelstore.ErrExists) {
		return err
	}
	return nil
}

func (r *Registry) applied(version string) {
	m, ok := r.store.Get(version)
	if !ok {
		return
	}
	r.metrics.active.Reset()
	r.metrics.active.WithLabelValues(m.Name(), m.Version()).Set(1)
	r.metrics.activations.Inc()
	r.logger.Info("model activated", "name", m.Name(), "version", m.Version())
}

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
// version that exists with the same bytes is returned as it is (a retried upload); with other
// bytes it is ErrExists. Nothing is stored unless every check passed.
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

	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.store.Get(m.Version()); ok {
		if old.SHA256 == m.SHA256 {
			return old, nil
		}
		return nil, fmt.Errorf("%w: %q with other bytes (sha256 %s)", ErrExists, m.Version(), old.SHA256)
	}
	if f, failed := r.failed[m.Version()]; failed {
		return nil, fmt.Errorf("%w: %q, and this replica refused it: %v", ErrExists, m.Version(), f.Err)
	}
	rec := Record{Version: m.Version(), SHA256: m.SHA256, Size: m.Size, StoredAt: r.now().UTC(), Description: u.Description}
	if err := r.backend.Put(ctx, rec, u.Data); err != nil {
		if !errors.Is(err, ErrExists) {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		// Stored meanwhile: by another replica, or by this upload's earlier attempt whose reply
		// was lost. The same bytes are the stored version; other bytes are a conflict.
		stored, lerr := r.storedRecord(ctx, m.Version())
		if lerr != nil {
			return nil, lerr
		}
		if stored.SHA256 != m.SHA256 {
			return nil, fmt.Errorf("%w: %q was stored meanwhile with other bytes (sha256 %s)", ErrExists, m.Version(), stored.SHA256)
		}
		rec = stored
	}
	if err := r.store.Add(m); err != nil && !errors.Is(err, modelstore.ErrExists) {
		return nil, err
	}
	r.records[rec.Version] = rec
	if err := r.backend.Notify(ctx); err != nil {
		r.logger.Warn("could not notify the other replicas of an upload; they reconcile on their own", "err", err)
	}
	r.logger.Info("model stored", "name", m.Name(), "version", m.Version(), "sha256", m.SHA256, "bytes", m.Size)
	return m, nil
}

// Activate makes a loaded version the active one: first in the backend (so that it survives a
// restart and reaches the other replicas), then here.
func (r *Registry) Activate(ctx context.Context, version string) (*model.Model, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.store.Get(version)
	if !ok {
		// Perhaps uploaded on another replica a moment ago, before its notice arrived.
		if serr := r.sync(ctx); serr != nil {
			r.logger.Warn("sync before activation", "err", serr)
		}
		m, ok = r.store.Get(version)
	}
	if f, failed := r.failed[version]; failed {
		return nil, fmt.Errorf("%w: %q: %v", ErrFailed, version, f.Err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, version)
	}
	now := r.now().UTC()
	if cur := r.store.Active(); cur != nil && len(r.history) == 0 && cur.Version() != version {
		// The first activation through the store: record the version serving until now (the
		// embedded default or --model-version), so that a roll back has somewhere to go.
		if err := r.ensureStored(ctx, cur); err != nil {
			return nil, err
		}
		first := Activation{Version: cur.Version(), At: now}
		if err := r.backend.Activate(ctx, first); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		r.history = []Activation{first}
	}
	if err := r.ensureStored(ctx, m); err != nil {
		return nil, err
	}
	a := Activation{Version: version, At: now}
	if err := r.backend.Activate(ctx, a); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	r.history = append([]Activation{a}, r.history...)
	if len(r.history) > MaxHistory {
		r.history = r.history[:MaxHistory]
	}
	if err := r.store.Activate(version); err != nil {
		return nil, err
	}
	r.applied(version)
	if err := r.backend.Notify(ctx); err != nil {
		r.logger.Warn("could not notify the other replicas of an activation; they reconcile on their own", "err", err)
	}
	return m, nil
}

// ensureStored puts a version that did not come from the store (the embedded default, a
// --model-dir bundle) into it before it is named in the activation state, so that every replica,
// and a later build that embeds another default, can load it and roll back to it.
func (r *Registry) ensureStored(ctx context.Context, m *model.Model) error {
	if _, ok := r.records[m.Version()]; ok || m.Origin == model.OriginStore {
		return nil
	}
	data, err := m.Bundle.Encode()
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	rec := Record{Version: m.Version(), SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), StoredAt: r.now().UTC()}
	if err := r.backend.Put(ctx, rec, data); err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	r.records[rec.Version] = rec
	return nil
}

// storedRecord returns the backend's record of a version.
func (r *Registry) storedRecord(ctx context.Context, version string) (Record, error) {
	recs, err := r.backend.List(ctx)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	for _, rec := range recs {
		if rec.Version == version {
			return rec, nil
		}
	}
	return Record{}, fmt.Errorf("%w: %q is stored but has no record", ErrUnavailable, version)
}

// Version is what the registry knows of one version, for ListModels and GetModel.
type Version struct {
	Model  *model.Model // nil when it failed to load
	Record *Record      // nil for a version that was not uploaded (embedded, --model-dir)
	Err    error        // why it failed to load
	Active bool
}

// List returns every version, loaded ones oldest first, then the failed ones, and the activation
// history, most recent first.
func (r *Registry) List() ([]Version, []Activation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	active := r.store.Active()
	var out []Version
	for _, m := range r.store.List() {
		out = append(out, r.version(m, active))
	}
	failed := make([]string, 0, len(r.failed))
	for v := range r.failed {
		failed = append(failed, v)
	}
	slices.Sort(failed)
	for _, v := range failed {
		rec := r.failed[v].Record
		out = append(out, Version{Record: &rec, Err: r.failed[v].Err})
	}
	return out, append([]Activation(nil), r.history...)
}

// Get returns one version; ErrNotFound when unknown.
func (r *Registry) Get(version string) (Version, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.failed[version]; ok {
		rec := f.Record
		return Version{Record: &rec, Err: f.Err}, nil
	}
	m, ok := r.store.Get(version)
	if !ok {
		return Version{}, fmt.Errorf("%w: %q", ErrNotFound, version)
	}
	return r.version(m, r.store.Active()), nil
}

func (r *Registry) version(m, active *model.Model) Version {
	v := Version{Model: m, Active: m == active}
	if rec, ok := r.records[m.Version()]; ok {
		v.Record = &rec
	}
	return v
}
