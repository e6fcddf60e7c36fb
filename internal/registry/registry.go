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
//
// What the backend names must be in it. An activation succeeds only once the version's record
// and bundle are in the backend (a version this replica has loaded is written back when the
// backend lost it: a Redis that restarted empty, an evicted key), and the backend's Activate
// checks it in the same step that sets the active version. A reconcile writes back the active
// version and the rollback target when they went missing, and when the backend lost its whole
// activation state it restores the state this replica last read. A replica that cannot serve the
// backend's active version keeps serving its current one and says so (Replica, the
// churn_model_active_mismatch gauge), until a reconcile can load it.
//
// Memory holds what can be served at once: the active version, the rollback target and the
// version of --model-version (Options.ModelVersion). Other stored versions are listed from their records and
// loaded when a request names them (Model), up to Options.OnDemand of them, the one loaded
// longest ago unloaded first. Start-up loads the same few versions, however long the history.
//
// Reads (List, Get, Replica, Model of a loaded version) never wait for the backend: the state
// they read is guarded by a mutex that is never held across a backend call. Writes (Upload's
// store step, Activate, Delete, a reconcile) take turns through a lock that a caller waits for
// only as long as its context allows.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/singleflight"

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
	// ErrNotStored means the version's record or bundle is not in the backend (the error names
	// which), and this replica has not loaded the version, so it cannot write it back.
	ErrNotStored = errors.New("model version not in the model store")
	// ErrProtected means the version is the active one or the rollback target: it cannot be
	// deleted.
	ErrProtected = errors.New("model version in use")
	// ErrNotLoaded means a stored version is not loaded on this replica and loading on demand is
	// off (Options.OnDemand 0).
	ErrNotLoaded = errors.New("model version not loaded on this replica")
)

// Options configure a Registry.
type Options struct {
	Backend Backend
	Store   *modelstore.Store
	// Reconcile is the period of the safety-net reconcile; default 10s.
	Reconcile time.Duration
	// ModelVersion (--model-version) is served while the backend has no active version, and
	// stays loaded like the active version and the rollback target; it may be a stored version.
	ModelVersion string
	// OnDemand bounds how many other stored versions stay loaded for the requests that name
	// them, and for the versions that stopped being needed (the one loaded longest ago is
	// unloaded first); 0 loads none on demand (a request naming one gets ErrNotLoaded).
	OnDemand int
	// Retention keeps the Retention most recently stored versions after each upload, plus the
	// active version, the rollback target and ModelVersion; older versions are deleted. 0 keeps
	// every version.
	Retention  int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// loadTimeout bounds an on-demand load, which no single request owns.
const loadTimeout = time.Minute

// Registry keeps a modelstore.Store in step with a Backend. It is safe for concurrent use.
type Registry struct {
	backend      Backend
	store        *modelstore.Store
	reconcile    time.Duration
	modelVersion string
	onDemand     int
	retention    int
	logger       *slog.Logger
	now          func() time.Time
	metrics      *metrics

	write    chan struct{}      // the write lock (capacity 1), taken with a context
	loads    singleflight.Group // one on-demand load per version at a time
	loadSlot chan struct{}      // one on-demand load at a time (capacity 1): each holds a bundle

	mu       sync.Mutex         // guards the fields below; never held across a backend call
	records  map[string]Record  // the backend's versions as last listed, and those stored since
	sources  map[string]string  // loaded version → sha256 of the stored bytes it stands for
	failed   map[string]Failure // stored versions this replica refused, while their record stays
	state    State              // the backend's activation state as last read or written
	demand   []string           // versions loaded on demand, or no longer needed; oldest first
	problem  string             // why the backend's active version is not served; "" when it is
	syncedAt time.Time          // the last sync that read the backend
	syncErr  error              // the last sync's failure; nil when it succeeded
	wrote    bool               // a write back happened since the last sync began
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
	repairs     *prometheus.CounterVec
	deletions   *prometheus.CounterVec
	demandLoads *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, r *Registry) *metrics {
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
		repairs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_model_store_repairs_total",
			Help: "What this replica wrote back to a model store that had lost it: a version (its record and bundle) or the activation state.",
		}, []string{"kind"}),
		deletions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_model_deletions_total", Help: "Model versions deleted from the model store by this replica, by reason (request, retention).",
		}, []string{"reason"}),
		demandLoads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_model_on_demand_loads_total", Help: "Stored versions loaded because a request named them, by result (ok, error).",
		}, []string{"result"}),
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "churn_model_active_mismatch",
		Help: "1 when this replica cannot serve the model store's active version and serves another one (/readyz and ListModels say why), else 0.",
	}, func() float64 {
		if r.Replica().Problem != "" {
			return 1
		}
		return 0
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "churn_model_loaded_versions", Help: "Model versions loaded in memory on this replica.",
	}, func() float64 { return float64(len(r.store.List())) })
	for _, v := range []string{"stored", "refused", "error"} {
		m.uploads.WithLabelValues(v)
	}
	for _, v := range []string{"ok", "error"} {
		m.syncs.WithLabelValues(v)
		m.demandLoads.WithLabelValues(v)
	}
	for _, v := range []string{"version", "state"} {
		m.repairs.WithLabelValues(v)
	}
	for _, v := range []string{"request", "retention"} {
		m.deletions.WithLabelValues(v)
	}
	return m
}

// New makes a registry and runs a first sync, so that the store holds what can be served at once
// (the backend's active version, the rollback target, Options.ModelVersion) and the backend's
// active version is active. A backend that cannot be read is not fatal (the replica serves the
// models it has, logs, and the reconcile loop retries); a backend's active version that cannot
// be loaded is reported (Replica) and left inactive.
func New(ctx context.Context, o Options) (*Registry, error) {
	if o.Backend == nil || o.Store == nil {
		return nil, errors.New("registry: Backend and Store are required")
	}
	if o.OnDemand < 0 || o.Retention < 0 {
		return nil, errors.New("registry: OnDemand and Retention must not be negative")
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
		modelVersion: o.ModelVersion, onDemand: o.OnDemand, retention: o.Retention,
		write: make(chan struct{}, 1), loadSlot: make(chan struct{}, 1),
		records: map[string]Record{}, sources: map[string]string{}, failed: map[string]Failure{},
	}
	r.metrics = newMetrics(o.Registerer, r)
	if m := o.Store.Active(); m != nil {
		r.metrics.active.WithLabelValues(m.Name(), m.Version()).Set(1)
	}
	if err := r.Sync(ctx); err != nil {
		r.logger.Warn("model store not fully readable at start-up; serving the models at hand, retrying", "backend", r.backend.Name(), "err", err)
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

// lock takes the write lock, waiting at most as long as ctx allows.
func (r *Registry) lock(ctx context.Context) error {
	select {
	case r.write <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for another change of the model store to finish: %w", ctx.Err())
	}
}

func (r *Registry) unlock() { <-r.write }

// Sync reads the backend's versions and activation state, loads what must be served, writes
// back what the backend lost, applies the backend's active version, and unloads what is no
// longer needed.
func (r *Registry) Sync(ctx context.Context) error {
	if err := r.lock(ctx); err != nil {
		return err
	}
	defer r.unlock()
	err := r.sync(ctx)
	r.mu.Lock()
	r.syncErr = err
	r.mu.Unlock()
	if err != nil {
		r.metrics.syncs.WithLabelValues("error").Inc()
	} else {
		r.metrics.syncs.WithLabelValues("ok").Inc()
	}
	return err
}

func (r *Registry) sync(ctx context.Context) error {
	recs, st, err := r.read(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.wrote = false
	r.mu.Unlock()
	var errs []error
	if st.Active == "" && len(st.History) == 0 {
		restored, err := r.restore(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("restoring the model store's lost activation state: %w", err))
		}
		if restored {
			if recs, st, err = r.read(ctx); err != nil {
				return err
			}
		}
	}
	r.mu.Lock()
	r.setRecords(recs)
	r.state = st
	r.syncedAt = r.now()
	r.mu.Unlock()

	// Load, or write back, each version that must be servable here.
	loadErrs := map[string]error{}
	for _, v := range r.needed(st) {
		if err := r.ensure(ctx, v, st); err != nil {
			loadErrs[v] = err
			errs = append(errs, fmt.Errorf("version %q: %w", v, err))
		}
	}
	r.apply(st, loadErrs[st.Active])
	r.unloadUnneeded()
	r.mu.Lock()
	wrote := r.wrote
	r.mu.Unlock()
	if wrote { // the other replicas may be waiting for what was written back
		if err := r.backend.Notify(ctx); err != nil {
			r.logger.Warn("could not notify the other replicas of a repair; they reconcile on their own", "err", err)
		}
	}
	return errors.Join(errs...)
}

// read lists the backend's records and reads its activation state.
func (r *Registry) read(ctx context.Context) ([]Record, State, error) {
	recs, err := r.backend.List(ctx)
	if err != nil {
		return nil, State{}, unavailable(err)
	}
	st, err := r.backend.State(ctx)
	if err != nil {
		return nil, State{}, unavailable(err)
	}
	return recs, st, nil
}

// setRecords replaces the known records; a failure whose record went away or changed is
// forgotten (the version may load now). r.mu must be held.
func (r *Registry) setRecords(recs []Record) {
	r.records = make(map[string]Record, len(recs))
	for _, rec := range recs {
		r.records[rec.Version] = rec
	}
	for v, f := range r.failed {
		if rec, ok := r.records[v]; !ok || rec.SHA256 != f.Record.SHA256 {
			delete(r.failed, v)
		}
	}
}

// restore writes the activation state this replica last read back into a backend that has
// none, when this replica serves that state's active version: the backend lost it (a Redis that
// restarted empty), and the replicas that restart meanwhile would serve something else. The
// active version and the rollback target are written back first.
func (r *Registry) restore(ctx context.Context) (bool, error) {
	r.mu.Lock()
	prev := r.state
	r.mu.Unlock()
	cur := r.store.Active()
	if prev.Active == "" || cur == nil || cur.Version() != prev.Active {
		return false, nil
	}
	if err := r.writeBack(ctx, cur); err != nil {
		return false, err
	}
	if rb, ok := r.store.Get(prev.RollbackTarget()); ok {
		if err := r.writeBack(ctx, rb); err != nil {
			return false, err
		}
	}
	ok, err := r.backend.Restore(ctx, prev)
	if err != nil {
		return false, storeError(err)
	}
	if ok {
		r.metrics.repairs.WithLabelValues("state").Inc()
		r.logger.Warn("the model store had lost its activation state (restarted empty?); restored it from this replica",
			"backend", r.backend.Name(), "active", prev.Active, "history", len(prev.History))
	}
	return ok, nil
}

// needed are the versions that must be loaded: the backend's active version, the rollback
// target and ModelVersion (the model served now stays loaded as the store's active one).
func (r *Registry) needed(st State) []string {
	var out []string
	for _, v := range []string{st.Active, st.RollbackTarget(), r.modelVersion} {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// ensure makes a needed version servable here: loaded (from the backend when it is not), and,
// when the activation state names it, in the backend too (written back when the backend lost it).
func (r *Registry) ensure(ctx context.Context, version string, st State) error {
	r.mu.Lock()
	rec, stored := r.records[version]
	source := r.sources[version]
	f, failed := r.failed[version]
	r.mu.Unlock()
	if m, ok := r.store.Get(version); ok {
		if stored && m.Origin == model.OriginStore && source != "" && rec.SHA256 != source {
			// The backend holds other bytes under this version now (deleted or lost, then
			// uploaded again): serve those, like every replica that loads it from now on.
			fresh, err := r.loadRecord(ctx, rec)
			if err != nil {
				return err
			}
			r.mu.Lock()
			r.store.Replace(fresh)
			r.sources[version] = rec.SHA256
			r.mu.Unlock()
			r.logger.Warn("stored bytes of a loaded model version changed; reloaded", "version", version, "sha256", rec.SHA256)
			return nil
		}
		if version == st.Active || version == st.RollbackTarget() {
			return r.writeBack(ctx, m)
		}
		return nil
	}
	if !stored {
		if version == st.Active {
			return fmt.Errorf("%w: neither the record nor the bundle of %q is in the model store, and this replica has not loaded it: upload it again", ErrNotStored, version)
		}
		return nil // a --model-version that is not stored, or a rollback target that was deleted
	}
	if failed {
		return fmt.Errorf("%w: %v", ErrFailed, f.Err)
	}
	m, err := r.loadRecord(ctx, rec)
	if err != nil {
		return r.refused(rec, err)
	}
	r.mu.Lock()
	r.add(m, rec.SHA256)
	r.mu.Unlock()
	return nil
}

// refused records a version this replica refuses (an invalid bundle) and returns err.
func (r *Registry) refused(rec Record, err error) error {
	if errors.Is(err, model.ErrInvalid) {
		r.mu.Lock()
		r.failed[rec.Version] = Failure{Record: rec, Err: err}
		r.mu.Unlock()
		r.logger.Error("stored model version refused by this replica", "version", rec.Version, "err", err)
		return fmt.Errorf("%w: %q: %v", ErrFailed, rec.Version, err)
	}
	return err
}

// apply activates the backend's active version here when it is loaded, and otherwise records
// why this replica cannot serve it (loadErr: why it did not load, when it was tried). While the
// backend has no active version, ModelVersion is served.
func (r *Registry) apply(st State, loadErr error) {
	problem := ""
	if v := r.modelVersion; st.Active == "" && v != "" {
		if cur := r.store.Active(); (cur == nil || cur.Version() != v) && r.store.Activate(v) == nil {
			r.applied(v)
		}
	}
	if v := st.Active; v != "" {
		cur := r.store.Active()
		switch {
		case cur != nil && cur.Version() == v:
		case r.store.Activate(v) == nil:
			r.applied(v)
		default:
			served := "no model"
			if cur != nil {
				served = cur.Version()
			}
			why := "it is not loaded"
			if loadErr != nil {
				why = loadErr.Error()
			}
			problem = fmt.Sprintf("the model store's active version is %q but this replica serves %s: %s", v, served, why)
		}
	}
	r.mu.Lock()
	changed := problem != r.problem
	r.problem = problem
	r.mu.Unlock()
	if changed && problem != "" {
		r.logger.Error("this replica cannot serve the model store's active version; serving the current one, not ready", "problem", problem)
	} else if changed {
		r.logger.Info("this replica serves the model store's active version again", "version", st.Active)
	}
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

// unavailable wraps a backend failure.
func unavailable(err error) error { return fmt.Errorf("%w: %v", ErrUnavailable, err) }

// storeError passes the backend's refusals (ErrNotStored, ErrProtected, ErrExists) through and
// wraps anything else as ErrUnavailable.
func storeError(err error) error {
	if errors.Is(err, ErrNotStored) || errors.Is(err, ErrProtected) || errors.Is(err, ErrExists) {
		return err
	}
	return unavailable(err)
}
